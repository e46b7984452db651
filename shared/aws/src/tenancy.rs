//! Tenants, API keys, issuers and audit events in the control table.
//!
//! Items keep the domain record as a JSON document in `doc`, next to the key attributes:
//!
//! | item | pk | sk |
//! |---|---|---|
//! | tenant | `TENANTS` | `<tenant id>` |
//! | API key (lookup by id) | `APIKEY#<key id>` | `APIKEY` |
//! | API key (tenant's list) | `TENANT#<tenant id>` | `APIKEY#<key id>` |
//! | issuer (tenant's list) | `TENANT#<tenant id>` | `ISSUER#<issuer id>` |
//! | issuer (lookup by `iss`) | `ISSUERURL#<sha256 of iss>` | `<tenant id>#<issuer id>` |
//! | audit event | `TENANT#<tenant id>` | `AUDIT#<event id>` |
//!
//! Every tenant-owned item is under the tenant's partition (or names the tenant in its sort key), so a
//! read can only reach another tenant's data by a key the caller does not control. Changes to
//! credentials are written in one transaction with their audit event.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tributary_core::PortError;
use tributary_core::error::Service;
use tributary_core::ids::{ApiKeyId, IssuerId, TenantId};
use tributary_core::pagination::{Page, PageRequest};
use tributary_core::ports::{CredentialStore, TenantStore};
use tributary_core::tenancy::{ApiKeyRecord, AuditEvent, OidcIssuer, Tenant};
use tributary_core::time::EpochMillis;

use crate::dynamo::{DynamoTable, Item, PK, SK};
use crate::errors::classify;

const DOC: &str = "doc";
const TENANTS_PK: &str = "TENANTS";

fn tenant_pk(id: &TenantId) -> String {
    format!("TENANT#{id}")
}

