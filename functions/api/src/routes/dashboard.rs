//! The dashboard: a page a tenant's engineer opens to see how its integrations run.
//!
//! - `POST /v1/dashboard/sessions` (`operations:read`): a link valid 5 minutes, opened once.
//! - `GET /dashboard/{token}` (public): trades the link for a session cookie (HttpOnly,
//!   SameSite=Strict, an hour) and sends the browser on to `/dashboard`, so the page's URL holds no
//!   credential once loaded and the link cannot be replayed from history or logs.
//! - `GET /dashboard` (public, the cookie): one view (`?view=overview|runs|failures|usage|
//!   insights`) or an operation (`?operation=op_…`), read-only, from the same stores the API reads.

use std::collections::BTreeMap;

use axum::http::header::{CACHE_CONTROL, COOKIE, HeaderMap, LOCATION, REFERRER_POLICY, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tributary_core::PortError;
use tributary_core::connect::{is_token, new_token, token_hash};
use tributary_core::connection::{ConnectionFilter, ConnectionStatus};
use tributary_core::dashboard::{
    DashboardGrant, GrantKind, LINK_PREFIX, LINK_TTL_MS, SESSION_PREFIX, SESSION_TTL_MS,
};
use tributary_core::ids::{DashboardSessionId, OperationId, TenantId};
use tributary_core::insights;
use tributary_core::operation::{
    Operation, OperationFilter, OperationKind, OperationState, UsageCounts, day_of,
};
use tributary_core::pagination::PageRequest;
use tributary_core::ports::QueueStats;
use tributary_core::time::{EpochMillis, rfc3339};
use utoipa::ToSchema;

use crate::access::{OperationsRead, Public, TenantCaller};
use crate::connect_page::{escape, html_response};
use crate::dashboard_page::{ConnectionRow, DashboardData, Health, IntegrationRow, View, render};
use crate::openapi::ProblemDoc;
use crate::problem::ApiError;
use crate::request::JsonBody;
use crate::response::Created;
use crate::router::{Api, operations};
use crate::routes::connect::public_origin;
use crate::routes::store_failure;
use crate::state::{AppState, Clock, ControlStore, Settings, Store};

/// The session cookie's name.
const COOKIE_NAME: &str = "tributary_dashboard";
const DAY_MS: EpochMillis = 86_400_000;
/// The most connections, operations and failures a view lists.
const MAX_CONNECTIONS: usize = 100;
const MAX_OPERATIONS: u32 = 50;

/// A dashboard session to create (nothing to choose yet).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DashboardSessionIn {}

/// A dashboard link.
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardSessionOut {
    /// Open it in a browser within 5 minutes, once; it becomes a session of an hour. It is shown
    /// only now.
    pub url: String,
    /// When the link stops working (RFC 3339).
    pub expires_at: String,
}

/// Creates a dashboard link for the caller's tenant.
#[utoipa::path(post, path = "/v1/dashboard/sessions", operation_id = "create_dashboard_session", tag = "Operations", request_body = DashboardSessionIn,
    responses((status = 201, description = "Created; `url` is shown only now", body = DashboardSessionOut),
              (status = 400, description = "Invalid body", body = ProblemDoc),
              (status = 403, description = "Requires `operations:read`", body = ProblemDoc)))]
pub async fn create_session<S: ControlStore>(
    caller: TenantCaller<OperationsRead>,
    store: Store<S>,
    clock: Clock,
    settings: Settings,
    headers: HeaderMap,
    JsonBody(_): JsonBody<DashboardSessionIn>,
) -> Result<Created<DashboardSessionOut>, ApiError> {
    let origin = public_origin(&settings, &headers).ok_or_else(|| {
        tracing::error!("no public origin for the dashboard link (set PublicBaseUrl)");
        ApiError::Internal
    })?;
    let token = new_token(LINK_PREFIX);
    let now = clock.now_ms();
    let grant = DashboardGrant {
        id: DashboardSessionId::generate(),
        tenant_id: caller.tenant.clone(),
        kind: GrantKind::Link,
        token_hash: token_hash(&token),
        expires_at_ms: now + LINK_TTL_MS,
    };
    store
        .put_dashboard_grant(&grant)
        .await
        .map_err(store_failure)?;
    tracing::info!(dashboard_session_id = %grant.id, "dashboard link created");
    Ok(Created {
        location: format!("/dashboard/{token}"),
        body: DashboardSessionOut {
            url: format!("{origin}/dashboard/{token}"),
            expires_at: rfc3339(grant.expires_at_ms).unwrap_or_default(),
        },
    })
}

