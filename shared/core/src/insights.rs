//! Bottlenecks over a window, computed from the per-sync day counters the operations log keeps
//! ([`SyncDayStats`], one item per sync and day): the slowest streams (time per thousand records),
//! the providers where run time is lost to rate limits and outages (share of time deferred), the
//! syncs that fail most and their error classes, and what to change. A window of 30 days over 200
//! syncs reads at most 6,000 small items, never the log itself.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ids::{ConnectionId, SyncId};
use crate::operation::SyncDayStats;

/// Streams read slower than this (ms per thousand records) get a recommendation.
pub const SLOW_MS_PER_1000: u64 = 10_000;
/// A provider whose share of run time deferred is at least this (percent) gets a recommendation.
pub const DEFERRED_SHARE_PERCENT: u64 = 20;
/// Streams with fewer records than this in the window are not ranked by speed (too few to say).
pub const MIN_RECORDS_FOR_SPEED: u64 = 100;
/// The longest list of each kind.
pub const TOP: usize = 5;

/// A stream's reading speed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamSpeed {
    /// The sync.
    pub sync_id: Option<SyncId>,
    /// Its connection.
    pub connection_id: Option<ConnectionId>,
    /// Its provider.
    pub provider: Option<String>,
    /// Its stream.
    pub stream: Option<String>,
    /// Records read in the window.
    pub records: u64,
    /// Time spent reading (ms).
    pub busy_ms: u64,
    /// Time per thousand records (ms).
    pub ms_per_1000_records: u64,
}

/// Time lost to a provider's rate limits and outages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderDeferral {
    /// The provider.
    pub provider: String,
    /// Time spent reading (ms).
    pub busy_ms: u64,
    /// Time rescheduled (ms).
    pub deferred_ms: u64,
    /// `deferred / (busy + deferred)`, in percent.
    pub deferred_share_percent: u64,
    /// Requests sent.
    pub requests: u64,
    /// Of them, rate limited.
    pub rate_limited: u64,
}

/// A sync that failed in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailingSync {
    /// The sync.
    pub sync_id: Option<SyncId>,
    /// Its connection.
    pub connection_id: Option<ConnectionId>,
    /// Its provider.
    pub provider: Option<String>,
    /// Its stream.
    pub stream: Option<String>,
    /// Runs that ended.
    pub runs: u64,
    /// Of them, failed or stalled.
    pub failures: u64,
    /// Failures by error class.
    pub error_classes: BTreeMap<String, u64>,
}

/// What to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recommendation {
    /// A stable kind: `reconnect`, `lower_frequency`, `provider_budget`, `incremental_or_page_size`,
    /// `investigate`.
    pub kind: &'static str,
    /// What it is about: a sync id or a provider.
    pub subject: String,
    /// What to do, for a person.
    pub message: String,
}

/// The bottlenecks of a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Insights {
    /// The slowest streams, slowest first.
    pub slowest_streams: Vec<StreamSpeed>,
    /// Providers with time deferred, most first.
    pub deferred_providers: Vec<ProviderDeferral>,
    /// The syncs that failed most, most first.
    pub failing_syncs: Vec<FailingSync>,
    /// What to change.
    pub recommendations: Vec<Recommendation>,
}

fn percent(part: u64, whole: u64) -> u64 {
    part.saturating_mul(100).checked_div(whole).unwrap_or(0)
}

