//! [`MemStore`]'s operations log, usage counters, per-sync day counters and dashboard grants, with
//! the adapter's semantics: operations newest first under a filter, counters added atomically,
//! grants taken once. Like the adapter's items, they expire with their retention rather than go
//! with a deleted tenant's purge.

use std::collections::{BTreeMap, HashMap};

use tributary_core::PortError;
use tributary_core::dashboard::DashboardGrant;
use tributary_core::ids::{OperationId, TenantId};
use tributary_core::operation::{
    Operation, OperationFilter, SyncDayStats, UsageCounts, UsageKey, UsageRow,
};
use tributary_core::pagination::{Page, PageRequest};
use tributary_core::ports::{DashboardStore, OperationLog};

use super::{Access, MemStore, page};

const OPERATION_SK: &str = "OP#";

/// The items of the operations log.
#[derive(Debug, Default)]
pub(super) struct OperationTables {
    /// Operations by id.
    pub(super) operations: BTreeMap<String, Operation>,
    /// Usage rows by (tenant, key).
    usage: BTreeMap<(String, UsageKey), UsageCounts>,
    /// Per-sync day counters by (tenant, day, sync id).
    stats: BTreeMap<(String, String, String), SyncDayStats>,
    /// Dashboard grants by token hash.
    grants: HashMap<String, DashboardGrant>,
    /// Counter writes (`add_usage` and the counters `record_operation` adds), for write bounds.
    pub(super) counter_writes: u64,
}

impl MemStore {
    /// Every logged operation, oldest first (test inspection).
    pub fn operations(&self) -> Vec<Operation> {
        let mut ops: Vec<Operation> = self.tables().ops.operations.values().cloned().collect();
        ops.sort_by(|a, b| a.id.cmp(&b.id));
        ops
    }

    /// How many counter writes were made (usage and per-sync day counters).
    pub fn counter_writes(&self) -> u64 {
        self.tables().ops.counter_writes
    }
}

impl OperationLog for MemStore {
    async fn record_operation(
        &self,
        op: &Operation,
        _retention_days: u32,
    ) -> Result<(), PortError> {
        if self.operations_log_failing() {
            return Err(super::unavailable("PutItem"));
        }
        self.port("record_operation", Access::Write, "PutItem", |t| {
            let tenant = op.tenant_id.to_string();
            t.ops.operations.insert(op.id.to_string(), op.clone());
            let usage = op.usage();
            if !usage.is_empty() {
                t.ops.counter_writes += 1;
                t.ops
                    .usage
                    .entry((tenant.clone(), op.usage_key()))
                    .or_default()
                    .add(&usage);
            }
            if let Some(s) = SyncDayStats::of(op) {
                t.ops.counter_writes += 1;
                let sync = s
                    .sync_id
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                t.ops
                    .stats
                    .entry((tenant, s.day.clone(), sync))
                    .or_insert_with(|| SyncDayStats {
                        day: s.day.clone(),
                        ..SyncDayStats::default()
                    })
                    .add(&s);
            }
        })
        .await
    }

    async fn list_operations(
        &self,
        tenant: &TenantId,
        filter: &OperationFilter,
        req: &PageRequest,
    ) -> Result<Page<Operation>, PortError> {
        self.port("list_operations", Access::Read, "Query", |t| {
            let mine = t
                .ops
                .operations
                .iter()
                .filter(|(_, o)| o.tenant_id == *tenant && filter.matches(o))
                .map(|(id, o)| {
                    (
                        format!("{OPERATION_SK}{}", super::syncs::invert(id)),
                        o.clone(),
                    )
                })
                .collect();
            page(mine, OPERATION_SK, req)
        })
        .await?
    }

    async fn get_operation(
        &self,
        tenant: &TenantId,
        id: &OperationId,
    ) -> Result<Option<Operation>, PortError> {
        self.port("get_operation", Access::Read, "GetItem", |t| {
            t.ops
                .operations
                .get(id.as_str())
                .filter(|o| o.tenant_id == *tenant)
                .cloned()
        })
        .await
    }

    async fn add_usage(
        &self,
        tenant: &TenantId,
        key: &UsageKey,
        counts: &UsageCounts,
    ) -> Result<(), PortError> {
        self.port("add_usage", Access::Write, "UpdateItem", |t| {
            t.ops.counter_writes += 1;
            t.ops
                .usage
                .entry((tenant.to_string(), key.clone()))
                .or_default()
                .add(counts);
        })
        .await
    }

    async fn list_usage(
        &self,
        tenant: &TenantId,
        from_day: &str,
        to_day: &str,
    ) -> Result<Vec<UsageRow>, PortError> {
        self.port("list_usage", Access::Read, "Query", |t| {
            t.ops
                .usage
                .iter()
                .filter(|((ten, k), _)| {
                    *ten == tenant.as_str()
                        && k.day.as_str() >= from_day
                        && k.day.as_str() <= to_day
                })
                .map(|((_, k), c)| UsageRow {
                    key: k.clone(),
                    counts: c.clone(),
                })
                .collect()
        })
        .await
    }

    async fn list_sync_stats(
        &self,
        tenant: &TenantId,
        from_day: &str,
        to_day: &str,
    ) -> Result<Vec<SyncDayStats>, PortError> {
        self.port("list_sync_stats", Access::Read, "Query", |t| {
            t.ops
                .stats
                .iter()
                .filter(|((ten, day, _), _)| {
                    *ten == tenant.as_str() && day.as_str() >= from_day && day.as_str() <= to_day
                })
                .map(|(_, s)| s.clone())
                .collect()
        })
        .await
    }
}

impl DashboardStore for MemStore {
    async fn put_dashboard_grant(&self, grant: &DashboardGrant) -> Result<(), PortError> {
        self.port("put_dashboard_grant", Access::Write, "PutItem", |t| {
            t.ops.grants.insert(grant.token_hash.clone(), grant.clone());
        })
        .await
    }

    async fn take_dashboard_grant(
        &self,
        token_hash: &str,
    ) -> Result<Option<DashboardGrant>, PortError> {
        self.port("take_dashboard_grant", Access::Write, "DeleteItem", |t| {
            t.ops.grants.remove(token_hash)
        })
        .await
    }

    async fn dashboard_grant(&self, token_hash: &str) -> Result<Option<DashboardGrant>, PortError> {
        self.port("dashboard_grant", Access::Read, "GetItem", |t| {
            t.ops.grants.get(token_hash).cloned()
        })
        .await
    }
}
