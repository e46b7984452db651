//! The operations log, the usage counters, the per-sync day counters and the dashboard's grants in
//! the control table:
//!
//! | item | pk | sk |
//! |---|---|---|
//! | operation | `TENANT#<tenant id>` | `OP#<operation id's digits, inverted>` (newest first) |
//! | usage | `TENANT#<tenant id>` | `USAGE#<day>#<integration id or ->#<provider or ->` |
//! | sync day | `TENANT#<tenant id>` | `SYNCDAY#<day>#<sync id>` |
//! | dashboard grant | `DASHBOARD#<token hash>` | `DASHBOARD` |
//!
//! An operation is one `PutItem` of its JSON (bounded by the recorder to a few kilobytes) with the
//! attributes its list filters on, expiring after the retention. Counters are `UpdateItem`s with
//! `ADD` (atomic in DynamoDB), one per operation for usage and one more for a sync run's day, never
//! one per record or request. Usage rows are kept [`USAGE_RETENTION_DAYS`], sync days
//! [`SYNC_DAY_RETENTION_DAYS`]. Everything of a tenant is in its partition, so its deletion removes
//! it with the rest.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use tributary_core::PortError;
use tributary_core::dashboard::DashboardGrant;
use tributary_core::error::Service;
use tributary_core::ids::{OperationId, TenantId};
use tributary_core::operation::{
    Operation, OperationFilter, SyncDayStats, UsageCounts, UsageKey, UsageRow, day_start_ms,
};
use tributary_core::pagination::{Page, PageRequest};
use tributary_core::ports::{DashboardStore, OperationLog};
use tributary_core::time::EpochMillis;

use crate::dynamo::{DynamoTable, EXPIRES_AT, Item, PK, SK};
use crate::errors::classify;
use crate::tenancy::{ListFilter, decode, item, n, s, tenant_pk};
use crate::webhooks::invert;

const OPERATION_SK: &str = "OP#";
const USAGE_SK: &str = "USAGE#";
const SYNC_DAY_SK: &str = "SYNCDAY#";
const GRANT_SK: &str = "DASHBOARD";
/// How long usage rows are kept.
pub const USAGE_RETENTION_DAYS: i64 = 400;
/// How long per-sync day counters are kept.
pub const SYNC_DAY_RETENTION_DAYS: i64 = 93;
/// The prefix of an error class counter of a sync day.
const ERROR_PREFIX: &str = "err_";
/// The counters of a sync day, by attribute.
const SYNC_DAY_COUNTERS: [&str; 8] = [
    "invocations",
    "runs_ended",
    "runs_failed",
    "busy_ms",
    "deferred_ms",
    "records",
    "requests",
    "rate_limited",
];

fn operation_sk(id: &OperationId) -> String {
    let digits = id.as_str().trim_start_matches("op_");
    format!("{OPERATION_SK}{}", invert(digits))
}

fn none_dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

fn usage_sk(key: &UsageKey) -> String {
    format!(
        "{USAGE_SK}{}#{}#{}",
        key.day,
        none_dash(key.integration_id.as_ref().map(|i| i.as_str())),
        none_dash(key.provider.as_deref())
    )
}

fn sync_day_sk(s: &SyncDayStats) -> String {
    format!(
        "{SYNC_DAY_SK}{}#{}",
        s.day,
        none_dash(s.sync_id.as_ref().map(|i| i.as_str()))
    )
}

/// The expiry (epoch seconds) of something of `day` kept `days`.
fn expiry_of_day(day: &str, days: i64) -> AttributeValue {
    n(day_start_ms(day).unwrap_or_default() / 1000 + days * 86_400)
}

fn operation_item(op: &Operation, retention_days: u32) -> Result<Item, PortError> {
    let mut it = item(tenant_pk(&op.tenant_id), operation_sk(&op.id), op)?;
    it.insert("kind".into(), s(op.kind.as_str()));
    it.insert("state".into(), s(op.state.as_str()));
    it.insert("started_at".into(), n(op.started_at_ms));
    if let Some(c) = &op.connection_id {
        it.insert("connection_id".into(), s(c.as_str()));
    }
    if let Some(i) = &op.integration_id {
        it.insert("integration_id".into(), s(i.as_str()));
    }
    it.insert(
        EXPIRES_AT.into(),
        n(op.started_at_ms / 1000 + i64::from(retention_days) * 86_400),
    );
    Ok(it)
}

/// `SET` of the labels and `ADD` of every non-zero counter: one atomic update.
struct Update {
    sets: Vec<String>,
    adds: Vec<String>,
    names: BTreeMap<String, String>,
    values: BTreeMap<String, AttributeValue>,
}