/// The insights of `days` (any order, any number of days per sync).
pub fn compute(days: &[SyncDayStats]) -> Insights {
    let mut per_sync: BTreeMap<String, SyncDayStats> = BTreeMap::new();
    for d in days {
        let key = d
            .sync_id
            .as_ref()
            .map_or_else(String::new, |s| s.to_string());
        per_sync.entry(key).or_default().add(d);
    }

    let mut slowest: Vec<StreamSpeed> = per_sync
        .values()
        .filter(|s| s.records >= MIN_RECORDS_FOR_SPEED)
        .map(|s| StreamSpeed {
            sync_id: s.sync_id.clone(),
            connection_id: s.connection_id.clone(),
            provider: s.provider.clone(),
            stream: s.stream.clone(),
            records: s.records,
            busy_ms: s.busy_ms,
            ms_per_1000_records: s.busy_ms.saturating_mul(1000) / s.records.max(1),
        })
        .collect();
    slowest.sort_by_key(|s| std::cmp::Reverse(s.ms_per_1000_records));
    slowest.truncate(TOP);

    let mut per_provider: BTreeMap<String, ProviderDeferral> = BTreeMap::new();
    for s in per_sync.values() {
        let Some(p) = &s.provider else { continue };
        let e = per_provider
            .entry(p.clone())
            .or_insert_with(|| ProviderDeferral {
                provider: p.clone(),
                busy_ms: 0,
                deferred_ms: 0,
                deferred_share_percent: 0,
                requests: 0,
                rate_limited: 0,
            });
        e.busy_ms += s.busy_ms;
        e.deferred_ms += s.deferred_ms;
        e.requests += s.requests;
        e.rate_limited += s.rate_limited;
    }
    let mut deferred: Vec<ProviderDeferral> = per_provider
        .into_values()
        .filter(|p| p.deferred_ms > 0 || p.rate_limited > 0)
        .map(|mut p| {
            p.deferred_share_percent = percent(p.deferred_ms, p.busy_ms + p.deferred_ms);
            p
        })
        .collect();
    deferred.sort_by(|a, b| {
        b.deferred_share_percent
            .cmp(&a.deferred_share_percent)
            .then(b.rate_limited.cmp(&a.rate_limited))
    });
    deferred.truncate(TOP);

    let mut failing: Vec<FailingSync> = per_sync
        .values()
        .filter(|s| s.runs_failed > 0)
        .map(|s| FailingSync {
            sync_id: s.sync_id.clone(),
            connection_id: s.connection_id.clone(),
            provider: s.provider.clone(),
            stream: s.stream.clone(),
            runs: s.runs_ended,
            failures: s.runs_failed,
            error_classes: s.errors_by_class.clone(),
        })
        .collect();
    failing.sort_by(|a, b| {
        b.failures
            .cmp(&a.failures)
            .then(percent(b.failures, b.runs).cmp(&percent(a.failures, a.runs)))
    });
    failing.truncate(TOP);

    let recommendations = recommend(&slowest, &deferred, &failing);
    Insights {
        slowest_streams: slowest,
        deferred_providers: deferred,
        failing_syncs: failing,
        recommendations,
    }
}

