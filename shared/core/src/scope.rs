//! Scopes: what a credential may do, per resource and verb. Each route declares the scope it needs; a
//! credential without it gets a 403 that names the scope.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! scopes {
    ($($(#[$doc:meta])* $variant:ident => $text:literal,)*) => {
        /// A permission a credential can hold.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Scope {
            $($(#[$doc])* $variant,)*
        }

        impl Scope {
            /// Every scope, in a stable order.
            pub const ALL: &'static [Scope] = &[$(Scope::$variant,)*];

            /// The scope's wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Scope::$variant => $text,)*
                }
            }
        }

        impl FromStr for Scope {
            type Err = UnknownScope;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Scope::$variant),)*
                    _ => Err(UnknownScope(s.chars().take(64).collect())),
                }
            }
        }
    };
}

scopes! {
    /// Read integrations (a tenant's provider configurations).
    IntegrationsRead => "integrations:read",
    /// Create, update and delete integrations.
    IntegrationsWrite => "integrations:write",
    /// Read connections.
    ConnectionsRead => "connections:read",
    /// Create, update and delete connections.
    ConnectionsWrite => "connections:write",
    /// Read syncs and runs.
    SyncsRead => "syncs:read",
    /// Configure and trigger syncs.
    SyncsWrite => "syncs:write",
    /// Read synced records.
    RecordsRead => "records:read",
    /// Run actions against providers.
    ActionsExecute => "actions:execute",
    /// Send proxied requests to providers.
    Proxy => "proxy",
    /// Read webhook endpoints and deliveries.
    WebhooksRead => "webhooks:read",
    /// Manage webhook endpoints and replay deliveries.
    WebhooksWrite => "webhooks:write",
    /// Read the operations log, usage and insights; open the dashboard.
    OperationsRead => "operations:read",
    /// Read API keys, identity providers and the audit log.
    KeysRead => "keys:read",
    /// Create and revoke API keys; register identity providers.
    KeysWrite => "keys:write",
    /// Operate the deployment: manage tenants. Holds every other scope.
    Admin => "admin",
}

impl Scope {
    /// Whether a credential that belongs to a tenant may hold the scope: every scope but `admin`,
    /// which belongs to the deployment alone.
    pub fn is_tenant_grantable(self) -> bool {
        self != Scope::Admin
    }
}

/// A scope name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope `{0}`")]
pub struct UnknownScope(pub String);

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a space- or comma-separated scope list, ignoring names this deployment does not know (an
/// identity provider may put unrelated scopes in the same claim).
pub fn parse_known(list: &str) -> Vec<Scope> {
    let mut scopes: Vec<Scope> = list
        .split(|c: char| c.is_ascii_whitespace() || c == ',')
        .filter_map(|s| s.parse().ok())
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_round_trips_its_name() {
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>().unwrap(), *s);
        }
    }

    #[test]
    fn unknown_scopes_are_refused_in_input_and_ignored_in_claims() {
        assert!("connections:delete".parse::<Scope>().is_err());
        assert_eq!(
            parse_known("openid profile connections:read,records:read connections:read"),
            vec![Scope::ConnectionsRead, Scope::RecordsRead]
        );
    }
}
