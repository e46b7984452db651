//! Incremental cursor values: parsing record fields, formatting, lookback and saved state.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::spec::CursorFormat;

/// A point in time read from a record or from saved state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CursorValue(OffsetDateTime);

impl CursorValue {
    /// Parses text in `format`.
    pub fn parse(text: &str, format: CursorFormat) -> Option<Self> {
        let text = text.trim();
        match format {
            CursorFormat::Rfc3339 => OffsetDateTime::parse(text, &Rfc3339).ok().map(Self),
            CursorFormat::UnixSeconds => text
                .parse::<i64>()
                .ok()
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                .map(Self),
            CursorFormat::UnixMillis => text
                .parse::<i128>()
                .ok()
                .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok())
                .map(Self),
        }
    }

    /// Reads a record field (string or number).
    pub fn from_json(value: &Value, format: CursorFormat) -> Option<Self> {
        match value {
            Value::String(s) => Self::parse(s, format),
            Value::Number(n) => match format {
                CursorFormat::Rfc3339 => None,
                _ => Self::parse(&n.to_string(), format),
            },
            _ => None,
        }
    }

    /// The Unix epoch, the cursor of a first run without `start`.
    pub fn epoch() -> Self {
        Self(OffsetDateTime::UNIX_EPOCH)
    }

    /// Moves the cursor back by `seconds` (saturating at the epoch range limits).
    pub fn minus_seconds(self, seconds: u64) -> Self {
        let secs = i64::try_from(seconds).unwrap_or(i64::MAX);
        Self(
            self.0
                .checked_sub(time::Duration::seconds(secs))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        )
    }

    /// Formats in `format`.
    pub fn format(self, format: CursorFormat) -> String {
        match format {
            CursorFormat::Rfc3339 => self
                .0
                .format(&Rfc3339)
                .unwrap_or_else(|_| self.0.unix_timestamp().to_string()),
            CursorFormat::UnixSeconds => self.0.unix_timestamp().to_string(),
            CursorFormat::UnixMillis => (self.0.unix_timestamp_nanos() / 1_000_000).to_string(),
        }
    }
}

/// The checkpoint of an incremental stream, saved after each durable page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamState {
    /// The greatest cursor value seen, in the stream's cursor format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_each_format() {
        let c = CursorValue::parse("2024-05-01T12:00:00Z", CursorFormat::Rfc3339).unwrap();
        assert_eq!(c.format(CursorFormat::UnixSeconds), "1714564800");
        assert_eq!(c.format(CursorFormat::UnixMillis), "1714564800000");
        let s = CursorValue::from_json(&serde_json::json!(1714564800), CursorFormat::UnixSeconds)
            .unwrap();
        assert_eq!(s, c);
        assert!(CursorValue::parse("yesterday", CursorFormat::Rfc3339).is_none());
    }

    #[test]
    fn lookback_moves_cursor_back() {
        let c = CursorValue::parse("1714564800", CursorFormat::UnixSeconds).unwrap();
        assert_eq!(
            c.minus_seconds(3600).format(CursorFormat::UnixSeconds),
            "1714561200"
        );
    }
}
