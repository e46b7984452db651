//! Outbound webhooks: a tenant's endpoints (`/v1/webhook-endpoints`) and the messages made for
//! them (`/v1/webhook-messages`), with their attempts and replays.
//!
//! An endpoint's URL is https (plain http only to a host the deployment's allowlist opens), holds
//! no credentials, and is checked by the egress guard when it is set (its host's addresses now)
//! and again at every delivery. Its secret (`whsec_` and 32 random bytes) is shown once, when the
//! endpoint is made or the secret rotated; it is kept sealed in the vault. A rotation keeps the
//! previous secret signing for 24 hours beside the new one, so a receiver can move to the new
//! secret without losing a message. Messages follow the Standard Webhooks specification; see
//! `functions/connector/src/webhooks.rs` for delivery.

use std::time::Duration;

use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tributary_core::ids::{EndpointId, MessageId};
use tributary_core::job::{JobEnvelope, JobKind};
use tributary_core::outbound::{
    DeliveryAttempt, EndpointSecret, EventType, MAX_ENDPOINTS, MessageState, ROTATION_OVERLAP_MS,
    SECRET_PURPOSE, WebhookEndpoint, WebhookMessage, new_secret,
};
use tributary_core::pagination::PageRequest;
use tributary_core::ports::MessageFilter;
use tributary_core::tenancy::AuditEvent;
use tributary_core::time::{EpochMillis, rfc3339};
use tributary_core::vault::{Owner, Vault};
use url::Url;
use utoipa::ToSchema;

use crate::access::{TenantCaller, WebhooksRead, WebhooksWrite};
use crate::dto::PageOf;
use crate::idempotency::Idempotent;
use crate::openapi::ProblemDoc;
use crate::pagination::{PageQuery, page_of, page_request};
use crate::problem::ApiError;
use crate::request::{Id, JsonBody, invalid, only_query, query_id};
use crate::response::{Accepted, Created, Json};
use crate::router::{Api, operations};
use crate::routes::store_failure;
use crate::state::{AppState, Clock, ControlStore, Jobs, JobsQueue, Secrets, Settings, Store};

/// The longest URL accepted.
const MAX_URL_LEN: usize = 2048;
/// The longest description accepted.
const MAX_DESCRIPTION_LEN: usize = 200;
/// Retries of an update that lost to another write.
const RETRIES: u32 = 4;

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointIn {
    /// Where messages are posted: https (plain http only to a host the deployment's allowlist
    /// opens), without credentials or a fragment, at most 2048 characters.
    #[schema(
        max_length = 2048,
        example = "https://app.example.com/webhooks/tributary"
    )]
    pub url: String,
    /// What it is for.
    #[schema(max_length = 200)]
    pub description: Option<String>,
    /// The event types it receives (default: every type): `connection.created`,
    /// `connection.reauthorized`, `connection.refresh_failed`, `connection.deleted`,
    /// `sync.run.succeeded`, `sync.run.failed`, `sync.run.stalled`, `action.run.completed`,
    /// `provider.event`, `webhook.endpoint.disabled`.
    #[schema(example = json!(["connection.created", "sync.run.failed"]))]
    pub event_types: Option<Vec<String>>,
    /// Whether messages are made for it (default `true`).
    pub enabled: Option<bool>,
}

/// Changes to an endpoint; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    /// A new URL (checked as at creation).
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    /// A new description.
    #[schema(max_length = 200)]
    pub description: Option<String>,
    /// The event types it receives (empty: every type).
    pub event_types: Option<Vec<String>>,
    /// Turns it on or off; turning it on clears why a delivery turned it off.
    pub enabled: Option<bool>,
}

/// An endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointOut {
    /// Id (`wep_…`).
    pub id: String,
    /// Where messages are posted.
    pub url: String,
    /// What it is for.
    pub description: Option<String>,
    /// The event types it receives; empty for every type.
    pub event_types: Vec<String>,
    /// Whether messages are made for it.
    pub enabled: bool,
    /// Why a delivery turned it off (its receiver answered 410 Gone).
    pub disabled_reason: Option<String>,
    /// RFC 3339: when the previous secret stops signing, during a rotation's overlap.
    pub previous_secret_expires_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A new endpoint, with its secret (shown this once).
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointCreatedOut {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: EndpointOut,
    /// The signing secret (`whsec_…`): verify `webhook-signature` with it. It is not shown again.
    pub secret: String,
}