fn issuer_url_pk(issuer: &str) -> String {
    format!(
        "ISSUERURL#{}",
        hex::encode(Sha256::digest(issuer.as_bytes()))
    )
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn item<T: Serialize>(pk: String, sk: String, doc: &T) -> Result<Item, PortError> {
    let json = serde_json::to_string(doc).map_err(|e| PortError::Rejected {
        service: Service::Store,
        operation: "serialize",
        detail: e.to_string(),
    })?;
    Ok(HashMap::from([
        (PK.to_owned(), s(pk)),
        (SK.to_owned(), s(sk)),
        (DOC.to_owned(), s(json)),
    ]))
}

fn decode<T: DeserializeOwned>(item: &Item, operation: &'static str) -> Result<T, PortError> {
    let Some(AttributeValue::S(json)) = item.get(DOC) else {
        return Err(PortError::Corrupt {
            service: Service::Store,
            operation,
            detail: "item lacks doc".into(),
        });
    };
    serde_json::from_str(json).map_err(|e| PortError::Corrupt {
        service: Service::Store,
        operation,
        detail: e.to_string(),
    })
}

fn put(table: &str, item: Item, condition: Option<&str>) -> Result<TransactWriteItem, PortError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_owned))
        .build()
        .map_err(|e| rejected("TransactWriteItems", e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn delete(table: &str, pk: String, sk: String) -> Result<TransactWriteItem, PortError> {
    let delete = Delete::builder()
        .table_name(table)
        .key(PK, s(pk))
        .key(SK, s(sk))
        .build()
        .map_err(|e| rejected("TransactWriteItems", e.to_string()))?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

fn rejected(operation: &'static str, detail: String) -> PortError {
    PortError::Rejected {
        service: Service::Store,
        operation,
        detail,
    }
}

fn audit_item(event: &AuditEvent) -> Result<Item, PortError> {
    item(
        tenant_pk(&event.tenant_id),
        format!("AUDIT#{}", event.id),
        event,
    )
}

impl DynamoTable {
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), PortError> {
        self.client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| {
                classify(
                    Service::Store,
                    "TransactWriteItems",
                    e,
                    |inner| match inner {
                        TransactWriteItemsError::TransactionCanceledException(_) => {
                            Some(PortError::Conflict {
                                service: Service::Store,
                                operation: "TransactWriteItems",
                            })
                        }
                        _ => None,
                    },
                )
            })?;
        Ok(())
    }

    async fn get_doc<T: DeserializeOwned>(
        &self,
        pk: &str,
        sk: &str,
    ) -> Result<Option<T>, PortError> {
        match self.get(pk, sk).await? {
            Some(item) => Ok(Some(decode(&item, "GetItem")?)),
            None => Ok(None),
        }
    }

    /// Reads one page of `pk`'s items whose sort key starts with `prefix`, in sort-key order.
    async fn query_docs<T: DeserializeOwned>(
        &self,
        pk: &str,
        prefix: &str,
        page: &PageRequest,
    ) -> Result<Page<T>, PortError> {
        let limit = page.limit.clamp(1, 100);
        let mut request = self
            .client()
            .query()
            .table_name(self.name())
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
            // One more than asked tells whether another page exists.
            .limit(i32::try_from(limit + 1).unwrap_or(101));
        if let Some(after) = &page.after {
            request = request
                .exclusive_start_key(PK, s(pk))
                .exclusive_start_key(SK, s(after.clone()));
        }
        let out = request
            .send()
            .await
            .map_err(|e| classify(Service::Store, "Query", e, |_| None))?;
        let mut items = out.items.unwrap_or_default();
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_after = if more {
            items.last().and_then(|i| match i.get(SK) {
                Some(AttributeValue::S(sk)) => Some(sk.clone()),
                _ => None,
            })
        } else {
            None
        };
        let items = items
            .iter()
            .map(|i| decode(i, "Query"))
            .collect::<Result<Vec<T>, _>>()?;
        Ok(Page { items, next_after })
    }

    async fn put_conditional(&self, item: Item, condition: &str) -> Result<bool, PortError> {
        let result = self
            .client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(item))
            .condition_expression(condition)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match classify(Service::Store, "PutItem", e, |inner| match inner {
                PutItemError::ConditionalCheckFailedException(_) => Some(PortError::Conflict {
                    service: Service::Store,
                    operation: "PutItem",
                }),
                _ => None,
            }) {
                PortError::Conflict { .. } => Ok(false),
                other => Err(other),
            },
        }
    }
}

impl TenantStore for DynamoTable {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<(), PortError> {
        let created = self
            .put_conditional(
                item(TENANTS_PK.into(), tenant.id.to_string(), tenant)?,
                "attribute_not_exists(pk)",
            )
            .await?;
        if created {
            Ok(())
        } else {
            Err(PortError::Conflict {
                service: Service::Store,
                operation: "PutItem",
            })
        }
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, PortError> {
        self.get_doc(TENANTS_PK, id.as_str()).await
    }

    async fn list_tenants(&self, page: &PageRequest) -> Result<Page<Tenant>, PortError> {
        self.query_docs(TENANTS_PK, TenantId::PREFIX, page).await
    }

    async fn update_tenant(&self, tenant: &Tenant) -> Result<bool, PortError> {
        self.put_conditional(
            item(TENANTS_PK.into(), tenant.id.to_string(), tenant)?,
            "attribute_exists(pk)",
        )
        .await
    }