impl Update {
    fn new() -> Self {
        Self {
            sets: Vec::new(),
            adds: Vec::new(),
            names: BTreeMap::new(),
            values: BTreeMap::new(),
        }
    }

    fn set(&mut self, attribute: &str, value: AttributeValue) {
        let i = self.names.len();
        self.sets.push(format!("#a{i} = :v{i}"));
        self.names.insert(format!("#a{i}"), attribute.to_owned());
        self.values.insert(format!(":v{i}"), value);
    }

    fn add(&mut self, attribute: &str, value: u64) {
        if value == 0 {
            return;
        }
        let i = self.names.len();
        self.adds.push(format!("#a{i} :v{i}"));
        self.names.insert(format!("#a{i}"), attribute.to_owned());
        self.values.insert(format!(":v{i}"), n(value));
    }

    fn expression(&self) -> String {
        let mut e = format!("SET {}", self.sets.join(", "));
        if !self.adds.is_empty() {
            e.push_str(&format!(" ADD {}", self.adds.join(", ")));
        }
        e
    }

    async fn send(self, table: &DynamoTable, pk: String, sk: String) -> Result<(), PortError> {
        table
            .client()
            .update_item()
            .table_name(table.name())
            .key(PK, s(pk))
            .key(SK, s(sk))
            .update_expression(self.expression())
            .set_expression_attribute_names(Some(self.names.into_iter().collect()))
            .set_expression_attribute_values(Some(self.values.into_iter().collect()))
            .send()
            .await
            .map_err(|e| classify(Service::Store, "UpdateItem", e, |_| None))?;
        Ok(())
    }
}

fn number(it: &Item, attribute: &str) -> u64 {
    match it.get(attribute) {
        Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
        _ => 0,
    }
}

fn string(it: &Item, attribute: &str) -> Option<String> {
    match it.get(attribute) {
        Some(AttributeValue::S(v)) if v != "-" => Some(v.clone()),
        _ => None,
    }
}

fn usage_row(it: &Item) -> UsageRow {
    let mut counts = UsageCounts::default();
    for (name, _) in UsageCounts::default().fields() {
        counts.set(name, number(it, name));
    }
    UsageRow {
        key: UsageKey {
            day: string(it, "day").unwrap_or_default(),
            integration_id: string(it, "integration_id").and_then(|i| i.parse().ok()),
            provider: string(it, "provider"),
        },
        counts,
    }
}

fn sync_day(it: &Item) -> SyncDayStats {
    let errors_by_class = it
        .keys()
        .filter_map(|k| {
            k.strip_prefix(ERROR_PREFIX)
                .map(|class| (class.to_owned(), number(it, k)))
        })
        .collect();
    SyncDayStats {
        day: string(it, "day").unwrap_or_default(),
        sync_id: string(it, "sync_id").and_then(|i| i.parse().ok()),
        connection_id: string(it, "connection_id").and_then(|i| i.parse().ok()),
        provider: string(it, "provider"),
        stream: string(it, "stream"),
        invocations: number(it, "invocations"),
        runs_ended: number(it, "runs_ended"),
        runs_failed: number(it, "runs_failed"),
        busy_ms: number(it, "busy_ms"),
        deferred_ms: number(it, "deferred_ms"),
        records: number(it, "records"),
        requests: number(it, "requests"),
        rate_limited: number(it, "rate_limited"),
        errors_by_class,
    }
}

/// An error class as an attribute name: its safe characters only.
fn error_attribute(class: &str) -> String {
    let safe: String = class
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(32)
        .collect();
    format!(
        "{ERROR_PREFIX}{}",
        if safe.is_empty() { "unknown" } else { &safe }
    )
}

impl DynamoTable {
    /// Every item of `pk` whose sort key is between `from` and `to` (both included), all pages.
    async fn query_between(&self, pk: &str, from: &str, to: &str) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client()
                .query()
                .table_name(self.name())
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":from", s(from))
                .expression_attribute_values(":to", s(to))
                .set_exclusive_start_key(start.take().map(|k| k.into_iter().collect()))
                .send()
                .await
                .map_err(|e| classify(Service::Store, "Query", e, |_| None))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k.into_iter().collect()),
                _ => return Ok(items),
            }
        }
    }

    async fn add_sync_day(&self, tenant: &TenantId, d: &SyncDayStats) -> Result<(), PortError> {
        let mut u = Update::new();
        u.set("day", s(d.day.clone()));
        for (attribute, value) in [
            ("sync_id", d.sync_id.as_ref().map(|i| i.to_string())),
            (
                "connection_id",
                d.connection_id.as_ref().map(|i| i.to_string()),
            ),
            ("provider", d.provider.clone()),
            ("stream", d.stream.clone()),
        ] {
            if let Some(v) = value {
                u.set(attribute, s(v));
            }
        }
        u.set(EXPIRES_AT, expiry_of_day(&d.day, SYNC_DAY_RETENTION_DAYS));
        for (attribute, value) in SYNC_DAY_COUNTERS.iter().zip([
            d.invocations,
            d.runs_ended,
            d.runs_failed,
            d.busy_ms,
            d.deferred_ms,
            d.records,
            d.requests,
            d.rate_limited,
        ]) {
            u.add(attribute, value);
        }
        for (class, count) in &d.errors_by_class {
            u.add(&error_attribute(class), *count);
        }
        u.send(self, tenant_pk(tenant), sync_day_sk(d)).await
    }
}