/// A rotated secret (shown this once).
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretOut {
    /// The new signing secret (`whsec_…`).
    pub secret: String,
    /// RFC 3339: until then the previous secret signs too (each message carries both
    /// signatures).
    pub previous_secret_expires_at: String,
}

/// A message: one event for one endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageOut {
    /// Id (`msg_…`): the `webhook-id` of every attempt.
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The event (`ev_…`).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// `pending`, `succeeded`, `exhausted` (every scheduled attempt failed; replayable) or
    /// `failed` (its endpoint was disabled or deleted, or answered 410).
    pub state: String,
    /// Attempts since it was made or last replayed.
    pub attempts: u32,
    /// Attempts in all.
    pub total_attempts: u32,
    /// RFC 3339: when the next attempt is due, while pending.
    pub next_attempt_at: Option<String>,
    /// The last attempt's HTTP status.
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The body sent: `{"type", "timestamp", "data"}`.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptOut {
    /// Its number among the message's attempts (1-based).
    pub n: u32,
    /// RFC 3339.
    pub at: String,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why it failed.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
    /// Whether the receiver answered 2xx.
    pub succeeded: bool,
}

fn time(ms: EpochMillis) -> String {
    rfc3339(ms).unwrap_or_default()
}

impl EndpointOut {
    fn of(e: WebhookEndpoint, now: EpochMillis) -> Self {
        Self {
            previous_secret_expires_at: e
                .secrets
                .iter()
                .filter_map(|s| s.expires_at_ms)
                .filter(|at| *at > now)
                .max()
                .map(time),
            id: e.id.to_string(),
            url: e.url,
            description: e.description,
            event_types: e
                .event_types
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            created_at: time(e.created_at_ms),
            updated_at: time(e.updated_at_ms),
        }
    }
}

impl From<WebhookMessage> for MessageOut {
    fn from(m: WebhookMessage) -> Self {
        Self {
            id: m.id.to_string(),
            endpoint_id: m.endpoint_id.to_string(),
            event_id: m.event_id.to_string(),
            event_type: m.event_type.as_str().to_owned(),
            state: m.state.as_str().to_owned(),
            attempts: m.attempts,
            total_attempts: m.total_attempts,
            next_attempt_at: m.next_attempt_at_ms.map(time),
            last_status: m.last_status,
            last_error: m.last_error,
            payload: serde_json::from_str(&m.body).unwrap_or(Value::Null),
            created_at: time(m.created_at_ms),
            updated_at: time(m.updated_at_ms),
        }
    }
}

impl From<DeliveryAttempt> for AttemptOut {
    fn from(a: DeliveryAttempt) -> Self {
        Self {
            n: a.n,
            at: time(a.at_ms),
            status: a.status,
            error: a.error,
            duration_ms: a.duration_ms,
            succeeded: a.succeeded,
        }
    }
}

/// A URL messages may be posted to, or a 400 at `/url` saying why not.
async fn check_url(settings: &Settings, raw: &str) -> Result<String, ApiError> {
    let bad = |why: &str| invalid("/url", why);
    if raw.len() > MAX_URL_LEN {
        return Err(bad("The URL is longer than 2048 characters."));
    }
    let url = Url::parse(raw).map_err(|e| bad(&format!("Not an absolute URL: {e}.")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "Credentials in the URL are not allowed: verify messages with the endpoint's secret.",
        ));
    }
    if url.fragment().is_some() {
        return Err(bad("A fragment is never sent: remove it."));
    }
    settings.egress.check_https(&url).map_err(|_| {
        bad("The URL must be https (plain http only to a host the deployment's allowlist opens).")
    })?;
    settings.egress.check_resolved(&url).await.map_err(|e| {
        bad(&format!(
            "The egress guard refuses this destination ({e}): messages go to public addresses only, unless the deployment's allowlist opens the host."
        ))
    })?;
    Ok(url.to_string())
}

fn check_event_types(raw: &[String]) -> Result<Vec<EventType>, ApiError> {
    let mut out = Vec::new();
    for (i, name) in raw.iter().enumerate() {
        let kind = EventType::parse(name).ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            invalid(
                &format!("/event_types/{i}"),
                &format!("Unknown event type. Use one of: {}.", known.join(", ")),
            )
        })?;
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    Ok(out)
}

