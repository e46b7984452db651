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
//! | issuer (lookup by `iss` and `aud`) | `ISSUERAUD#<sha256 of the pair>` | `ISSUERAUD` |
//! | issuer count (the per-tenant cap) | `TENANT#<tenant id>` | `ISSUERCOUNT` |
//! | audit event | `TENANT#<tenant id>` | `AUDIT#<event id>` |
//! | integration ([`crate::integrations`]) | `TENANT#<tenant id>` | `INTEGRATION#<integration id>` |
//! | integration's tenant (the webhook route's lookup) | `INTEGRATIONROUTE#<integration id>` | `INTEGRATIONROUTE` |
//! | inbound webhook, its replay marker, a provider event ([`crate::inbound`]) | `TENANT#<tenant id>` | `INBOUND#…`, `INBOUNDSEEN#…`, `PROVIDEREVENT#…` |
//! | connection and its events ([`crate::connections`]) | `TENANT#<tenant id>` | `CONN#…`, `CONNEVENT#…` |
//! | sync, its claim, runs and events ([`crate::syncs`]) | `TENANT#<tenant id>` | `SYNC#…`, `SYNCMODEL#…`, `RUN#…`, `SYNCEVENT#…` |
//!
//! Every tenant-owned item is under the tenant's partition or is found from an item there, so a read
//! can only reach another tenant's data by a key the caller does not control, and deleting a tenant
//! finds everything it owns by walking its partition. Changes to credentials are written in one
//! transaction with their audit event; the (issuer, audience) item is written in the registration's
//! transaction on the condition that it does not exist, which makes the pair unique across tenants
//! even under concurrent registrations. Tenants carry a `version` attribute that every update checks.
//!
//! A tenant's synced records live in the records table ([`crate::records`]), which this table's
//! purge cannot reach: the syncs' records are to be purged before the tenant's partition (each
//! sync's `RecordStore::purge`); a purge that still finds a sync says so in a warning that names
//! its feed.

use std::collections::HashMap;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, Put, PutRequest, TransactWriteItem, Update, WriteRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tributary_core::PortError;
use tributary_core::error::Service;
use tributary_core::ids::{ApiKeyId, IssuerId, TenantId};
use tributary_core::pagination::{MAX_LIMIT, Page, PageRequest};
use tributary_core::ports::{CredentialStore, TenantStore};
use tributary_core::sync::SyncConfig;
use tributary_core::tenancy::{
    ApiKeyRecord, AuditEvent, IssuerCreated, OidcIssuer, PurgeProgress, Tenant,
};
use tributary_core::time::EpochMillis;

use crate::dynamo::{DynamoTable, EXPIRES_AT, Item, PK, SK};
use crate::errors::classify;

const DOC: &str = "doc";
/// The attribute that holds a record's JSON document.
pub(crate) const DOC_ATTRIBUTE: &str = DOC;
pub(crate) const VERSION: &str = "version";
const TENANTS_PK: &str = "TENANTS";
const ISSUER_PAIR_SK: &str = "ISSUERAUD";
const ISSUER_COUNT_SK: &str = "ISSUERCOUNT";
const ISSUER_COUNT: &str = "n";
/// Items of a deleting tenant's partition read (and removed) per purge step.
const PURGE_PAGE: i32 = 25;
/// Items one filtered list call reads at most before it answers with what it found and a cursor.
const MAX_EXAMINED: usize = 1000;

/// How many items the next read of a filtered list asks DynamoDB to examine (its `Limit`), after
/// reads that asked for `previous` and examined `examined` in all without filling the page. The
/// first read asks for one more than the page, all a list whose filter passes everything needs;
/// each further one for four times as many, within what is left of [`MAX_EXAMINED`]: a sparse
/// filter costs a few round trips, not one per hundred items.
fn next_ask(previous: usize, examined: usize) -> usize {
    previous
        .saturating_mul(4)
        .min(MAX_EXAMINED.saturating_sub(examined))
        .max(1)
}

