//! An emulator of API Gateway HTTP APIs for the template's routes: route selection, the Lambda
//! REQUEST authorizer (payload 2.0, simple responses, result cache), and the Lambda proxy
//! integration with payload format 2.0.
//!
//! Gateway-generated errors have API Gateway's bodies (`{"message":"Unauthorized"}`, …), so clients
//! see locally what they will see in AWS.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::invoke::{InvokeError, Invoker};
use crate::moto::{ACCOUNT_ID, REGION};
use crate::template::{AuthorizerDef, HttpApiDef, IdentitySource, RouteDef};

/// HTTP API's payload limit.
const MAX_BODY: usize = 10 * 1024 * 1024;
/// HTTP API's maximum integration timeout.
const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the gateway waits for the authorizer before answering 500 (API Gateway's limit).
const AUTHORIZER_TIMEOUT: Duration = Duration::from_secs(10);
/// The local API's id (it appears in ARNs and domain names).
pub const API_ID: &str = "local";
const STAGE: &str = "$default";

/// A route bound to the function that serves it.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// As in the template.
    pub def: RouteDef,
    /// The function (binary name) that integrates it.
    pub function: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Variable(String),
    Greedy(String),
}

#[derive(Debug, Clone)]
struct CompiledRoute {
    route: Route,
    key: String,
    segments: Option<Vec<Segment>>,
    authorizer: Option<String>,
}

#[derive(Debug, Clone)]
struct Authorizer {
    def: AuthorizerDef,
    function: String,
}

#[derive(Debug, Clone)]
enum Decision {
    Allow(Value),
    Deny,
}

/// The gateway's state, shared by every request.
pub(crate) struct Gateway {
    routes: Vec<CompiledRoute>,
    authorizers: BTreeMap<String, Authorizer>,
    invoker: Invoker,
    cache: std::sync::Mutex<HashMap<CacheKey, (Instant, Decision)>>,
    /// Added to API Gateway's timeouts: under `cargo lambda watch` an invocation may first compile.
    compile_allowance: Duration,
}

/// An authorizer's name and the identity source values: API Gateway caches per credential.
type CacheKey = (String, Vec<String>);

/// Why the gateway answers without calling the integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Denial {
    /// An identity source is missing or empty.
    Unauthorized,
    /// The authorizer said no.
    Forbidden,
    /// The authorizer failed or answered nonsense.
    AuthorizerFailed,
}

impl Denial {
    fn response(self) -> Response {
        match self {
            Self::Unauthorized => message(StatusCode::UNAUTHORIZED, "Unauthorized"),
            Self::Forbidden => message(StatusCode::FORBIDDEN, "Forbidden"),
            Self::AuthorizerFailed => {
                message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        }
    }
}

/// A route that matches a request, with how specifically it matches.
struct Candidate<'a> {
    rank: Vec<u8>,
    any_method: bool,
    route: &'a CompiledRoute,
    params: Map<String, Value>,
}

impl Gateway {
    /// Compiles the routes. `function_of` maps a function's logical id to its binary name.
    pub(crate) fn new(
        api: Option<&HttpApiDef>,
        routes: Vec<Route>,
        function_of: impl Fn(&str) -> Option<String>,
        invoker: Invoker,
        compile_allowance: Duration,
    ) -> Result<Self, crate::Error> {
        let mut authorizers = BTreeMap::new();
        if let Some(api) = api {
            for (name, def) in &api.authorizers {
                let function = function_of(&def.function).ok_or_else(|| {
                    crate::Error::Template(format!(
                        "authorizer {name} names {}, which is not a function",
                        def.function
                    ))
                })?;
                authorizers.insert(
                    name.clone(),
                    Authorizer {
                        def: def.clone(),
                        function,
                    },
                );
            }
        }
        let default_authorizer = api.and_then(|a| a.default_authorizer.clone());
        let routes = routes
            .into_iter()
            .map(|route| {
                let authorizer = match route.def.authorizer.as_deref() {
                    Some("NONE") => None,
                    Some(name) => Some(name.to_owned()),
                    None => default_authorizer.clone(),
                };
                if let Some(name) = &authorizer
                    && !authorizers.contains_key(name)
                {
                    return Err(crate::Error::Template(format!(
                        "route {} {} uses unknown authorizer {name}",
                        route.def.method, route.def.path
                    )));
                }
                let (key, segments) = if route.def.path == "$default" {
                    ("$default".to_owned(), None)
                } else {
                    (
                        format!("{} {}", route.def.method, route.def.path),
                        Some(parse_path(&route.def.path)?),
                    )
                };
                Ok(CompiledRoute {
                    route,
                    key,
                    segments,
                    authorizer,
                })
            })
            .collect::<Result<Vec<_>, crate::Error>>()?;
        Ok(Self {
            routes,
            authorizers,
            invoker,
            cache: std::sync::Mutex::new(HashMap::new()),
            compile_allowance,
        })
    }