fn check_description(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_LEN => {
            Err(invalid("/description", "At most 200 characters."))
        }
        Some(d) if d.chars().any(char::is_control) => Err(invalid(
            "/description",
            "Control characters are not allowed.",
        )),
        other => Ok(other),
    }
}

async fn seal(vault: &Vault, endpoint: &WebhookEndpoint, secret: &str) -> Result<String, ApiError> {
    vault
        .seal(
            &Owner {
                tenant: endpoint.tenant_id.as_str(),
                object: endpoint.id.as_str(),
                purpose: SECRET_PURPOSE,
            },
            secret.as_bytes(),
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "an endpoint secret could not be sealed");
            ApiError::Unavailable
        })
}

async fn load<S: ControlStore>(
    store: &S,
    tenant: &tributary_core::ids::TenantId,
    id: &EndpointId,
) -> Result<WebhookEndpoint, ApiError> {
    store
        .get_endpoint(tenant, id)
        .await
        .map_err(store_failure)?
        .ok_or(ApiError::NotFound {
            resource: "webhook endpoint",
        })
}

/// Makes an endpoint; the answer carries its secret, which is not shown again.
#[utoipa::path(post, path = "/v1/webhook-endpoints", operation_id = "create_webhook_endpoint", tag = "Webhooks", request_body = EndpointIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h (the secret is never replayed)")),
    responses((status = 201, description = "Created, with its secret", body = EndpointCreatedOut),
              (status = 400, description = "A URL that is not https, holds credentials or is refused by the egress guard; an unknown event type", body = ProblemDoc),
              (status = 403, description = "Requires `webhooks:write`", body = ProblemDoc),
              (status = 409, description = "The tenant has 20 endpoints already, or the same Idempotency-Key is in progress", body = ProblemDoc),
              (status = 422, description = "Idempotency-Key reused with another body", body = ProblemDoc)))]
pub async fn create<S: ControlStore>(
    caller: TenantCaller<WebhooksWrite>,
    store: Store<S>,
    clock: Clock,
    vault: Secrets,
    settings: Settings,
    Idempotent(input): Idempotent<EndpointIn>,
) -> Result<Created<EndpointCreatedOut>, ApiError> {
    let url = check_url(&settings, &input.url).await?;
    let event_types = check_event_types(input.event_types.as_deref().unwrap_or_default())?;
    let description = check_description(input.description)?;
    let existing = store
        .list_endpoints(
            &caller.tenant,
            &PageRequest {
                limit: 100,
                after: None,
            },
        )
        .await
        .map_err(store_failure)?;
    if existing.items.len() >= MAX_ENDPOINTS {
        return Err(ApiError::Conflict {
            detail: format!(
                "A tenant has at most {MAX_ENDPOINTS} webhook endpoints. Delete one, or subscribe an existing one to more event types."
            ),
        });
    }
    let now = clock.now_ms();
    let mut endpoint = WebhookEndpoint {
        id: EndpointId::generate(),
        tenant_id: caller.tenant.clone(),
        url,
        description,
        event_types,
        enabled: input.enabled.unwrap_or(true),
        disabled_reason: None,
        secrets: Vec::new(),
        created_at_ms: now,
        updated_at_ms: now,
        version: 1,
    };
    let secret = new_secret();
    endpoint.secrets.push(EndpointSecret {
        sealed: seal(&vault, &endpoint, secret.expose_secret()).await?,
        created_at_ms: now,
        expires_at_ms: None,
    });
    let audit = AuditEvent::new(
        &caller.tenant,
        &caller.principal.principal,
        now,
        "webhook_endpoint.created",
        &endpoint.id,
    );
    store
        .create_endpoint(&endpoint, &audit)
        .await
        .map_err(store_failure)?;
    tracing::info!(endpoint_id = %endpoint.id, "webhook endpoint created");
    Ok(Created {
        location: format!("/v1/webhook-endpoints/{}", endpoint.id),
        body: EndpointCreatedOut {
            endpoint: EndpointOut::of(endpoint, now),
            secret: secret.expose_secret().to_owned(),
        },
    })
}

/// Lists the tenant's endpoints, oldest first.
#[utoipa::path(get, path = "/v1/webhook-endpoints", operation_id = "list_webhook_endpoints", tag = "Webhooks",
    params(("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of endpoints", body = PageOf<EndpointOut>),
              (status = 400, description = "Bad `limit` or `cursor`", body = ProblemDoc),
              (status = 403, description = "Requires `webhooks:read`", body = ProblemDoc)))]
