//! `POST /v1/webhooks/{integration_id}`: the public URL a provider sends an integration's webhooks
//! to. No credential: the provider's own signature is the authentication, checked over the exact
//! raw body (and, for HubSpot, the public URL) with the secret the provider's spec names: the
//! integration's OAuth client secret, its write-only `webhook_secret`, or a connection's
//! credential (Airtable). A spec that declares a scheme never has an unverified delivery accepted:
//! without a secret, the answer is 401.
//!
//! The URL names only the integration; its tenant is found through the integration's pointer
//! item ([`IntegrationStore::integration_tenant`]), and the job and everything after it stay in
//! that tenant.
//!
//! A verified event is answered within a second: stored (type, routing key, event id, payload)
//! with the replay marker of its event id, then queued as an `inbound_webhook` job that points at
//! it; the connector routes it. Providers retry whatever they do not see acknowledged, for up to
//! three days: a repeated event id within that time is acknowledged (`{"status":"duplicate"}`) and
//! never processed again. A subscription challenge (Slack) is answered once its signature
//! verifies; a verification token (Notion, unsigned) is stored sealed as the integration's pending
//! token, for the tenant to read, paste into the provider and set as the integration's
//! `webhook_secret` — it is never echoed or logged, and verifies nothing until then (anyone can
//! send one).

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use lambda_http::RequestExt as _;
use lambda_http::request::RequestContext;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use tributary_core::PortError;
use tributary_core::connection::{CREDENTIALS_PURPOSE, ConnectionFilter};
use tributary_core::ids::{InboundId, IntegrationId, TenantId};
use tributary_core::inbound::{
    InboundEvent, InboundState, MAX_INBOUND_BODY_BYTES, PROVIDER_ACCOUNT_TAG,
    VERIFICATION_TOKEN_PURPOSE, WEBHOOK_SECRET_PURPOSE, payload_of,
};
use tributary_core::integration::{CLIENT_SECRET_PURPOSE, Integration};
use tributary_core::job::{JobEnvelope, JobKind};
use tributary_core::pagination::PageRequest;
use tributary_core::tenancy::AuditEvent;
use tributary_core::vault::Owner;
use tributary_engine::spec::{WebhookSecret, WebhookSpec};
use tributary_engine::webhook::{self, Inbound, WebhookError, WebhookRequest};
use utoipa::ToSchema;

use crate::access::Public;
use crate::openapi::ProblemDoc;
use crate::problem::ApiError;
use crate::request::Id;
use crate::response::json;
use crate::router::{Api, operations};
use crate::routes::integrations::{provider, sealed_for, vault_failure};
use crate::routes::store_failure;
use crate::state::{AppState, Clock, ControlStore, Jobs, JobsQueue, Secrets, Store};

/// The most connections whose credential is tried as the secret (a per-connection scheme).
const MAX_SECRET_CANDIDATES: usize = 5;

/// What a delivery came to.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundOut {
    /// `accepted`: verified and queued; `duplicate`: its event id was received before (within three
    /// days) and is not processed again; `verification_token_received`: a subscription's token was
    /// stored for the tenant to confirm (it then sets it as the `webhook_secret`).
    #[schema(example = "accepted")]
    pub status: &'static str,
}

/// Receives a provider's webhook for an integration (the URL to register at the provider).
///
/// The body is taken exactly as sent (at most 256 KiB, any content type) and verified with the
/// provider's scheme. A verified event is stored and queued, then routed by the connector to the
/// integration's connections whose `provider_account` tag is the event's account (or to its only
/// connection): a run of their syncs, a `provider.event` to the tenant's webhook endpoints, or
/// both, as the integration's `webhook_routing` says. Every 2xx is `200` (some providers count
/// only 200 as delivered).
#[utoipa::path(post, path = "/v1/webhooks/{integration_id}", operation_id = "receive_provider_webhook", tag = "Inbound webhooks",
    params(("integration_id" = String, Path, description = "Integration id (`int_…`)", pattern = "^int_[0-9a-f]{32}$")),
    responses((status = 200, description = "Verified and queued (`accepted`), a replay acknowledged (`duplicate`), or a verification token stored (`verification_token_received`); or a verified subscription challenge answered with its value (Slack, `text/plain`)",
                   content((InboundOut = "application/json"), (String = "text/plain"))),
              (status = 400, description = "A signature header that cannot be read, or a bad id", body = ProblemDoc),
              (status = 401, description = "Not verified: no secret configured, a signature that does not match, a timestamp outside the tolerance, a missing signature header", body = ProblemDoc),
              (status = 404, description = "No such integration, or its provider sends no webhooks Tributary verifies", body = ProblemDoc),
              (status = 413, description = "Body larger than 256 KiB", body = ProblemDoc),
              (status = 503, description = "The store or the queue is unavailable: nothing was kept, the provider's retry is taken as new", body = ProblemDoc)))]
