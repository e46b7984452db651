//! Connections and their events in the control table:
//!
//! | item | pk | sk |
//! |---|---|---|
//! | connection | `TENANT#<tenant id>` | `CONN#<connection id>` |
//! | connection event | `TENANT#<tenant id>` | `CONNEVENT#<event id>` |
//!
//! An active connection that holds a refresh token also carries `refresh_shard` and
//! `refresh_due_ms`, the keys of the sparse `RefreshDue` index (keys only) through which the monitor
//! finds connections whose idle refresh is due ([`RefreshSchedule`]): one of [`REFRESH_SHARDS`]
//! partitions (so that no index partition takes every write) sorted by due time. Every write of the
//! record sets them from it or removes them; the monitor's postponement moves `refresh_due_ms` only.
//!
//! A connection keeps its record (sealed credentials included) as JSON in `doc`, beside a `version`
//! that every update checks and the attributes a list filters on (`integration_id`, `provider`,
//! `end_user_id`, `status`, `tags`). Events expire after [`EVENT_RETENTION_DAYS`]. Both are under
//! the tenant's partition, so a tenant's deletion removes its connections with the rest (events
//! carry an expiry and are left to it).

use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem, Update};
use tributary_core::PortError;
use tributary_core::connection::{Connection, ConnectionEvent, ConnectionFilter};
use tributary_core::error::Service;
use tributary_core::ids::{ConnectionId, TenantId};
use tributary_core::pagination::{Page, PageRequest};
use tributary_core::ports::{ConnectionStore, DueRefresh, RefreshSchedule, RefreshSwap};
use tributary_core::tenancy::AuditEvent;
use tributary_core::time::EpochMillis;

use crate::dynamo::{DynamoTable, EXPIRES_AT, Item, PK, SK, shard};
use crate::errors::classify;
use crate::tenancy::{
    Lease, ListFilter, VERSION, applied, audit_item, decode, item, key_id, n, put, rejected, s,
    tenant_pk,
};

const CONN_SK: &str = "CONN#";
/// The index of connections by idle-refresh due time (`infra/template.yaml`).
pub const REFRESH_INDEX: &str = "RefreshDue";
const REFRESH_SHARD: &str = "refresh_shard";
const REFRESH_DUE: &str = "refresh_due_ms";
/// How many partitions the refresh index spreads connections over.
pub const REFRESH_SHARDS: u32 = 16;
const LEASE_UNTIL: &str = "refresh_lease_until";
const LEASE_HOLDER: &str = "refresh_lease_holder";
const REFRESH_LEASE: Lease = Lease {
    until: LEASE_UNTIL,
    holder: LEASE_HOLDER,
};
const EVENT_SK: &str = "CONNEVENT#";
/// How long connection events are kept.
pub const EVENT_RETENTION_DAYS: i64 = 30;

fn sk(id: &ConnectionId) -> String {
    format!("{CONN_SK}{id}")
}

/// The index partition of a connection: a stable hash of its id.
fn refresh_shard(id: &ConnectionId) -> String {
    format!("REFRESH#{}", shard(id.as_str(), REFRESH_SHARDS))
}

fn connection_item(c: &Connection) -> Result<Item, PortError> {
    let mut it = item(tenant_pk(&c.tenant_id), sk(&c.id), c)?;
    if let Some(due) = c.idle_refresh_due_ms() {
        it.insert(REFRESH_SHARD.into(), s(refresh_shard(&c.id)));
        it.insert(REFRESH_DUE.into(), n(due));
    }
    it.insert(VERSION.to_owned(), n(c.version));
    it.insert("integration_id".into(), s(c.integration_id.as_str()));
    it.insert("provider".into(), s(c.provider.clone()));
    it.insert("end_user_id".into(), s(c.end_user_id.clone()));
    it.insert("status".into(), s(c.status.as_str()));
    if !c.tags.is_empty() {
        it.insert(
            "tags".into(),
            AttributeValue::M(
                c.tags
                    .iter()
                    .map(|(k, v)| (k.clone(), s(v.clone())))
                    .collect(),
            ),
        );
    }
    Ok(it)
}

