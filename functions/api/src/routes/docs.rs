//! The API reference: the OpenAPI document (`GET /v1/openapi.json`, built by [`crate::openapi`]) and a
//! human-readable page (`GET /docs`) rendered by Redoc, whose bundle ships inside the binary (gzip, as
//! vendored by `infra/local/vendor-docs.sh` from the exact npm release `infra/local/docs` pins), so the
//! page works offline and loads nothing from anywhere else.

use std::sync::LazyLock;

use axum::http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use tributary_core::ports::QueueStats;

use crate::access::Public;
use crate::problem::ApiError;
use crate::response;
use crate::router::{Api, operations};
use crate::state::{AppState, ControlStore};

const DOCS_HTML: &str = include_str!("../../assets/docs.html");

/// Where the page loads Redoc from: versioned, so that it can be cached for good.
pub const REDOC_JS: &str = "/docs/redoc-2.5.4.standalone.js";

/// `redoc/bundles/redoc.standalone.js` of that release, gzip-encoded by zopfli (`make docs-vendor`).
const REDOC_JS_GZ: &[u8] = include_bytes!("../../assets/redoc.standalone.js.gz");

/// The page may run its own inline script (by hash) and what this origin serves, and reach nothing
/// else: Redoc's sidebar shows a logo from a CDN, which this keeps the browser from fetching.
static PAGE_POLICY: LazyLock<String> = LazyLock::new(|| {
    let scripts: Vec<String> = inline_scripts(DOCS_HTML)
        .map(|script| format!("'sha256-{}'", BASE64.encode(Sha256::digest(script))))
        .collect();
    format!(
        "default-src 'none'; script-src 'self' {}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        scripts.join(" ")
    )
});

/// The checked-in `openapi.json` as served: without whitespace between tokens, gzip-encoded (by the
/// build script, `functions/api/build.rs`).
const OPENAPI_JSON_GZ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openapi.json.gz"));

/// The OpenAPI document.
///
/// Gzip-encoded when the request's `Accept-Encoding` allows gzip, decompressed otherwise.
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "get_openapi_document", tag = "Reference",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub async fn openapi(_: Public, headers: HeaderMap) -> Response {
    encoded(
        &headers,
        OPENAPI_JSON_GZ,
        "application/json",
        "public, max-age=300",
    )
}

/// The API reference page, rendered from the OpenAPI document.
#[utoipa::path(get, path = "/docs", operation_id = "get_docs_page", tag = "Reference",
    responses((status = 200, description = "The reference page", content_type = "text/html")))]
pub async fn page(_: Public) -> Response {
    let Ok(policy) = HeaderValue::from_str(&PAGE_POLICY) else {
        tracing::error!("the reference page's content security policy is not a header value");
        return ApiError::Internal.into_response();
    };
    let mut response = response::raw(
        StatusCode::OK,
        "text/html; charset=utf-8",
        DOCS_HTML.as_bytes().to_vec(),
        Some("public, max-age=300"),
    );
    response
        .headers_mut()
        .insert(CONTENT_SECURITY_POLICY, policy);
    response
}

/// The renderer the reference page runs: Redoc's standalone bundle.
///
/// The Redoc release in the path, which never changes: gzip-encoded when the request's
/// `Accept-Encoding` allows gzip, decompressed otherwise.
#[utoipa::path(get, path = REDOC_JS, operation_id = "get_docs_renderer", tag = "Reference",
    responses((status = 200, description = "Redoc's standalone bundle", content_type = "text/javascript")))]
pub async fn redoc(_: Public, headers: HeaderMap) -> Response {
    encoded(
        &headers,
        REDOC_JS_GZ,
        "text/javascript; charset=utf-8",
        "public, max-age=31536000, immutable",
    )
}

/// An embedded gzip member as a 200: as it is when `headers` accept gzip, decompressed otherwise.
fn encoded(
    headers: &HeaderMap,
    gz: &'static [u8],
    content_type: &'static str,
    cache: &'static str,
) -> Response {
    let (body, encoding) = if accepts_gzip(headers) {
        (gz.to_vec(), Some("gzip"))
    } else {
        match gunzip(gz) {
            Ok(body) => (body, None),
            Err(e) => {
                tracing::error!(error = %e, content_type, "an embedded body does not decompress");
                return ApiError::Internal.into_response();
            }
        }
    };
    let mut response = response::raw(StatusCode::OK, content_type, body, Some(cache));
    let headers = response.headers_mut();
    headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(encoding) = encoding {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    response
}

/// The reference's operations.
pub fn router<S: ControlStore, Q: QueueStats + 'static>() -> Api<AppState<S, Q>> {
    operations![openapi, page, redoc]
}

