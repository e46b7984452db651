//! Prefixed resource identifiers (`job_…`, `ten_…`): a readable prefix, then 32 lowercase hex digits
//! of a UUIDv7, so ids sort by creation time and a wrong kind of id is refused before any store access.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid identifier of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{value}` is not a valid {kind} id: expected `{prefix}_` followed by 32 lowercase hex digits"
)]
pub struct InvalidId {
    /// The kind of id expected, e.g. `job`.
    pub kind: &'static str,
    /// The expected prefix.
    pub prefix: &'static str,
    /// The refused value, cut to a safe length for messages.
    pub value: String,
}

const HEX_LEN: usize = 32;

fn validate(prefix: &'static str, kind: &'static str, s: &str) -> Result<(), InvalidId> {
    let ok = s
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|hex| {
            hex.len() == HEX_LEN
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(InvalidId {
            kind,
            prefix,
            value: s.chars().take(64).collect(),
        })
    }
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-ordered id.
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id derived from `seed` at `at_ms`: the same seed always gives the same id, so
            /// that doing something again (a redelivered job) finds what the first time made
            /// rather than a second one. Time first (48 bits, so that derived ids sort by time
            /// like generated ones), then 80 bits of the seed's SHA-256.
            pub fn derive(at_ms: i64, seed: &str) -> Self {
                use sha2::Digest as _;
                let digest = sha2::Sha256::digest(seed.as_bytes());
                let millis = u64::try_from(at_ms).unwrap_or_default() & 0xffff_ffff_ffff;
                Self(format!("{}_{millis:012x}{}", $prefix, &hex::encode(digest)[..20]))
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                validate($prefix, $kind, s)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// A job travelling through the jobs queue.
    JobId,
    "job",
    "job"
);
prefixed_id!(
    /// A tenant: a SaaS company using Tributary.
    TenantId,
    "ten",
    "tenant"
);
prefixed_id!(
    /// A tenant API key (the public part of the key, used for lookup).
    ApiKeyId,
    "key",
    "API key"
);
prefixed_id!(
    /// A tenant's registered OIDC issuer.
    IssuerId,
    "iss",
    "issuer"
);
prefixed_id!(
    /// A tenant's configuration of a provider.
    IntegrationId,
    "int",
    "integration"
);
prefixed_id!(
    /// One end user's account at a provider.
    ConnectionId,
    "conn",
    "connection"
);
prefixed_id!(
    /// A connect session.
    ConnectSessionId,
    "cs",
    "connect session"
);
prefixed_id!(
    /// Something that happened to a tenant's objects (kept for webhooks).
    EventId,
    "ev",
    "event"
);
prefixed_id!(
    /// A tenant's configured import of one stream of one connection into a model.
    SyncId,
    "sync",
    "sync"
);
prefixed_id!(
    /// One execution of a sync (across its continuations).
    SyncRunId,
    "run",
    "sync run"
);
prefixed_id!(
    /// One asynchronous execution of an action.
    ActionRunId,
    "arun",
    "action run"
);
prefixed_id!(
    /// A tenant's webhook endpoint.
    EndpointId,
    "wep",
    "webhook endpoint"
);
prefixed_id!(
    /// One event for one webhook endpoint (its `webhook-id`).
    MessageId,
    "msg",
    "webhook message"
);
prefixed_id!(
    /// A provider's webhook delivery, verified and kept for the connector to route.
    InboundId,
    "inb",
    "inbound webhook"
);
prefixed_id!(
    /// One unit of work in the operations log (a sync run's invocation, an action run, a proxied
    /// call, a webhook in or out, a token refresh, a connection change).
    OperationId,
    "op",
    "operation"
);
prefixed_id!(
    /// A dashboard session (the page a tenant's short-lived link opens).
    DashboardSessionId,
    "dss",
    "dashboard session"
);
prefixed_id!(
    /// An audit event.
    AuditEventId,
    "evt",
    "audit event"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = JobId::generate();
        assert_eq!(id.as_str().parse::<JobId>().unwrap(), id);
        assert!(id.as_str().starts_with("job_"));
    }

    #[test]
    fn ids_of_another_kind_are_refused() {
        let tenant = TenantId::generate();
        let err = tenant.as_str().parse::<JobId>().unwrap_err();
        assert_eq!(err.kind, "job");
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "job_",
            "job_0190D6D8A0F47C0E9B6C7D2F1A3B4C5D",
            "job_0190d6d8a0f47c0e9b6c7d2f1a3b4c5",
            "job_0190d6d8a0f47c0e9b6c7d2f1a3b4c5dz",
            "job-0190d6d8a0f47c0e9b6c7d2f1a3b4c5d",
            "../job_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d",
        ] {
            assert!(bad.parse::<JobId>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn derived_ids_are_stable_per_seed_valid_and_time_ordered() {
        let a = EventId::derive(1_765_000_000_000, "inb_1/conn_1");
        assert_eq!(a, EventId::derive(1_765_000_000_000, "inb_1/conn_1"));
        assert_ne!(a, EventId::derive(1_765_000_000_000, "inb_1/conn_2"));
        assert_eq!(a.as_str().parse::<EventId>().unwrap(), a);
        assert!(EventId::derive(1_765_000_000_001, "inb_1/conn_1") > a);
    }

    #[test]
    fn ids_deserialize_with_validation() {
        let ok: JobId = serde_json::from_str("\"job_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d\"").unwrap();
        assert_eq!(ok.as_str(), "job_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d");
        assert!(serde_json::from_str::<JobId>("\"job_x\"").is_err());
    }
}
