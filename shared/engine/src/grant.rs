//! The provider's token endpoint for [`tributary_core::refresh`]: a refresh-token grant sent by the
//! engine with the integration's OAuth client (its secret opened from the vault), or for a
//! client-credentials connection the same client-credentials grant again with the connection's own
//! client id and secret, to the endpoint the spec names (with the deployment's origin override).
//! Used wherever a token is refreshed: the API (on demand) and the connector (on demand, and the
//! monitor's daily refresh of idle connections).

use std::collections::BTreeMap;

use secrecy::{ExposeSecret as _, SecretString};
use tributary_core::connection::Connection;
use tributary_core::integration::{CLIENT_SECRET_PURPOSE, Integration};
use tributary_core::ports::IntegrationStore;
use tributary_core::refresh::{GrantFailure, RefreshPolicy, TokenGrant, Tokens};
use tributary_core::time::{Clock, EpochMillis};
use tributary_core::vault::{Owner, Vault};

use crate::Engine;
use crate::oauth::{self, ClientApp, Grant, OAuthError, TokenSet};
use crate::origins::{ProviderOrigins, provider_url};
use crate::spec::{AuthMode, OAuth2ClientCredentials, ProviderSpec};

/// Refresh-token grants through the engine.
pub struct EngineGrant<'a, S> {
    /// Where the connection's integration is read (its OAuth client).
    pub store: &'a S,
    /// The vault (for the integration's client secret).
    pub vault: &'a Vault,
    /// The engine whose client sends the request.
    pub engine: &'a Engine,
    /// The deployment's origin overrides.
    pub origins: &'a ProviderOrigins,
    /// The time source (to date `expires_in`).
    pub clock: &'a dyn Clock,
}

/// Why an integration's OAuth client could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientError {
    /// The integration has no client id or secret.
    Missing,
    /// Its secret could not be opened (the vault failed) or is not text.
    Unreadable(&'static str),
}

/// The integration's OAuth client, its secret opened from the vault.
pub async fn client_app(
    vault: &Vault,
    integration: &Integration,
) -> Result<ClientApp, ClientError> {
    let (Some(client_id), Some(sealed)) = (
        &integration.oauth_client_id,
        &integration.oauth_client_secret,
    ) else {
        return Err(ClientError::Missing);
    };
    let (secret, _) = vault
        .open(
            &Owner {
                tenant: integration.tenant_id.as_str(),
                object: integration.id.as_str(),
                purpose: CLIENT_SECRET_PURPOSE,
            },
            sealed,
        )
        .await
        .map_err(|_| ClientError::Unreadable("the client secret could not be opened"))?;
    Ok(ClientApp {
        client_id: client_id.clone(),
        client_secret: SecretString::from(
            String::from_utf8(secret.expose_secret().to_vec())
                .map_err(|_| ClientError::Unreadable("the client secret is not text"))?,
        ),
    })
}

/// The embedded catalog's spec with this id.
pub fn catalog_spec(id: &str) -> Option<&'static ProviderSpec> {
    crate::catalog::shared().ok()?.iter().find(|s| s.id == id)
}

impl<S: IntegrationStore> TokenGrant for EngineGrant<'_, S> {
    async fn refresh(
        &self,
        connection: &Connection,
        refresh_token: &SecretString,
    ) -> Result<Tokens, GrantFailure> {
        let broken = |what: &str| GrantFailure::Transient(what.to_owned());
        let integration = self
            .store
            .get_integration(&connection.tenant_id, &connection.integration_id)
            .await
            .map_err(|_| broken("the integration could not be read"))?
            .ok_or_else(|| GrantFailure::Definitive("integration_deleted".into()))?;
        let spec = catalog_spec(&integration.provider).ok_or_else(|| broken("no such provider"))?;
        let Some(AuthMode::OAuth2AuthorizationCode(oauth)) =
            spec.auth.iter().find(|m| m.kind() == connection.auth_mode)
        else {
            return Err(GrantFailure::Definitive("not_oauth".into()));
        };
        let app = client_app(self.vault, &integration)
            .await
            .map_err(|e| match e {
                ClientError::Missing => GrantFailure::Definitive("no_client".into()),
                ClientError::Unreadable(why) => broken(why),
            })?;
        let mut local = oauth.clone();
        local.token_url = provider_url(self.origins, &spec.id, &oauth.token_url);
        let request = oauth::token_request(
            &(&local).into(),
            &connection.config,
            &app,
            &Grant::RefreshToken { refresh_token },
        )
        .map_err(|_| broken("the token request cannot be built"))?;
        let now = at(self.clock.now_ms());
        let answer =
            oauth::request_token(self.engine.client(), &request, &oauth.token_response, now).await;
        renewed(
            spec,
            answer.map(|t| (t.access_token, t.refresh_token, t.expires_at)),
        )
    }

    async fn regrant(
        &self,
        connection: &Connection,
        credentials: &BTreeMap<String, SecretString>,
    ) -> Option<Result<Tokens, GrantFailure>> {
        let spec = catalog_spec(&connection.provider)?;
        let Some(AuthMode::OAuth2ClientCredentials(mode)) =
            spec.auth.iter().find(|m| m.kind() == connection.auth_mode)
        else {
            return None;
        };
        Some(
            self.client_credentials(connection, spec, mode, credentials)
                .await,
        )
    }
}

