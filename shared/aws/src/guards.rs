//! Request guards in the control table: idempotency keys and rate-limit counters.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | idempotency key | `IDEMP#<scope>` | `<key>` |
//! | rate counter | `RATE#<bucket>` | `<window>` |
//!
//! Both expire through the table's TTL; reads treat an expired item as absent because TTL deletion
//! lags.

use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use tributary_core::PortError;
use tributary_core::error::Service;
use tributary_core::ports::{IdempotencyBegin, IdempotencyStore, RateCounter, StoredResponse};
use tributary_core::time::EpochMillis;

use crate::dynamo::{DynamoTable, EXPIRES_AT, PK, SK};
use crate::errors::classify;

const PENDING: &str = "pending";
const DONE: &str = "done";

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn idem_pk(scope: &str) -> String {
    format!("IDEMP#{scope}")
}

impl IdempotencyStore for DynamoTable {
    async fn begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now_ms: EpochMillis,
        lease: Duration,
        keep: Duration,
    ) -> Result<IdempotencyBegin, PortError> {
        let now_secs = now_ms / 1000;
        let claimed = self
            .client()
            .put_item()
            .table_name(self.name())
            .item(PK, s(idem_pk(scope)))
            .item(SK, s(key))
            .item("state", s(PENDING))
            .item("fingerprint", s(fingerprint))
            .item("lease_until", n(now_secs.saturating_add(secs(lease))))
            .item(EXPIRES_AT, n(now_secs.saturating_add(secs(keep))))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now OR (#state = :pending AND lease_until < :now)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":now", n(now_secs))
            .expression_attribute_values(":pending", s(PENDING))
            .send()
            .await;
        match claimed {
            Ok(_) => return Ok(IdempotencyBegin::Started),
            Err(e) => match classify(Service::Store, "PutItem", e, |inner| match inner {
                PutItemError::ConditionalCheckFailedException(_) => Some(PortError::Conflict {
                    service: Service::Store,
                    operation: "PutItem",
                }),
                _ => None,
            }) {
                PortError::Conflict { .. } => {}
                other => return Err(other),
            },
        }
        let Some(item) = self.get(&idem_pk(scope), key).await? else {
            // Claimed and released in between: the caller may simply retry.
            return Ok(IdempotencyBegin::InProgress);
        };
        let text = |name: &str| match item.get(name) {
            Some(AttributeValue::S(v)) => Some(v.as_str()),
            _ => None,
        };
        if text("fingerprint") != Some(fingerprint) {
            return Ok(IdempotencyBegin::Mismatch);
        }
        if text("state") != Some(DONE) {
            return Ok(IdempotencyBegin::InProgress);
        }
        let status = match item.get("status") {
            Some(AttributeValue::N(v)) => v.parse().ok(),
            _ => None,
        };
        match (status, text("body")) {
            (Some(status), Some(body)) => Ok(IdempotencyBegin::Replay(StoredResponse {
                status,
                body: body.to_owned(),
            })),
            _ => Err(PortError::Corrupt {
                service: Service::Store,
                operation: "GetItem",
                detail: "completed idempotency record lacks its response".into(),
            }),
        }
    }

    async fn complete(
        &self,
        scope: &str,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), PortError> {
        self.client()
            .update_item()
            .table_name(self.name())
            .key(PK, s(idem_pk(scope)))
            .key(SK, s(key))
            .update_expression("SET #state = :done, #status = :status, body = :body")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s(DONE))
            .expression_attribute_values(":status", n(response.status))
            .expression_attribute_values(":body", s(response.body.clone()))
            .send()
            .await
            .map_err(|e| classify(Service::Store, "UpdateItem", e, |_| None))?;
        Ok(())
    }

    async fn abandon(&self, scope: &str, key: &str) -> Result<(), PortError> {
        self.client()
            .delete_item()
            .table_name(self.name())
            .key(PK, s(idem_pk(scope)))
            .key(SK, s(key))
            .send()
            .await
            .map_err(|e| classify(Service::Store, "DeleteItem", e, |_| None))?;
        Ok(())
    }
}

impl RateCounter for DynamoTable {
    async fn add(
        &self,
        bucket: &str,
        window: i64,
        amount: u32,
        keep: Duration,
    ) -> Result<u64, PortError> {
        let expires = window.saturating_add(secs(keep));
        let out = self
            .client()
            .update_item()
            .table_name(self.name())
            .key(PK, s(format!("RATE#{bucket}")))
            .key(SK, s(window.to_string()))
            .update_expression("ADD #count :amount SET expires_at = :expires")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":amount", n(amount))
            .expression_attribute_values(":expires", n(expires))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| classify(Service::Store, "UpdateItem", e, |_| None))?;
        match out.attributes.as_ref().and_then(|a| a.get("count")) {
            Some(AttributeValue::N(v)) => v.parse().map_err(|_| PortError::Corrupt {
                service: Service::Store,
                operation: "UpdateItem",
                detail: "rate counter is not a whole number".into(),
            }),
            _ => Err(PortError::Corrupt {
                service: Service::Store,
                operation: "UpdateItem",
                detail: "rate counter missing from the response".into(),
            }),
        }
    }
}
