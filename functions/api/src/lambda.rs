//! The router served by `lambda_http`, with the answers converted to Lambda's text or binary
//! bodies here rather than by `lambda_http`.
//!
//! `lambda_http` converts a text body by decoding it from the charset its `Content-Type` names,
//! through `encoding_rs`: that makes the decoders of some forty legacy encodings (and about 150 KB
//! of their tables, nearly incompressible) part of the binary. Every body this API writes is UTF-8
//! (JSON, problem+json, HTML it renders) or binary (the gzip-encoded Redoc bundle), so the
//! conversion needs no decoder: a body is sent as text when `lambda_http` would send it as text
//! and it is valid UTF-8, and as binary otherwise (base64 in the Lambda answer), byte for byte the
//! same to the client.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

use axum::Router;
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::response::Response;
use lambda_http::{Body, IntoResponse};
use tower::ServiceExt as _;

use crate::problem::ApiError;

/// Serves `router` until the Lambda runtime stops.
pub async fn run(router: Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(tower::service_fn(move |request: lambda_http::Request| {
        let router = router.clone();
        async move {
            let response = router.oneshot(request.map(axum::body::Body::new)).await?;
            Ok::<_, Infallible>(Answer(response))
        }
    }))
    .await
}

/// A router's answer, on its way to the Lambda runtime.
pub struct Answer(pub Response);

impl IntoResponse for Answer {
    fn into_response(self) -> Pin<Box<dyn Future<Output = lambda_http::Response<Body>> + Send>> {
        Box::pin(async move { to_lambda(self.0).await })
    }
}

/// The answer with its body read; a body that fails to read is a 500 problem, not a short answer.
pub async fn to_lambda(response: Response) -> lambda_http::Response<Body> {
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => {
            let body = lambda_body(&parts.headers, bytes.to_vec());
            lambda_http::Response::from_parts(parts, body)
        }
        Err(error) => {
            tracing::error!(error = %error, "the answer's body could not be read");
            let (parts, body) = ApiError::Internal.to_response(None).into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let body = lambda_body(&parts.headers, bytes.to_vec());
            lambda_http::Response::from_parts(parts, body)
        }
    }
}

/// Text for the content types `lambda_http` sends as text (and for an answer without one), when
/// not content-encoded and valid UTF-8; binary otherwise.
fn lambda_body(headers: &HeaderMap, bytes: Vec<u8>) -> Body {
    if bytes.is_empty() {
        return Body::Empty;
    }
    let textual = !headers.contains_key(CONTENT_ENCODING)
        && headers
            .get(CONTENT_TYPE)
            .map_or(Some(true), |value| value.to_str().ok().map(is_text))
            .unwrap_or(false);
    if !textual {
        return Body::Binary(bytes);
    }
    match String::from_utf8(bytes) {
        Ok(text) => Body::Text(text),
        Err(not_utf8) => Body::Binary(not_utf8.into_bytes()),
    }
}

/// `lambda_http`'s rule: these prefixes, or a structured-syntax suffix on the media type; and
/// newline-delimited JSON (`/v1/records` streams), which `lambda_http` would send as base64: its
/// answers are sized to stay under Lambda's 6 MB response limit as text, and base64 would add a
/// third.
fn is_text(content_type: &str) -> bool {
    const PREFIXES: [&str; 6] = [
        "text",
        "application/json",
        "application/javascript",
        "application/xml",
        "application/yaml",
        "application/x-ndjson",
    ];
    const SUFFIXES: [&str; 3] = ["+xml", "+yaml", "+json"];
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    PREFIXES.iter().any(|p| content_type.starts_with(p))
        || SUFFIXES.iter().any(|s| media_type.ends_with(s))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, StatusCode};
    use axum::routing::get;

    use super::*;

    fn answer(content_type: Option<&str>, encoding: Option<&str>, body: Vec<u8>) -> Response {
        let mut response = Response::new(axum::body::Body::from(body));
        if let Some(t) = content_type {
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_str(t).unwrap());
        }
        if let Some(e) = encoding {
            response
                .headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_str(e).unwrap());
        }
        response
    }

    async fn body_of(response: Response) -> Body {
        to_lambda(response).await.into_body()
    }

    /// Whatever the conversion chooses, the client receives the bytes the router wrote: text as
    /// text, everything else (gzip, bytes that are not UTF-8, binary types) as binary.
    #[tokio::test]
    async fn bodies_are_text_or_binary_as_lambda_http_would_send_them_and_never_altered() {
        let json = br#"{"caf\xc3\xa9":1}"#.to_vec();
        for (content_type, encoding, bytes, text) in [
            (Some("application/json"), None, json.clone(), true),
            (Some("application/problem+json"), None, json.clone(), true),
            (
                Some("text/html; charset=utf-8"),
                None,
                b"<p>hi</p>".to_vec(),
                true,
            ),
            (None, None, b"plain".to_vec(), true),
            (
                Some("application/javascript"),
                Some("gzip"),
                vec![0x1f, 0x8b, 8, 0],
                false,
            ),
            (Some("text/plain"), None, vec![0xff, 0xfe, b'a'], false),
            (Some("image/png"), None, b"PNG".to_vec(), false),
            (
                Some("application/x-ndjson"),
                None,
                b"{\"a\":1}\n{\"a\":2}\n".to_vec(),
                true,
            ),
            (
                Some("text/plain; charset=iso-8859-1"),
                None,
                vec![0xe9],
                false,
            ),
        ] {
            match body_of(answer(content_type, encoding, bytes.clone())).await {
                Body::Text(t) => {
                    assert!(text, "{content_type:?} {encoding:?} sent as text");
                    assert_eq!(t.into_bytes(), bytes);
                }
                Body::Binary(b) => {
                    assert!(!text, "{content_type:?} {encoding:?} sent as binary");
                    assert_eq!(b, bytes);
                }
                Body::Empty => panic!("{content_type:?}: empty"),
                _ => panic!("{content_type:?}: unknown body"),
            }
        }
        assert!(matches!(
            body_of(answer(Some("application/json"), None, Vec::new())).await,
            Body::Empty
        ));
    }

    /// A body that fails while it is read is answered as a 500 problem.
    #[tokio::test]
    async fn a_body_that_fails_to_read_is_a_500_problem() {
        let failing = futures::stream::iter([
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"partial\":")),
            Err(std::io::Error::other("the stream broke")),
        ]);
        let mut response = Response::new(axum::body::Body::from_stream(failing));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let answer = to_lambda(response).await;
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let Body::Text(text) = answer.into_body() else {
            panic!("not a text problem");
        };
        let problem: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(problem["code"], "internal_error");
    }

    /// Through the Lambda adapter's service: the router's status, headers and body arrive whole.
    #[tokio::test]
    async fn the_router_answers_through_the_adapter() {
        let router: Router = Router::new().route(
            "/v1/ping",
            get(|| async {
                (
                    StatusCode::ACCEPTED,
                    [(CONTENT_TYPE, "application/json")],
                    "{\"ok\":true}",
                )
            }),
        );
        let request = lambda_http::Request::new(Body::Empty);
        let (mut parts, body) = request.into_parts();
        parts.uri = "/v1/ping".parse().unwrap();
        let response = router
            .oneshot(lambda_http::Request::from_parts(parts, body).map(axum::body::Body::new))
            .await
            .unwrap();
        let answer = Answer(response).into_response().await;
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        assert_eq!(answer.headers()[CONTENT_TYPE], "application/json");
        assert!(matches!(answer.into_body(), Body::Text(t) if t == "{\"ok\":true}"));
    }
}