    async fn delete_tenant(&self, id: &TenantId) -> Result<bool, PortError> {
        let out = self
            .client()
            .delete_item()
            .table_name(self.name())
            .key(PK, s(TENANTS_PK))
            .key(SK, s(id.as_str()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| classify(Service::Store, "DeleteItem", e, |_| None))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

fn key_items(key: &ApiKeyRecord) -> Result<(Item, Item), PortError> {
    Ok((
        item(format!("APIKEY#{}", key.id), "APIKEY".into(), key)?,
        item(tenant_pk(&key.tenant_id), format!("APIKEY#{}", key.id), key)?,
    ))
}

impl CredentialStore for DynamoTable {
    async fn create_key(&self, key: &ApiKeyRecord, audit: &AuditEvent) -> Result<(), PortError> {
        let (lookup, listed) = key_items(key)?;
        self.transact(vec![
            put(self.name(), lookup, Some("attribute_not_exists(pk)"))?,
            put(self.name(), listed, Some("attribute_not_exists(pk)"))?,
            put(self.name(), audit_item(audit)?, None)?,
        ])
        .await
    }

    async fn get_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRecord>, PortError> {
        self.get_doc(&format!("APIKEY#{id}"), "APIKEY").await
    }

    async fn list_keys(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<ApiKeyRecord>, PortError> {
        self.query_docs(&tenant_pk(tenant), "APIKEY#", page).await
    }

    async fn revoke_key(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        at_ms: EpochMillis,
        audit: &AuditEvent,
    ) -> Result<Option<ApiKeyRecord>, PortError> {
        let Some(mut key) = self
            .get_doc::<ApiKeyRecord>(&tenant_pk(tenant), &format!("APIKEY#{id}"))
            .await?
        else {
            return Ok(None);
        };
        if key.tenant_id != *tenant {
            return Ok(None);
        }
        if key.revoked_at_ms.is_some() {
            return Ok(Some(key));
        }
        key.revoked_at_ms = Some(at_ms);
        let (lookup, listed) = key_items(&key)?;
        self.transact(vec![
            put(self.name(), lookup, Some("attribute_exists(pk)"))?,
            put(self.name(), listed, Some("attribute_exists(pk)"))?,
            put(self.name(), audit_item(audit)?, None)?,
        ])
        .await?;
        Ok(Some(key))
    }

    async fn create_issuer(
        &self,
        issuer: &OidcIssuer,
        audit: &AuditEvent,
    ) -> Result<(), PortError> {
        self.transact(vec![
            put(
                self.name(),
                item(
                    tenant_pk(&issuer.tenant_id),
                    format!("ISSUER#{}", issuer.id),
                    issuer,
                )?,
                Some("attribute_not_exists(pk)"),
            )?,
            put(
                self.name(),
                item(
                    issuer_url_pk(&issuer.issuer),
                    format!("{}#{}", issuer.tenant_id, issuer.id),
                    issuer,
                )?,
                Some("attribute_not_exists(pk)"),
            )?,
            put(self.name(), audit_item(audit)?, None)?,
        ])
        .await
    }

    async fn get_issuer(
        &self,
        tenant: &TenantId,
        id: &IssuerId,
    ) -> Result<Option<OidcIssuer>, PortError> {
        self.get_doc(&tenant_pk(tenant), &format!("ISSUER#{id}"))
            .await
    }

    async fn list_issuers(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<OidcIssuer>, PortError> {
        self.query_docs(&tenant_pk(tenant), "ISSUER#", page).await
    }

    async fn delete_issuer(
        &self,
        tenant: &TenantId,
        id: &IssuerId,
        audit: &AuditEvent,
    ) -> Result<bool, PortError> {
        let Some(issuer) = self.get_issuer(tenant, id).await? else {
            return Ok(false);
        };
        self.transact(vec![
            delete(self.name(), tenant_pk(tenant), format!("ISSUER#{id}"))?,
            delete(
                self.name(),
                issuer_url_pk(&issuer.issuer),
                format!("{tenant}#{id}"),
            )?,
            put(self.name(), audit_item(audit)?, None)?,
        ])
        .await?;
        Ok(true)
    }

    async fn issuers_by_url(&self, issuer: &str) -> Result<Vec<OidcIssuer>, PortError> {
        // A URL is registered by few tenants; 100 is far above any real count.
        let page = PageRequest {
            limit: 100,
            after: None,
        };
        let found: Page<OidcIssuer> = self
            .query_docs(&issuer_url_pk(issuer), TenantId::PREFIX, &page)
            .await?;
        Ok(found
            .items
            .into_iter()
            .filter(|i| i.issuer == issuer)
            .collect())
    }

    async fn list_audit(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>, PortError> {
        self.query_docs(&tenant_pk(tenant), "AUDIT#", page).await
    }
}
