//! The API contract: the OpenAPI 3.1 document generated from the code. Its operations come from the
//! router (`crate::routes::api`, each with the `security` its access rule declares); this module adds
//! what they share: info and tags, the bearer scheme, the problem schemas and the responses every
//! operation can give besides its own. Served at `GET /v1/openapi.json` and checked in as
//! `functions/api/openapi.json`, which a test keeps equal to the code.

use serde::Serialize;
use tributary_core::scope::Scope;
use utoipa::openapi::header::Header;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, Type};
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

/// The name of a scope a tenant's credential can hold: every scope but `admin`, which belongs to
/// the deployment alone (the API answers 400 when a key or issuer registration asks for it).
pub struct GrantableScopeName;

impl utoipa::PartialSchema for GrantableScopeName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A scope a tenant's credential can hold (any but `admin`).",
            ))
            .enum_values(Some(
                Scope::ALL
                    .iter()
                    .filter(|s| **s != Scope::Admin)
                    .map(|s| s.as_str()),
            ))
            .into()
    }
}

impl ToSchema for GrantableScopeName {}

/// The `Idempotency-Key` header's schema: what `crate::idempotency` accepts (1 to 255 visible
/// ASCII characters), stated once and given to every operation that declares the header.
fn idempotency_key_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(255))
        .pattern(Some("^[!-~]+$"))
        .description(Some(
            "1 to 255 visible ASCII characters, e.g. a UUID; the same key and body within 24 h replays the first response.",
        ))
        .examples([serde_json::json!("7f7c2a9e-2f6b-4d0e-9a51-0c1f3b8e6d21")])
        .into()
}

/// Every operation's parameters and creations, stated exactly: the `Idempotency-Key` header points
/// at the shared schema, and a `201` says where the new resource is (`Location`, absent on an
/// idempotent replay) and links to the operations on it (`$response.body#/id`), which clients and
/// schemathesis' stateful phase follow from create to get to delete.
struct Creations;

impl Modify for Creations {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert("IdempotencyKey".into(), idempotency_key_schema().into());
        let paths = &mut openapi.paths.paths;
        // `POST {collection}` → the operations of `{collection}/{param}`.
        let mut item_operations = std::collections::BTreeMap::new();
        for (path, item) in paths.iter() {
            let Some((collection, last)) = path.rsplit_once('/') else {
                continue;
            };
            let Some(param) = last.strip_prefix('{').and_then(|l| l.strip_suffix('}')) else {
                continue;
            };
            let ids: Vec<(&str, String)> = [
                ("get", &item.get),
                ("delete", &item.delete),
                ("update", &item.patch),
            ]
            .into_iter()
            .filter_map(|(verb, op)| Some((verb, op.as_ref()?.operation_id.clone()?)))
            .collect();
            item_operations.insert(collection.to_owned(), (param.to_owned(), ids));
        }
        for (path, item) in paths.iter_mut() {
            for op in operations_mut(item) {
                for param in op.parameters.iter_mut().flatten() {
                    if param.name.eq_ignore_ascii_case("Idempotency-Key") {
                        param.schema = Some(Ref::from_schema_name("IdempotencyKey").into());
                        param.required = utoipa::openapi::Required::False;
                    }
                }
            }
            let Some(post) = item.post.as_mut() else {
                continue;
            };
            let Some(RefOr::T(created)) = post.responses.responses.get_mut("201") else {
                continue;
            };
            let mut location = Header::new(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::Custom("uri-reference".into()))),
            );
            location.description = Some(
                "Where the new resource is (absent when the response is an idempotent replay)"
                    .into(),
            );
            created.headers.insert("Location".into(), location);
            if let Some((param, ids)) = item_operations.get(path) {
                for (verb, operation_id) in ids {
                    let link = LinkBuilder::new()
                        .operation_id(operation_id.clone())
                        .parameter(param.clone(), "$response.body#/id")
                        .description(format!("The new resource ({verb})"))
                        .build();
                    created.links.insert((*verb).to_owned(), link.into());
                }
            }
        }
    }
}