    /// The axum router serving every request through the gateway.
    pub(crate) fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self)
    }

    /// Selects the route for a request as HTTP APIs do: the most specific path wins (literal segments
    /// over `{variables}` over `{greedy+}`), then a specific method over `ANY`, then `$default`.
    fn select(&self, method: &Method, path: &str) -> Option<(&CompiledRoute, Map<String, Value>)> {
        let request: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut best: Option<Candidate<'_>> = None;
        for route in &self.routes {
            let Some(segments) = &route.segments else {
                continue;
            };
            let method_matches =
                route.route.def.method == "ANY" || route.route.def.method == method.as_str();
            if !method_matches {
                continue;
            }
            let Some((rank, params)) = match_segments(segments, &request) else {
                continue;
            };
            let any_method = route.route.def.method == "ANY";
            let better = best
                .as_ref()
                .is_none_or(|b| (rank.as_slice(), any_method) < (b.rank.as_slice(), b.any_method));
            if better {
                best = Some(Candidate {
                    rank,
                    any_method,
                    route,
                    params,
                });
            }
        }
        best.map(|b| (b.route, b.params)).or_else(|| {
            self.routes
                .iter()
                .find(|r| r.segments.is_none())
                .map(|r| (r, Map::new()))
        })
    }

    async fn authorize(
        &self,
        name: &str,
        request: &RequestParts,
        route_key: &str,
        path_parameters: &Map<String, Value>,
    ) -> Result<Value, Denial> {
        let Some(authorizer) = self.authorizers.get(name) else {
            return Err(Denial::AuthorizerFailed);
        };
        let mut identity = Vec::new();
        for source in &authorizer.def.identity_sources {
            let value = match source {
                IdentitySource::Header(header) => request.headers.get(&header.to_ascii_lowercase()),
                IdentitySource::QueryString(name) => request.query.get(name),
            };
            match value {
                Some(v) if !v.is_empty() => identity.push(v.clone()),
                _ => return Err(Denial::Unauthorized),
            }
        }
        let cache_key = (name.to_owned(), identity.clone());
        if !authorizer.def.ttl.is_zero()
            && let Ok(cache) = self.cache.lock()
            && let Some((expires, decision)) = cache.get(&cache_key)
            && *expires > Instant::now()
        {
            return decided(decision.clone());
        }
        let mut event = request.common(route_key, path_parameters);
        event.insert("type".into(), json!("REQUEST"));
        event.insert(
            "routeArn".into(),
            json!(format!(
                "arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{STAGE}/{}{}",
                request.method, request.path
            )),
        );
        event.insert("identitySource".into(), json!(identity));
        let payload = Bytes::from(Value::Object(event).to_string());
        let invocation = self.invoker.invoke(&authorizer.function, payload);
        let answer =
            match tokio::time::timeout(AUTHORIZER_TIMEOUT + self.compile_allowance, invocation)
                .await
            {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => {
                    tracing::warn!(authorizer = name, error = %e, "authorizer failed");
                    return Err(Denial::AuthorizerFailed);
                }
                Err(_) => {
                    tracing::warn!(authorizer = name, "authorizer timed out");
                    return Err(Denial::AuthorizerFailed);
                }
            };
        let decision = simple_response(&answer).ok_or_else(|| {
            tracing::warn!(
                authorizer = name,
                answer = %String::from_utf8_lossy(&answer),
                "authorizer answered something other than a simple response"
            );
            Denial::AuthorizerFailed
        })?;
        if !authorizer.def.ttl.is_zero()
            && let Ok(mut cache) = self.cache.lock()
        {
            let now = Instant::now();
            cache.retain(|_, (expires, _)| *expires > now);
            cache.insert(cache_key, (now + authorizer.def.ttl, decision.clone()));
        }
        decided(decision)
    }
}

fn decided(decision: Decision) -> Result<Value, Denial> {
    match decision {
        Decision::Allow(context) => Ok(context),
        Decision::Deny => Err(Denial::Forbidden),
    }
}