/// A page with the dashboard's headers: no script, no external asset, no form.
fn html(status: StatusCode, body: String) -> Response {
    html_response(
        status,
        body,
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    )
}

/// A short page that says what happened.
fn notice(status: StatusCode, title: &str, message: &str) -> Response {
    html(
        status,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
             <meta name=\"robots\" content=\"noindex\"><link rel=\"icon\" href=\"data:,\">\
             <title>{t}</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem}}</style></head>\
             <body><main><h1>{t}</h1><p role=\"status\">{m}</p></main></body></html>",
            t = escape(title),
            m = escape(message)
        ),
    )
}

fn unavailable() -> Response {
    notice(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again",
        "The dashboard could not be read just now. Reload the page in a moment.",
    )
}

/// Opens a dashboard link: trades it (once) for a session cookie and goes on to `/dashboard`.
#[utoipa::path(get, path = "/dashboard/{token}", operation_id = "open_dashboard", tag = "Operations",
    params(("token" = String, Path, description = "The dashboard link's token (`dsl_…`)")),
    responses((status = 303, description = "To `/dashboard`, with the session cookie"),
              (status = 404, description = "Unknown link", content_type = "text/html", body = String),
              (status = 410, description = "The link was used or expired", content_type = "text/html", body = String),
              (status = 503, description = "Try again", content_type = "text/html", body = String)))]
pub async fn open<S: ControlStore>(
    _: Public,
    store: Store<S>,
    clock: Clock,
    settings: Settings,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let token = uri.path().trim_start_matches("/dashboard/");
    if !is_token(LINK_PREFIX, token) {
        return notice(
            StatusCode::NOT_FOUND,
            "Unknown link",
            "This is not a dashboard link. Ask for a new one.",
        );
    }
    let link = match store.take_dashboard_grant(&token_hash(token)).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "could not read a dashboard link");
            return unavailable();
        }
    };
    let now = clock.now_ms();
    let Some(link) = link.filter(|g| g.kind == GrantKind::Link && g.is_live(now)) else {
        return notice(
            StatusCode::GONE,
            "This link no longer works",
            "A dashboard link opens once, within 5 minutes. Ask for a new one.",
        );
    };
    let session = new_token(SESSION_PREFIX);
    let grant = DashboardGrant {
        id: link.id.clone(),
        tenant_id: link.tenant_id.clone(),
        kind: GrantKind::Session,
        token_hash: token_hash(&session),
        expires_at_ms: now + SESSION_TTL_MS,
    };
    if let Err(e) = store.put_dashboard_grant(&grant).await {
        tracing::error!(error = %e, "could not store a dashboard session");
        return unavailable();
    }
    tracing::info!(dashboard_session_id = %grant.id, "dashboard link opened");
    let secure = public_origin(&settings, &headers).is_none_or(|o| o.starts_with("https://"));
    let cookie = format!(
        "{COOKIE_NAME}={session}; Path=/dashboard; Max-Age={}; HttpOnly; SameSite=Strict{}",
        SESSION_TTL_MS / 1000,
        if secure { "; Secure" } else { "" }
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    h.insert(LOCATION, HeaderValue::from_static("/dashboard"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        h.insert(SET_COOKIE, v);
    }
    response
}

/// The session token in the request's cookies.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE_NAME && is_token(SESSION_PREFIX, value))
        .map(|(_, value)| value.to_owned())
}

/// Shows a view of the dashboard (or an operation) to the holder of a session cookie.
#[utoipa::path(get, path = "/dashboard", operation_id = "dashboard", tag = "Operations",
    params(("view" = Option<String>, Query, description = "`overview` (default), `runs`, `failures`, `usage` or `insights`"),
           ("operation" = Option<String>, Query, description = "An operation (`op_…`) to show with its entries", pattern = "^op_[0-9a-f]{32}$")),
    responses((status = 200, description = "The page", content_type = "text/html", body = String),
              (status = 400, description = "An unknown view or a malformed operation id", content_type = "text/html", body = String),
              (status = 401, description = "No session (open a new link)", content_type = "text/html", body = String),
              (status = 404, description = "No such operation", content_type = "text/html", body = String),
              (status = 503, description = "Try again", content_type = "text/html", body = String)))]
