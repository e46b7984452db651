//! The API contract: the OpenAPI 3.1 document generated from the code. Its operations come from the
//! router (`crate::routes::api`, each with the `security` its access rule declares); this module adds
//! what they share: info and tags, the bearer scheme, the problem schemas and the responses every
//! operation can give besides its own. Served at `GET /v1/openapi.json` and checked in as
//! `functions/api/openapi.json`, which a test keeps equal to the code.

use serde::Serialize;
use tributary_core::scope::Scope;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::problem::PROBLEM_CONTENT_TYPE;

/// An RFC 9457 problem document (`application/problem+json`), as documented; the API renders
/// `tributary_core::Problem`, whose fields these mirror.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"type": "urn:tributary:problem:missing_scope", "title": "Forbidden", "status": 403, "detail": "This route requires the `keys:write` scope. Use a credential that has it, or ask an admin to grant it.", "code": "missing_scope", "instance": "/v1/keys"}))]
pub struct ProblemDoc {
    /// URI of the problem type: `urn:tributary:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened and what to do next.
    pub detail: String,
    /// Stable machine-readable code.
    pub code: String,
    /// The request path.
    pub instance: Option<String>,
    /// Field errors (validation problems): `pointer` is a JSON Pointer into the body, or
    /// `query.<name>`, `path.<name>`, `header.<name>`.
    pub errors: Option<Vec<FieldErrorDoc>>,
    /// Seconds to wait (rate limiting; also sent as `Retry-After`).
    pub retry_after: Option<u64>,
}

/// One invalid field (documentation of `tributary_core::problem::FieldError`).
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorDoc {
    /// Where.
    pub pointer: String,
    /// What is wrong.
    pub detail: String,
}

/// API Gateway's own error body (`{"message":"Unauthorized"}` without a credential,
/// `{"message":"Forbidden"}` when the authorizer denies it).
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"message": "Unauthorized"}))]
pub struct GatewayError {
    /// `Unauthorized`, `Forbidden`, `Not Found` or `Internal Server Error`.
    pub message: String,
}

/// The name of a scope.
pub struct ScopeName;

impl utoipa::PartialSchema for ScopeName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A scope name."))
            .enum_values(Some(Scope::ALL.iter().map(|s| s.as_str())))
            .into()
    }
}

impl ToSchema for ScopeName {}

/// The responses every operation can give besides its own: from the gateway (401, 403), the
/// authorizer-context and scope checks (403), the rate limit (429) and failures (500, 503); with a
/// body, the body checks (400, 413, 415); with parameters, their validation (400). A public operation
/// (`security: []`) passes no authorizer, scope check or rate limit, and reads no dependency unless it
/// says so: it shares only the 500. Problem documents are `application/problem+json`.
struct CommonResponses;

fn problem_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_CONTENT_TYPE,
            Content::new(Some(Ref::from_schema_name("ProblemDoc"))),
        )
        .into()
}