pub async fn list<S: ControlStore>(
    caller: TenantCaller<WebhooksRead>,
    store: Store<S>,
    clock: Clock,
    PageQuery(page): PageQuery,
) -> Result<Json<PageOf<EndpointOut>>, ApiError> {
    let now = clock.now_ms();
    let found = store
        .list_endpoints(&caller.tenant, &page)
        .await
        .map_err(store_failure)?;
    Ok(Json(page_of(found, |e| EndpointOut::of(e, now))))
}

/// Reads one endpoint (never its secret).
#[utoipa::path(get, path = "/v1/webhook-endpoints/{endpoint_id}", operation_id = "get_webhook_endpoint", tag = "Webhooks",
    params(("endpoint_id" = String, Path, description = "Endpoint id (`wep_…`)", pattern = "^wep_[0-9a-f]{32}$")),
    responses((status = 200, description = "The endpoint", body = EndpointOut),
              (status = 403, description = "Requires `webhooks:read`", body = ProblemDoc),
              (status = 404, description = "No such endpoint for this tenant", body = ProblemDoc)))]
pub async fn get<S: ControlStore>(
    caller: TenantCaller<WebhooksRead>,
    store: Store<S>,
    clock: Clock,
    Id(id): Id<EndpointId>,
) -> Result<Json<EndpointOut>, ApiError> {
    Ok(Json(EndpointOut::of(
        load(&*store, &caller.tenant, &id).await?,
        clock.now_ms(),
    )))
}

/// Changes an endpoint's URL, description, event types or whether it is enabled.
#[utoipa::path(patch, path = "/v1/webhook-endpoints/{endpoint_id}", operation_id = "update_webhook_endpoint", tag = "Webhooks", request_body = EndpointPatch,
    params(("endpoint_id" = String, Path, description = "Endpoint id (`wep_…`)", pattern = "^wep_[0-9a-f]{32}$")),
    responses((status = 200, description = "The endpoint as changed", body = EndpointOut),
              (status = 400, description = "A refused URL or an unknown event type", body = ProblemDoc),
              (status = 403, description = "Requires `webhooks:write`", body = ProblemDoc),
              (status = 404, description = "No such endpoint for this tenant", body = ProblemDoc),
              (status = 409, description = "Changed concurrently; retry", body = ProblemDoc)))]
pub async fn update<S: ControlStore>(
    caller: TenantCaller<WebhooksWrite>,
    store: Store<S>,
    clock: Clock,
    settings: Settings,
    Id(id): Id<EndpointId>,
    JsonBody(input): JsonBody<EndpointPatch>,
) -> Result<Json<EndpointOut>, ApiError> {
    let url = match &input.url {
        Some(raw) => Some(check_url(&settings, raw).await?),
        None => None,
    };
    let event_types = input
        .event_types
        .as_deref()
        .map(check_event_types)
        .transpose()?;
    let description = check_description(input.description)?;
    let mut attempts = 0;
    loop {
        let mut endpoint = load(&*store, &caller.tenant, &id).await?;
        let read_version = endpoint.version;
        if let Some(url) = &url {
            endpoint.url = url.clone();
        }
        if let Some(types) = &event_types {
            endpoint.event_types = types.clone();
        }
        if description.is_some() {
            endpoint.description = description.clone();
        }
        if let Some(enabled) = input.enabled {
            endpoint.enabled = enabled;
            if enabled {
                endpoint.disabled_reason = None;
            }
        }
        let now = clock.now_ms();
        endpoint.updated_at_ms = now;
        endpoint.version = read_version + 1;
        match store.update_endpoint(&endpoint, read_version).await {
            Ok(true) => return Ok(Json(EndpointOut::of(endpoint, now))),
            Ok(false) => {
                return Err(ApiError::NotFound {
                    resource: "webhook endpoint",
                });
            }
            Err(tributary_core::PortError::Conflict { .. }) if attempts < RETRIES => attempts += 1,
            Err(tributary_core::PortError::Conflict { .. }) => {
                return Err(ApiError::Conflict {
                    detail: "The endpoint is being changed concurrently. Retry the request.".into(),
                });
            }
            Err(e) => return Err(store_failure(e)),
        }
    }
}

