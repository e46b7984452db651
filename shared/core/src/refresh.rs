//! Race-free OAuth token refresh: exactly one refresh at a time per connection, across every
//! execution environment.
//!
//! Whoever needs a connection's access token asks [`Refresher::access_token`]. A token still valid
//! beyond the margin is returned as stored. Otherwise the caller takes the connection's lease (a
//! conditional write in the store, [`ConnectionStore::lease_refresh`]), reads the connection again —
//! someone may have refreshed it meanwhile — and only then calls the provider, with the refresh token
//! it just read. The new access *and* refresh tokens are written together with the lease released,
//! on the condition that the lease is still the caller's ([`ConnectionStore::swap_refreshed`]); every
//! other write keeps the lease as it is. Callers that find the lease taken wait briefly and read
//! again. So a rotating refresh token is used once and never written back, and a provider that
//! revokes the whole family when an old one comes back never sees one.
//!
//! A connection without a refresh token whose auth mode grants a token from the credentials it holds
//! (the OAuth client-credentials grant: no refresh token, the same grant again when the token
//! expires) is renewed the same way, under the same lease, through [`TokenGrant::regrant`].
//!
//! A definitive refusal (`invalid_grant`) moves the connection to `needs_reauth` with an event; a
//! transient failure gives the lease back and is returned for the caller to retry with backoff.

use std::future::Future;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use crate::PortError;
use crate::connection::{
    CREDENTIALS_PURPOSE, Connection, ConnectionEvent, ConnectionEventType, ConnectionStatus,
};
use crate::ids::{ConnectionId, EventId, TenantId};
use crate::ports::{ConnectionStore, RefreshSwap};
use crate::time::{Clock, EpochMillis};
use crate::vault::{Owner, Vault, VaultError};

/// Tokens a refresh obtained.
pub struct Tokens {
    /// The new access token.
    pub access_token: SecretString,
    /// The new refresh token, when the provider rotated it.
    pub refresh_token: Option<SecretString>,
    /// When the new access token expires, when the provider said.
    pub expires_at_ms: Option<EpochMillis>,
}

/// Why the provider did not refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantFailure {
    /// It refused the refresh token for good (`invalid_grant`): the end user must connect again.
    Definitive(String),
    /// It could not answer now (a timeout, a rate limit, a server error).
    Transient(String),
}

/// The provider's token endpoint, as a refresh uses it.
pub trait TokenGrant: Send + Sync {
    /// Exchanges `refresh_token` of `connection` for new tokens.
    fn refresh(
        &self,
        connection: &Connection,
        refresh_token: &SecretString,
    ) -> impl Future<Output = Result<Tokens, GrantFailure>> + Send;

    /// New tokens for `connection`, which holds no refresh token, asked with the credentials it
    /// holds (`credentials`, opened): the client-credentials grant asks again with the
    /// connection's own client id and secret. `None` when its auth mode cannot renew a token this
    /// way (the default): an expired token then stays expired ([`RefreshError::NotRefreshable`]).
    fn regrant(
        &self,
        connection: &Connection,
        credentials: &std::collections::BTreeMap<String, SecretString>,
    ) -> impl Future<Output = Option<Result<Tokens, GrantFailure>>> + Send {
        let _ = (connection, credentials);
        std::future::ready(None)
    }
}

/// What [`Refresher::refresh_idle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleRefresh {
    /// The tokens were refreshed.
    Refreshed,
    /// Nothing was due (refreshed meanwhile, reconnected, not active, or nothing to refresh).
    NotDue,
    /// Another refresh holds the lease now.
    InProgress,
}

/// Why no access token could be had.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// No such connection for the tenant.
    #[error("no such connection")]
    NotFound,
    /// The connection needs the end user again (it was refused before, or now).
    #[error("the connection needs to be authorized again: {0}")]
    NeedsReauth(String),
    /// The token expired and the connection has no refresh token.
    #[error("the access token expired and the connection has no refresh token")]
    NotRefreshable,
    /// The provider could not refresh now; retry with backoff.
    #[error("the provider could not refresh now: {0}")]
    Transient(String),
    /// Another refresh held the lease for longer than the wait.
    #[error("another refresh is taking longer than expected")]
    Busy,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The stored credentials are not what a refresh expects.
    #[error("the stored credentials are malformed")]
    Malformed,
}

/// How refreshes behave.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    /// Refresh this long before expiry (the spec's margin; 15 minutes by default).
    pub margin: Duration,
    /// How long a lease lasts (a refresh that crashed frees it after this).
    pub lease: Duration,
    /// How long to wait between reads while someone else refreshes.
    pub poll: Duration,
    /// How long to wait in all for someone else's refresh.
    pub wait: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            margin: Duration::from_secs(15 * 60),
            lease: Duration::from_secs(20),
            poll: Duration::from_millis(100),
            wait: Duration::from_secs(10),
        }
    }
}

