//! EventBridge schedules: invokes a function with a `Scheduled Event` at the template's rate.

use std::time::Duration;

use axum::body::Bytes;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::Error;
use crate::invoke::Invoker;
use crate::moto::{ACCOUNT_ID, REGION};

/// One schedule.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    /// The function (binary name).
    pub function: String,
    /// The rule's name, for the event's `resources`.
    pub rule: String,
    /// How often it fires.
    pub every: Duration,
}

/// Parses `rate(1 minute)`, `rate(5 minutes)`, `rate(2 hours)`, `rate(1 day)`. `cron(…)` is not
/// emulated: pass an explicit interval instead.
pub(crate) fn parse_rate(expression: &str) -> Result<Duration, Error> {
    let bad = || {
        Error::Template(format!(
            "schedule {expression}: only rate(N unit) is emulated locally (use --schedule-every for others)"
        ))
    };
    let inner = expression
        .trim()
        .strip_prefix("rate(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(bad)?;
    let (count, unit) = inner.trim().split_once(' ').ok_or_else(bad)?;
    let count: u64 = count.parse().map_err(|_| bad())?;
    let unit_seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => return Err(bad()),
    };
    if count == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(count * unit_seconds))
}

/// Parses a human interval for overrides: `500ms`, `2s`, `1m`, `1h`.
pub fn parse_interval(text: &str) -> Result<Duration, Error> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        Error::InvalidOption(format!("interval {text}: expected e.g. 2s, 500ms, 1m"))
    })?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => {
            return Err(Error::InvalidOption(format!(
                "interval {text}: unknown unit {unit}"
            )));
        }
    };
    if duration.is_zero() {
        return Err(Error::InvalidOption(format!("interval {text} is zero")));
    }
    Ok(duration)
}

/// The event EventBridge sends for a scheduled rule.
pub(crate) fn scheduled_event(rule: &str, at: OffsetDateTime) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": at.replace_nanosecond(0).unwrap_or(at).format(&Rfc3339).unwrap_or_default(),
        "region": REGION,
        "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule}")],
        "detail": {}
    })
}

/// Fires the schedule until the task is aborted; the first tick is immediate, so a fresh stack shows
/// its canary without waiting a whole period.
pub(crate) async fn run(schedule: Schedule, invoker: Invoker) {
    let mut ticks = tokio::time::interval(schedule.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let event = scheduled_event(&schedule.rule, OffsetDateTime::now_utc());
        let payload = Bytes::from(event.to_string());
        // EventBridge invokes asynchronously: nobody waits for the result, failures are only logged.
        match invoker.invoke(&schedule.function, payload).await {
            Ok(_) => tracing::debug!(function = %schedule.function, "schedule fired"),
            Err(e) => {
                tracing::warn!(function = %schedule.function, error = %e, "scheduled invocation failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_into_durations() {
        assert_eq!(
            parse_rate("rate(1 minute)").ok(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_rate("rate(5 minutes)").ok(),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_rate("rate(2 hours)").ok(),
            Some(Duration::from_secs(7200))
        );
        assert!(parse_rate("cron(0 12 * * ? *)").is_err());
        assert!(parse_rate("rate(0 minutes)").is_err());
    }

    #[test]
    fn intervals_parse_with_units() {
        assert_eq!(parse_interval("2s").ok(), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_interval("500ms").ok(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_interval("1m").ok(), Some(Duration::from_secs(60)));
        assert!(parse_interval("soon").is_err());
        assert!(parse_interval("0s").is_err());
    }

    #[test]
    fn scheduled_event_parses_as_eventbridge_event() {
        let event = scheduled_event("r", OffsetDateTime::UNIX_EPOCH);
        assert_eq!(event["time"], "1970-01-01T00:00:00Z");
        let parsed: aws_lambda_events::eventbridge::EventBridgeEvent =
            serde_json::from_value(event).expect("parses");
        assert_eq!(parsed.detail_type, "Scheduled Event");
        assert_eq!(parsed.source, "aws.events");
    }
}