/// Deletes an endpoint. Its pending messages are not sent; its messages expire with their
/// retention.
#[utoipa::path(delete, path = "/v1/webhook-endpoints/{endpoint_id}", operation_id = "delete_webhook_endpoint", tag = "Webhooks",
    params(("endpoint_id" = String, Path, description = "Endpoint id (`wep_…`)", pattern = "^wep_[0-9a-f]{32}$")),
    responses((status = 204, description = "Deleted"),
              (status = 403, description = "Requires `webhooks:write`", body = ProblemDoc),
              (status = 404, description = "No such endpoint for this tenant", body = ProblemDoc)))]
pub async fn delete<S: ControlStore>(
    caller: TenantCaller<WebhooksWrite>,
    store: Store<S>,
    clock: Clock,
    Id(id): Id<EndpointId>,
) -> Result<StatusCode, ApiError> {
    let audit = AuditEvent::new(
        &caller.tenant,
        &caller.principal.principal,
        clock.now_ms(),
        "webhook_endpoint.deleted",
        &id,
    );
    if store
        .delete_endpoint(&caller.tenant, &id, &audit)
        .await
        .map_err(store_failure)?
    {
        tracing::info!(endpoint_id = %id, "webhook endpoint deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound {
            resource: "webhook endpoint",
        })
    }
}

/// Replaces the endpoint's secret. The previous one keeps signing for 24 hours (each message
/// carries both signatures meanwhile); a rotation during an overlap ends the older overlap.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{endpoint_id}/rotate-secret", operation_id = "rotate_webhook_endpoint_secret", tag = "Webhooks",
    params(("endpoint_id" = String, Path, description = "Endpoint id (`wep_…`)", pattern = "^wep_[0-9a-f]{32}$")),
    responses((status = 200, description = "The new secret, shown this once", body = SecretOut),
              (status = 403, description = "Requires `webhooks:write`", body = ProblemDoc),
              (status = 404, description = "No such endpoint for this tenant", body = ProblemDoc),
              (status = 409, description = "Changed concurrently; retry", body = ProblemDoc)))]
pub async fn rotate<S: ControlStore>(
    caller: TenantCaller<WebhooksWrite>,
    store: Store<S>,
    clock: Clock,
    vault: Secrets,
    Id(id): Id<EndpointId>,
) -> Result<Json<SecretOut>, ApiError> {
    let mut endpoint = load(&*store, &caller.tenant, &id).await?;
    let read_version = endpoint.version;
    let now = clock.now_ms();
    let until = now + ROTATION_OVERLAP_MS;
    let secret = new_secret();
    let sealed = seal(&vault, &endpoint, secret.expose_secret()).await?;
    // The current secret signs until the overlap ends; older ones stop now.
    let previous = endpoint
        .secrets
        .iter()
        .find(|s| s.expires_at_ms.is_none())
        .cloned();
    endpoint.secrets = vec![EndpointSecret {
        sealed,
        created_at_ms: now,
        expires_at_ms: None,
    }];
    if let Some(mut previous) = previous {
        previous.expires_at_ms = Some(until);
        endpoint.secrets.push(previous);
    }
    endpoint.updated_at_ms = now;
    endpoint.version = read_version + 1;
    match store.update_endpoint(&endpoint, read_version).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::NotFound {
                resource: "webhook endpoint",
            });
        }
        Err(tributary_core::PortError::Conflict { .. }) => {
            return Err(ApiError::Conflict {
                detail: "The endpoint changed while its secret was being rotated. Retry the request; nothing was changed.".into(),
            });
        }
        Err(e) => return Err(store_failure(e)),
    }
    tracing::info!(endpoint_id = %id, principal = %caller.principal.principal, "webhook endpoint secret rotated");
    Ok(Json(SecretOut {
        secret: secret.expose_secret().to_owned(),
        previous_secret_expires_at: time(until),
    }))
}

/// A message state, as the list filters by it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStateFilter {
    /// An attempt is due.
    Pending,
    /// Delivered.
    Succeeded,
    /// Every scheduled attempt failed.
    Exhausted,
    /// Not sent: the endpoint was disabled, deleted or answered 410.
    Failed,
}

/// The query of the message list: `limit`, `cursor`, `endpoint_id` and `state`.
pub struct MessageListQuery {
    filter: MessageFilter,
    page: PageRequest,
}