#[allow(clippy::too_many_arguments)]
pub async fn receive<S: ControlStore, Q: JobsQueue>(
    _: Public,
    store: Store<S>,
    jobs: Jobs<Q>,
    clock: Clock,
    vault: Secrets,
    Id(id): Id<IntegrationId>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let public_url = public_url(&headers, &uri, &request);
    let body = axum::body::to_bytes(request.into_body(), MAX_INBOUND_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge {
            limit: MAX_INBOUND_BODY_BYTES,
        })?;
    let unknown = || ApiError::NoWebhookReceiver {
        detail: format!(
            "No integration `{id}` receives webhooks here. Check the URL against the integration's id."
        ),
    };
    let Some(tenant) = store.integration_tenant(&id).await.map_err(store_failure)? else {
        return Err(unknown());
    };
    let Some(integration) = store
        .get_integration(&tenant, &id)
        .await
        .map_err(store_failure)?
    else {
        return Err(unknown());
    };
    let spec = provider(&integration.provider).map_err(|_| unknown())?;
    let Some(scheme) = &spec.webhooks else {
        return Err(ApiError::NoWebhookReceiver {
            detail: format!(
                "`{}` sends no webhooks Tributary verifies, so integration `{id}` receives none.",
                spec.id
            ),
        });
    };
    let request = WebhookRequest {
        method: &method,
        url: &public_url,
        headers: &headers,
        body: &body,
    };
    let now = time_of(clock.now_ms());
    let secrets = secrets(&*store, &vault, &integration, scheme, &request).await?;
    let verified = if secrets.is_empty() {
        webhook::verify(scheme, None, &request, now)
    } else {
        // Several connections may share a routing key: the first whose secret verifies wins.
        let mut outcome = Err(WebhookError::MissingSecret);
        for secret in &secrets {
            outcome = webhook::verify(scheme, Some(secret), &request, now);
            if !matches!(outcome, Err(WebhookError::Mismatch)) {
                break;
            }
        }
        outcome
    };
    let inbound = match verified {
        Ok(inbound) => inbound,
        Err(e) => return Err(refused(&integration, scheme, e)),
    };
    match inbound {
        Inbound::Challenge(reply) => {
            tracing::info!(integration_id = %id, provider = %integration.provider, "webhook subscription challenge answered");
            let content_type = HeaderValue::from_str(&reply.content_type)
                .unwrap_or(HeaderValue::from_static("text/plain"));
            Ok((StatusCode::OK, [(CONTENT_TYPE, content_type)], reply.body).into_response())
        }
        Inbound::VerificationToken(token) => {
            keep_token(&*store, &vault, &clock, integration, &token).await?;
            Ok(json(
                StatusCode::OK,
                &InboundOut {
                    status: "verification_token_received",
                },
            ))
        }
        Inbound::Event(event) => {
            let (payload, payload_omitted) = match payload_of(&body) {
                Ok(p) => (Some(p), None),
                Err(omitted) => (None, Some(omitted)),
            };
            let inbound = InboundEvent {
                id: InboundId::generate(),
                tenant_id: tenant.clone(),
                integration_id: id.clone(),
                provider: integration.provider.clone(),
                event_id: event.event_id,
                event_type: event.event_type,
                connection_key: event.connection_key,
                payload,
                payload_omitted,
                state: InboundState::Received,
                routed_to: Vec::new(),
                received_at_ms: clock.now_ms(),
                processed_at_ms: None,
                version: 1,
            };
            accept(&*store, &*jobs, &inbound).await
        }
    }
}

/// The URL the provider called, as it signed it: `https://{Host}{rawPath}{?query}`, the scheme
/// from `X-Forwarded-Proto` when present.
fn public_url(headers: &HeaderMap, uri: &Uri, request: &axum::extract::Request) -> String {
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| matches!(*p, "http" | "https"))
        .unwrap_or("https");
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .or_else(|| match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(c)) => c.domain_name.as_deref(),
            _ => None,
        })
        .unwrap_or_default();
    let raw_path = request.raw_http_path();
    let path = if raw_path.is_empty() {
        uri.path()
    } else {
        raw_path
    };
    match uri.query() {
        Some(q) if !q.is_empty() => format!("{scheme}://{host}{path}?{q}"),
        _ => format!("{scheme}://{host}{path}"),
    }
}

