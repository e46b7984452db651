//! The per-tenant request rate limit, cheap in DynamoDB cost.
//!
//! Each execution environment leases a share of the tenant's per-minute budget from a shared counter
//! (one atomic `ADD` per lease, not per request) and spends it locally. A lease is 5 % of the limit
//! (at least 1, at most 50 requests), so a tenant at its limit costs about 20 writes a minute per
//! warm environment whatever its traffic. Unspent leases make the limit slightly conservative, never
//! generous: the shared counter never grants more than the limit in a window.
//!
//! Once the counter refuses a lease, the environment remembers that the tenant's budget is exhausted
//! until the window ends and refuses locally, so a tenant hammering past its limit costs no further
//! DynamoDB write (a raised limit therefore takes effect at the next window at the latest).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tributary_core::ids::TenantId;
use tributary_core::ports::{RateCounter, TenantStore};
use tributary_core::time::EpochMillis;

use crate::problem::ApiError;

const WINDOW_SECS: i64 = 60;

#[derive(Debug, Clone, Copy)]
struct Lease {
    window: i64,
    remaining: u32,
    /// The counter refused a lease in `window`: refuse locally until the window ends.
    exhausted: bool,
}

/// What the local lease says about one request.
enum Local {
    Admitted,
    Exhausted,
    /// No usable lease: ask the shared counter.
    Unknown,
}

/// Local leases per tenant.
#[derive(Debug, Default)]
pub struct Limiter {
    leases: Mutex<HashMap<String, Lease>>,
}

/// The lease size for a limit.
pub fn lease_size(limit: u32) -> u32 {
    (limit / 20).clamp(1, 50)
}

impl Limiter {
    fn take_local(&self, bucket: &str, window: i64) -> Local {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        match leases.get_mut(bucket) {
            Some(lease) if lease.window == window && lease.exhausted => Local::Exhausted,
            Some(lease) if lease.window == window && lease.remaining > 0 => {
                lease.remaining -= 1;
                Local::Admitted
            }
            _ => Local::Unknown,
        }
    }

    fn store_lease(&self, bucket: &str, lease: Lease) {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        leases.insert(bucket.to_owned(), lease);
    }

    /// Admits one request of `bucket` (a tenant) under `limit` per minute, or answers 429 with the
    /// seconds until the window ends. A counter outage fails open (logged): the limit protects the
    /// service, and refusing every request because the counter is down would be a worse outage.
    pub async fn admit<R: RateCounter>(
        &self,
        counter: &R,
        bucket: &str,
        limit: u32,
        now_ms: EpochMillis,
    ) -> Result<(), ApiError> {
        let now_secs = now_ms.div_euclid(1000);
        let window = now_secs - now_secs.rem_euclid(WINDOW_SECS);
        let refused = || {
            let retry_after_secs = u64::try_from(window + WINDOW_SECS - now_secs)
                .unwrap_or(1)
                .max(1);
            ApiError::RateLimited { retry_after_secs }
        };
        match self.take_local(bucket, window) {
            Local::Admitted => return Ok(()),
            Local::Exhausted => return Err(refused()),
            Local::Unknown => {}
        }
        let want = lease_size(limit);
        let total = match counter
            .add(
                bucket,
                window,
                want,
                Duration::from_secs(2 * WINDOW_SECS as u64),
            )
            .await
        {
            Ok(total) => total,
            Err(e) => {
                tracing::warn!(error = %e, "rate counter unavailable; admitting the request");
                return Ok(());
            }
        };
        let before = total.saturating_sub(u64::from(want));
        let granted = u64::from(limit).saturating_sub(before).min(u64::from(want));
        if granted == 0 {
            self.store_lease(
                bucket,
                Lease {
                    window,
                    remaining: 0,
                    exhausted: true,
                },
            );
            return Err(refused());
        }
        self.store_lease(
            bucket,
            Lease {
                window,
                remaining: u32::try_from(granted - 1).unwrap_or(0),
                exhausted: false,
            },
        );
        Ok(())
    }
}

/// Tenants' rate limits, cached per execution environment so the limit costs no read per request.
/// A changed limit takes effect within [`LimitCache::TTL_MS`].
#[derive(Debug, Default)]
pub struct LimitCache {
    entries: Mutex<HashMap<String, (EpochMillis, u32)>>,
}

impl LimitCache {
    /// How long a cached limit is used.
    pub const TTL_MS: i64 = 60_000;

    /// The cached limit of `tenant`, if fresh.
    pub fn get(&self, tenant: &str, now: EpochMillis) -> Option<u32> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(tenant)
            .filter(|(at, _)| now - at < Self::TTL_MS)
            .map(|(_, limit)| *limit)
    }

    /// Caches `limit` for `tenant`.
    pub fn put(&self, tenant: &str, limit: u32, now: EpochMillis) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(tenant.to_owned(), (now, limit));
    }
}

