//! Syncs, their (connection, model) claims, runs and events in the control table:
//!
//! | item | pk | sk |
//! |---|---|---|
//! | sync | `TENANT#<tenant id>` | `SYNC#<sync id>` |
//! | (connection, model) claim | `TENANT#<tenant id>` | `SYNCMODEL#<connection id>#<model>` |
//! | run | `TENANT#<tenant id>` | `RUN#<sync id>#<run id>` |
//! | sync event | `TENANT#<tenant id>` | `SYNCEVENT#<event id>` |
//!
//! A sync keeps its record as JSON in `doc`, beside a `version` that every update checks and the
//! attributes a list filters on (`connection_id`, `status`). The claim (with the claiming
//! `sync_id`) is written in the sync's creation transaction on the condition that it does not
//! exist, which makes one sync the only writer of a connection's model; the deletion's transaction
//! removes both. Runs keep their record in `doc` with a `version`; their ids are UUIDv7, so the
//! sort key orders a sync's runs by creation and a backwards read lists the newest first. Events
//! expire after [`SYNC_EVENT_RETENTION_DAYS`].
//!
//! An active sync with a next run time also carries `sync_shard` and `sync_due_ms`, the keys of the
//! sparse `SyncDue` index (keys only) through which the monitor finds the syncs due
//! ([`SyncSchedule`]): one of [`SYNC_SHARDS`] partitions sorted by due time. Every write of the
//! sync sets them from its record or removes them; the monitor's reschedule moves `sync_due_ms`
//! only, and a read takes the sync's next run time from it.
//!
//! A run that is not over also carries `active_shard` and `active_at`, the keys of the sparse
//! `ActiveRuns` index (keys only): one of [`ACTIVE_RUN_SHARDS`] partitions, by a hash of the run's
//! id, sorted by the time the run was last saved ([`SyncRun::active_at_ms`]). A run's writes
//! replace its whole item, so the one that ends it takes it out of the index; the monitor reads the
//! oldest ([`SyncSchedule::idle_runs`]) to find runs that stopped without ending.
//!
//! The run lease (`run_lease_holder`, `run_lease_until`) is on the sync item; the sync's updates
//! leave it as it is. Everything is under the tenant's partition, so a tenant's deletion removes
//! it with the rest (events carry an expiry and are left to it); the records of its syncs are in
//! the records table ([`crate::records`]).

use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem};
use tributary_core::PortError;
use tributary_core::error::Service;
use tributary_core::ids::{SyncId, SyncRunId, TenantId};
use tributary_core::pagination::{Page, PageRequest};
use tributary_core::ports::{ACTIVE_RUN_SHARDS, DueSync, IdleRun, SyncSchedule, SyncStore};
use tributary_core::sync::{SyncConfig, SyncEvent, SyncFilter, SyncRun, SyncStatus};
use tributary_core::tenancy::AuditEvent;
use tributary_core::time::EpochMillis;

use crate::dynamo::{DynamoTable, EXPIRES_AT, Item, PK, SK, shard};
use crate::errors::classify;
use crate::tenancy::{
    DOC_ATTRIBUTE, Lease, ListFilter, VERSION, applied, audit_item, conflict, decode, delete,
    delete_request, item, key_id, n, put, rejected, s, sort_key, tenant_pk,
};