fn recommend(
    slowest: &[StreamSpeed],
    deferred: &[ProviderDeferral],
    failing: &[FailingSync],
) -> Vec<Recommendation> {
    let mut out = Vec::new();
    for f in failing {
        let subject = f
            .sync_id
            .as_ref()
            .map_or_else(String::new, |s| s.to_string());
        let stream = f.stream.as_deref().unwrap_or("its stream");
        let top = f
            .error_classes
            .iter()
            .max_by_key(|(_, n)| **n)
            .map_or("unknown", |(c, _)| c.as_str());
        let (kind, message) = match top {
            "auth" | "needs_reauth" => (
                "reconnect",
                format!(
                    "{} of {} runs of {stream} failed on authorization: send the end user a connect session to reconnect.",
                    f.failures, f.runs
                ),
            ),
            "rate_limited" => (
                "lower_frequency",
                format!(
                    "{} of {} runs of {stream} failed rate limited: run it less often, or at another time than the provider's other syncs.",
                    f.failures, f.runs
                ),
            ),
            class => (
                "investigate",
                format!(
                    "{} of {} runs of {stream} failed (mostly `{class}`): open the failed runs' operations for the provider's answers.",
                    f.failures, f.runs
                ),
            ),
        };
        out.push(Recommendation {
            kind,
            subject,
            message,
        });
    }
    for p in deferred
        .iter()
        .filter(|p| p.deferred_share_percent >= DEFERRED_SHARE_PERCENT)
    {
        out.push(Recommendation {
            kind: "provider_budget",
            subject: p.provider.clone(),
            message: format!(
                "{}% of run time against {} was spent waiting for rate limits or outages ({} of {} requests rate limited): run its syncs less often or spread their schedules.",
                p.deferred_share_percent, p.provider, p.rate_limited, p.requests
            ),
        });
    }
    for s in slowest
        .iter()
        .filter(|s| s.ms_per_1000_records >= SLOW_MS_PER_1000)
    {
        out.push(Recommendation {
            kind: "incremental_or_page_size",
            subject: s.sync_id.as_ref().map_or_else(String::new, |i| i.to_string()),
            message: format!(
                "{} takes {:.1} s per thousand records: use incremental mode if it reads everything each time, or a larger page size.",
                s.stream.as_deref().unwrap_or("This stream"),
                s.ms_per_1000_records as f64 / 1000.0
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(sync: &str, provider: &str, f: impl FnOnce(&mut SyncDayStats)) -> SyncDayStats {
        let mut d = SyncDayStats {
            day: "2026-12-01".into(),
            sync_id: Some(format!("sync_{sync:0>32}").parse().unwrap()),
            provider: Some(provider.into()),
            stream: Some(format!("stream-{sync}")),
            ..Default::default()
        };
        f(&mut d);
        d
    }

    #[test]
    fn the_slowest_stream_per_thousand_records_comes_first_across_days() {
        let days = [
            day("1", "stripe", |d| {
                d.records = 1000;
                d.busy_ms = 2000;
            }),
            day("2", "hubspot", |d| {
                d.records = 500;
                d.busy_ms = 6000;
            }),
            day("2", "hubspot", |d| {
                d.day = "2026-12-02".into();
                d.records = 500;
                d.busy_ms = 6000;
            }),
            day("3", "github", |d| {
                d.records = 10;
                d.busy_ms = 60_000;
            }),
        ];
        let i = compute(&days);
        let order: Vec<_> = i
            .slowest_streams
            .iter()
            .map(|s| (s.stream.clone().unwrap(), s.ms_per_1000_records))
            .collect();
        // sync 3 read too few records to rank; sync 2: 12 s over 1,000 records.
        assert_eq!(
            order,
            [
                ("stream-2".to_owned(), 12_000),
                ("stream-1".to_owned(), 2_000)
            ]
        );
        assert!(
            i.recommendations
                .iter()
                .any(|r| r.kind == "incremental_or_page_size" && r.message.contains("stream-2"))
        );
        assert!(
            !i.recommendations
                .iter()
                .any(|r| r.message.contains("stream-1"))
        );
    }

    #[test]
    fn deferred_share_is_time_waiting_over_all_run_time_per_provider() {
        let days = [
            day("1", "hubspot", |d| {
                d.busy_ms = 1000;
                d.deferred_ms = 3000;
                d.requests = 40;
                d.rate_limited = 4;
            }),
            day("2", "stripe", |d| {
                d.busy_ms = 9000;
                d.deferred_ms = 1000;
                d.requests = 10;
                d.rate_limited = 1;
            }),
        ];
        let i = compute(&days);
        let shares: Vec<_> = i
            .deferred_providers
            .iter()
            .map(|p| (p.provider.as_str(), p.deferred_share_percent))
            .collect();
        assert_eq!(shares, [("hubspot", 75), ("stripe", 10)]);
        let budget: Vec<_> = i
            .recommendations
            .iter()
            .filter(|r| r.kind == "provider_budget")
            .map(|r| r.subject.as_str())
            .collect();
        assert_eq!(budget, ["hubspot"]);
    }

    #[test]
    fn failing_syncs_rank_by_failures_and_advise_by_their_main_error_class() {
        let days = [
            day("1", "salesforce", |d| {
                d.runs_ended = 4;
                d.runs_failed = 3;
                d.errors_by_class = BTreeMap::from([("auth".into(), 3)]);
            }),
            day("2", "hubspot", |d| {
                d.runs_ended = 4;
                d.runs_failed = 1;
                d.errors_by_class = BTreeMap::from([("provider".into(), 1)]);
            }),
            day("3", "stripe", |d| d.runs_ended = 5),
        ];
        let i = compute(&days);
        let failing: Vec<_> = i
            .failing_syncs
            .iter()
            .map(|f| (f.provider.clone().unwrap(), f.failures))
            .collect();
        assert_eq!(
            failing,
            [("salesforce".to_owned(), 3), ("hubspot".to_owned(), 1)]
        );
        let kinds: Vec<_> = i.recommendations.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, ["reconnect", "investigate"]);
    }

    #[test]
    fn nothing_notable_gives_empty_insights() {
        let i = compute(&[day("1", "stripe", |d| {
            d.records = 1000;
            d.busy_ms = 500;
            d.runs_ended = 1;
        })]);
        assert!(i.deferred_providers.is_empty());
        assert!(i.failing_syncs.is_empty());
        assert!(i.recommendations.is_empty());
        assert_eq!(i.slowest_streams.len(), 1);
    }
}