/// An update that replaces the record's attributes (not the lease's), with `extra` after them.
fn record_update(
    table: &str,
    c: &Connection,
    condition: &str,
    extra_remove: &[&str],
) -> Result<Update, PortError> {
    let item = connection_item(c)?;
    let mut sets = Vec::new();
    let mut removes: Vec<String> = extra_remove.iter().map(|a| (*a).to_owned()).collect();
    let mut update = Update::builder()
        .table_name(table)
        .key(PK, s(tenant_pk(&c.tenant_id)))
        .key(SK, s(sk(&c.id)));
    for attribute in [
        crate::tenancy::DOC_ATTRIBUTE,
        VERSION,
        "integration_id",
        "provider",
        "end_user_id",
        "status",
        REFRESH_SHARD,
        REFRESH_DUE,
    ] {
        if let Some(value) = item.get(attribute) {
            sets.push(format!("#{attribute} = :{attribute}"));
            update = update
                .expression_attribute_names(format!("#{attribute}"), attribute)
                .expression_attribute_values(format!(":{attribute}"), value.clone());
        }
    }
    if !item.contains_key(REFRESH_DUE) {
        removes.extend([REFRESH_SHARD.to_owned(), REFRESH_DUE.to_owned()]);
    }
    match item.get("tags") {
        Some(tags) => {
            sets.push("#tags = :tags".into());
            update = update
                .expression_attribute_names("#tags", "tags")
                .expression_attribute_values(":tags", tags.clone());
        }
        None => removes.push("tags".into()),
    }
    let mut expression = format!("SET {}", sets.join(", "));
    if !removes.is_empty() {
        expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
    }
    update
        .update_expression(expression)
        .condition_expression(condition)
        .build()
        .map_err(|e| rejected("TransactWriteItems", e.to_string()))
}

fn event_item(e: &ConnectionEvent) -> Result<Item, PortError> {
    let mut it = item(tenant_pk(&e.tenant_id), format!("{EVENT_SK}{}", e.id), e)?;
    it.insert(
        EXPIRES_AT.to_owned(),
        n(e.at_ms / 1000 + EVENT_RETENTION_DAYS * 86_400),
    );
    crate::webhooks::with_outbox(&mut it, &e.tenant_id, e.kind.as_str(), e.at_ms);
    Ok(it)
}

fn put_event(table: &str, e: &ConnectionEvent) -> Result<TransactWriteItem, PortError> {
    put(table, event_item(e)?, None)
}

/// The filter as a DynamoDB filter expression.
fn list_filter(f: &ConnectionFilter) -> ListFilter {
    let mut filter = ListFilter::default();
    if let Some(i) = &f.integration_id {
        filter.eq("integration_id", i.to_string());
    }
    if let Some(p) = &f.provider {
        filter.eq("provider", p.clone());
    }
    if let Some(u) = &f.end_user_id {
        filter.eq("end_user_id", u.clone());
    }
    if let Some(st) = f.status {
        filter.eq("status", st.as_str());
    }
    if let Some((k, v)) = &f.tag {
        filter.and("#tags.#tag_key = :tag_value");
        filter.names.insert("#tags".into(), "tags".into());
        filter.names.insert("#tag_key".into(), k.clone());
        filter.values.insert(":tag_value".into(), s(v.clone()));
    }
    filter
}

impl ConnectionStore for DynamoTable {
    async fn create_connection(
        &self,
        connection: &Connection,
        event: &ConnectionEvent,
        audit: &AuditEvent,
    ) -> Result<(), PortError> {
        self.transact(vec![
            put(
                self.name(),
                connection_item(connection)?,
                Some("attribute_not_exists(pk)"),
            )?,
            put_event(self.name(), event)?,
            put(self.name(), audit_item(audit)?, None)?,
        ])
        .await
    }

    async fn get_connection(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
    ) -> Result<Option<Connection>, PortError> {
        let found: Option<Connection> = self.get_doc(&tenant_pk(tenant), &sk(id)).await?;
        Ok(found.filter(|c| c.tenant_id == *tenant))
    }

    async fn list_connections(
        &self,
        tenant: &TenantId,
        filter: &ConnectionFilter,
        page: &PageRequest,
    ) -> Result<Page<Connection>, PortError> {
        self.query_filtered(
            &tenant_pk(tenant),
            CONN_SK,
            &list_filter(filter),
            page,
            |it| decode(it, "Query"),
        )
        .await
    }

    async fn update_connection(
        &self,
        connection: &Connection,
        expected_version: u64,
        event: Option<&ConnectionEvent>,
    ) -> Result<bool, PortError> {
        // An update of the record's attributes, not a put: the refresh lease stays as it is.
        let mut update = record_update(self.name(), connection, "#version = :expected", &[])?;
        update
            .expression_attribute_values
            .get_or_insert_with(Default::default)
            .insert(":expected".into(), n(expected_version));
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        if let Some(event) = event {
            items.push(put_event(self.name(), event)?);
        }
        if self.transact_checked(items).await?.is_ok() {
            return Ok(true);
        }
        match self
            .get(&tenant_pk(&connection.tenant_id), &sk(&connection.id))
            .await?
        {
            Some(_) => Err(PortError::Conflict {
                service: Service::Store,
                operation: "TransactWriteItems",
            }),
            None => Ok(false),
        }
    }