/// The rate limit of this execution environment: its leases and the tenants' limits.
#[derive(Debug, Default)]
pub struct RateLimit {
    limiter: Limiter,
    limits: LimitCache,
}

impl RateLimit {
    /// Admits one request of `tenant` under its per-minute limit, or answers 429 (401 when the tenant
    /// no longer exists, 503 when its limit cannot be read).
    pub async fn admit<S: TenantStore + RateCounter>(
        &self,
        store: &S,
        tenant: &TenantId,
        now: EpochMillis,
    ) -> Result<(), ApiError> {
        let limit = match self.limits.get(tenant.as_str(), now) {
            Some(limit) => limit,
            None => match store.get_tenant(tenant).await {
                Ok(Some(t)) => {
                    self.limits
                        .put(tenant.as_str(), t.rate_limit_per_minute, now);
                    t.rate_limit_per_minute
                }
                // The authorizer let a deleted tenant through (cached): nothing of it is reachable.
                Ok(None) => return Err(ApiError::Unauthenticated),
                Err(e) => {
                    tracing::error!(error = %e, "tenant lookup failed");
                    return Err(ApiError::Unavailable);
                }
            },
        };
        self.limiter.admit(store, tenant.as_str(), limit, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The shared counter keys its items by (bucket, window), like the table: a new window's item
    // starts empty.
    use tributary_testing::MemStore;

    #[tokio::test]
    async fn admits_exactly_the_limit_per_window_with_few_counter_writes() {
        let counter = MemStore::default();
        let limiter = Limiter::default();
        let now = 1_800_000_000_000; // a window boundary
        let mut admitted = 0;
        let mut refused = None;
        for _ in 0..150 {
            match limiter.admit(&counter, "ten_a", 100, now + 5_000).await {
                Ok(()) => admitted += 1,
                Err(e) => refused = Some(e),
            }
        }
        assert_eq!(admitted, 100);
        match refused {
            Some(ApiError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 55),
            other => panic!("expected 429, got {other:?}"),
        }
        // 100 admitted with leases of 5: 20 writes, and one more that finds the budget exhausted.
        assert_eq!(counter.calls("add"), 21);
    }

    #[tokio::test]
    async fn when_budget_is_exhausted_refusals_cost_no_store_write_until_the_window_ends() {
        let counter = MemStore::default();
        let limiter = Limiter::default();
        let window = 1_800_000_000_000; // a window boundary
        for _ in 0..10 {
            limiter.admit(&counter, "ten_a", 10, window).await.unwrap();
        }
        assert!(limiter.admit(&counter, "ten_a", 10, window).await.is_err());
        let writes = counter.calls("add");

        for i in 0..1_000 {
            match limiter
                .admit(&counter, "ten_a", 10, window + 1_000 + i)
                .await
            {
                Err(ApiError::RateLimited { retry_after_secs }) => {
                    assert!((1..=59).contains(&retry_after_secs), "{retry_after_secs}")
                }
                other => panic!("expected 429, got {other:?}"),
            }
        }
        assert_eq!(counter.calls("add"), writes, "refusals wrote");

        // The next window asks the shared counter again.
        assert!(
            limiter
                .admit(&counter, "ten_a", 10, window + 60_000)
                .await
                .is_ok()
        );
        assert_eq!(counter.calls("add"), writes + 1);
    }

    #[tokio::test]
    async fn two_environments_together_never_exceed_the_limit() {
        let counter = MemStore::default();
        let (a, b) = (Limiter::default(), Limiter::default());
        let now = 1_800_000_000_000;
        let mut admitted = 0;
        for i in 0..300 {
            let limiter = if i % 2 == 0 { &a } else { &b };
            if limiter.admit(&counter, "ten_a", 60, now).await.is_ok() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 60);
    }

    #[tokio::test]
    async fn a_new_window_starts_a_new_budget() {
        let counter = MemStore::default();
        let limiter = Limiter::default();
        let now = 1_800_000_000_000;
        assert!(limiter.admit(&counter, "t", 1, now).await.is_ok());
        assert!(limiter.admit(&counter, "t", 1, now).await.is_err());
        assert!(limiter.admit(&counter, "t", 1, now + 60_000).await.is_ok());
    }

    #[test]
    fn lease_size_is_five_percent_bounded() {
        assert_eq!(lease_size(1), 1);
        assert_eq!(lease_size(600), 30);
        assert_eq!(lease_size(100_000), 50);
    }
}