impl OperationLog for DynamoTable {
    async fn record_operation(&self, op: &Operation, retention_days: u32) -> Result<(), PortError> {
        self.client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(operation_item(op, retention_days)?))
            .send()
            .await
            .map_err(|e| classify(Service::Store, "PutItem", e, |_| None))?;
        let usage = op.usage();
        if !usage.is_empty() {
            self.add_usage(&op.tenant_id, &op.usage_key(), &usage)
                .await?;
        }
        if let Some(d) = SyncDayStats::of(op) {
            self.add_sync_day(&op.tenant_id, &d).await?;
        }
        Ok(())
    }

    async fn list_operations(
        &self,
        tenant: &TenantId,
        filter: &OperationFilter,
        page: &PageRequest,
    ) -> Result<Page<Operation>, PortError> {
        let mut list = ListFilter::default();
        if let Some(c) = &filter.connection_id {
            list.eq("connection_id", c.as_str());
        }
        if let Some(i) = &filter.integration_id {
            list.eq("integration_id", i.as_str());
        }
        if let Some(k) = filter.kind {
            list.eq("kind", k.as_str());
        }
        if let Some(st) = filter.state {
            list.eq("state", st.as_str());
        }
        if filter.from_ms.is_some() || filter.to_ms.is_some() {
            // Ids start with their time (ms, 12 hex digits) and keys invert them: operations
            // started in [from, to) have keys from the inverted `to - 1` to the inverted `from`.
            let bound = |ms: EpochMillis, fill: char| {
                let digits = format!("{:012x}", ms.clamp(0, 0xffff_ffff_ffff));
                format!(
                    "{OPERATION_SK}{}{}",
                    invert(&digits),
                    fill.to_string().repeat(20)
                )
            };
            let newest = filter.to_ms.map_or_else(
                || OPERATION_SK.to_owned(),
                |to| bound(to.saturating_sub(1), '0'),
            );
            let oldest = filter
                .from_ms
                .map_or_else(|| format!("{OPERATION_SK}~"), |from| bound(from, 'f'));
            list.sk_range = Some((newest, oldest));
        }
        if let Some(from) = filter.from_ms {
            list.and("#started_at >= :from");
            list.names.insert("#started_at".into(), "started_at".into());
            list.values.insert(":from".into(), n(from));
        }
        if let Some(to) = filter.to_ms {
            list.and("#started_at < :to");
            list.names.insert("#started_at".into(), "started_at".into());
            list.values.insert(":to".into(), n(to));
        }
        self.query_filtered(&tenant_pk(tenant), OPERATION_SK, &list, page, |it| {
            decode(it, "Query")
        })
        .await
    }

    async fn get_operation(
        &self,
        tenant: &TenantId,
        id: &OperationId,
    ) -> Result<Option<Operation>, PortError> {
        self.get_doc(&tenant_pk(tenant), &operation_sk(id)).await
    }

    async fn add_usage(
        &self,
        tenant: &TenantId,
        key: &UsageKey,
        counts: &UsageCounts,
    ) -> Result<(), PortError> {
        let mut u = Update::new();
        u.set("day", s(key.day.clone()));
        u.set(
            "integration_id",
            s(none_dash(key.integration_id.as_ref().map(|i| i.as_str()))),
        );
        u.set("provider", s(none_dash(key.provider.as_deref())));
        u.set(EXPIRES_AT, expiry_of_day(&key.day, USAGE_RETENTION_DAYS));
        for (attribute, value) in counts.fields() {
            u.add(attribute, value);
        }
        u.send(self, tenant_pk(tenant), usage_sk(key)).await
    }

    async fn list_usage(
        &self,
        tenant: &TenantId,
        from_day: &str,
        to_day: &str,
    ) -> Result<Vec<UsageRow>, PortError> {
        let items = self
            .query_between(
                &tenant_pk(tenant),
                &format!("{USAGE_SK}{from_day}"),
                &format!("{USAGE_SK}{to_day}#~"),
            )
            .await?;
        Ok(items.iter().map(usage_row).collect())
    }

    async fn list_sync_stats(
        &self,
        tenant: &TenantId,
        from_day: &str,
        to_day: &str,
    ) -> Result<Vec<SyncDayStats>, PortError> {
        let items = self
            .query_between(
                &tenant_pk(tenant),
                &format!("{SYNC_DAY_SK}{from_day}"),
                &format!("{SYNC_DAY_SK}{to_day}#~"),
            )
            .await?;
        Ok(items.iter().map(sync_day).collect())
    }
}