/// The sort-key prefix of syncs.
pub(crate) const SYNC_SK: &str = "SYNC#";
const CLAIM_SK: &str = "SYNCMODEL#";
const RUN_SK: &str = "RUN#";
const EVENT_SK: &str = "SYNCEVENT#";
/// The index of active syncs by next run time (`infra/template.yaml`).
pub const SYNC_INDEX: &str = "SyncDue";
const SYNC_SHARD: &str = "sync_shard";
const SYNC_DUE: &str = "sync_due_ms";
const SHARD_PREFIX: &str = "SYNCDUE#";
/// How many partitions the sync index spreads syncs over.
pub const SYNC_SHARDS: u32 = 16;
/// The index of runs in progress by last save (`infra/template.yaml`).
pub const ACTIVE_RUN_INDEX: &str = "ActiveRuns";
const ACTIVE_SHARD: &str = "active_shard";
const ACTIVE_AT: &str = "active_at";
const ACTIVE_PREFIX: &str = "ACTIVE#";
const LEASE_UNTIL: &str = "run_lease_until";
const LEASE_HOLDER: &str = "run_lease_holder";
const RUN_LEASE: Lease = Lease {
    until: LEASE_UNTIL,
    holder: LEASE_HOLDER,
};
/// How long sync events are kept.
pub const SYNC_EVENT_RETENTION_DAYS: i64 = 30;
/// The attributes of a sync item that its record sets (all but the keys and the run lease).
const RECORD_ATTRIBUTES: [&str; 6] = [
    DOC_ATTRIBUTE,
    VERSION,
    "connection_id",
    "status",
    SYNC_SHARD,
    SYNC_DUE,
];

fn sk(id: &SyncId) -> String {
    format!("{SYNC_SK}{id}")
}

fn claim_sk(s: &SyncConfig) -> String {
    format!("{CLAIM_SK}{}#{}", s.connection_id, s.model)
}

fn runs_prefix(sync: &SyncId) -> String {
    format!("{RUN_SK}{sync}#")
}

fn run_sk(sync: &SyncId, run: &SyncRunId) -> String {
    format!("{}{run}", runs_prefix(sync))
}

/// The index partition of a run in progress: a stable hash of its id.
fn active_shard(id: &SyncRunId) -> String {
    format!("{ACTIVE_PREFIX}{}", shard(id.as_str(), ACTIVE_RUN_SHARDS))
}

/// The index partition of a sync: a stable hash of its id.
fn sync_shard(id: &SyncId) -> String {
    format!("{SHARD_PREFIX}{}", shard(id.as_str(), SYNC_SHARDS))
}

fn sync_item(sync: &SyncConfig) -> Result<Item, PortError> {
    let mut it = item(tenant_pk(&sync.tenant_id), sk(&sync.id), sync)?;
    it.insert(VERSION.to_owned(), n(sync.version));
    it.insert("connection_id".into(), s(sync.connection_id.as_str()));
    it.insert("status".into(), s(sync.status.as_str()));
    if let (SyncStatus::Active, Some(due)) = (sync.status, sync.next_run_at_ms) {
        it.insert(SYNC_SHARD.into(), s(sync_shard(&sync.id)));
        it.insert(SYNC_DUE.into(), n(due));
    }
    Ok(it)
}

/// A sync as stored, with the next run time the index holds (the monitor's reschedule moves it
/// there only).
fn decode_sync(item: &Item, operation: &'static str) -> Result<SyncConfig, PortError> {
    let mut sync: SyncConfig = decode(item, operation)?;
    if let Some(AttributeValue::N(due)) = item.get(SYNC_DUE) {
        sync.next_run_at_ms = Some(due.parse().map_err(|_| PortError::Corrupt {
            service: Service::Store,
            operation,
            detail: format!("{SYNC_DUE} is not a number"),
        })?);
    }
    Ok(sync)
}

fn claim_item(sync: &SyncConfig) -> Item {
    Item::from([
        (PK.to_owned(), s(tenant_pk(&sync.tenant_id))),
        (SK.to_owned(), s(claim_sk(sync))),
        ("sync_id".to_owned(), s(sync.id.as_str())),
    ])
}

fn run_item(run: &SyncRun) -> Result<Item, PortError> {
    let mut it = item(
        tenant_pk(&run.tenant_id),
        run_sk(&run.sync_id, &run.id),
        run,
    )?;
    it.insert(VERSION.to_owned(), n(run.version));
    if let Some(at) = run.active_at_ms() {
        it.insert(ACTIVE_SHARD.into(), s(active_shard(&run.id)));
        it.insert(ACTIVE_AT.into(), n(at));
    }
    Ok(it)
}