fn time_of(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// The secrets the spec names for this request (none when none is configured).
async fn secrets<S: ControlStore>(
    store: &S,
    vault: &tributary_core::vault::Vault,
    integration: &Integration,
    scheme: &WebhookSpec,
    request: &WebhookRequest<'_>,
) -> Result<Vec<SecretString>, ApiError> {
    let tenant = &integration.tenant_id;
    let id = &integration.id;
    let text = |plain: &[u8]| -> Result<SecretString, ApiError> {
        String::from_utf8(plain.to_vec())
            .map(SecretString::from)
            .map_err(|_| {
                tracing::error!(integration_id = %id, "a stored webhook secret is not text");
                ApiError::Internal
            })
    };
    match &scheme.secret {
        WebhookSecret::ClientSecret | WebhookSecret::WebhookSecret | WebhookSecret::Handshake => {
            let (stored, purpose) = match &scheme.secret {
                WebhookSecret::ClientSecret => {
                    (&integration.oauth_client_secret, CLIENT_SECRET_PURPOSE)
                }
                // A Notion token verifies only once the tenant set it as the webhook secret; the
                // pending one, which anyone could have sent, verifies nothing.
                _ => (&integration.webhook_secret, WEBHOOK_SECRET_PURPOSE),
            };
            let Some(stored) = stored else {
                return Ok(Vec::new());
            };
            let (plain, _) = vault
                .open(&sealed_for(tenant, id, purpose), stored)
                .await
                .map_err(vault_failure)?;
            Ok(vec![text(plain.expose_secret())?])
        }
        WebhookSecret::Connection { name } => {
            // The routing key is read unverified, only to find whose secret verifies the request.
            let Some(key) = webhook::connection_key(scheme, request) else {
                return Ok(Vec::new());
            };
            let filter = ConnectionFilter {
                integration_id: Some(id.clone()),
                tag: Some((PROVIDER_ACCOUNT_TAG.to_owned(), key)),
                ..ConnectionFilter::default()
            };
            let mut found = Vec::new();
            let mut page = PageRequest {
                limit: 100,
                after: None,
            };
            loop {
                let listed = store
                    .list_connections(tenant, &filter, &page)
                    .await
                    .map_err(store_failure)?;
                for c in listed.items {
                    let owner = Owner {
                        tenant: tenant.as_str(),
                        object: c.id.as_str(),
                        purpose: CREDENTIALS_PURPOSE,
                    };
                    let (plain, _) = vault
                        .open(&owner, &c.credentials)
                        .await
                        .map_err(vault_failure)?;
                    let values: std::collections::BTreeMap<String, String> =
                        serde_json::from_slice(plain.expose_secret()).unwrap_or_default();
                    if let Some(secret) = values.get(name) {
                        found.push(SecretString::from(secret.clone()));
                    }
                }
                match listed.next_after {
                    Some(next) if found.len() < MAX_SECRET_CANDIDATES => page.after = Some(next),
                    _ => break,
                }
            }
            found.truncate(MAX_SECRET_CANDIDATES);
            Ok(found)
        }
    }
}

/// The problem for a refusal: what to check, never the secret.
fn refused(integration: &Integration, scheme: &WebhookSpec, e: WebhookError) -> ApiError {
    let provider = &integration.provider;
    tracing::info!(integration_id = %integration.id, provider = %provider, error = %e, "webhook refused");
    match e {
        WebhookError::Malformed(what) => ApiError::WebhookMalformed {
            detail: format!(
                "The `{}` header cannot be read as {provider}'s signature: {}. Nothing was processed.",
                scheme.signature_header,
                what.chars().take(200).collect::<String>()
            ),
        },
        WebhookError::MissingHeader(header) => ApiError::WebhookUnverified {
            detail: format!(
                "The request lacks the `{}` header {provider} signs its webhooks with. Nothing was processed.",
                header.chars().take(100).collect::<String>()
            ),
        },
        WebhookError::Stale(tolerance) => ApiError::WebhookUnverified {
            detail: format!(
                "The signed timestamp is more than {tolerance} s from now (a replay, or a clock far off). Nothing was processed."
            ),
        },
        WebhookError::Mismatch => ApiError::WebhookUnverified {
            detail: format!(
                "The signature does not match: the request was altered, or the secret configured for {provider}'s webhooks on this integration is not the one {provider} signs with. Nothing was processed."
            ),
        },
        WebhookError::MissingSecret => ApiError::WebhookUnverified {
            detail: format!(
                "This integration has no secret to verify {provider}'s webhooks yet ({}), so none is accepted.",
                match &scheme.secret {
                    WebhookSecret::ClientSecret => "set its `oauth_client_secret`".to_owned(),
                    WebhookSecret::WebhookSecret => "set its `webhook_secret`".to_owned(),
                    WebhookSecret::Handshake =>
                        "set the verification token the provider sent as its `webhook_secret`"
                            .to_owned(),
                    WebhookSecret::Connection { name } => format!(
                        "the event's account matches no connection tagged `{PROVIDER_ACCOUNT_TAG}` that holds `{name}`"
                    ),
                }
            ),
        },
        WebhookError::InvalidSecret(encoding) => {
            tracing::warn!(integration_id = %integration.id, provider = %provider, encoding, "the configured webhook secret is unusable");
            ApiError::WebhookUnverified {
                detail: format!(
                    "The secret configured to verify {provider}'s webhooks is empty or not {encoding}, so none is accepted."
                ),
            }
        }
    }
}

/// Stores a provider's verification token, sealed, as the integration's pending one.
async fn keep_token<S: ControlStore>(
    store: &S,
    vault: &tributary_core::vault::Vault,
    clock: &Clock,
    mut integration: Integration,
    token: &SecretString,
) -> Result<(), ApiError> {
    let tenant: TenantId = integration.tenant_id.clone();
    let id = integration.id.clone();
    let sealed = vault
        .seal(
            &sealed_for(&tenant, &id, VERIFICATION_TOKEN_PURPOSE),
            token.expose_secret().as_bytes(),
        )
        .await
        .map_err(vault_failure)?;
    for _ in 0..5 {
        let read = integration.version;
        let now = clock.now_ms();
        integration.webhook_verification_token = Some(sealed.clone());
        integration.updated_at_ms = now;
        integration.version = read.saturating_add(1);
        let audit = AuditEvent::new(
            &tenant,
            &format!("provider:{}", integration.provider),
            now,
            "integration.webhook_verification_token_received",
            &id,
        );
        match store.update_integration(&integration, read, &audit).await {
            Ok(true) => {
                tracing::info!(integration_id = %id, provider = %integration.provider, "webhook verification token stored for the tenant to confirm");
                return Ok(());
            }
            Ok(false) => {
                return Err(ApiError::NoWebhookReceiver {
                    detail: format!("No integration `{id}` receives webhooks here."),
                });
            }
            Err(PortError::Conflict { .. }) => {
                integration = store
                    .get_integration(&tenant, &id)
                    .await
                    .map_err(store_failure)?
                    .ok_or_else(|| ApiError::NoWebhookReceiver {
                        detail: format!("No integration `{id}` receives webhooks here."),
                    })?;
            }
            Err(e) => return Err(store_failure(e)),
        }
    }
    Err(ApiError::Unavailable)
}

/// Stores a verified event with its replay marker and queues its routing.
async fn accept<S: ControlStore, Q: JobsQueue>(
    store: &S,
    jobs: &Q,
    inbound: &InboundEvent,
) -> Result<Response, ApiError> {
    if !store.record_inbound(inbound).await.map_err(store_failure)? {
        tracing::info!(integration_id = %inbound.integration_id, provider = %inbound.provider, event_type = ?inbound.event_type, "webhook replayed; acknowledged, not processed again");
        return Ok(json(
            StatusCode::OK,
            &InboundOut {
                status: "duplicate",
            },
        ));
    }
    let job = JobEnvelope::new(JobKind::InboundWebhook {
        tenant_id: inbound.tenant_id.clone(),
        integration_id: inbound.integration_id.clone(),
        inbound_id: inbound.id.clone(),
    });
    if let Err(e) = jobs.send(&job, std::time::Duration::ZERO).await {
        tracing::error!(inbound_id = %inbound.id, error = %e, "the webhook's job could not be queued");
        // Not acknowledged: the provider retries, and its retry must not look like a replay.
        if let Err(forgot) = store.forget_inbound(inbound).await {
            tracing::error!(inbound_id = %inbound.id, error = %forgot, "an unqueued webhook's replay marker could not be removed: retries of this event will be taken for replays until it expires");
        }
        return Err(if e.is_retryable() {
            ApiError::Unavailable
        } else {
            ApiError::Internal
        });
    }
    tracing::info!(
        integration_id = %inbound.integration_id,
        provider = %inbound.provider,
        inbound_id = %inbound.id,
        job_id = %job.id,
        event_type = ?inbound.event_type,
        "webhook accepted"
    );
    Ok(json(StatusCode::OK, &InboundOut { status: "accepted" }))
}

/// The webhook receiver.
pub fn router<S: ControlStore, Q: JobsQueue>() -> Api<AppState<S, Q>> {
    operations![receive]
}