/// Emits a finished operation's metrics (CloudWatch EMF, no API call) as `function`'s: its count
/// and duration by type and state, per provider its records per second, request latencies, errors
/// by class and rate-limit deferrals, and the outcome of each token refresh it made.
pub fn emit_metrics(function: &str, op: &Operation) {
    let errors: Vec<(&str, u64)> = op
        .counts
        .errors_by_class
        .iter()
        .map(|(class, n)| (class.as_str(), *n))
        .collect();
    let deferrals = op
        .entries
        .iter()
        .filter(|e| {
            matches!(e, tributary_core::operation::Entry::Note(n)
                if n.kind == tributary_core::operation::NoteKind::Deferred)
        })
        .count();
    for entry in &op.entries {
        if let tributary_core::operation::Entry::Note(n) = entry
            && n.kind == tributary_core::operation::NoteKind::TokenRefresh
        {
            let outcome = match n.message.split(':').next() {
                Some("refreshed") => "succeeded",
                Some("needs_reauth") => "needs_reauth",
                _ => "failed",
            };
            crate::metrics::token_refresh(outcome);
        }
    }
    crate::metrics::operation(&crate::metrics::OperationMetrics {
        function,
        operation_type: op.kind.as_str(),
        state: op.state.as_str(),
        provider: op.provider.as_deref(),
        duration_ms: op.duration_ms(),
        records: op.records_written() + op.counts.records_unchanged,
        provider_latencies_ms: &op.latencies_ms,
        provider_errors: &errors,
        rate_limit_deferrals: u64::try_from(deferrals).unwrap_or(0),
    });
}

fn grant_pk(token_hash: &str) -> String {
    format!("DASHBOARD#{token_hash}")
}

impl DashboardStore for DynamoTable {
    async fn put_dashboard_grant(&self, grant: &DashboardGrant) -> Result<(), PortError> {
        let mut it = item(grant_pk(&grant.token_hash), GRANT_SK.into(), grant)?;
        it.insert(EXPIRES_AT.into(), n(grant.expires_at_ms / 1000 + 60));
        self.put_new(it).await
    }

    async fn take_dashboard_grant(
        &self,
        token_hash: &str,
    ) -> Result<Option<DashboardGrant>, PortError> {
        let out = self
            .client()
            .delete_item()
            .table_name(self.name())
            .key(PK, s(grant_pk(token_hash)))
            .key(SK, s(GRANT_SK))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| classify(Service::Store, "DeleteItem", e, |_| None))?;
        out.attributes
            .map(|a| decode(&a.into_iter().collect(), "DeleteItem"))
            .transpose()
    }

    async fn dashboard_grant(&self, token_hash: &str) -> Result<Option<DashboardGrant>, PortError> {
        self.get_doc(&grant_pk(token_hash), GRANT_SK).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_keys_sort_newest_first() {
        let older = OperationId::derive(1_000, "a");
        let newer = OperationId::derive(2_000, "a");
        assert!(operation_sk(&newer) < operation_sk(&older));
    }

    #[test]
    fn a_day_range_covers_every_usage_row_of_its_days_and_no_other() {
        let key = |day: &str, p: Option<&str>| UsageKey {
            day: day.into(),
            integration_id: None,
            provider: p.map(Into::into),
        };
        let (from, to) = (
            format!("{USAGE_SK}2026-12-01"),
            format!("{USAGE_SK}2026-12-07#~"),
        );
        for inside in [key("2026-12-01", None), key("2026-12-07", Some("zendesk"))] {
            let sk = usage_sk(&inside);
            assert!(sk >= from && sk <= to, "{sk}");
        }
        for outside in [key("2026-11-30", Some("zendesk")), key("2026-12-08", None)] {
            let sk = usage_sk(&outside);
            assert!(sk < from || sk > to, "{sk}");
        }
    }

    #[test]
    fn an_error_class_becomes_a_safe_attribute_name() {
        assert_eq!(error_attribute("rate_limited"), "err_rate_limited");
        assert_eq!(error_attribute("a b#c:d"), "err_abcd");
        assert_eq!(error_attribute("#:"), "err_unknown");
    }
}