impl<S: IntegrationStore> EngineGrant<'_, S> {
    /// The client-credentials grant again, with the connection's own client id and secret and its
    /// integration's scopes.
    async fn client_credentials(
        &self,
        connection: &Connection,
        spec: &ProviderSpec,
        mode: &OAuth2ClientCredentials,
        credentials: &BTreeMap<String, SecretString>,
    ) -> Result<Tokens, GrantFailure> {
        let integration = self
            .store
            .get_integration(&connection.tenant_id, &connection.integration_id)
            .await
            .map_err(|_| GrantFailure::Transient("the integration could not be read".into()))?
            .ok_or_else(|| GrantFailure::Definitive("integration_deleted".into()))?;
        let (Some(client_id), Some(client_secret)) = (
            credentials.get("client_id"),
            credentials.get("client_secret"),
        ) else {
            return Err(GrantFailure::Definitive("no_client".into()));
        };
        let app = ClientApp {
            client_id: client_id.expose_secret().to_owned(),
            client_secret: client_secret.clone(),
        };
        let answer = client_credentials_token(
            self.engine,
            self.origins,
            spec,
            mode,
            &connection.config,
            &app,
            &integration.scopes,
            self.clock.now_ms(),
        )
        .await;
        // No refresh token is kept: this grant is asked again, never a refresh.
        renewed(spec, answer.map(|t| (t.access_token, None, t.expires_at)))
    }
}

