//! Google Drive: Bearer OAuth token, `pageToken` from `nextPageToken`, Google's 403
//! `userRateLimitExceeded` as a rate limit, incremental `modifiedTime` in the `q` filter.

use futures::StreamExt;
use serde_json::json;
use tributary_engine::{ReadOptions, StreamState};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{engine, mocked, read_all, spec};

const TOKEN: &[(&str, &str)] = &[("access_token", "ya29.a0AfH6SMB")];
const Q: &str = "trashed = false and modifiedTime > '2024-05-01T11:55:00Z'";

#[tokio::test]
async fn google_drive_files_follow_next_page_token_from_saved_cursor() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/drive/v3/files"))
        .and(header("authorization", "Bearer ya29.a0AfH6SMB"))
        .and(query_param("q", Q))
        .and(query_param("pageSize", "1000"))
        .and(query_param_is_missing("pageToken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "kind": "drive#fileList",
            "nextPageToken": "~!!~AI9FV7Q",
            "files": [
                {"id": "1a", "name": "Plan", "modifiedTime": "2024-05-01T12:00:00.000Z"},
                {"id": "1b", "name": "Budget", "modifiedTime": "2024-05-02T08:30:00.000Z"}
            ]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/drive/v3/files"))
        .and(query_param("pageToken", "~!!~AI9FV7Q"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {
            "code": 403,
            "message": "User rate limit exceeded.",
            "errors": [{"domain": "usageLimits", "reason": "userRateLimitExceeded", "message": "User rate limit exceeded."}]
        }})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/drive/v3/files"))
        .and(header("authorization", "Bearer ya29.a0AfH6SMB"))
        .and(query_param("q", Q))
        .and(query_param("pageSize", "1000"))
        .and(query_param("pageToken", "~!!~AI9FV7Q"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "kind": "drive#fileList",
            "files": [{"id": "1c", "name": "Notes", "modifiedTime": "2024-05-03T09:00:00.000Z"}]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let spec = spec("google-drive");
    let engine = engine();
    let conn = mocked(&server, "/drive/v3", &[], TOKEN);
    let state = StreamState {
        cursor: Some("2024-05-01T12:00:00Z".into()),
    };
    let mut pages = engine
        .read(
            &spec,
            "files",
            &conn,
            ReadOptions {
                state: Some(state),
                ..ReadOptions::default()
            },
        )
        .unwrap();
    let (mut ids, mut checkpoint) = (Vec::new(), None);
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        ids.extend(
            page.records
                .iter()
                .map(|r| r.to_value().unwrap()["id"].clone()),
        );
        checkpoint = page.checkpoint.or(checkpoint);
    }

    assert_eq!(ids, [json!("1a"), json!("1b"), json!("1c")]);
    assert_eq!(
        engine
            .client()
            .stats()
            .retries
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        checkpoint.and_then(|c| c.cursor).as_deref(),
        Some("2024-05-03T09:00:00Z")
    );
}

#[tokio::test]
async fn google_drive_spreadsheets_stop_without_next_page_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/drive/v3/files"))
        .and(query_param(
            "q",
            "mimeType = 'application/vnd.google-apps.spreadsheet' and trashed = false",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "files": [{"id": "s1", "name": "Q3"}]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let got = read_all(
        &engine(),
        &spec("google-drive"),
        "spreadsheets",
        &mocked(&server, "/drive/v3", &[], TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("id"), ["s1"]);
}

#[tokio::test]
async fn google_drive_create_spreadsheet_posts_sheets_mime_type() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/drive/v3/files"))
        .and(header("authorization", "Bearer ya29.a0AfH6SMB"))
        .and(query_param("fields", "id,name,mimeType,webViewLink"))
        .and(body_json(json!({
            "name": "Forecast",
            "mimeType": "application/vnd.google-apps.spreadsheet",
            "parents": ["0BwwA4oUTeiV1TGRPeTVjaWRDY1E"]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms",
            "name": "Forecast",
            "mimeType": "application/vnd.google-apps.spreadsheet"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("google-drive"),
            "create_spreadsheet",
            &mocked(&server, "/drive/v3", &[], TOKEN),
            &json!({"name": "Forecast", "parents": ["0BwwA4oUTeiV1TGRPeTVjaWRDY1E"]}),
        )
        .await
        .unwrap();

    assert_eq!(out["id"], "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms");
}