/// The bodies of the page's inline `<script>` elements (those without attributes).
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    html.split("<script>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</script>").map(|(script, _)| script))
}

/// Whether `Accept-Encoding` allows gzip: `gzip` (or `x-gzip`) with a non-zero weight, or else `*`
/// with one. Without the header the body goes out as it is.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    let items = headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for item in items {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let weight = parts
            .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok());
        let allowed = weight.is_some_and(|q| q > 0.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(allowed);
        } else if coding == "*" {
            any = Some(allowed);
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// A body as it was before compression; flate2 checks the member's CRC-32 and length.
fn gunzip(gz: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::with_capacity(gz.len() * 4);
    flate2::read::GzDecoder::new(gz).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use axum::http::header::CONTENT_TYPE;
    use tributary_core::ports::QueueDepth;

    use super::*;
    use crate::testing::{MemStore, Req, call, deps};

    fn accepting(encoding: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(encoding) = encoding {
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(encoding).unwrap());
        }
        headers
    }

    async fn body(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    fn bundle() -> String {
        String::from_utf8(gunzip(REDOC_JS_GZ).unwrap()).unwrap()
    }

    #[test]
    fn the_page_loads_the_pinned_redoc_from_its_versioned_path() {
        let pins: serde_json::Value =
            serde_json::from_str(include_str!("../../../../infra/local/docs/package.json"))
                .unwrap();
        let version = pins["dependencies"]["redoc"].as_str().unwrap();
        assert_eq!(REDOC_JS, format!("/docs/redoc-{version}.standalone.js"));
        assert!(DOCS_HTML.contains(&format!(r#"<script src="{REDOC_JS}"></script>"#)));
        assert!(DOCS_HTML.contains("Redoc.init('/v1/openapi.json'"));
        // Nothing from another origin.
        assert!(!DOCS_HTML.contains("http:") && !DOCS_HTML.contains("https:"));
    }

    #[test]
    fn the_embedded_bundle_is_redoc_s_javascript() {
        let js = bundle();
        assert!(
            js.starts_with("/*! For license information"),
            "{}",
            &js[..80]
        );
        assert!(js.contains("Redoc"));
        assert!(
            js.trim_end()
                .ends_with("//# sourceMappingURL=redoc.standalone.js.map")
        );
    }

    #[tokio::test]
    async fn the_page_may_run_its_own_script_and_reach_only_its_origin() {
        let d = deps(MemStore::default(), Ok(QueueDepth::default()));
        let res = call(&d, Req::new("GET", "/docs")).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.headers["content-type"], "text/html; charset=utf-8");
        let policy = res.headers["content-security-policy"].to_str().unwrap();
        let scripts: Vec<&str> = inline_scripts(DOCS_HTML).collect();
        assert_eq!(scripts.len(), 1, "one inline script");
        let hash = BASE64.encode(Sha256::digest(scripts[0]));
        assert!(
            policy.contains(&format!("script-src 'self' 'sha256-{hash}';")),
            "{policy}"
        );
        for directive in [
            "default-src 'none'",
            "connect-src 'self'",
            "img-src 'self' data:",
        ] {
            assert!(policy.contains(directive), "{policy}");
        }
    }

    #[tokio::test]
    async fn the_bundle_is_sent_gzip_encoded_to_whoever_accepts_gzip() {
        for accept in [
            "gzip",
            "gzip, deflate, br, zstd",
            "br;q=1.0, GZIP;q=0.5",
            "x-gzip",
            "*",
            "identity;q=0.5, *;q=0.1",
        ] {
            let res = redoc(Public, accepting(Some(accept))).await;
            assert_eq!(res.status(), StatusCode::OK);
            let headers = res.headers();
            assert_eq!(headers[CONTENT_ENCODING], "gzip", "{accept}");
            assert_eq!(headers[CONTENT_TYPE], "text/javascript; charset=utf-8");
            assert_eq!(headers[VARY], "accept-encoding");
            assert_eq!(body(res).await, REDOC_JS_GZ, "{accept}");
        }
        // Through the router, public and cached for good.
        let d = deps(MemStore::default(), Ok(QueueDepth::default()));
        let res = call(
            &d,
            Req::new("GET", REDOC_JS).header("accept-encoding", "gzip"),
        )
        .await;
        assert_eq!(res.status, 200);
        assert_eq!(res.headers["content-encoding"], "gzip");
        assert_eq!(
            res.headers["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            res.headers["cache-control"],
            "public, max-age=31536000, immutable"
        );
    }

    #[tokio::test]
    async fn the_bundle_is_sent_decompressed_to_whoever_does_not_accept_gzip() {
        let js = bundle();
        for accept in [
            None,
            Some("identity"),
            Some("br, deflate"),
            Some("gzip;q=0"),
            Some("gzip;q=0.000, *"),
            Some("*;q=0"),
            Some("gzip;q=nope"),
        ] {
            let res = redoc(Public, accepting(accept)).await;
            assert_eq!(res.status(), StatusCode::OK);
            assert!(res.headers().get(CONTENT_ENCODING).is_none(), "{accept:?}");
            assert_eq!(
                res.headers()[CONTENT_TYPE],
                "text/javascript; charset=utf-8"
            );
            assert_eq!(body(res).await, js.as_bytes(), "{accept:?}");
        }
        let d = deps(MemStore::default(), Ok(QueueDepth::default()));
        let res = call(&d, Req::new("GET", REDOC_JS)).await;
        assert_eq!(res.status, 200);
        assert!(res.headers.get("content-encoding").is_none());
        assert_eq!(
            res.headers["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(res.body.as_str(), Some(js.as_str()));
    }

    /// The positions in `json` of the paths' keys, in the order `json` lists them.
    fn path_order(json: &str, paths: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
        let mut found: Vec<(usize, String)> = paths
            .keys()
            .map(|path| {
                let key = format!("{}:", serde_json::to_string(path).unwrap());
                let compact = json.find(&key);
                let pretty = json.find(&key.replace(':', ": "));
                (
                    compact.or(pretty).expect("every path is a key"),
                    path.clone(),
                )
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, path)| path).collect()
    }

    #[tokio::test]
    async fn the_document_is_served_without_whitespace_and_gzip_encoded() {
        use crate::openapi::DOCUMENT;
        let checked_in: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        let d = deps(MemStore::default(), Ok(QueueDepth::default()));

        let res = call(
            &d,
            Req::new("GET", "/v1/openapi.json").header("accept-encoding", "gzip, br"),
        )
        .await;
        assert_eq!(res.status, 200);
        assert_eq!(res.headers["content-encoding"], "gzip");
        assert_eq!(res.headers["vary"], "accept-encoding");
        assert_eq!(res.headers["content-type"], "application/json");
        assert_eq!(res.headers["cache-control"], "public, max-age=300");
        let res = openapi(Public, accepting(Some("gzip"))).await;
        assert_eq!(body(res).await, OPENAPI_JSON_GZ);
        let served = String::from_utf8(gunzip(OPENAPI_JSON_GZ).unwrap()).unwrap();

        // The same document: the same values, every token and nothing else (a compact
        // serialization has the same length in any key order), and the paths in their order.
        let value: serde_json::Value = serde_json::from_str(&served).unwrap();
        assert_eq!(value, checked_in);
        assert_eq!(served.len(), checked_in.to_string().len());
        assert!(
            served.len() < DOCUMENT.len() * 2 / 3,
            "{} bytes",
            served.len()
        );
        let paths = checked_in["paths"].as_object().unwrap();
        assert_eq!(path_order(&served, paths), path_order(DOCUMENT, paths));

        // Decompressed for a client that does not take gzip.
        let res = call(&d, Req::new("GET", "/v1/openapi.json")).await;
        assert_eq!(res.status, 200);
        assert!(res.headers.get("content-encoding").is_none());
        assert_eq!(res.headers["content-type"], "application/json");
        assert_eq!(res.body, checked_in);
    }

    #[test]
    fn a_damaged_bundle_does_not_decompress() {
        let mut bundle = REDOC_JS_GZ.to_vec();
        let middle = bundle.len() / 2;
        bundle[middle] ^= 0x10;
        assert!(gunzip(&bundle).is_err());
        let mut trailer = REDOC_JS_GZ.to_vec();
        let crc = trailer.len() - 8;
        trailer[crc] ^= 1;
        assert!(gunzip(&trailer).is_err(), "a wrong CRC-32 is an error");
    }
}