/// Reads `{"isAuthorized": bool, "context": {...}}`.
fn simple_response(answer: &[u8]) -> Option<Decision> {
    let value: Value = serde_json::from_slice(answer).ok()?;
    match value.get("isAuthorized")?.as_bool()? {
        true => Some(Decision::Allow(
            value
                .get("context")
                .filter(|c| c.is_object())
                .cloned()
                .unwrap_or_else(|| json!({})),
        )),
        false => Some(Decision::Deny),
    }
}

fn parse_path(path: &str) -> Result<Vec<Segment>, crate::Error> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let last = parts.len().saturating_sub(1);
    parts
        .iter()
        .enumerate()
        .map(
            |(i, part)| match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => match name.strip_suffix('+') {
                    Some(greedy) if i == last => Ok(Segment::Greedy(greedy.to_owned())),
                    Some(_) => Err(crate::Error::Template(format!(
                        "route path {path}: a greedy variable must be the last segment"
                    ))),
                    None => Ok(Segment::Variable(name.to_owned())),
                },
                None => Ok(Segment::Literal((*part).to_owned())),
            },
        )
        .collect()
}

/// Whether `request` matches `route`, with a rank per segment (lower is more specific) and the path
/// parameters.
fn match_segments(route: &[Segment], request: &[&str]) -> Option<(Vec<u8>, Map<String, Value>)> {
    let mut rank = Vec::with_capacity(route.len());
    let mut params = Map::new();
    for (i, segment) in route.iter().enumerate() {
        match segment {
            Segment::Literal(literal) => {
                if request.get(i) != Some(&literal.as_str()) {
                    return None;
                }
                rank.push(0);
            }
            Segment::Variable(name) => {
                let value = request.get(i).filter(|v| !v.is_empty())?;
                params.insert(name.clone(), json!(value));
                rank.push(1);
            }
            Segment::Greedy(name) => {
                let rest = request.get(i..).filter(|r| !r.is_empty())?.join("/");
                if rest.is_empty() {
                    return None;
                }
                params.insert(name.clone(), json!(rest));
                rank.push(2);
                return Some((rank, params));
            }
        }
    }
    (request.len() == route.len()).then_some((rank, params))
}

/// What an event is built from.
struct RequestParts {
    method: Method,
    path: String,
    raw_query: String,
    /// Lower-case names; repeated headers joined with commas, as payload 2.0 does.
    headers: BTreeMap<String, String>,
    cookies: Vec<String>,
    /// Decoded; repeated parameters joined with commas.
    query: BTreeMap<String, String>,
    source_ip: String,
    request_id: String,
    received: OffsetDateTime,
}

impl RequestParts {
    fn new(method: Method, uri: &axum::http::Uri, headers: &HeaderMap, peer: SocketAddr) -> Self {
        let mut joined: BTreeMap<String, String> = BTreeMap::new();
        let mut cookies = Vec::new();
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            if name == axum::http::header::COOKIE {
                cookies.extend(
                    value
                        .split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned),
                );
                continue;
            }
            joined
                .entry(name.as_str().to_owned())
                .and_modify(|v| {
                    v.push(',');
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        let request_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
        let received = OffsetDateTime::now_utc();
        joined
            .entry("x-forwarded-for".into())
            .or_insert_with(|| peer.ip().to_string());
        joined
            .entry("x-forwarded-proto".into())
            .or_insert_with(|| "http".into());
        joined
            .entry("x-forwarded-port".into())
            .or_insert_with(|| uri.port_u16().unwrap_or(80).to_string());
        joined.entry("x-amzn-trace-id".into()).or_insert_with(|| {
            format!(
                "Root=1-{:08x}-{}",
                received.unix_timestamp(),
                &uuid::Uuid::new_v4().simple().to_string()[..24]
            )
        });
        let raw_query = uri.query().unwrap_or_default().to_owned();
        let mut query: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
            query
                .entry(k.into_owned())
                .and_modify(|existing| {
                    existing.push(',');
                    existing.push_str(&v);
                })
                .or_insert_with(|| v.into_owned());
        }
        Self {
            method,
            path: uri.path().to_owned(),
            raw_query,
            headers: joined,
            cookies,
            query,
            source_ip: peer.ip().to_string(),
            request_id,
            received,
        }
    }

