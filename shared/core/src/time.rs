//! Time as the domain sees it: milliseconds since the Unix epoch, from a [`Clock`] that tests can
//! replace (`tributary_testing::ManualClock`).

/// Milliseconds since the Unix epoch (UTC).
pub type EpochMillis = i64;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// The current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> EpochMillis;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> EpochMillis {
        let now = time::OffsetDateTime::now_utc();
        i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// Formats epoch milliseconds as RFC 3339 (UTC), or `None` when out of range.
pub fn rfc3339(ms: EpochMillis) -> Option<String> {
    let nanos = i128::from(ms) * 1_000_000;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc_with_millis() {
        assert_eq!(
            rfc3339(1_764_000_000_123).as_deref(),
            Some("2025-11-24T16:00:00.123Z")
        );
    }
}