pub(crate) fn tenant_pk(id: &TenantId) -> String {
    format!("TENANT#{id}")
}

/// The key of the (issuer, audience) item: a hash of both, length-prefixed so that no two pairs
/// share an encoding.
fn issuer_pair_pk(issuer: &str, audience: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(issuer.len().to_string().as_bytes());
    hasher.update(b":");
    hasher.update(issuer.as_bytes());
    hasher.update(audience.as_bytes());
    format!("ISSUERAUD#{}", hex::encode(hasher.finalize()))
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn tenant_item(tenant: &Tenant) -> Result<Item, PortError> {
    let mut it = item(TENANTS_PK.into(), tenant.id.to_string(), tenant)?;
    it.insert(VERSION.to_owned(), n(tenant.version));
    Ok(it)
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn item<T: Serialize>(pk: String, sk: String, doc: &T) -> Result<Item, PortError> {
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

pub(crate) fn decode<T: DeserializeOwned>(
    item: &Item,
    operation: &'static str,
) -> Result<T, PortError> {
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

pub(crate) fn put(
    table: &str,
    item: Item,
    condition: Option<&str>,
) -> Result<TransactWriteItem, PortError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_owned))
        .build()
        .map_err(|e| rejected("TransactWriteItems", e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

pub(crate) fn delete(table: &str, pk: String, sk: String) -> Result<TransactWriteItem, PortError> {
    let delete = Delete::builder()
        .table_name(table)
        .key(PK, s(pk))
        .key(SK, s(sk))
        .build()
        .map_err(|e| rejected("TransactWriteItems", e.to_string()))?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

/// Another write changed the item since it was read.
pub(crate) fn conflict(operation: &'static str) -> PortError {
    PortError::Conflict {
        service: Service::Store,
        operation,
    }
}

pub(crate) fn rejected(operation: &'static str, detail: String) -> PortError {
    PortError::Rejected {
        service: Service::Store,
        operation,
        detail,
    }
}

pub(crate) fn audit_item(event: &AuditEvent) -> Result<Item, PortError> {
    item(
        tenant_pk(&event.tenant_id),
        format!("AUDIT#{}", event.id),
        event,
    )
}

/// Whether a conditional `UpdateItem` applied: `false` when its condition did not hold.
pub(crate) fn applied<T>(
    result: Result<T, SdkError<UpdateItemError, HttpResponse>>,
) -> Result<bool, PortError> {
    match result {
        Ok(_) => Ok(true),
        Err(e) => match classify(Service::Store, "UpdateItem", e, |inner| match inner {
            UpdateItemError::ConditionalCheckFailedException(_) => Some(PortError::Conflict {
                service: Service::Store,
                operation: "UpdateItem",
            }),
            _ => None,
        }) {
            PortError::Conflict { .. } => Ok(false),
            other => Err(other),
        },
    }
}

/// The id in a key attribute of `item` after `prefix` (`TENANT#<id>`), if it parses.
pub(crate) fn key_id<T: std::str::FromStr>(item: &Item, key: &str, prefix: &str) -> Option<T> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => v.strip_prefix(prefix)?.parse().ok(),
        _ => None,
    }
}

pub(crate) fn sort_key(item: &Item) -> Option<String> {
    match item.get(SK) {
        Some(AttributeValue::S(sk)) => Some(sk.clone()),
        _ => None,
    }
}

/// A filter a list applies as it reads a partition: the expression, its names and its values.
#[derive(Debug, Default)]
pub(crate) struct ListFilter {
    pub(crate) expression: Option<String>,
    pub(crate) names: HashMap<String, String>,
    pub(crate) values: HashMap<String, AttributeValue>,
    /// Sort keys to read, both included (within the list's prefix): the key condition narrows the
    /// read itself, where the expression only drops what was read.
    pub(crate) sk_range: Option<(String, String)>,
}

impl ListFilter {
    /// Adds a term (whose names and values the caller adds).
    pub(crate) fn and(&mut self, term: &str) {
        self.expression = Some(match self.expression.take() {
            Some(e) => format!("{e} AND {term}"),
            None => term.to_owned(),
        });
    }

    /// Adds `attribute = value`.
    pub(crate) fn eq(&mut self, attribute: &str, value: impl Into<String>) {
        let (name, placeholder) = (format!("#{attribute}"), format!(":{attribute}"));
        self.and(&format!("{name} = {placeholder}"));
        self.names.insert(name, attribute.to_owned());
        self.values.insert(placeholder, s(value));
    }
}

impl DynamoTable {
    pub(crate) async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), PortError> {
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

    /// Runs a transaction; when it is cancelled, returns for each of its items whether its condition
    /// failed.
    pub(crate) async fn transact_checked(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Result<(), Vec<bool>>, PortError> {
        let count = items.len();
        let result = self
            .client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Ok(())),
            Err(e) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                    e.as_service_error()
                {
                    let failed: Vec<bool> = (0..count)
                        .map(|i| {
                            cancelled
                                .cancellation_reasons()
                                .get(i)
                                .and_then(|r| r.code())
                                .is_some_and(|c| c == "ConditionalCheckFailed")
                        })
                        .collect();
                    // Cancelled for another reason (a conflict with a concurrent transaction):
                    // retryable, not a verdict.
                    if failed.iter().any(|f| *f) {
                        return Ok(Err(failed));
                    }
                    return Err(PortError::Conflict {
                        service: Service::Store,
                        operation: "TransactWriteItems",
                    });
                }
                Err(classify(Service::Store, "TransactWriteItems", e, |_| None))
            }
        }
    }

    pub(crate) async fn get_doc<T: DeserializeOwned>(
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
    pub(crate) async fn query_docs<T: DeserializeOwned>(
        &self,
        pk: &str,
        prefix: &str,
        page: &PageRequest,
    ) -> Result<Page<T>, PortError> {
        self.query_docs_in(pk, prefix, page, true).await
    }

    /// Reads one page of `pk`'s items whose sort key starts with `prefix`, in sort-key order or
    /// (not `forward`) its reverse. The page's position is the last sort key read: the next page
    /// starts after it in the direction read (`sk < :after` backwards), as an exclusive start key.
    pub(crate) async fn query_docs_in<T: DeserializeOwned>(
        &self,
        pk: &str,
        prefix: &str,
        page: &PageRequest,
        forward: bool,
    ) -> Result<Page<T>, PortError> {
        let limit = page.limit.clamp(1, 100);
        // A start key outside the queried range is a ValidationException in DynamoDB: it is the
        // caller's (crafted) cursor that is wrong.
        if page
            .after
            .as_deref()
            .is_some_and(|a| !a.starts_with(prefix))
        {
            return Err(PortError::OutOfRange {
                service: Service::Store,
                operation: "Query",
            });
        }
        let mut request = self
            .client()
            .query()
            .table_name(self.name())
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
            .scan_index_forward(forward)
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

    /// Reads one page of `pk`'s items whose sort key starts with `prefix` and that pass
    /// `filter`, in sort-key order, each turned into a `T` by `decode`. The filter applies as the
    /// partition is read, and one call reads at most about [`MAX_EXAMINED`] items: a page may hold
    /// fewer than asked (even none) and still have a next one.
    pub(crate) async fn query_filtered<T>(
        &self,
        pk: &str,
        prefix: &str,
        filter: &ListFilter,
        page: &PageRequest,
        decode: impl Fn(&Item) -> Result<T, PortError>,
    ) -> Result<Page<T>, PortError> {
        let limit = page.limit.clamp(1, MAX_LIMIT) as usize;
        // A start key outside the queried range is a ValidationException in DynamoDB: it is the
        // caller's cursor (crafted, or of another range) that is wrong.
        let in_range = |a: &str| match &filter.sk_range {
            Some((lo, hi)) => a >= lo.as_str() && a <= hi.as_str(),
            None => a.starts_with(prefix),
        };
        if page.after.as_deref().is_some_and(|a| !in_range(a)) {
            return Err(PortError::OutOfRange {
                service: Service::Store,
                operation: "Query",
            });
        }
        let mut found: Vec<(String, T)> = Vec::new();
        let mut start = page.after.clone();
        let mut examined = 0;
        let mut ask = limit + 1;
        loop {
            let request = self
                .client()
                .query()
                .table_name(self.name())
                .expression_attribute_values(":pk", s(pk));
            let mut request = match &filter.sk_range {
                Some((lo, hi)) => request
                    .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                    .expression_attribute_values(":lo", s(lo.clone()))
                    .expression_attribute_values(":hi", s(hi.clone())),
                None => request
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
            }
            .set_filter_expression(filter.expression.clone())
            .consistent_read(true)
            .limit(i32::try_from(ask).unwrap_or(i32::MAX));
            for (k, v) in &filter.names {
                request = request.expression_attribute_names(k, v);
            }
            for (k, v) in &filter.values {
                request = request.expression_attribute_values(k, v.clone());
            }
            if let Some(after) = &start {
                request = request
                    .exclusive_start_key(PK, s(pk))
                    .exclusive_start_key(SK, s(after.clone()));
            }
            let out = request
                .send()
                .await
                .map_err(|e| classify(Service::Store, "Query", e, |_| None))?;
            examined += usize::try_from(out.scanned_count).unwrap_or(ask);
            for it in out.items.unwrap_or_default() {
                let Some(key) = sort_key(&it) else { continue };
                found.push((key, decode(&it)?));
                if found.len() > limit {
                    // One more than asked: the page ends at the last one asked for.
                    found.truncate(limit);
                    let next_after = found.last().map(|(k, _)| k.clone());
                    return Ok(Page {
                        items: found.into_iter().map(|(_, c)| c).collect(),
                        next_after,
                    });
                }
            }
            let next = out.last_evaluated_key.as_ref().and_then(sort_key);
            match next {
                None => {
                    return Ok(Page {
                        items: found.into_iter().map(|(_, c)| c).collect(),
                        next_after: None,
                    });
                }
                // Read enough for one call: answer what matched, and where to go on.
                Some(key) if examined >= MAX_EXAMINED => {
                    return Ok(Page {
                        items: found.into_iter().map(|(_, c)| c).collect(),
                        next_after: Some(key),
                    });
                }
                Some(key) => {
                    start = Some(key);
                    ask = next_ask(ask, examined);
                }
            }
        }
    }

    /// Replaces `item` (which carries its new `version`) if the stored one's version is
    /// `expected`, with `with` written in the same transaction (an event, an attempt): `false` when
    /// it does not exist, [`PortError::Conflict`] when another write changed it since it was read
    /// (a read tells which).
    pub(crate) async fn replace_versioned(
        &self,
        item: Item,
        expected: u64,
        with: Option<Item>,
    ) -> Result<bool, PortError> {
        let key = |name: &str| match item.get(name) {
            Some(AttributeValue::S(v)) => Ok(v.clone()),
            _ => Err(rejected("PutItem", format!("the item has no {name}"))),
        };
        let (pk, sk) = (key(PK)?, key(SK)?);
        let written = match with {
            None => self.put_if(item, "version = :v", Some(n(expected))).await?,
            Some(side) => {
                let mut guarded = put(self.name(), item, Some("version = :v"))?;
                if let Some(p) = guarded.put.as_mut() {
                    p.expression_attribute_values
                        .get_or_insert_with(Default::default)
                        .insert(":v".into(), n(expected));
                }
                let items = vec![guarded, put(self.name(), side, None)?];
                self.transact_checked(items).await?.is_ok()
            }
        };
        if written {
            return Ok(true);
        }
        match self.get(&pk, &sk).await? {
            Some(_) => Err(PortError::Conflict {
                service: Service::Store,
                operation: "PutItem",
            }),
            None => Ok(false),
        }
    }

    /// Puts a new item: [`PortError::Conflict`] when one with its key exists.
    pub(crate) async fn put_new(&self, item: Item) -> Result<(), PortError> {
        if self
            .put_conditional(item, "attribute_not_exists(pk)")
            .await?
        {
            Ok(())
        } else {
            Err(conflict("PutItem"))
        }
    }

    pub(crate) async fn put_conditional(
        &self,
        item: Item,
        condition: &str,
    ) -> Result<bool, PortError> {
        self.put_if(item, condition, None).await
    }

    /// Puts `item` if `condition` holds (with `:v` bound to `value`); `false` when it does not.
    pub(crate) async fn put_if(
        &self,
        item: Item,
        condition: &str,
        value: Option<AttributeValue>,
    ) -> Result<bool, PortError> {
        let mut request = self
            .client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(item))
            .condition_expression(condition);
        if let Some(value) = value {
            request = request.expression_attribute_values(":v", value);
        }
        match request.send().await {
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
            .put_conditional(tenant_item(tenant)?, "attribute_not_exists(pk)")
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

    async fn update_tenant(
        &self,
        tenant: &Tenant,
        expected_version: u64,
    ) -> Result<bool, PortError> {
        // Items written before versions existed have no `version`: they count as version 0.
        let condition = if expected_version == 0 {
            "attribute_exists(pk) AND (attribute_not_exists(version) OR version = :v)"
        } else {
            "version = :v"
        };
        if self
            .put_if(tenant_item(tenant)?, condition, Some(n(expected_version)))
            .await?
        {
            return Ok(true);
        }
        // Either it is gone or someone else changed it: a read tells which.
        if self.get(TENANTS_PK, tenant.id.as_str()).await?.is_some() {
            Err(PortError::Conflict {
                service: Service::Store,
                operation: "PutItem",
            })
        } else {
            Ok(false)
        }
    }

    async fn purge_tenant(
        &self,
        id: &TenantId,
        audit_expires_at_s: i64,
    ) -> Result<PurgeProgress, PortError> {
        let pk = tenant_pk(id);
        // Audit events already kept with an expiry are what remains at the end: the filter skips
        // them, so read on past pages of them until there is work or the partition ends.
        let mut start: Option<Item> = None;
        let (items, more) = loop {
            let out = self
                .client()
                .query()
                .table_name(self.name())
                .key_condition_expression("pk = :pk")
                .filter_expression("attribute_not_exists(expires_at)")
                .expression_attribute_values(":pk", s(pk.clone()))
                .consistent_read(true)
                .limit(PURGE_PAGE)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(Service::Store, "Query", e, |_| None))?;
            let next = out.last_evaluated_key.filter(|k| !k.is_empty());
            let items = out.items.unwrap_or_default();
            match next {
                Some(key) if items.is_empty() => start = Some(key),
                next => break (items, next.is_some()),
            }
        };
        let mut requests = Vec::with_capacity(items.len() * 2);
        for found in items {
            let Some(AttributeValue::S(sk)) = found.get(SK).cloned() else {
                continue;
            };
            if sk.starts_with("AUDIT#") {
                let mut kept = found;
                kept.insert(EXPIRES_AT.to_owned(), n(audit_expires_at_s));
                requests.push(put_request(kept)?);
                continue;
            }
            if let Some(key_id) = sk.strip_prefix("APIKEY#") {
                requests.push(delete_request(format!("APIKEY#{key_id}"), "APIKEY".into())?);
            } else if let Some(integration) = sk.strip_prefix("INTEGRATION#") {
                // Its tenant pointer (the webhook route's lookup) goes with it.
                requests.push(delete_request(
                    format!("{}#{integration}", crate::integrations::ROUTE),
                    crate::integrations::ROUTE.into(),
                )?);
            } else if sk.starts_with("ISSUER#") {
                let issuer: OidcIssuer = decode(&found, "Query")?;
                requests.push(delete_request(
                    issuer_pair_pk(&issuer.issuer, &issuer.audience),
                    ISSUER_PAIR_SK.into(),
                )?);
            } else if sk.starts_with(crate::syncs::SYNC_SK) {
                // Its records are in the records table, which this purge cannot reach: say which
                // feed is left, so that it can be purged (or found to expire by its retention).
                match decode::<SyncConfig>(&found, "Query") {
                    Ok(sync) => tracing::warn!(
                        tenant_id = %id,
                        sync_id = %sync.id,
                        connection_id = %sync.connection_id,
                        model = %sync.model,
                        "a deleted tenant's sync is removed before its records: the feed is left in the records table"
                    ),
                    Err(_) => tracing::warn!(
                        tenant_id = %id,
                        sync = %sk,
                        "a deleted tenant's unreadable sync is removed: its feed may be left in the records table"
                    ),
                }
            }
            requests.push(delete_request(pk.clone(), sk)?);
        }
        let acted = !requests.is_empty();
        self.batch_write(requests).await?;
        if acted || more {
            return Ok(PurgeProgress::More);
        }
        self.client()
            .delete_item()
            .table_name(self.name())
            .key(PK, s(TENANTS_PK))
            .key(SK, s(id.as_str()))
            .send()
            .await
            .map_err(|e| classify(Service::Store, "DeleteItem", e, |_| None))?;
        Ok(PurgeProgress::Done)
    }
}

fn put_request(item: Item) -> Result<WriteRequest, PortError> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| rejected("BatchWriteItem", e.to_string()))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

pub(crate) fn delete_request(pk: String, sk: String) -> Result<WriteRequest, PortError> {
    let delete = DeleteRequest::builder()
        .key(PK, s(pk))
        .key(SK, s(sk))
        .build()
        .map_err(|e| rejected("BatchWriteItem", e.to_string()))?;
    Ok(WriteRequest::builder().delete_request(delete).build())
}

fn count_update(
    table: &str,
    tenant: &TenantId,
    delta: i64,
    max: Option<u32>,
) -> Result<TransactWriteItem, PortError> {
    let mut update = Update::builder()
        .table_name(table)
        .key(PK, s(tenant_pk(tenant)))
        .key(SK, s(ISSUER_COUNT_SK))
        .update_expression("ADD #n :delta")
        .expression_attribute_names("#n", ISSUER_COUNT)
        .expression_attribute_values(":delta", n(delta));
    if let Some(max) = max {
        update = update
            .condition_expression("attribute_not_exists(#n) OR #n < :max")
            .expression_attribute_values(":max", n(max));
    }
    let update = update
        .build()
        .map_err(|e| rejected("TransactWriteItems", e.to_string()))?;
    Ok(TransactWriteItem::builder().update(update).build())
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
        max_per_tenant: u32,
    ) -> Result<IssuerCreated, PortError> {
        let outcome = self
            .transact_checked(vec![
                count_update(self.name(), &issuer.tenant_id, 1, Some(max_per_tenant))?,
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
                        issuer_pair_pk(&issuer.issuer, &issuer.audience),
                        ISSUER_PAIR_SK.into(),
                        issuer,
                    )?,
                    Some("attribute_not_exists(pk)"),
                )?,
                put(self.name(), audit_item(audit)?, None)?,
            ])
            .await?;
        Ok(match outcome {
            Ok(()) => IssuerCreated::Created,
            Err(failed) if failed.get(2).copied().unwrap_or(false) => IssuerCreated::PairTaken,
            Err(failed) if failed.first().copied().unwrap_or(false) => IssuerCreated::LimitReached,
            Err(_) => {
                return Err(PortError::Conflict {
                    service: Service::Store,
                    operation: "TransactWriteItems",
                });
            }
        })
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
                issuer_pair_pk(&issuer.issuer, &issuer.audience),
                ISSUER_PAIR_SK.into(),
            )?,
            count_update(self.name(), tenant, -1, None)?,
            put(self.name(), audit_item(audit)?, None)?,
        ])
        .await?;
        Ok(true)
    }

    async fn issuer_registration(
        &self,
        issuer: &str,
        audience: &str,
    ) -> Result<Option<OidcIssuer>, PortError> {
        let found: Option<OidcIssuer> = self
            .get_doc(&issuer_pair_pk(issuer, audience), ISSUER_PAIR_SK)
            .await?;
        // The hash is the key; the stored pair is the truth.
        Ok(found.filter(|r| r.issuer == issuer && r.audience == audience))
    }

    async fn list_audit(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>, PortError> {
        self.query_docs(&tenant_pk(tenant), "AUDIT#", page).await
    }
}