pub async fn show<S: ControlStore>(
    _: Public,
    store: Store<S>,
    clock: Clock,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let now = clock.now_ms();
    let grant = match session_cookie(&headers) {
        Some(token) => store.dashboard_grant(&token_hash(&token)).await,
        None => Ok(None),
    };
    let grant = match grant {
        Ok(g) => g.filter(|g| g.kind == GrantKind::Session && g.is_live(now)),
        Err(e) => {
            tracing::error!(error = %e, "could not read a dashboard session");
            return unavailable();
        }
    };
    let Some(grant) = grant else {
        return notice(
            StatusCode::UNAUTHORIZED,
            "Open a new dashboard link",
            "This dashboard session has ended or was never opened. Ask your application for a new link.",
        );
    };
    let mut view = View::Overview;
    let mut operation: Option<OperationId> = None;
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "view" => match View::parse(&v) {
                Some(found) => view = found,
                None => {
                    return notice(
                        StatusCode::BAD_REQUEST,
                        "Unknown view",
                        "The views are overview, runs, failures, usage and insights.",
                    );
                }
            },
            "operation" => match v.parse() {
                Ok(id) => operation = Some(id),
                Err(_) => {
                    return notice(
                        StatusCode::BAD_REQUEST,
                        "Unknown operation",
                        "An operation id is `op_` followed by 32 hex digits.",
                    );
                }
            },
            _ => {}
        }
    }
    let shown = match &operation {
        Some(id) => match store.get_operation(&grant.tenant_id, id).await {
            Ok(Some(op)) => Some(op),
            Ok(None) => {
                return notice(
                    StatusCode::NOT_FOUND,
                    "No such operation",
                    "It does not exist or has expired (operations are kept 14 days by default).",
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "could not read an operation");
                return unavailable();
            }
        },
        None => None,
    };
    match gather(&*store, &grant.tenant_id, now).await {
        Ok(data) => html(StatusCode::OK, render(view, &data, shown.as_ref())),
        Err(e) => {
            tracing::error!(error = %e, "could not gather the dashboard");
            unavailable()
        }
    }
}

/// Every item of a list, page after page, up to `cap`.
async fn all<T, F, Fut>(cap: usize, mut list: F) -> Result<Vec<T>, PortError>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<tributary_core::pagination::Page<T>, PortError>>,
{
    let mut out = Vec::new();
    let mut page = PageRequest {
        limit: 100,
        after: None,
    };
    loop {
        let found = list(page.clone()).await?;
        out.extend(found.items);
        match found.next_after {
            Some(next) if out.len() < cap => page.after = Some(next),
            _ => {
                out.truncate(cap);
                return Ok(out);
            }
        }
    }
}

async fn operations_of<S: ControlStore>(
    store: &S,
    tenant: &TenantId,
    state: Option<OperationState>,
) -> Result<Vec<Operation>, PortError> {
    let filter = OperationFilter {
        state,
        ..OperationFilter::default()
    };
    let page = PageRequest {
        limit: MAX_OPERATIONS,
        after: None,
    };
    Ok(store.list_operations(tenant, &filter, &page).await?.items)
}

