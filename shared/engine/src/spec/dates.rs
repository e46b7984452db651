//! What keeps a spec current: the day it was last read against the provider's documentation
//! (`checked`), the ends the provider has announced (`deprecations`), and the API versions it pins.
//!
//! [`review`] turns an announced end into a warning as it approaches ([`WARN_BEFORE_DAYS`]) and an
//! error once it has passed; [`is_stale`] says when a spec is due to be read again
//! ([`RECHECK_AFTER_DAYS`]). `tributary catalog validate` prints the first, `tributary catalog
//! check-dates` lists both with [`pinned_versions`], and a catalog test fails on any error, so the
//! catalog cannot ship an endpoint past its sunset.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::Date;
use time::macros::format_description;

use super::ProviderSpec;

/// An end the provider has announced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deprecation {
    /// What ends: an endpoint (`GET /crm/v3/objects/contacts`), a version (`Admin API 2026-10`)
    /// or a token endpoint.
    pub endpoint: String,
    /// The day it stops working or loses support (`YYYY-MM-DD`).
    pub sunset: String,
    /// What the spec moves to before then.
    pub replacement: String,
    /// Where the provider says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// How far ahead of a sunset [`review`] starts warning.
pub const WARN_BEFORE_DAYS: i64 = 90;

/// How long a spec's `checked` day stays current (about six months).
pub const RECHECK_AFTER_DAYS: i64 = 183;

/// How serious a [`Finding`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The sunset is near.
    Warning,
    /// The sunset has passed: the spec ships something that no longer works or is unsupported.
    Error,
}

impl Severity {
    /// `warning` or `error`, as the CLI prints it.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One announced end, judged on a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Warning or error.
    pub severity: Severity,
    /// What, when and what replaces it.
    pub message: String,
}

/// Parses a `YYYY-MM-DD` day.
pub fn parse_day(text: &str) -> Option<Date> {
    Date::parse(text, format_description!("[year]-[month]-[day]")).ok()
}

/// The spec's announced ends as of `today`: an error for each past (or at) its sunset, a warning
/// for each within [`WARN_BEFORE_DAYS`]. A sunset that is not a day is left to the validator.
pub fn review(spec: &ProviderSpec, today: Date) -> Vec<Finding> {
    spec.deprecations
        .iter()
        .filter_map(|d| {
            let sunset = parse_day(&d.sunset)?;
            let days = (sunset - today).whole_days();
            let (severity, when) = if days <= 0 {
                (
                    Severity::Error,
                    format!("is past its sunset ({})", d.sunset),
                )
            } else if days <= WARN_BEFORE_DAYS {
                (
                    Severity::Warning,
                    format!("ends on {} ({days} days)", d.sunset),
                )
            } else {
                return None;
            };
            Some(Finding {
                severity,
                message: format!(
                    "[{}] {} {when}; move to: {}",
                    spec.id, d.endpoint, d.replacement
                ),
            })
        })
        .collect()
}

/// Whether the spec is due to be read against the documentation again: never checked, or
/// checked more than [`RECHECK_AFTER_DAYS`] before `today`.
pub fn is_stale(spec: &ProviderSpec, today: Date) -> bool {
    spec.checked
        .as_deref()
        .and_then(parse_day)
        .is_none_or(|checked| (today - checked).whole_days() > RECHECK_AFTER_DAYS)
}

/// The API versions a spec pins: headers whose name says `version` (`Stripe-Version: 2024-06-20`)
/// and version-like segments of the base URL (`v1`, `v61.0`, `2026-10`).
pub fn pinned_versions(spec: &ProviderSpec) -> Vec<String> {
    let mut out: Vec<String> = spec
        .headers
        .iter()
        .filter(|(name, _)| name.to_ascii_lowercase().contains("version"))
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    let path = spec
        .base_url
        .split_once("://")
        .map_or(spec.base_url.as_str(), |(_, rest)| rest);
    out.extend(
        path.split('/')
            .skip(1)
            .filter(|s| is_version_segment(s))
            .map(|s| format!("base URL {s}")),
    );
    out
}

fn is_version_segment(segment: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    segment.strip_prefix('v').is_some_and(digits)
        || (segment.len() == 7 && parse_day(&format!("{segment}-01")).is_some())
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn spec_with(deprecations: Vec<Deprecation>, checked: Option<&str>) -> ProviderSpec {
        let mut spec = crate::catalog::get("stripe").unwrap().unwrap();
        spec.deprecations = deprecations;
        spec.checked = checked.map(str::to_owned);
        spec
    }

    fn ending(sunset: &str) -> Deprecation {
        Deprecation {
            endpoint: "GET /v1/things".into(),
            sunset: sunset.into(),
            replacement: "GET /v2/things".into(),
            source: None,
        }
    }

    #[test]
    fn an_end_warns_as_it_approaches_and_fails_once_passed() {
        let spec = spec_with(vec![ending("2027-03-01")], None);
        assert!(
            review(&spec, date!(2026 - 11 - 30)).is_empty(),
            "91 days ahead"
        );
        let near = review(&spec, date!(2026 - 12 - 01));
        assert_eq!(near.len(), 1);
        assert_eq!(near[0].severity, Severity::Warning);
        assert!(
            near[0].message.contains("GET /v1/things")
                && near[0].message.contains("2027-03-01")
                && near[0].message.contains("GET /v2/things"),
            "{}",
            near[0].message
        );
        for day in [date!(2027 - 03 - 01), date!(2028 - 01 - 01)] {
            let past = review(&spec, day);
            assert_eq!(past[0].severity, Severity::Error, "{day}");
            assert!(
                past[0].message.contains("past its sunset"),
                "{}",
                past[0].message
            );
        }
    }

    /// The catalog as shipped, judged today: nothing past its sunset (this test starts failing on
    /// the day an announced end passes, before a customer finds out).
    #[test]
    fn no_catalog_spec_ships_anything_past_its_sunset() {
        let today = time::OffsetDateTime::now_utc().date();
        for spec in crate::catalog::load_all().unwrap() {
            for finding in review(&spec, today) {
                assert_ne!(finding.severity, Severity::Error, "{}", finding.message);
            }
        }
    }

    #[test]
    fn a_spec_is_stale_when_never_checked_or_checked_over_six_months_ago() {
        let today = date!(2026 - 12 - 02);
        assert!(is_stale(&spec_with(vec![], None), today));
        assert!(!is_stale(&spec_with(vec![], Some("2026-06-02")), today));
        assert!(is_stale(&spec_with(vec![], Some("2026-05-01")), today));
    }

    #[test]
    fn pinned_versions_come_from_version_headers_and_the_base_url() {
        let mut spec = spec_with(vec![], None);
        spec.headers = [("Stripe-Version".to_owned(), "2024-06-20".to_owned())].into();
        spec.base_url = "https://api.stripe.com/v1".into();
        assert_eq!(
            pinned_versions(&spec),
            ["Stripe-Version: 2024-06-20", "base URL v1"]
        );
        spec.headers.clear();
        spec.base_url = "https://{config.shop}.myshopify.com/admin/api/2026-10".into();
        assert_eq!(pinned_versions(&spec), ["base URL 2026-10"]);
        spec.base_url = "{config.instance_url}/services/data/v61.0".into();
        assert_eq!(pinned_versions(&spec), ["base URL v61.0"]);
        spec.base_url = "https://{config.subdomain}.zendesk.com/api/v2".into();
        assert_eq!(pinned_versions(&spec), ["base URL v2"]);
    }
}
