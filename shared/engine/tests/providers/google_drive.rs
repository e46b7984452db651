//! Google Drive: Bearer OAuth token, `pageToken` from `nextPageToken` (past empty pages, which
//! Drive may answer before the end), Google's 403 `userRateLimitExceeded` as a rate limit,
//! incremental `modifiedTime` in the `q` filter, shared drives included everywhere.

use futures::StreamExt;
use serde_json::json;
use tributary_engine::{ReadOptions, StreamState};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{engine, mocked, query_exactly, read_all, spec};

const TOKEN: &[(&str, &str)] = &[("access_token", "ya29.a0AfH6SMB")];
const Q: &str = "trashed = false and modifiedTime > '2024-05-01T11:55:00Z'";
const FILE_FIELDS: &str =
    "nextPageToken,files(id,name,mimeType,modifiedTime,parents,owners(emailAddress))";
const SHEETS_Q: &str = "mimeType = 'application/vnd.google-apps.spreadsheet' and trashed = false";
const SHEET_FIELDS: &str = "nextPageToken,files(id,name,modifiedTime,webViewLink)";

/// The query of a `files` page: the spec's parameters, the page size, and the token if any.
fn files_query(page_token: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
    let mut q = vec![
        ("q", Q),
        ("orderBy", "modifiedTime"),
        ("fields", FILE_FIELDS),
        ("supportsAllDrives", "true"),
        ("includeItemsFromAllDrives", "true"),
        ("pageSize", "1000"),
    ];
    q.extend(page_token.map(|t| ("pageToken", t)));
    q
}

/// The query of a `spreadsheets` page, shared drives included.
fn sheets_query(page_token: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
    let mut q = vec![
        ("q", SHEETS_Q),
        ("fields", SHEET_FIELDS),
        ("supportsAllDrives", "true"),
        ("includeItemsFromAllDrives", "true"),
        ("pageSize", "1000"),
    ];
    q.extend(page_token.map(|t| ("pageToken", t)));
    q
}

#[tokio::test]
async fn google_drive_files_follow_next_page_token_from_saved_cursor() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/drive/v3/files"))
        .and(header("authorization", "Bearer ya29.a0AfH6SMB"))
        .and(query_exactly(&files_query(None)))
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
        .and(query_exactly(&files_query(Some("~!!~AI9FV7Q"))))
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
        .and(query_exactly(&files_query(Some("~!!~AI9FV7Q"))))
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

/// Spreadsheets in shared drives are listed too (Drive leaves them out unless the request says
/// `supportsAllDrives` and `includeItemsFromAllDrives`), and the read ends on a page without
/// `nextPageToken`.
#[tokio::test]
async fn google_drive_spreadsheets_include_shared_drives_and_stop_without_next_page_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/drive/v3/files"))
        .and(header("authorization", "Bearer ya29.a0AfH6SMB"))
        .and(query_exactly(&sheets_query(None)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "kind": "drive#fileList",
            "nextPageToken": "~!!~SHEETS2",
            "files": [
                {"id": "s1", "name": "Q3", "webViewLink": "https://docs.google.com/spreadsheets/d/s1/edit"},
                {"id": "s2", "name": "Team budget", "webViewLink": "https://docs.google.com/spreadsheets/d/s2/edit"}
            ]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/drive/v3/files"))
        .and(header("authorization", "Bearer ya29.a0AfH6SMB"))
        .and(query_exactly(&sheets_query(Some("~!!~SHEETS2"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "kind": "drive#fileList",
            "files": [{"id": "s3", "name": "Roadmap"}]
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

    assert_eq!(got.ids("id"), ["s1", "s2", "s3"]);
    assert_eq!(got.pages, 2);
}

/// "Partial or empty result pages are possible even before the end of the files list has been
/// reached" (files.list): an empty page that still has a `nextPageToken` does not end the read.
#[tokio::test]
async fn google_drive_follows_an_empty_page_that_has_a_next_page_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/drive/v3/files"))
        .and(query_exactly(&sheets_query(None)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "kind": "drive#fileList",
            "nextPageToken": "~!!~EMPTY1",
            "files": []
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/drive/v3/files"))
        .and(query_exactly(&sheets_query(Some("~!!~EMPTY1"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "kind": "drive#fileList",
            "files": [{"id": "s9", "name": "Late arrival"}]
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

    assert_eq!(got.ids("id"), ["s9"]);
    assert_eq!(got.pages, 2);
}

/// The parent may be a folder of a shared drive, which files.create finds only with
/// `supportsAllDrives=true`.
#[tokio::test]
async fn google_drive_create_spreadsheet_posts_sheets_mime_type() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/drive/v3/files"))
        .and(header("authorization", "Bearer ya29.a0AfH6SMB"))
        .and(query_exactly(&[
            ("fields", "id,name,mimeType,webViewLink"),
            ("supportsAllDrives", "true"),
        ]))
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