fn is_problem(schema: Option<&RefOr<Schema>>) -> bool {
    matches!(schema, Some(RefOr::Ref(r)) if r.ref_location == "#/components/schemas/ProblemDoc")
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in operations.into_iter().flatten() {
                let public = op.security.as_ref().is_some_and(Vec::is_empty);
                let responses = &mut op.responses.responses;
                // Documented problems use the problem media type (other error bodies, such as
                // the public health's 503, keep theirs).
                for (status, response) in responses.iter_mut() {
                    if let RefOr::T(response) = response
                        && !status.starts_with('2')
                        && response
                            .content
                            .get("application/json")
                            .is_some_and(|c| is_problem(c.schema.as_ref()))
                        && let Some(content) = response.content.shift_remove("application/json")
                    {
                        response
                            .content
                            .insert(PROBLEM_CONTENT_TYPE.to_owned(), content);
                    }
                }
                if !public {
                    let gateway = |description: &str| {
                        ResponseBuilder::new()
                            .description(description)
                            .content(
                                "application/json",
                                Content::new(Some(Ref::from_schema_name("GatewayError"))),
                            )
                            .build()
                    };
                    let unauthorized = responses.entry("401".into()).or_insert_with(|| {
                        problem_response(
                            "The request reached the API without an authenticated caller",
                        )
                    });
                    if let RefOr::T(unauthorized) = unauthorized
                        && let Some(content) = gateway("").content.shift_remove("application/json")
                    {
                        unauthorized
                            .description
                            .push_str("; or no credential was sent (answered by API Gateway)");
                        unauthorized
                            .content
                            .insert("application/json".into(), content);
                    }
                    let forbidden = responses
                        .entry("403".into())
                        .or_insert_with(|| problem_response("Missing scope or tenant credential"));
                    if let RefOr::T(forbidden) = forbidden
                        && let Some(content) = gateway("").content.shift_remove("application/json")
                    {
                        forbidden.description.push_str(
                            "; or the authorizer denied the credential (answered by API Gateway)",
                        );
                        forbidden.content.insert("application/json".into(), content);
                    }
                }
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.into())
                        .or_insert_with(|| problem_response(description));
                };
                if op.request_body.is_some() {
                    add("400", "Invalid body");
                    add("413", "Body larger than 64 KiB");
                    add("415", "Body is not JSON");
                }
                if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    add("400", "Invalid parameter");
                }
                if op
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| p.name == "Idempotency-Key")
                {
                    add(
                        "409",
                        "A request with the same Idempotency-Key is in progress",
                    );
                    add(
                        "422",
                        "The Idempotency-Key was used with a different request",
                    );
                }
                if !public {
                    add("429", "Tenant rate limit exhausted; see `Retry-After`");
                }
                add(
                    "500",
                    "Unexpected failure (logged; the body reveals nothing)",
                );
                if !public {
                    add("503", "A dependency is unavailable; retry with backoff");
                }
            }
        }
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some(
            "A tenant API key (`trb_live_…`), a JWT from the tenant's registered OIDC issuer, or the deployment admin key.".into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tributary API",
        description = "Connect your customers' third-party apps, import their data, act on it and receive their webhooks.\n\nAuthenticate with `Authorization: Bearer <credential>`. Every route names the scope it needs; a missing scope is a 403 `missing_scope`. Errors are RFC 9457 problem documents with a stable `code`. Lists are cursor-paginated (`limit` 1–100, default 20; pass `next_cursor` back as `cursor`). POSTs that create accept `Idempotency-Key`: the same key and body within 24 h replays the first response, another body is a 422, a concurrent duplicate a 409. Each tenant has a per-minute rate limit; past it the API answers 429 with `Retry-After`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(ProblemDoc, FieldErrorDoc, GatewayError)),
    modifiers(&BearerAuth),
    tags(
        (name = "Identity", description = "Who is calling"),
        (name = "Tenants", description = "The deployment's tenants (admin scope)"),
        (name = "API keys", description = "The caller's tenant's API keys"),
        (name = "Identity providers", description = "OIDC issuers whose JWTs authenticate the tenant's callers"),
        (name = "Audit", description = "Changes to the tenant's credentials"),
        (name = "Operations", description = "The deployment's health"),
        (name = "Reference", description = "This document and the reference page (no credential)"),
    )
)]
pub struct ApiDoc;

/// The document with the shared responses, pretty-printed as it is checked in.
pub fn render(mut doc: utoipa::openapi::OpenApi) -> String {
    CommonResponses.modify(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut json = doc.to_pretty_json().unwrap_or_default();
    json.push('\n');
    json
}

#[cfg(test)]
mod tests {
    use crate::testing::{FakeQueue, MemStore};

    fn generate() -> String {
        crate::router::document::<MemStore, FakeQueue>()
    }

    /// Regenerate with `UPDATE_OPENAPI=1 cargo test -p tributary-api openapi`.
    #[test]
    fn checked_in_openapi_matches_the_code() {
        let generated = generate();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).unwrap();
            return;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap();
        assert!(
            checked_in == generated,
            "functions/api/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p tributary-api openapi` and commit it"
        );
    }

    #[test]
    fn every_operation_documents_its_errors_and_security() {
        let doc: serde_json::Value = serde_json::from_str(&generate()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                let security = op["security"].as_array();
                assert!(security.is_some(), "{method} {path} has no security");
                // Public operations refuse nobody: they have no 4xx of their own.
                if security.is_some_and(|s| !s.is_empty()) {
                    assert!(
                        responses.keys().any(|s| s.starts_with('4')),
                        "{method} {path} documents no 4xx"
                    );
                }
            }
        }
    }
}