impl DynamoTable {
    /// Removes the sync's runs, 25 per `BatchWriteItem`.
    async fn delete_runs(&self, tenant: &TenantId, sync: &SyncId) -> Result<(), PortError> {
        let pk = tenant_pk(tenant);
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client()
                .query()
                .table_name(self.name())
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s(runs_prefix(sync)))
                .projection_expression("pk, sk")
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(Service::Store, "Query", e, |_| None))?;
            let requests = out
                .items
                .unwrap_or_default()
                .iter()
                .filter_map(sort_key)
                .map(|sk| delete_request(pk.clone(), sk))
                .collect::<Result<Vec<_>, _>>()?;
            self.batch_write(requests).await?;
            match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(key) => start = Some(key),
                None => return Ok(()),
            }
        }
    }
}

impl SyncStore for DynamoTable {
    async fn create_sync(&self, sync: &SyncConfig, audit: &AuditEvent) -> Result<(), PortError> {
        let outcome = self
            .transact_checked(vec![
                put(
                    self.name(),
                    sync_item(sync)?,
                    Some("attribute_not_exists(pk)"),
                )?,
                put(
                    self.name(),
                    claim_item(sync),
                    Some("attribute_not_exists(pk)"),
                )?,
                put(self.name(), audit_item(audit)?, None)?,
            ])
            .await?;
        // A failed condition is the sync's id or, as a rule, its (connection, model) taken.
        outcome.map_err(|_| conflict("TransactWriteItems"))
    }

    async fn get_sync(
        &self,
        tenant: &TenantId,
        id: &SyncId,
    ) -> Result<Option<SyncConfig>, PortError> {
        match self.get(&tenant_pk(tenant), &sk(id)).await? {
            Some(it) => Ok(Some(decode_sync(&it, "GetItem")?).filter(|s| s.tenant_id == *tenant)),
            None => Ok(None),
        }
    }

    async fn list_syncs(
        &self,
        tenant: &TenantId,
        filter: &SyncFilter,
        page: &PageRequest,
    ) -> Result<Page<SyncConfig>, PortError> {
        let mut list = ListFilter::default();
        if let Some(c) = &filter.connection_id {
            list.eq("connection_id", c.as_str());
        }
        self.query_filtered(&tenant_pk(tenant), SYNC_SK, &list, page, |it| {
            decode_sync(it, "Query")
        })
        .await
    }