    /// The fields the authorizer event and the integration event share.
    fn common(&self, route_key: &str, path_parameters: &Map<String, Value>) -> Map<String, Value> {
        let host = self
            .headers
            .get("host")
            .cloned()
            .unwrap_or_else(|| "localhost".into());
        let time_format =
            format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");
        let mut event = Map::new();
        event.insert("version".into(), json!("2.0"));
        event.insert("routeKey".into(), json!(route_key));
        event.insert("rawPath".into(), json!(self.path));
        event.insert("rawQueryString".into(), json!(self.raw_query));
        if !self.cookies.is_empty() {
            event.insert("cookies".into(), json!(self.cookies));
        }
        event.insert("headers".into(), json!(self.headers));
        if !self.query.is_empty() {
            event.insert("queryStringParameters".into(), json!(self.query));
        }
        if !path_parameters.is_empty() {
            event.insert(
                "pathParameters".into(),
                Value::Object(path_parameters.clone()),
            );
        }
        event.insert(
            "requestContext".into(),
            json!({
                "accountId": ACCOUNT_ID,
                "apiId": API_ID,
                "domainName": host,
                "domainPrefix": host.split('.').next().unwrap_or_default(),
                "http": {
                    "method": self.method.as_str(),
                    "path": self.path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": self.source_ip,
                    "userAgent": self.headers.get("user-agent").cloned().unwrap_or_default(),
                },
                "requestId": self.request_id,
                "routeKey": route_key,
                "stage": STAGE,
                "time": self.received.format(&time_format).unwrap_or_default(),
                "timeEpoch": self.received.unix_timestamp_nanos() / 1_000_000,
            }),
        );
        event
    }
}

/// A gateway-generated error, with API Gateway's body.
fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "message": text }))).into_response()
}

/// Whether API Gateway passes a body of this content type as text rather than base64.
fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type.map(str::to_ascii_lowercase) else {
        return true;
    };
    let essence = ct.split(';').next().unwrap_or_default().trim().to_owned();
    essence.starts_with("text/")
        || [
            "application/json",
            "application/javascript",
            "application/xml",
        ]
        .contains(&essence.as_str())
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
}