    async fn delete_connection(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        event: &ConnectionEvent,
        audit: &AuditEvent,
    ) -> Result<bool, PortError> {
        let remove = Delete::builder()
            .table_name(self.name())
            .key(PK, s(tenant_pk(tenant)))
            .key(SK, s(sk(id)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| rejected("TransactWriteItems", e.to_string()))?;
        let items = vec![
            TransactWriteItem::builder().delete(remove).build(),
            put_event(self.name(), event)?,
            put(self.name(), audit_item(audit)?, None)?,
        ];
        Ok(self.transact_checked(items).await?.is_ok())
    }

    async fn lease_refresh(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        holder: &str,
        now_ms: EpochMillis,
        until_ms: EpochMillis,
    ) -> Result<bool, PortError> {
        REFRESH_LEASE
            .take(self, tenant_pk(tenant), sk(id), holder, now_ms, until_ms)
            .await
    }

    async fn swap_refreshed(
        &self,
        connection: &Connection,
        expected_version: u64,
        holder: &str,
        event: &ConnectionEvent,
    ) -> Result<RefreshSwap, PortError> {
        let mut update = record_update(
            self.name(),
            connection,
            "#holder = :holder AND #version = :expected",
            &["#until", "#holder"],
        )?;
        update
            .expression_attribute_values
            .get_or_insert_with(Default::default)
            .extend([
                (":expected".to_owned(), n(expected_version)),
                (":holder".to_owned(), s(holder)),
            ]);
        update
            .expression_attribute_names
            .get_or_insert_with(Default::default)
            .extend([
                ("#until".to_owned(), LEASE_UNTIL.to_owned()),
                ("#holder".to_owned(), LEASE_HOLDER.to_owned()),
            ]);
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            put_event(self.name(), event)?,
        ];
        if self.transact_checked(items).await?.is_ok() {
            return Ok(RefreshSwap::Swapped);
        }
        // Which condition failed: the lease (someone else's now, or gone) or the version.
        let item = self
            .get(&tenant_pk(&connection.tenant_id), &sk(&connection.id))
            .await?;
        let held = item
            .as_ref()
            .and_then(|i| i.get(LEASE_HOLDER))
            .is_some_and(|h| *h == s(holder));
        if held {
            Err(PortError::Conflict {
                service: Service::Store,
                operation: "TransactWriteItems",
            })
        } else {
            Ok(RefreshSwap::LeaseLost)
        }
    }

    async fn release_refresh(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        holder: &str,
    ) -> Result<(), PortError> {
        REFRESH_LEASE
            .release(self, tenant_pk(tenant), sk(id), holder)
            .await
    }

    async fn list_connection_events(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<ConnectionEvent>, PortError> {
        self.query_docs(&tenant_pk(tenant), EVENT_SK, page).await
    }
}

impl RefreshSchedule for DynamoTable {
    async fn due_refreshes(
        &self,
        now_ms: EpochMillis,
        limit: usize,
    ) -> Result<Vec<DueRefresh>, PortError> {
        let mut due = Vec::new();
        // Start at another shard every minute, so that a backlog in one does not starve the rest.
        let first =
            u32::try_from((now_ms / 60_000).rem_euclid(i64::from(REFRESH_SHARDS))).unwrap_or(0);
        for i in 0..REFRESH_SHARDS {
            let remaining = limit.saturating_sub(due.len());
            if remaining == 0 {
                break;
            }
            let shard = format!("REFRESH#{}", (first + i) % REFRESH_SHARDS);
            let out = self
                .client()
                .query()
                .table_name(self.name())
                .index_name(REFRESH_INDEX)
                .key_condition_expression("#shard = :shard AND #due <= :now")
                .expression_attribute_names("#shard", REFRESH_SHARD)
                .expression_attribute_names("#due", REFRESH_DUE)
                .expression_attribute_values(":shard", s(shard))
                .expression_attribute_values(":now", n(now_ms))
                .limit(i32::try_from(remaining).unwrap_or(i32::MAX))
                .send()
                .await
                .map_err(|e| classify(Service::Store, "Query", e, |_| None))?;
            for it in out.items.unwrap_or_default() {
                let (Some(tenant_id), Some(connection_id), Some(AttributeValue::N(at))) = (
                    key_id::<TenantId>(&it, PK, "TENANT#"),
                    key_id::<ConnectionId>(&it, SK, CONN_SK),
                    it.get(REFRESH_DUE),
                ) else {
                    continue;
                };
                let Ok(due_ms) = at.parse() else { continue };
                due.push(DueRefresh {
                    tenant_id,
                    connection_id,
                    due_ms,
                });
            }
        }
        Ok(due)
    }

    async fn postpone_refresh(
        &self,
        due: &DueRefresh,
        next_ms: EpochMillis,
    ) -> Result<bool, PortError> {
        let result = self
            .client()
            .update_item()
            .table_name(self.name())
            .key(PK, s(tenant_pk(&due.tenant_id)))
            .key(SK, s(sk(&due.connection_id)))
            .update_expression("SET #due = :next")
            .condition_expression("#due = :due")
            .expression_attribute_names("#due", REFRESH_DUE)
            .expression_attribute_values(":due", n(due.due_ms))
            .expression_attribute_values(":next", n(next_ms))
            .send()
            .await;
        applied(result)
    }
}