    async fn update_sync(
        &self,
        sync: &SyncConfig,
        expected_version: u64,
    ) -> Result<bool, PortError> {
        // An update of the record's attributes, not a put: the run lease stays as it is.
        let it = sync_item(sync)?;
        let mut sets = Vec::new();
        let mut request = self
            .client()
            .update_item()
            .table_name(self.name())
            .key(PK, s(tenant_pk(&sync.tenant_id)))
            .key(SK, s(sk(&sync.id)));
        for attribute in RECORD_ATTRIBUTES {
            if let Some(value) = it.get(attribute) {
                sets.push(format!("#{attribute} = :{attribute}"));
                request = request
                    .expression_attribute_names(format!("#{attribute}"), attribute)
                    .expression_attribute_values(format!(":{attribute}"), value.clone());
            }
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !it.contains_key(SYNC_DUE) {
            expression.push_str(&format!(" REMOVE {SYNC_SHARD}, {SYNC_DUE}"));
        }
        let result = request
            .update_expression(expression)
            .condition_expression("#version = :expected")
            .expression_attribute_values(":expected", n(expected_version))
            .send()
            .await;
        if applied(result)? {
            return Ok(true);
        }
        // Either it is gone or someone else changed it: a read tells which.
        match self.get(&tenant_pk(&sync.tenant_id), &sk(&sync.id)).await? {
            Some(_) => Err(conflict("UpdateItem")),
            None => Ok(false),
        }
    }

    async fn delete_sync(
        &self,
        tenant: &TenantId,
        id: &SyncId,
        audit: &AuditEvent,
    ) -> Result<bool, PortError> {
        // The claim's key is the sync's connection and model: read them first.
        let Some(sync) = self.get_sync(tenant, id).await? else {
            // A deletion interrupted after its transaction may have left runs behind.
            self.delete_runs(tenant, id).await?;
            return Ok(false);
        };
        let remove = Delete::builder()
            .table_name(self.name())
            .key(PK, s(tenant_pk(tenant)))
            .key(SK, s(sk(id)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| rejected("TransactWriteItems", e.to_string()))?;
        let outcome = self
            .transact_checked(vec![
                TransactWriteItem::builder().delete(remove).build(),
                delete(self.name(), tenant_pk(tenant), claim_sk(&sync))?,
                put(self.name(), audit_item(audit)?, None)?,
            ])
            .await?;
        // Then its runs, which are many and outside any transaction's 100 items.
        self.delete_runs(tenant, id).await?;
        // Deleted meanwhile by someone else.
        Ok(outcome.is_ok())
    }

    async fn lease_sync(
        &self,
        tenant: &TenantId,
        id: &SyncId,
        holder: &str,
        now_ms: EpochMillis,
        until_ms: EpochMillis,
    ) -> Result<bool, PortError> {
        RUN_LEASE
            .take(self, tenant_pk(tenant), sk(id), holder, now_ms, until_ms)
            .await
    }

    async fn release_sync(
        &self,
        tenant: &TenantId,
        id: &SyncId,
        holder: &str,
    ) -> Result<(), PortError> {
        RUN_LEASE
            .release(self, tenant_pk(tenant), sk(id), holder)
            .await
    }

    async fn create_run(&self, run: &SyncRun) -> Result<(), PortError> {
        self.put_new(run_item(run)?).await
    }

    async fn get_run(
        &self,
        tenant: &TenantId,
        sync: &SyncId,
        id: &SyncRunId,
    ) -> Result<Option<SyncRun>, PortError> {
        let found: Option<SyncRun> = self.get_doc(&tenant_pk(tenant), &run_sk(sync, id)).await?;
        Ok(found.filter(|r| r.tenant_id == *tenant && r.sync_id == *sync))
    }

    async fn list_runs(
        &self,
        tenant: &TenantId,
        sync: &SyncId,
        page: &PageRequest,
    ) -> Result<Page<SyncRun>, PortError> {
        // Newest first: run ids are time-ordered, so the sync's runs are read backwards.
        self.query_docs_in(&tenant_pk(tenant), &runs_prefix(sync), page, false)
            .await
    }

    async fn update_run(&self, run: &SyncRun, expected_version: u64) -> Result<bool, PortError> {
        self.replace_versioned(run_item(run)?, expected_version, None)
            .await
    }

    async fn record_sync_event(&self, event: &SyncEvent) -> Result<(), PortError> {
        let mut it = item(
            tenant_pk(&event.tenant_id),
            format!("{EVENT_SK}{}", event.id),
            event,
        )?;
        it.insert(
            EXPIRES_AT.to_owned(),
            n(event.at_ms / 1000 + SYNC_EVENT_RETENTION_DAYS * 86_400),
        );
        if let Ok(serde_json::Value::String(kind)) = serde_json::to_value(event.kind) {
            crate::webhooks::with_outbox(&mut it, &event.tenant_id, &kind, event.at_ms);
        }
        self.client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(it))
            .send()
            .await
            .map_err(|e| classify(Service::Store, "PutItem", e, |_| None))?;
        Ok(())
    }

    async fn list_sync_events(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<SyncEvent>, PortError> {
        self.query_docs(&tenant_pk(tenant), EVENT_SK, page).await
    }
}

impl SyncSchedule for DynamoTable {
    async fn due_syncs(
        &self,
        now_ms: EpochMillis,
        limit: usize,
    ) -> Result<Vec<DueSync>, PortError> {
        let mut due = Vec::new();
        if limit == 0 {
            return Ok(due);
        }
        // The `limit` earliest may all be in one shard: read up to `limit` of each, then merge.
        for i in 0..SYNC_SHARDS {
            let mut found = 0;
            let mut start: Option<Item> = None;
            loop {
                let out = self
                    .client()
                    .query()
                    .table_name(self.name())
                    .index_name(SYNC_INDEX)
                    .key_condition_expression("#shard = :shard AND #due <= :now")
                    .expression_attribute_names("#shard", SYNC_SHARD)
                    .expression_attribute_names("#due", SYNC_DUE)
                    .expression_attribute_values(":shard", s(format!("{SHARD_PREFIX}{i}")))
                    .expression_attribute_values(":now", n(now_ms))
                    .limit(i32::try_from(limit - found).unwrap_or(i32::MAX))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| classify(Service::Store, "Query", e, |_| None))?;
                for it in out.items.unwrap_or_default() {
                    found += 1;
                    let (Some(tenant_id), Some(sync_id), Some(AttributeValue::N(at))) = (
                        key_id::<TenantId>(&it, PK, "TENANT#"),
                        key_id::<SyncId>(&it, SK, SYNC_SK),
                        it.get(SYNC_DUE),
                    ) else {
                        continue;
                    };
                    let Ok(due_ms) = at.parse() else { continue };
                    due.push(DueSync {
                        tenant_id,
                        sync_id,
                        due_ms,
                    });
                }
                match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                    Some(key) if found < limit => start = Some(key),
                    _ => break,
                }
            }
        }
        due.sort_by_key(|d| d.due_ms);
        due.truncate(limit);
        Ok(due)
    }