async fn handle(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    let request = RequestParts::new(parts.method.clone(), &parts.uri, &parts.headers, peer);
    let Some((route, path_parameters)) = gateway.select(&parts.method, &request.path) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let context = match &route.authorizer {
        Some(name) => {
            match gateway
                .authorize(name, &request, &route.key, &path_parameters)
                .await
            {
                Ok(context) => Some(context),
                Err(denied) => return denied.response(),
            }
        }
        None => None,
    };
    let mut event = request.common(&route.key, &path_parameters);
    if let (Some(context), Some(Value::Object(rc))) = (context, event.get_mut("requestContext")) {
        rc.insert("authorizer".into(), json!({ "lambda": context }));
    }
    if !body.is_empty() {
        let content_type = request.headers.get("content-type").map(String::as_str);
        match std::str::from_utf8(&body) {
            Ok(text) if is_text(content_type) => {
                event.insert("body".into(), json!(text));
                event.insert("isBase64Encoded".into(), json!(false));
            }
            _ => {
                event.insert("body".into(), json!(BASE64.encode(&body)));
                event.insert("isBase64Encoded".into(), json!(true));
            }
        }
    } else {
        event.insert("isBase64Encoded".into(), json!(false));
    }
    let payload = Bytes::from(Value::Object(event).to_string());
    let function = route.route.function.clone();
    let result = tokio::time::timeout(
        INTEGRATION_TIMEOUT,
        gateway.invoker.invoke(&function, payload),
    )
    .await;
    match result {
        Ok(Ok(answer)) => map_response(&answer).unwrap_or_else(|| {
            tracing::warn!(%function, "malformed integration response");
            message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }),
        Ok(Err(InvokeError::Timeout(_))) | Err(_) => {
            message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        }
        Ok(Err(e)) => {
            tracing::warn!(%function, error = %e, "integration failed");
            message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

/// Maps a payload 2.0 integration response onto an HTTP response. A JSON answer without
/// `statusCode` is taken as a 200 JSON body, as API Gateway does.
fn map_response(answer: &[u8]) -> Option<Response> {
    let value: Value = serde_json::from_slice(answer).ok()?;
    let Some(status) = value.get("statusCode") else {
        let mut response = Response::new(Body::from(answer.to_vec()));
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Some(response);
    };
    let status = StatusCode::from_u16(u16::try_from(status.as_u64()?).ok()?).ok()?;
    let body = match value.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => {
            if value.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
                BASE64.decode(text).ok()?
            } else {
                text.clone().into_bytes()
            }
        }
        Some(other) => other.to_string().into_bytes(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(map) = value.get("headers").and_then(Value::as_object) {
        for (name, v) in map {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let (Ok(name), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&text),
            ) {
                headers.append(name, v);
            }
        }
    }
    if let Some(cookies) = value.get("cookies").and_then(Value::as_array) {
        for cookie in cookies.iter().filter_map(Value::as_str) {
            if let Ok(v) = HeaderValue::from_str(cookie) {
                headers.append(axum::http::header::SET_COOKIE, v);
            }
        }
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> Route {
        Route {
            def: RouteDef {
                method: method.into(),
                path: path.into(),
                authorizer: None,
            },
            function: format!("{method} {path}"),
        }
    }

    fn gateway(routes: Vec<Route>) -> Gateway {
        Gateway::new(
            None,
            routes,
            |_| None,
            Invoker::Binaries(Arc::new(BTreeMap::new())),
            Duration::ZERO,
        )
        .expect("routes compile")
    }

    fn selected(g: &Gateway, method: Method, path: &str) -> Option<String> {
        g.select(&method, path).map(|(r, _)| r.key.clone())
    }

    #[test]
    fn literal_route_beats_greedy_route() {
        let g = gateway(vec![route("ANY", "/{proxy+}"), route("GET", "/v1/health")]);
        assert_eq!(
            selected(&g, Method::GET, "/v1/health").as_deref(),
            Some("GET /v1/health")
        );
        assert_eq!(
            selected(&g, Method::POST, "/v1/health").as_deref(),
            Some("ANY /{proxy+}")
        );
        assert_eq!(
            selected(&g, Method::GET, "/v1/me").as_deref(),
            Some("ANY /{proxy+}")
        );
    }

    #[test]
    fn specific_method_beats_any_on_the_same_path() {
        let g = gateway(vec![
            route("ANY", "/items/{id}"),
            route("DELETE", "/items/{id}"),
        ]);
        assert_eq!(
            selected(&g, Method::DELETE, "/items/1").as_deref(),
            Some("DELETE /items/{id}")
        );
        assert_eq!(
            selected(&g, Method::GET, "/items/1").as_deref(),
            Some("ANY /items/{id}")
        );
    }

    #[test]
    fn variables_and_greedy_paths_fill_path_parameters() {
        let g = gateway(vec![route("GET", "/items/{id}"), route("ANY", "/{proxy+}")]);
        let (_, params) = g.select(&Method::GET, "/items/42").expect("matches");
        assert_eq!(params["id"], "42");
        let (_, params) = g.select(&Method::GET, "/a/b/c").expect("matches");
        assert_eq!(params["proxy"], "a/b/c");
    }

    #[test]
    fn unmatched_paths_fall_back_to_default_route_or_nothing() {
        let g = gateway(vec![route("GET", "/v1/health")]);
        assert_eq!(selected(&g, Method::GET, "/nope"), None);
        assert_eq!(selected(&g, Method::GET, "/"), None);
        let g = gateway(vec![route("GET", "/v1/health"), route("ANY", "$default")]);
        assert_eq!(
            selected(&g, Method::GET, "/nope").as_deref(),
            Some("$default")
        );
    }

    #[test]
    fn simple_responses_are_read_strictly() {
        assert!(matches!(
            simple_response(br#"{"isAuthorized":true,"context":{"principal":"p"}}"#),
            Some(Decision::Allow(c)) if c["principal"] == "p"
        ));
        assert!(matches!(
            simple_response(br#"{"isAuthorized":false}"#),
            Some(Decision::Deny)
        ));
        assert!(simple_response(br#"{"isAuthorized":"yes"}"#).is_none());
        assert!(simple_response(b"not json").is_none());
    }

    #[tokio::test]
    async fn integration_response_maps_status_headers_cookies_and_base64_body() {
        let answer = json!({
            "statusCode": 201,
            "headers": {"content-type": "application/octet-stream", "x-n": 1},
            "cookies": ["a=1", "b=2"],
            "body": BASE64.encode([0u8, 159, 146, 150]),
            "isBase64Encoded": true
        });
        let response = map_response(answer.to_string().as_bytes()).expect("maps");
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()["x-n"], "1");
        let cookies: Vec<_> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(body.as_ref(), [0u8, 159, 146, 150]);
    }

    #[test]
    fn integration_response_without_status_code_is_a_json_200() {
        let response = map_response(br#"{"hello":"world"}"#).expect("maps");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert!(map_response(b"not json").is_none());
    }

    #[test]
    fn text_like_content_types_are_passed_as_text() {
        assert!(is_text(Some("application/json; charset=utf-8")));
        assert!(is_text(Some("text/plain")));
        assert!(is_text(Some("application/problem+json")));
        assert!(!is_text(Some("application/octet-stream")));
        assert!(!is_text(Some("image/png")));
    }
}