impl<St: Send + Sync> axum::extract::FromRequestParts<St> for MessageListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &St,
    ) -> Result<Self, ApiError> {
        let q = only_query(parts, &["limit", "cursor", "endpoint_id", "state"])?;
        let page = page_request(
            q.get("limit").map(String::as_str),
            q.get("cursor").map(String::as_str),
        )?;
        let endpoint_id =
            query_id::<EndpointId>(&q, "endpoint_id", "a webhook endpoint id (`wep_…`)")?;
        let state =
            q.get("state")
                .map(|raw| {
                    serde_json::from_value::<MessageStateFilter>(Value::String(raw.clone()))
                        .map_err(|_| {
                            invalid(
                                "query.state",
                                "`state` is one of pending, succeeded, exhausted, failed.",
                            )
                        })
                })
                .transpose()?
                .map(|s| match s {
                    MessageStateFilter::Pending => MessageState::Pending,
                    MessageStateFilter::Succeeded => MessageState::Succeeded,
                    MessageStateFilter::Exhausted => MessageState::Exhausted,
                    MessageStateFilter::Failed => MessageState::Failed,
                });
        Ok(Self {
            filter: MessageFilter { endpoint_id, state },
            page,
        })
    }
}

/// Lists the tenant's messages, newest first (kept 30 days). A page may hold fewer than `limit`
/// and still have a `next_cursor`: follow it until it is absent.
#[utoipa::path(get, path = "/v1/webhook-messages", operation_id = "list_webhook_messages", tag = "Webhooks",
    params(("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("endpoint_id" = Option<String>, Query, description = "Only this endpoint's messages", pattern = "^wep_[0-9a-f]{32}$"),
           ("state" = Option<MessageStateFilter>, Query, description = "Only messages in this state")),
    responses((status = 200, description = "A page of messages", body = PageOf<MessageOut>),
              (status = 400, description = "Bad filter, `limit` or `cursor`", body = ProblemDoc),
              (status = 403, description = "Requires `webhooks:read`", body = ProblemDoc)))]
pub async fn list_messages<S: ControlStore>(
    caller: TenantCaller<WebhooksRead>,
    store: Store<S>,
    query: MessageListQuery,
) -> Result<Json<PageOf<MessageOut>>, ApiError> {
    let found = store
        .list_messages(&caller.tenant, &query.filter, &query.page)
        .await
        .map_err(store_failure)?;
    Ok(Json(page_of(found, MessageOut::from)))
}

async fn load_message<S: ControlStore>(
    store: &S,
    tenant: &tributary_core::ids::TenantId,
    id: &MessageId,
) -> Result<WebhookMessage, ApiError> {
    store
        .get_message(tenant, id)
        .await
        .map_err(store_failure)?
        .ok_or(ApiError::NotFound {
            resource: "webhook message",
        })
}

/// Reads one message, with the body it sends.
#[utoipa::path(get, path = "/v1/webhook-messages/{message_id}", operation_id = "get_webhook_message", tag = "Webhooks",
    params(("message_id" = String, Path, description = "Message id (`msg_…`)", pattern = "^msg_[0-9a-f]{32}$")),
    responses((status = 200, description = "The message", body = MessageOut),
              (status = 403, description = "Requires `webhooks:read`", body = ProblemDoc),
              (status = 404, description = "No such message for this tenant", body = ProblemDoc)))]
pub async fn get_message<S: ControlStore>(
    caller: TenantCaller<WebhooksRead>,
    store: Store<S>,
    Id(id): Id<MessageId>,
) -> Result<Json<MessageOut>, ApiError> {
    Ok(Json(MessageOut::from(
        load_message(&*store, &caller.tenant, &id).await?,
    )))
}

/// Lists a message's delivery attempts, oldest first.
#[utoipa::path(get, path = "/v1/webhook-messages/{message_id}/attempts", operation_id = "list_webhook_message_attempts", tag = "Webhooks",
    params(("message_id" = String, Path, description = "Message id (`msg_…`)", pattern = "^msg_[0-9a-f]{32}$"),
           ("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of attempts", body = PageOf<AttemptOut>),
              (status = 400, description = "Bad `limit` or `cursor`", body = ProblemDoc),
              (status = 403, description = "Requires `webhooks:read`", body = ProblemDoc),
              (status = 404, description = "No such message for this tenant", body = ProblemDoc)))]