    async fn reschedule_sync(
        &self,
        due: &DueSync,
        next_ms: EpochMillis,
    ) -> Result<bool, PortError> {
        let result = self
            .client()
            .update_item()
            .table_name(self.name())
            .key(PK, s(tenant_pk(&due.tenant_id)))
            .key(SK, s(sk(&due.sync_id)))
            .update_expression("SET #due = :next")
            .condition_expression("attribute_exists(pk) AND #due = :due")
            .expression_attribute_names("#due", SYNC_DUE)
            .expression_attribute_values(":due", n(due.due_ms))
            .expression_attribute_values(":next", n(next_ms))
            .send()
            .await;
        applied(result)
    }

    async fn idle_runs(
        &self,
        shard: u32,
        before_ms: EpochMillis,
        limit: usize,
    ) -> Result<Vec<IdleRun>, PortError> {
        let mut idle = Vec::new();
        let mut start: Option<Item> = None;
        while idle.len() < limit {
            let out = self
                .client()
                .query()
                .table_name(self.name())
                .index_name(ACTIVE_RUN_INDEX)
                .key_condition_expression("#shard = :shard AND #at < :before")
                .expression_attribute_names("#shard", ACTIVE_SHARD)
                .expression_attribute_names("#at", ACTIVE_AT)
                .expression_attribute_values(":shard", s(format!("{ACTIVE_PREFIX}{shard}")))
                .expression_attribute_values(":before", n(before_ms))
                .limit(i32::try_from(limit - idle.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(Service::Store, "Query", e, |_| None))?;
            idle.extend(out.items.unwrap_or_default().iter().filter_map(idle_run));
            match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        idle.truncate(limit);
        Ok(idle)
    }
}

/// An `ActiveRuns` entry: the tenant from the partition key, the sync and the run from the sort
/// key (`RUN#<sync id>#<run id>`), the time from the index's.
fn idle_run(it: &Item) -> Option<IdleRun> {
    let tenant_id = key_id::<TenantId>(it, PK, "TENANT#")?;
    let (sync, run) = sort_key(it)?
        .strip_prefix(RUN_SK)?
        .split_once('#')
        .map(|(s, r)| (s.parse::<SyncId>(), r.parse::<SyncRunId>()))?;
    let Some(AttributeValue::N(at)) = it.get(ACTIVE_AT) else {
        return None;
    };
    Some(IdleRun {
        tenant_id,
        sync_id: sync.ok()?,
        run_id: run.ok()?,
        active_at_ms: at.parse().ok()?,
    })
}
