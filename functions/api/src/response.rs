//! Successful answers: JSON bodies, created resources and raw documents. Anything that cannot be
//! built is a 500 problem, never an empty 200.

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::problem::ApiError;

/// 200 with a JSON body.
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        json(StatusCode::OK, &self.0)
    }
}

/// 201 with a JSON body, located at `location`.
pub struct Created<T> {
    /// Where the new resource lives.
    pub location: String,
    /// Its representation.
    pub body: T,
}

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        let Ok(location) = HeaderValue::from_str(&self.location) else {
            tracing::error!("a created resource's location is not a header value");
            return ApiError::Internal.into_response();
        };
        let mut response = json(StatusCode::CREATED, &self.body);
        if response.status() == StatusCode::CREATED {
            response.headers_mut().insert(LOCATION, location);
        }
        response
    }
}

/// 202 with a JSON body: the work goes on.
pub struct Accepted<T>(pub T);

impl<T: Serialize> IntoResponse for Accepted<T> {
    fn into_response(self) -> Response {
        json(StatusCode::ACCEPTED, &self.0)
    }
}

/// 202 with a JSON body, located at `location`: the work goes on there.
pub struct AcceptedAt<T> {
    /// Where to follow the work.
    pub location: String,
    /// Its representation now.
    pub body: T,
}

impl<T: Serialize> IntoResponse for AcceptedAt<T> {
    fn into_response(self) -> Response {
        let Ok(location) = HeaderValue::from_str(&self.location) else {
            tracing::error!("an accepted resource's location is not a header value");
            return ApiError::Internal.into_response();
        };
        let mut response = json(StatusCode::ACCEPTED, &self.body);
        if response.status() == StatusCode::ACCEPTED {
            response.headers_mut().insert(LOCATION, location);
        }
        response
    }
}

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => raw(status, "application/json", bytes, None),
        Err(e) => {
            tracing::error!(error = %e, "response serialization failed");
            ApiError::Internal.into_response()
        }
    }
}

/// A response with a body of any (static) content type, cached as `cache` says (`no-store` when
/// `None`, which the router's edge also applies to every answer that does not say).
pub fn raw(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    cache: Option<&'static str>,
) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(cache.unwrap_or("no-store")),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    async fn problem_code(response: Response) -> (StatusCode, String, serde_json::Value) {
        let status = response.status();
        let content_type = response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, content_type, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_body_that_cannot_be_serialized_is_a_500_problem_not_an_empty_200() {
        // JSON object keys must be strings.
        let unserializable = HashMap::from([((1, 2), "x")]);
        let (status, content_type, body) = problem_code(Json(unserializable).into_response()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["code"], "internal_error");
    }

    #[tokio::test]
    async fn a_location_that_is_no_header_value_is_a_500_problem() {
        let created = Created {
            location: "/v1/keys/\n".into(),
            body: serde_json::json!({"id": "x"}),
        };
        let (status, _, body) = problem_code(created.into_response()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], "internal_error");
    }

    #[test]
    fn created_answers_201_with_its_location() {
        let response = Created {
            location: "/v1/keys/key_1".into(),
            body: serde_json::json!({"id": "key_1"}),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[LOCATION], "/v1/keys/key_1");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    }
}