pub async fn list_attempts<S: ControlStore>(
    caller: TenantCaller<WebhooksRead>,
    store: Store<S>,
    Id(id): Id<MessageId>,
    PageQuery(page): PageQuery,
) -> Result<Json<PageOf<AttemptOut>>, ApiError> {
    load_message(&*store, &caller.tenant, &id).await?;
    let found = store
        .list_attempts(&caller.tenant, &id, &page)
        .await
        .map_err(store_failure)?;
    Ok(Json(page_of(found, AttemptOut::from)))
}

/// Sends a message again: its schedule starts over with an attempt now, with the same id and
/// body. For a message that ended (`succeeded`, `exhausted` or `failed`) whose endpoint is
/// enabled.
#[utoipa::path(post, path = "/v1/webhook-messages/{message_id}/replay", operation_id = "replay_webhook_message", tag = "Webhooks",
    params(("message_id" = String, Path, description = "Message id (`msg_…`)", pattern = "^msg_[0-9a-f]{32}$")),
    responses((status = 202, description = "Queued: the message, pending again", body = MessageOut),
              (status = 403, description = "Requires `webhooks:write`", body = ProblemDoc),
              (status = 404, description = "No such message for this tenant", body = ProblemDoc),
              (status = 409, description = "It is still pending, its endpoint is disabled or deleted, or it changed concurrently", body = ProblemDoc)))]
pub async fn replay<S: ControlStore, Q: JobsQueue>(
    caller: TenantCaller<WebhooksWrite>,
    store: Store<S>,
    jobs: Jobs<Q>,
    clock: Clock,
    Id(id): Id<MessageId>,
) -> Result<Accepted<MessageOut>, ApiError> {
    let mut message = load_message(&*store, &caller.tenant, &id).await?;
    if message.state == MessageState::Pending {
        return Err(ApiError::Conflict {
            detail: format!(
                "Message `{id}` is still pending: its next attempt is scheduled. Replay it once it has ended."
            ),
        });
    }
    let endpoint = store
        .get_endpoint(&caller.tenant, &message.endpoint_id)
        .await
        .map_err(store_failure)?;
    if !endpoint.is_some_and(|e| e.enabled) {
        return Err(ApiError::Conflict {
            detail: format!(
                "The message's endpoint `{}` is disabled or deleted. Enable it (PATCH /v1/webhook-endpoints/{}) first.",
                message.endpoint_id, message.endpoint_id
            ),
        });
    }
    let read_version = message.version;
    let now = clock.now_ms();
    message.state = MessageState::Pending;
    message.attempts = 0;
    message.next_attempt_at_ms = Some(now);
    message.updated_at_ms = now;
    message.version = read_version + 1;
    match store.update_message(&message, read_version, None).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::NotFound {
                resource: "webhook message",
            });
        }
        Err(tributary_core::PortError::Conflict { .. }) => {
            return Err(ApiError::Conflict {
                detail: "The message changed while it was being replayed. Read it again and retry."
                    .into(),
            });
        }
        Err(e) => return Err(store_failure(e)),
    }
    let job = JobEnvelope::new(JobKind::DeliverWebhook {
        tenant_id: caller.tenant.clone(),
        message_id: message.id.clone(),
    });
    if let Err(e) = jobs.send(&job, Duration::ZERO).await {
        // The message stays pending with its attempt due now; without a job nothing would
        // deliver it, so it goes back to how it ended.
        tracing::error!(message_id = %id, error = %e, "a replay's job could not be sent");
        let mut back = message.clone();
        back.state = MessageState::Exhausted;
        back.next_attempt_at_ms = None;
        back.last_error = Some("a replay could not be queued".into());
        back.version = message.version + 1;
        let _ = store.update_message(&back, message.version, None).await;
        return Err(if e.is_retryable() {
            ApiError::Unavailable
        } else {
            ApiError::Internal
        });
    }
    tracing::info!(message_id = %id, job_id = %job.id, "webhook message replayed");
    Ok(Accepted(MessageOut::from(message)))
}

/// The operations.
pub fn router<S: ControlStore, Q: JobsQueue>() -> Api<AppState<S, Q>> {
    operations![
        create,
        list,
        get,
        update,
        delete,
        rotate,
        list_messages,
        get_message,
        list_attempts,
        replay
    ]
}