/// A lease kept on an item as two attributes (its holder and until when), taken and given back
/// with conditional writes: the connection's refresh lease and the sync's run lease.
pub(crate) struct Lease {
    /// The attribute holding the expiry (epoch ms).
    pub until: &'static str,
    /// The attribute holding the holder.
    pub holder: &'static str,
}

impl Lease {
    /// Takes the lease on item (`pk`, `sk`) for `holder` until `until_ms` if the item exists and
    /// nobody holds it, or its holder's lease expired by `now_ms`: whether it was taken.
    pub(crate) async fn take(
        &self,
        table: &DynamoTable,
        pk: String,
        sk: String,
        holder: &str,
        now_ms: EpochMillis,
        until_ms: EpochMillis,
    ) -> Result<bool, PortError> {
        let result = table
            .client()
            .update_item()
            .table_name(table.name())
            .key(PK, s(pk))
            .key(SK, s(sk))
            .update_expression("SET #until = :until, #holder = :holder")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#until) OR #until < :now)",
            )
            .expression_attribute_names("#until", self.until)
            .expression_attribute_names("#holder", self.holder)
            .expression_attribute_values(":until", n(until_ms))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        applied(result)
    }

    /// Gives the lease back if `holder` holds it; not holding it (any more) is not an error.
    pub(crate) async fn release(
        &self,
        table: &DynamoTable,
        pk: String,
        sk: String,
        holder: &str,
    ) -> Result<(), PortError> {
        let result = table
            .client()
            .update_item()
            .table_name(table.name())
            .key(PK, s(pk))
            .key(SK, s(sk))
            .update_expression("REMOVE #until, #holder")
            .condition_expression("#holder = :holder")
            .expression_attribute_names("#until", self.until)
            .expression_attribute_names("#holder", self.holder)
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        applied(result).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `Limit`s of a filtered list's reads when no item passes, until the cap.
    fn asks(limit: usize) -> Vec<usize> {
        let (mut ask, mut examined, mut out) = (limit + 1, 0, Vec::new());
        loop {
            out.push(ask);
            examined += ask;
            if examined >= MAX_EXAMINED {
                return out;
            }
            ask = next_ask(ask, examined);
        }
    }

    #[test]
    fn a_sparse_filter_is_read_in_a_few_growing_reads_that_stop_at_the_cap() {
        assert_eq!(asks(50), [51, 204, 745]);
        assert_eq!(asks(100), [101, 404, 495]);
        assert_eq!(asks(1), [2, 8, 32, 128, 512, 318]);
        // A read cut short by the 1 MB response limit: the next asks from what is left.
        assert_eq!(next_ask(404, 990), 10);
        assert_eq!(next_ask(404, MAX_EXAMINED), 1);
    }
}