/// The operations of a path, whichever methods it has.
fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
}

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
            for op in operations_mut(item) {
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
    // Also the schemas only a query parameter names (utoipa collects those of bodies only).
    components(schemas(
        ProblemDoc,
        FieldErrorDoc,
        GatewayError,
        crate::routes::webhooks::MessageStateFilter
    )),
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

/// The OpenAPI document the API serves: the checked-in `functions/api/openapi.json`, which
/// `tests::checked_in_openapi_matches_the_code` holds equal to the document the code generates.
/// The binary carries it without whitespace and gzip-encoded (`routes::docs`).
#[cfg(test)]
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// The document with the shared responses, pretty-printed as it is checked in.
#[cfg(test)]
pub fn render(mut doc: utoipa::openapi::OpenApi) -> String {
    Creations.modify(&mut doc);
    CommonResponses.modify(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut json = doc.to_pretty_json().unwrap_or_default();
    json.push('\n');
    // utoipa 5.5 serializes a Link Object's fields in snake case (`operation_id`), which OpenAPI
    // readers ignore; the key appears nowhere else in the document (operations use `operationId`).
    json.replace("\"operation_id\": ", "\"operationId\": ")
}

/// The build script's minifier, tested here.
#[cfg(test)]
#[path = "../minify.rs"]
mod minify;

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

    fn operations(doc: &serde_json::Value) -> Vec<(String, String, serde_json::Value)> {
        let mut all = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                all.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
        all
    }

    #[test]
    fn operation_ids_are_unique_snake_case_names() {
        let doc: serde_json::Value = serde_json::from_str(&generate()).unwrap();
        let mut seen = std::collections::BTreeMap::new();
        for (method, path, op) in operations(&doc) {
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            assert!(
                !id.is_empty() && id.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{method} {path}: operationId {id:?} is not a snake_case name"
            );
            if let Some(other) = seen.insert(id.clone(), format!("{method} {path}")) {
                panic!("operationId {id:?} is used by {other} and {method} {path}");
            }
        }
    }

    #[test]
    fn creations_state_location_and_link_to_the_new_resource() {
        let doc: serde_json::Value = serde_json::from_str(&generate()).unwrap();
        let ops = operations(&doc);
        let id_of = |method: &str, path: &str| {
            ops.iter()
                .find(|(m, p, _)| m == method && p == path)
                .map(|(_, _, op)| op["operationId"].as_str().unwrap().to_owned())
        };
        let mut linked = 0;
        for (method, path, op) in &ops {
            let Some(created) = op["responses"].get("201") else {
                continue;
            };
            assert_eq!(method, "POST", "{method} {path} answers 201");
            assert_eq!(
                created["headers"]["Location"]["schema"]["format"], "uri-reference",
                "POST {path}: 201 without a Location header"
            );
            // `POST /x` → `GET /x/{param}` and `DELETE /x/{param}` where they exist.
            let item = ops.iter().map(|(_, p, _)| p).find(|p| {
                p.rsplit_once('/')
                    .is_some_and(|(c, last)| c == path && last.starts_with('{'))
            });
            let Some(item) = item else {
                assert!(
                    created.get("links").is_none(),
                    "POST {path}: links without an item route"
                );
                continue;
            };
            let param = item.rsplit_once('/').unwrap().1.trim_matches(['{', '}']);
            for (verb, method) in [("get", "GET"), ("delete", "DELETE"), ("update", "PATCH")] {
                match id_of(method, item) {
                    Some(target) => {
                        let link = &created["links"][verb];
                        assert_eq!(
                            link["operationId"],
                            target.as_str(),
                            "POST {path}: link {verb}"
                        );
                        assert_eq!(
                            link["parameters"][param], "$response.body#/id",
                            "POST {path}: link {verb}"
                        );
                        linked += 1;
                    }
                    None => assert!(
                        created["links"].get(verb).is_none(),
                        "POST {path}: link {verb} to nothing"
                    ),
                }
            }
        }
        assert!(linked >= 6, "only {linked} links");
    }

    #[test]
    fn idempotency_key_is_documented_as_the_api_validates_it() {
        let doc: serde_json::Value = serde_json::from_str(&generate()).unwrap();
        let schema = &doc["components"]["schemas"]["IdempotencyKey"];
        assert_eq!(schema["type"], "string");
        assert_eq!(schema["minLength"], 1);
        assert_eq!(schema["maxLength"], 255);
        assert_eq!(schema["pattern"], "^[!-~]+$");
        let mut declared = 0;
        for (method, path, op) in operations(&doc) {
            for param in op["parameters"].as_array().into_iter().flatten() {
                if param["name"] == "Idempotency-Key" {
                    assert_eq!(
                        param["schema"]["$ref"], "#/components/schemas/IdempotencyKey",
                        "{method} {path}"
                    );
                    assert_eq!(param["required"], false, "{method} {path}");
                    declared += 1;
                }
            }
        }
        assert_eq!(
            declared, 10,
            "the eight creations, the manual sync run and actions declare the header"
        );
        // `[!-~]` is 0x21..=0x7e: what crate::idempotency accepts, one character at a time.
        for byte in 0u8..=0x7f {
            let mut headers = axum::http::HeaderMap::new();
            let Ok(value) = axum::http::HeaderValue::from_bytes(&[byte]) else {
                continue;
            };
            headers.insert("idempotency-key", value);
            assert_eq!(
                crate::idempotency::validate_key(&headers).is_ok(),
                (0x21..=0x7e).contains(&byte),
                "byte {byte:#x}"
            );
        }
    }

    #[test]
    fn granted_scopes_are_documented_as_at_least_one_and_never_admin() {
        let doc: serde_json::Value = serde_json::from_str(&generate()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let grantable: Vec<&str> = tributary_core::scope::Scope::ALL
            .iter()
            .filter(|s| **s != tributary_core::scope::Scope::Admin)
            .map(|s| s.as_str())
            .collect();
        for (schema, field) in [("ApiKeyIn", "scopes"), ("OidcIssuerIn", "allowed_scopes")] {
            let prop = &schemas[schema]["properties"][field];
            assert_eq!(prop["minItems"], 1, "{schema}.{field}");
            let items = &prop["items"];
            let enumerated = match items.get("$ref") {
                Some(r) => &schemas[r.as_str().unwrap().rsplit('/').next().unwrap()]["enum"],
                None => &items["enum"],
            };
            assert_eq!(
                enumerated,
                &serde_json::json!(grantable),
                "{schema}.{field}"
            );
        }
        // Examples stay valid for decades: an expiry must be in the future.
        let text = generate();
        for (at, _) in text.match_indices("T00:00:00Z") {
            let year: u32 = text[at - 10..at - 6].parse().unwrap();
            assert!(
                year >= 2090,
                "an example timestamp in {year} will be in the past"
            );
        }
        for field in ["issuer", "jwks_uri"] {
            assert!(
                schemas["OidcIssuerIn"]["properties"][field]["pattern"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("^https://")),
                "OidcIssuerIn.{field}"
            );
        }
    }

    #[test]
    fn the_build_script_drops_whitespace_outside_strings_only() {
        let json = "{ \"a b\" : [ 1 ,\n\t2 ] , \"c\\\" d\" : \"e \\\\\" ,\r\n \"f\" : { } }";
        let minified = super::minify::minify(json);
        assert_eq!(minified, r#"{"a b":[1,2],"c\" d":"e \\","f":{}}"#);
        let parsed = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(parsed(&minified), parsed(json));
    }
}