/// `now_ms` as a time.
fn at(now_ms: EpochMillis) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(now_ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// `t` in epoch milliseconds.
pub fn epoch_ms(t: time::OffsetDateTime) -> EpochMillis {
    EpochMillis::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(EpochMillis::MAX)
}

type Answer = (
    SecretString,
    Option<SecretString>,
    Option<time::OffsetDateTime>,
);

/// A token endpoint's answer as the refresher takes it.
fn renewed(
    spec: &ProviderSpec,
    answer: Result<Answer, OAuthError>,
) -> Result<Tokens, GrantFailure> {
    match answer {
        Ok((access_token, refresh_token, expires_at)) => Ok(Tokens {
            access_token,
            refresh_token,
            expires_at_ms: expires_at.map(epoch_ms),
        }),
        Err(e) => {
            let definitive = e.is_definitive();
            tracing::warn!(provider = %spec.id, definitive, "a refresh failed");
            match (definitive, e) {
                (true, OAuthError::Refused { code, .. }) => Err(GrantFailure::Definitive(code)),
                (true, _) => Err(GrantFailure::Definitive("refused".into())),
                (false, _) => Err(GrantFailure::Transient(
                    "the provider did not answer".into(),
                )),
            }
        }
    }
}

/// A token by the client-credentials grant of `mode`, asked of its token endpoint (with the
/// deployment's origin override) for `app`, the end user's own client: `scopes`, or the mode's
/// when empty. `now_ms` dates `expires_in`. The request is sent once.
#[allow(clippy::too_many_arguments)]
pub async fn client_credentials_token(
    engine: &Engine,
    origins: &ProviderOrigins,
    spec: &ProviderSpec,
    mode: &OAuth2ClientCredentials,
    config: &BTreeMap<String, String>,
    app: &ClientApp,
    scopes: &[String],
    now_ms: EpochMillis,
) -> Result<TokenSet, OAuthError> {
    let mut local = mode.clone();
    local.token_url = provider_url(origins, &spec.id, &mode.token_url);
    let scopes = if scopes.is_empty() {
        &mode.scopes
    } else {
        scopes
    };
    let request = oauth::token_request(
        &(&local).into(),
        config,
        app,
        &Grant::ClientCredentials { scopes },
    )?;
    oauth::request_token(engine.client(), &request, &mode.token_response, at(now_ms)).await
}

/// The refresh policy of a provider: its spec's margin, the defaults otherwise.
pub fn policy(spec: &ProviderSpec) -> RefreshPolicy {
    let margin = spec.auth.iter().find_map(|m| match m {
        AuthMode::OAuth2AuthorizationCode(o) => Some(o.refresh_margin_seconds),
        _ => None,
    });
    RefreshPolicy {
        margin: std::time::Duration::from_secs(margin.unwrap_or(900)),
        ..Default::default()
    }
}

/// Why a stored connection cannot be used now.
#[derive(Debug, thiserror::Error)]
pub enum UseError {
    /// Its provider is not in the catalog (a spec was removed).
    #[error("provider `{0}` is not in the catalog")]
    UnknownProvider(String),
    /// A token could not be had (needs the end user, a refresh that failed for now, …).
    #[error(transparent)]
    Refresh(#[from] tributary_core::refresh::RefreshError),
    /// The sealed credentials could not be opened or are not a JSON object of strings.
    #[error("the connection's credentials could not be opened")]
    Credentials,
}

/// A stored connection made ready for the engine: an OAuth access token refreshed (or, for client
/// credentials, granted again) first when it expires within the spec's margin (one at a time
/// across every environment, see
/// [`tributary_core::refresh`]), the credentials opened from the vault, and the deployment's
/// origin override applied to the base URL. The credentials live only in the returned value.
pub async fn usable_connection<S>(
    store: &S,
    vault: &Vault,
    engine: &Engine,
    origins: &ProviderOrigins,
    clock: &dyn Clock,
    connection: &Connection,
) -> Result<crate::Connection, UseError>
where
    S: IntegrationStore + tributary_core::ports::ConnectionStore,
{
    use std::collections::BTreeMap;

    let spec = catalog_spec(&connection.provider)
        .ok_or_else(|| UseError::UnknownProvider(connection.provider.clone()))?;
    let mut current = connection.clone();
    let mut fresh_token = None;
    if matches!(
        spec.auth.iter().find(|m| m.kind() == connection.auth_mode),
        Some(AuthMode::OAuth2AuthorizationCode(_) | AuthMode::OAuth2ClientCredentials(_))
    ) {
        let grant = EngineGrant {
            store,
            vault,
            engine,
            origins,
            clock,
        };
        let refresher = tributary_core::refresh::Refresher {
            store,
            vault,
            grant: &grant,
            clock,
            policy: policy(spec),
        };
        fresh_token = Some(
            refresher
                .access_token(&connection.tenant_id, &connection.id)
                .await?,
        );
        // The refresh may have rewritten the connection (new tokens, obtained configuration).
        current = store
            .get_connection(&connection.tenant_id, &connection.id)
            .await
            .map_err(tributary_core::refresh::RefreshError::from)?
            .ok_or(tributary_core::refresh::RefreshError::NotFound)?;
    }
    let (plain, _) = vault
        .open(
            &Owner {
                tenant: current.tenant_id.as_str(),
                object: current.id.as_str(),
                purpose: tributary_core::connection::CREDENTIALS_PURPOSE,
            },
            &current.credentials,
        )
        .await
        .map_err(|_| UseError::Credentials)?;
    let values: BTreeMap<String, String> =
        serde_json::from_slice(plain.expose_secret()).map_err(|_| UseError::Credentials)?;
    let mut credentials: BTreeMap<String, SecretString> = values
        .into_iter()
        .map(|(k, v)| (k, SecretString::from(v)))
        .collect();
    if let Some(token) = fresh_token {
        credentials.insert("access_token".into(), token);
    }
    let base_url = origins.contains_key(&spec.id).then(|| {
        let mode = spec.auth.iter().find(|m| m.kind() == current.auth_mode);
        provider_url(origins, &spec.id, spec.base_url_for(mode, &current.config))
    });
    Ok(crate::Connection {
        config: current.config.clone(),
        credentials,
        auth_mode: Some(current.auth_mode.clone()),
        base_url,
    })
}