/// What the dashboard shows of the tenant.
async fn gather<S: ControlStore>(
    store: &S,
    tenant: &TenantId,
    now: EpochMillis,
) -> Result<DashboardData, PortError> {
    let tenant_name = store
        .get_tenant(tenant)
        .await?
        .map_or_else(|| tenant.to_string(), |t| t.name);
    let integrations = all(
        500,
        |p| async move { store.list_integrations(tenant, &p).await },
    )
    .await?;
    let connections = all(1_000, |p| async move {
        store
            .list_connections(tenant, &ConnectionFilter::default(), &p)
            .await
    })
    .await?;
    let recent = operations_of(store, tenant, None).await?;
    let mut failures = operations_of(store, tenant, Some(OperationState::Failed)).await?;
    failures.extend(operations_of(store, tenant, Some(OperationState::Stalled)).await?);
    failures.sort_by(|a, b| b.id.cmp(&a.id));
    failures.truncate(MAX_OPERATIONS as usize);

    // A connection is failing when its latest sync run (of those read) failed.
    let mut latest_run: BTreeMap<String, &Operation> = BTreeMap::new();
    for op in recent.iter().chain(&failures) {
        if op.kind != OperationKind::SyncRun {
            continue;
        }
        if let Some(c) = &op.connection_id {
            let newer = latest_run
                .get(c.as_str())
                .is_none_or(|seen| op.id > seen.id);
            if newer {
                latest_run.insert(c.to_string(), op);
            }
        }
    }
    let mut rows: Vec<(ConnectionRow, String)> = connections
        .iter()
        .map(|c| {
            let failed_run = latest_run
                .get(c.id.as_str())
                .filter(|op| matches!(op.state, OperationState::Failed | OperationState::Stalled));
            let (health, reason) = match c.status {
                ConnectionStatus::NeedsReauth => (Health::NeedsReauth, c.status_reason.clone()),
                ConnectionStatus::Disabled => (Health::Disabled, c.status_reason.clone()),
                ConnectionStatus::Active => match failed_run {
                    Some(op) => (
                        Health::Failing,
                        op.error.as_ref().map(|e| e.message.clone()),
                    ),
                    None => (Health::Active, None),
                },
            };
            (
                ConnectionRow {
                    id: c.id.to_string(),
                    provider: c.provider.clone(),
                    end_user_id: Some(c.end_user_id.clone()).filter(|e| !e.is_empty()),
                    health,
                    reason,
                },
                c.integration_id.to_string(),
            )
        })
        .collect();
    let mut integration_rows: Vec<IntegrationRow> = integrations
        .iter()
        .map(|i| {
            let mine = rows.iter().filter(|(_, of)| *of == i.id.as_str());
            let count = |h: Health| mine.clone().filter(|(r, _)| r.health == h).count() as u64;
            IntegrationRow {
                id: i.id.to_string(),
                provider: i.provider.clone(),
                active: count(Health::Active),
                needs_reauth: count(Health::NeedsReauth),
                failing: count(Health::Failing),
                disabled: count(Health::Disabled),
            }
        })
        .collect();
    integration_rows.sort_by(|a, b| a.provider.cmp(&b.provider).then(a.id.cmp(&b.id)));
    // The unhealthy first.
    rows.sort_by_key(|(r, _)| (r.health == Health::Active, r.id.clone()));
    rows.truncate(MAX_CONNECTIONS);

    let today = now.div_euclid(DAY_MS) * DAY_MS;
    let first = today - 29 * DAY_MS;
    let mut by_day: BTreeMap<String, UsageCounts> = (0..30)
        .map(|i| (day_of(first + i * DAY_MS), UsageCounts::default()))
        .collect();
    for row in store
        .list_usage(tenant, &day_of(first), &day_of(today))
        .await?
    {
        by_day
            .entry(row.key.day.clone())
            .or_default()
            .add(&row.counts);
    }
    let week = store
        .list_sync_stats(tenant, &day_of(today - 6 * DAY_MS), &day_of(today))
        .await?;
    Ok(DashboardData {
        tenant_name,
        generated_at: rfc3339(now).unwrap_or_default(),
        integrations: integration_rows,
        connections: rows.into_iter().map(|(r, _)| r).collect(),
        recent,
        failures,
        usage_days: by_day.into_iter().collect(),
        insights: insights::compute(&week),
    })
}

/// The dashboard.
pub fn router<S: ControlStore, Q: QueueStats + 'static>() -> Api<AppState<S, Q>> {
    operations![create_session, open, show]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others_and_nothing_else_passes_for_it() {
        let token = new_token(SESSION_PREFIX);
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE_NAME}={token}; c=d")).unwrap(),
        );
        assert_eq!(session_cookie(&h), Some(token));
        let mut bad = HeaderMap::new();
        bad.insert(
            COOKIE,
            HeaderValue::from_str(&format!("{COOKIE_NAME}={}", new_token(LINK_PREFIX))).unwrap(),
        );
        assert_eq!(session_cookie(&bad), None, "a link is not a session");
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }
}