fn ms(d: Duration) -> EpochMillis {
    EpochMillis::try_from(d.as_millis()).unwrap_or(EpochMillis::MAX)
}

/// Gets connections' access tokens, refreshing them one at a time.
pub struct Refresher<'a, S, G> {
    /// The store.
    pub store: &'a S,
    /// The vault the credentials are sealed by.
    pub vault: &'a Vault,
    /// The provider's token endpoint.
    pub grant: &'a G,
    /// The time source.
    pub clock: &'a dyn Clock,
    /// How refreshes behave.
    pub policy: RefreshPolicy,
}

/// A connection's credentials as sealed: the access token and, when issued, the refresh token
/// (other fields are kept as they are).
type Credentials = std::collections::BTreeMap<String, String>;

impl<S: ConnectionStore, G: TokenGrant> Refresher<'_, S, G> {
    fn owner<'o>(c: &'o Connection) -> Owner<'o> {
        Owner {
            tenant: c.tenant_id.as_str(),
            object: c.id.as_str(),
            purpose: CREDENTIALS_PURPOSE,
        }
    }

    async fn credentials(&self, c: &Connection) -> Result<Credentials, RefreshError> {
        let (plain, _) = self.vault.open(&Self::owner(c), &c.credentials).await?;
        serde_json::from_slice(plain.expose_secret()).map_err(|_| RefreshError::Malformed)
    }

    fn fresh(&self, c: &Connection, now: EpochMillis) -> bool {
        c.token_expires_at_ms
            .is_none_or(|expires| now < expires.saturating_sub(ms(self.policy.margin)))
    }

    async fn load(&self, tenant: &TenantId, id: &ConnectionId) -> Result<Connection, RefreshError> {
        self.store
            .get_connection(tenant, id)
            .await?
            .ok_or(RefreshError::NotFound)
    }

    fn access(creds: &Credentials) -> Result<SecretString, RefreshError> {
        creds
            .get("access_token")
            .map(|t| SecretString::from(t.clone()))
            .ok_or(RefreshError::Malformed)
    }

    /// The connection's access token, refreshed first when it expires within the margin.
    pub async fn access_token(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
    ) -> Result<SecretString, RefreshError> {
        // Real time, not the clock: a test's clock stands still, a wait must not.
        let started = std::time::Instant::now();
        let holder = EventId::generate().to_string();
        loop {
            let connection = self.load(tenant, id).await?;
            if connection.status == ConnectionStatus::NeedsReauth {
                return Err(RefreshError::NeedsReauth(
                    connection.status_reason.unwrap_or_default(),
                ));
            }
            let now = self.clock.now_ms();
            if self.fresh(&connection, now) {
                return Self::access(&self.credentials(&connection).await?);
            }
            if self
                .store
                .lease_refresh(tenant, id, &holder, now, now + ms(self.policy.lease))
                .await?
            {
                let expiring = |c: &Connection, now| !self.fresh(c, now);
                return Ok(self.refresh_holding(tenant, id, &holder, expiring).await?.0);
            }
            // Someone else is refreshing: wait, then read what they wrote.
            if started.elapsed() >= self.policy.wait {
                return Err(RefreshError::Busy);
            }
            tokio::time::sleep(self.policy.poll).await;
        }
    }

    /// The monitor's refresh of an idle connection: its tokens are refreshed, however long they
    /// are still valid, when its idle refresh is due ([`Connection::idle_refresh_due_ms`]); nothing
    /// is done when it is not (someone refreshed it meanwhile) or when another refresh holds the
    /// lease now (its success moves the due time on).
    pub async fn refresh_idle(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
    ) -> Result<IdleRefresh, RefreshError> {
        let due = |c: &Connection, now| c.idle_refresh_due_ms().is_some_and(|due| due <= now);
        let connection = self.load(tenant, id).await?;
        let now = self.clock.now_ms();
        if !due(&connection, now) {
            return Ok(IdleRefresh::NotDue);
        }
        let holder = EventId::generate().to_string();
        if !self
            .store
            .lease_refresh(tenant, id, &holder, now, now + ms(self.policy.lease))
            .await?
        {
            return Ok(IdleRefresh::InProgress);
        }
        Ok(
            match self.refresh_holding(tenant, id, &holder, due).await?.1 {
                true => IdleRefresh::Refreshed,
                false => IdleRefresh::NotDue,
            },
        )
    }

    /// Refreshes under the lease `holder` holds when `needed` says the connection, read again now,
    /// still needs it: the access token, and whether this call refreshed it.
    async fn refresh_holding(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        holder: &str,
        needed: impl Fn(&Connection, EpochMillis) -> bool,
    ) -> Result<(SecretString, bool), RefreshError> {
        // Read again under the lease: a refresh may have finished between the first read and now.
        let mut connection = self.load(tenant, id).await?;
        let creds = self.credentials(&connection).await?;
        if !needed(&connection, self.clock.now_ms()) {
            self.store.release_refresh(tenant, id, holder).await?;
            return Ok((Self::access(&creds)?, false));
        }
        let (outcome, refused) = match creds.get("refresh_token") {
            Some(refresh_token) => {
                let refresh_token = SecretString::from(refresh_token.clone());
                let outcome = self.grant.refresh(&connection, &refresh_token).await;
                (outcome, "the refresh token")
            }
            None => {
                let held = creds
                    .iter()
                    .map(|(k, v)| (k.clone(), SecretString::from(v.clone())))
                    .collect();
                match self.grant.regrant(&connection, &held).await {
                    Some(outcome) => (outcome, "the connection's credentials"),
                    None => {
                        self.store.release_refresh(tenant, id, holder).await?;
                        return Err(RefreshError::NotRefreshable);
                    }
                }
            }
        };
        let (note, now) = match &outcome {
            Ok(_) => ("refreshed".to_owned(), self.clock.now_ms()),
            Err(GrantFailure::Definitive(code)) => (
                format!("needs_reauth: the provider refused {refused} ({code})"),
                self.clock.now_ms(),
            ),
            Err(GrantFailure::Transient(_)) => (
                "failed: the token endpoint failed for now".to_owned(),
                self.clock.now_ms(),
            ),
        };
        crate::operation::note(crate::operation::NoteKind::TokenRefresh, &note, now);
        match outcome {
            Ok(tokens) => {
                let mut renewed = creds;
                renewed.insert(
                    "access_token".into(),
                    tokens.access_token.expose_secret().to_owned(),
                );
                if let Some(rotated) = &tokens.refresh_token {
                    renewed.insert("refresh_token".into(), rotated.expose_secret().to_owned());
                }
                // The monitor's idle refresh keeps refresh tokens alive; a connection without
                // one (client credentials) is renewed only when it is used.
                let holds_refresh_token = renewed.contains_key("refresh_token");
                let sealed = self
                    .vault
                    .seal(
                        &Self::owner(&connection),
                        &serde_json::to_vec(&renewed).map_err(|_| RefreshError::Malformed)?,
                    )
                    .await?;
                // The new tokens are written together; a concurrent change of something else
                // (tags, say) is read again and the tokens put on top of it.
                for _ in 0..5 {
                    let read_version = connection.version;
                    let now = self.clock.now_ms();
                    connection.credentials = sealed.clone();
                    connection.token_expires_at_ms = tokens.expires_at_ms;
                    connection.tokens_obtained_at_ms = holds_refresh_token.then_some(now);
                    connection.updated_at_ms = now;
                    connection.version = read_version.saturating_add(1);
                    let event =
                        ConnectionEvent::of(&connection, ConnectionEventType::Refreshed, None, now);
                    match self
                        .store
                        .swap_refreshed(&connection, read_version, holder, &event)
                        .await
                    {
                        Ok(RefreshSwap::Swapped) | Ok(RefreshSwap::LeaseLost) => {
                            // Lost: a reconnect replaced the credentials meanwhile; the token the
                            // provider just issued is still valid for this call.
                            return Ok((tokens.access_token, true));
                        }
                        Err(PortError::Conflict { .. }) => {
                            connection = self.load(tenant, id).await?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(RefreshError::Busy)
            }
            Err(GrantFailure::Definitive(code)) => {
                let reason = format!("the provider refused {refused} ({code})");
                for _ in 0..5 {
                    let read_version = connection.version;
                    let now = self.clock.now_ms();
                    connection.status = ConnectionStatus::NeedsReauth;
                    connection.status_reason = Some(reason.clone());
                    connection.status_changed_at_ms = now;
                    connection.updated_at_ms = now;
                    connection.version = read_version.saturating_add(1);
                    let event = ConnectionEvent::of(
                        &connection,
                        ConnectionEventType::RefreshFailed,
                        Some(reason.clone()),
                        now,
                    );
                    match self
                        .store
                        .swap_refreshed(&connection, read_version, holder, &event)
                        .await
                    {
                        Ok(_) => return Err(RefreshError::NeedsReauth(reason)),
                        Err(PortError::Conflict { .. }) => {
                            connection = self.load(tenant, id).await?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(RefreshError::NeedsReauth(reason))
            }
            Err(GrantFailure::Transient(why)) => {
                self.store.release_refresh(tenant, id, holder).await?;
                Err(RefreshError::Transient(why))
            }
        }
    }
}
