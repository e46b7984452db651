//! Resumable reads against a local mock provider: a read stopped after any page continues in a
//! fresh read from that page's resume point (round-tripped through JSON, as the sync worker stores
//! it) with exactly the pages, requests and checkpoint of an uninterrupted read; resume points
//! hold no credential, and one pointing elsewhere is refused.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tributary_engine::spec::load;
use tributary_engine::{
    Connection, EgressPolicy, Engine, EngineError, HttpConfig, Page, ProviderSpec, ReadOptions,
    ResumeNext, ResumePoint, StreamState,
};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SPEC: &str = r#"
spec_version: 1
id: resumeapi
name: Resume API
docs_url: https://example.com/docs
base_url: https://api.example.com/v1
auth:
  - type: api_key
    credentials: [{name: token, label: Token, secret: true}]
    in: header
    name: Authorization
    value: "Bearer {credentials.token}"
streams:
  - name: cursor
    request: {path: /cursor}
    records: data
    primary_key: [id]
    pagination: {type: cursor, cursor_path: meta.next, param: cursor, page_size: {param: limit, value: 2}}
    sync: incremental
    incremental: {cursor_field: updated, format: unix_seconds, param: {name: since}, lookback_seconds: 60}
  - name: body_cursor
    request: {method: POST, path: /search, body: {filter: open}}
    records: results
    primary_key: [id]
    pagination: {type: cursor, cursor_path: next_cursor, param: start_cursor, in: body, has_more_path: has_more}
  - name: next_body
    request: {path: /next_body}
    records: data
    primary_key: [id]
    pagination: {type: next_url, source: {from: body, path: links.next}, page_size: {param: limit, value: 2}}
    sync: incremental
    incremental: {cursor_field: updated, format: unix_seconds, param: {name: since}, lookback_seconds: 60}
  - name: next_link
    request: {path: /next_link}
    records: ""
    primary_key: [id]
    pagination: {type: next_url, source: {from: link_header}, page_size: {param: limit, value: 2}}
    sync: incremental
    incremental: {cursor_field: updated, format: unix_seconds, param: {name: since}, lookback_seconds: 60}
  - name: offset
    request: {path: /offset}
    records: data
    primary_key: [id]
    pagination: {type: offset, offset_param: offset, page_size: {param: limit, value: 2}}
    sync: incremental
    incremental: {cursor_field: updated, format: unix_seconds, param: {name: since}, lookback_seconds: 60}
  - name: page_number
    request: {path: /page_number}
    records: data
    primary_key: [id]
    pagination: {type: page_number, page_param: page, page_size: {param: per_page, value: 2}}
    sync: incremental
    incremental: {cursor_field: updated, format: unix_seconds, param: {name: since}, lookback_seconds: 60}
  - name: last_id
    request: {path: /last_id}
    records: data
    primary_key: [id]
    pagination: {type: last_id, param: starting_after, has_more_path: has_more, page_size: {param: limit, value: 2}}
    sync: incremental
    incremental: {cursor_field: updated, format: unix_seconds, param: {name: since}, lookback_seconds: 60}
  - name: sparse
    request: {path: /sparse}
    records: data
    primary_key: [id]
    pagination: {type: cursor, cursor_path: next, param: cursor, follow_empty_pages: 1}
  - name: graphql
    request: {method: POST, path: /graphql}
    records: data.items.nodes
    primary_key: [id]
    connector:
      kind: graphql_cursor
      options:
        query: "query Items($first: Int!, $after: String) { items(first: $first, after: $after) { pageInfo { hasNextPage endCursor } nodes { id updated } } }"
        connection_path: data.items
        page_size: 2
actions: []
"#;

/// Auth in the query, and a provider that echoes the key (and, on another stream, the key under
/// another name) in its next-page URLs.
const QUERY_KEY_SPEC: &str = r#"
spec_version: 1
id: querykey
name: Query Key API
docs_url: https://example.com/docs
base_url: https://api.example.com/v1
auth:
  - type: api_key
    credentials: [{name: key, label: Key, secret: true}]
    in: query
    name: api_key
    value: "{credentials.key}"
streams:
  - name: echoes_key
    request: {path: /echoes_key}
    records: data
    primary_key: [id]
    pagination: {type: next_url, source: {from: body, path: links.next}}
  - name: echoes_key_elsewhere
    request: {path: /echoes_key_elsewhere}
    records: data
    primary_key: [id]
    pagination: {type: next_url, source: {from: body, path: links.next}}
actions: []
"#;

const SECRET: &str = "sk_live_resume_0123456789";

/// The lower bound every read of the incremental streams sends: the saved cursor below minus the
/// spec's minute of look-back.
const SINCE: &str = "1700000000";

fn state() -> StreamState {
    StreamState {
        cursor: Some("1700000060".into()),
    }
}

/// A state saved since the pass began, which a continuation must not use: its lower bound and
/// checkpoint come from the resume point.
fn moved_state() -> StreamState {
    StreamState {
        cursor: Some("1700005000".into()),
    }
}

/// Seven records, two a page: four pages. The greatest cursor value is on the first page, so a
/// continuation that forgot it would end with another checkpoint.
fn record(i: usize) -> Value {
    let updated = [100, 900, 200, 300, 400, 500, 600][i - 1];
    json!({"id": format!("r{i}"), "updated": 1_700_000_000 + updated})
}

const RECORDS: usize = 7;
const PER_PAGE: usize = 2;
const PAGES: usize = RECORDS.div_ceil(PER_PAGE);

fn page_records(page: usize) -> Vec<Value> {
    (page * PER_PAGE + 1..=((page + 1) * PER_PAGE).min(RECORDS))
        .map(record)
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Cursor,
    BodyCursor,
    NextBody,
    NextLink,
    Offset,
    PageNumber,
    LastId,
    Sparse,
    Graphql,
    EchoesKey,
    EchoesKeyElsewhere,
}

/// The mock provider: finds the page a request asks for from its parameters (or body), as the
/// real APIs do, and answers 400 to a request it would not expect.
struct Provider {
    kind: Kind,
    base: String,
}

fn bad(why: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({"error": why}))
}

impl Respond for Provider {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let q: HashMap<String, String> = req.url.query_pairs().into_owned().collect();
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let incremental = matches!(
            self.kind,
            Kind::Cursor
                | Kind::NextBody
                | Kind::NextLink
                | Kind::Offset
                | Kind::PageNumber
                | Kind::LastId
        );
        if incremental && q.get("since").map(String::as_str) != Some(SINCE) {
            return bad("since");
        }
        let num = |s: Option<&String>, prefix: &str| -> Option<usize> {
            s.and_then(|s| s.strip_prefix(prefix))
                .and_then(|n| n.parse().ok())
        };
        let page = match self.kind {
            Kind::Cursor => match q.get("cursor") {
                None => Some(0),
                c => num(c, "c"),
            },
            Kind::BodyCursor => match body.get("start_cursor") {
                None => Some(0),
                Some(Value::String(c)) => num(Some(c), "b"),
                Some(_) => None,
            },
            Kind::NextBody | Kind::NextLink | Kind::EchoesKey | Kind::EchoesKeyElsewhere => {
                match q.get("p") {
                    None => Some(0),
                    p => num(p, ""),
                }
            }
            Kind::Offset => num(q.get("offset"), "").map(|o| o / PER_PAGE),
            Kind::PageNumber => num(q.get("page"), "").map(|p| p - 1),
            Kind::LastId => match q.get("starting_after") {
                None => Some(0),
                id => num(id, "r").map(|i| i / PER_PAGE),
            },
            Kind::Sparse => match q.get("cursor") {
                None => Some(0),
                c => num(c, "s"),
            },
            Kind::Graphql => match body.pointer("/variables/after") {
                Some(Value::Null) => Some(0),
                Some(Value::String(c)) => num(Some(c), "g"),
                _ => None,
            },
        };
        let Some(page) = page else {
            return bad("page");
        };
        if self.kind == Kind::Sparse {
            // One record, then empty pages that still carry a cursor.
            let data = if page == 0 { vec![record(1)] } else { vec![] };
            return ResponseTemplate::new(200)
                .set_body_json(json!({"data": data, "next": format!("s{}", page + 1)}));
        }
        if page >= PAGES {
            return bad("past the last page");
        }
        let data = page_records(page);
        let more = page + 1 < PAGES;
        let next_url = |extra: &str| {
            format!(
                "{}/v1/{}?since={SINCE}&limit={PER_PAGE}&p={}{extra}",
                self.base,
                req.url.path().trim_start_matches("/v1/"),
                page + 1
            )
        };
        let ok = ResponseTemplate::new(200);
        match self.kind {
            Kind::Cursor => ok.set_body_json(
                json!({"data": data, "meta": {"next": more.then(|| format!("c{}", page + 1))}}),
            ),
            Kind::BodyCursor => {
                if body.get("filter") != Some(&json!("open")) {
                    return bad("filter");
                }
                ok.set_body_json(json!({"results": data, "has_more": more, "next_cursor": format!("b{}", page + 1)}))
            }
            Kind::NextBody => ok.set_body_json(
                json!({"data": data, "links": {"next": more.then(|| next_url(""))}}),
            ),
            Kind::NextLink => {
                let ok = ok.set_body_json(data);
                if more {
                    ok.insert_header("link", format!("<{}>; rel=\"next\"", next_url("")).as_str())
                } else {
                    ok
                }
            }
            Kind::Offset | Kind::PageNumber => ok.set_body_json(json!({"data": data})),
            Kind::LastId => ok.set_body_json(json!({"data": data, "has_more": more})),
            Kind::Graphql => ok.set_body_json(json!({"data": {"items": {
                "pageInfo": {"hasNextPage": more, "endCursor": format!("g{}", page + 1)},
                "nodes": data
            }}})),
            Kind::EchoesKey => {
                if q.get("api_key").map(String::as_str) != Some(SECRET) {
                    return bad("api_key");
                }
                let next = next_url(&format!("&api_key={SECRET}"));
                ok.set_body_json(json!({"data": data, "links": {"next": more.then_some(next)}}))
            }
            Kind::EchoesKeyElsewhere => {
                let next = next_url(&format!("&session={SECRET}"));
                ok.set_body_json(json!({"data": data, "links": {"next": more.then_some(next)}}))
            }
            Kind::Sparse => unreachable!("answered above"),
        }
    }
}

fn engine() -> Engine {
    Engine::new(HttpConfig {
        egress: EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        max_attempts: 1,
        ..HttpConfig::default()
    })
    .unwrap()
}

fn conn(server: &MockServer) -> Connection {
    Connection {
        credentials: [("token".to_owned(), "t0k".into())].into(),
        base_url: Some(format!("{}/v1", server.uri())),
        ..Connection::default()
    }
}

fn query_key_conn(server: &MockServer) -> Connection {
    Connection {
        credentials: [("key".to_owned(), SECRET.into())].into(),
        base_url: Some(format!("{}/v1", server.uri())),
        ..Connection::default()
    }
}

async fn provider(kind: Kind) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(Provider {
            kind,
            base: server.uri(),
        })
        .mount(&server)
        .await;
    server
}

/// Reads at most `limit` pages, then drops the read as a Lambda out of time would; stops at the
/// first error.
async fn read(
    spec: &ProviderSpec,
    stream: &str,
    conn: &Connection,
    opts: ReadOptions,
    limit: usize,
) -> (Vec<Page>, Option<EngineError>) {
    let engine = engine();
    let mut s = match engine.read(spec, stream, conn, opts) {
        Ok(s) => s,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut pages = Vec::new();
    while pages.len() < limit {
        match s.next().await {
            Some(Ok(p)) => pages.push(p),
            Some(Err(e)) => return (pages, Some(e)),
            None => break,
        }
    }
    (pages, None)
}

/// What a request asked for: method, URL (with the query the client sent), credentials header and
/// body.
type Sent = (String, String, Option<String>, String);

async fn sent(server: &MockServer) -> Vec<Sent> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.url.to_string(),
                r.headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                String::from_utf8_lossy(&r.body).into_owned(),
            )
        })
        .collect()
}

/// Everything a page tells its reader.
type Seen = (
    u64,
    Vec<String>,
    bool,
    Option<StreamState>,
    Option<ResumePoint>,
);

fn seen(pages: &[Page]) -> Vec<Seen> {
    pages
        .iter()
        .map(|p| {
            (
                p.number,
                p.records.iter().map(|r| r.json().to_owned()).collect(),
                p.last,
                p.checkpoint.clone(),
                p.resume.clone(),
            )
        })
        .collect()
}

/// JSON out and back, as the point is stored between invocations.
fn stored(point: &ResumePoint) -> ResumePoint {
    let text = serde_json::to_string(point).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn resuming(point: ResumePoint, opts: &ReadOptions) -> ReadOptions {
    ReadOptions {
        resume: Some(point),
        state: opts.state.as_ref().map(|_| moved_state()),
        ..opts.clone()
    }
}

/// Reads `stream` whole, then for every page but the last: reads up to it, stops, and resumes from
/// its point in a fresh read. The pages joined and the requests sent must be the whole read's.
/// Returns the whole read's pages.
async fn assert_resumes_after_every_page(
    spec: &ProviderSpec,
    stream: &str,
    kind: Kind,
    conn: impl Fn(&MockServer) -> Connection,
    opts: ReadOptions,
) -> Vec<Page> {
    let server = provider(kind).await;
    let conn = conn(&server);
    let (whole, err) = read(spec, stream, &conn, opts.clone(), usize::MAX).await;
    assert!(err.is_none(), "{stream}: {err:?}");
    let whole_sent = sent(&server).await;
    assert_eq!(
        whole_sent.len(),
        whole.len(),
        "{stream}: one request a page"
    );
    assert!(whole.len() > 2, "{stream}: too few pages to split");

    for k in 1..whole.len() {
        let before = sent(&server).await.len();
        let (head, err) = read(spec, stream, &conn, opts.clone(), k).await;
        assert!(err.is_none(), "{stream}: {err:?}");
        let point = head[k - 1]
            .resume
            .clone()
            .unwrap_or_else(|| panic!("{stream}: page {k} of {} has no resume point", whole.len()));
        let (tail, err) = read(
            spec,
            stream,
            &conn,
            resuming(stored(&point), &opts),
            usize::MAX,
        )
        .await;
        assert!(err.is_none(), "{stream}, resumed after page {k}: {err:?}");

        let split_sent = sent(&server).await.split_off(before);
        assert_eq!(
            split_sent, whole_sent,
            "{stream}, resumed after page {k}: the requests differ from an uninterrupted read's"
        );
        let mut joined = seen(&head);
        joined.extend(seen(&tail));
        assert_eq!(
            joined,
            seen(&whole),
            "{stream}, resumed after page {k}: the pages differ from an uninterrupted read's"
        );
    }
    whole
}

fn incremental() -> ReadOptions {
    ReadOptions {
        state: Some(state()),
        ..ReadOptions::default()
    }
}

fn spec() -> ProviderSpec {
    load(SPEC, "resumeapi.yaml").unwrap()
}

/// The uninterrupted read ends with the greatest `updated`, which is on its first page.
fn assert_final_checkpoint(pages: &[Page]) {
    let last = pages.last().unwrap();
    assert!(last.last && last.resume.is_none());
    assert_eq!(
        last.checkpoint,
        Some(StreamState {
            cursor: Some("1700000900".into())
        })
    );
}

#[tokio::test]
async fn a_cursor_read_resumes_after_any_page_like_an_uninterrupted_one() {
    let pages =
        assert_resumes_after_every_page(&spec(), "cursor", Kind::Cursor, conn, incremental()).await;
    assert_eq!(pages.len(), PAGES);
    assert_final_checkpoint(&pages);
}

#[tokio::test]
async fn a_cursor_sent_in_the_body_resumes_after_any_page() {
    let pages = assert_resumes_after_every_page(
        &spec(),
        "body_cursor",
        Kind::BodyCursor,
        conn,
        ReadOptions::default(),
    )
    .await;
    assert_eq!(pages.len(), PAGES);
}

#[tokio::test]
async fn a_next_url_read_from_the_body_resumes_after_any_page() {
    let pages =
        assert_resumes_after_every_page(&spec(), "next_body", Kind::NextBody, conn, incremental())
            .await;
    assert_eq!(pages.len(), PAGES);
    assert_final_checkpoint(&pages);
}

#[tokio::test]
async fn a_next_url_read_from_the_link_header_resumes_after_any_page() {
    let pages =
        assert_resumes_after_every_page(&spec(), "next_link", Kind::NextLink, conn, incremental())
            .await;
    assert_eq!(pages.len(), PAGES);
    assert_final_checkpoint(&pages);
}

#[tokio::test]
async fn an_offset_read_resumes_after_any_page() {
    let pages =
        assert_resumes_after_every_page(&spec(), "offset", Kind::Offset, conn, incremental()).await;
    assert_eq!(pages.len(), PAGES);
    assert_final_checkpoint(&pages);
}

#[tokio::test]
async fn a_page_number_read_resumes_after_any_page() {
    let pages = assert_resumes_after_every_page(
        &spec(),
        "page_number",
        Kind::PageNumber,
        conn,
        incremental(),
    )
    .await;
    assert_eq!(pages.len(), PAGES);
    assert_final_checkpoint(&pages);
}

#[tokio::test]
async fn a_last_id_read_resumes_after_any_page() {
    let pages =
        assert_resumes_after_every_page(&spec(), "last_id", Kind::LastId, conn, incremental())
            .await;
    assert_eq!(pages.len(), PAGES);
    assert_final_checkpoint(&pages);
}

#[tokio::test]
async fn the_graphql_connector_resumes_after_any_page() {
    let pages = assert_resumes_after_every_page(
        &spec(),
        "graphql",
        Kind::Graphql,
        conn,
        ReadOptions::default(),
    )
    .await;
    assert_eq!(pages.len(), PAGES);
    assert_eq!(
        pages[0].resume.as_ref().map(ResumePoint::next),
        Some(&ResumeNext::Cursor("g1".into()))
    );
}

/// `max_records` counts the records of the whole pass, across invocations.
#[tokio::test]
async fn a_resumed_read_stops_at_max_records_counted_from_the_start_of_the_pass() {
    let opts = ReadOptions {
        max_records: Some(5),
        ..incremental()
    };
    let pages = assert_resumes_after_every_page(&spec(), "cursor", Kind::Cursor, conn, opts).await;
    let counts: Vec<usize> = pages.iter().map(|p| p.records.len()).collect();
    assert_eq!(counts, [2, 2, 1]);
    // A pass cut short by the cap saves no checkpoint.
    assert!(pages.iter().all(|p| p.checkpoint.is_none()));
}

/// The empty pages read before the point count towards `follow_empty_pages` after it.
#[tokio::test]
async fn a_resumed_read_counts_the_empty_pages_before_its_point() {
    let spec = spec();
    let server = provider(Kind::Sparse).await;
    let conn = conn(&server);
    let (whole, err) = read(&spec, "sparse", &conn, ReadOptions::default(), usize::MAX).await;
    // One record, one empty page followed, and the second empty page with a cursor fails the read.
    assert_eq!(whole.len(), 2);
    assert!(
        matches!(err, Some(EngineError::Malformed { .. })),
        "{err:?}"
    );
    let whole_sent = sent(&server).await;
    assert_eq!(whole_sent.len(), 3);

    let before = whole_sent.len();
    let (head, _) = read(&spec, "sparse", &conn, ReadOptions::default(), 2).await;
    let point = stored(head[1].resume.as_ref().unwrap());
    let (tail, err) = read(
        &spec,
        "sparse",
        &conn,
        ReadOptions {
            resume: Some(point),
            ..ReadOptions::default()
        },
        usize::MAX,
    )
    .await;

    assert!(tail.is_empty());
    assert!(
        matches!(err, Some(EngineError::Malformed { .. })),
        "{err:?}"
    );
    assert_eq!(sent(&server).await.split_off(before), whole_sent);
}

/// The key the auth mode puts in the query is dropped from a next URL that echoes it: the point
/// does not hold it, and every request (uninterrupted or resumed) carries it once, added by the
/// client.
#[tokio::test]
async fn a_next_url_echoing_the_query_key_is_stored_without_it_and_resumed_with_it() {
    let spec = load(QUERY_KEY_SPEC, "querykey.yaml").unwrap();
    assert_resumes_after_every_page(
        &spec,
        "echoes_key",
        Kind::EchoesKey,
        query_key_conn,
        ReadOptions::default(),
    )
    .await;

    let server = provider(Kind::EchoesKey).await;
    let (pages, err) = read(
        &spec,
        "echoes_key",
        &query_key_conn(&server),
        ReadOptions::default(),
        usize::MAX,
    )
    .await;
    assert!(err.is_none(), "{err:?}");
    for p in &pages[..pages.len() - 1] {
        let point = p.resume.as_ref().unwrap();
        let text = serde_json::to_string(point).unwrap();
        assert!(!text.contains(SECRET), "credential stored: {text}");
        let ResumeNext::Url(u) = point.next() else {
            panic!("{point:?}")
        };
        assert!(!u.contains("api_key"), "{u}");
    }
    for (_, url, _, _) in sent(&server).await {
        let url = url::Url::parse(&url).unwrap();
        let keys: Vec<_> = url
            .query_pairs()
            .filter(|(k, _)| k == "api_key")
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(keys, [SECRET], "{url}");
    }
}

/// A credential the provider echoes where the auth mode does not put it cannot be stripped
/// safely: that page offers no resume point rather than store it.
#[tokio::test]
async fn a_position_holding_a_credential_elsewhere_is_not_offered() {
    let spec = load(QUERY_KEY_SPEC, "querykey.yaml").unwrap();
    let server = provider(Kind::EchoesKeyElsewhere).await;
    let (pages, err) = read(
        &spec,
        "echoes_key_elsewhere",
        &query_key_conn(&server),
        ReadOptions::default(),
        usize::MAX,
    )
    .await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(pages.len(), PAGES);
    assert!(pages.iter().all(|p| p.resume.is_none()));
}

/// A point whose next URL was changed to another origin is refused before anything is sent:
/// the credentials would go with the request.
#[tokio::test]
async fn a_resume_point_for_another_origin_is_refused() {
    let spec = spec();
    let server = provider(Kind::NextBody).await;
    let elsewhere = MockServer::start().await;
    let conn = conn(&server);
    let (head, _) = read(&spec, "next_body", &conn, incremental(), 1).await;
    let text = serde_json::to_string(head[0].resume.as_ref().unwrap()).unwrap();
    assert!(text.contains(&server.uri()), "{text}");
    let tampered: ResumePoint =
        serde_json::from_str(&text.replace(&server.uri(), &elsewhere.uri())).unwrap();
    let before = sent(&server).await.len();

    let (pages, err) = read(
        &spec,
        "next_body",
        &conn,
        ReadOptions {
            resume: Some(tampered),
            ..incremental()
        },
        usize::MAX,
    )
    .await;

    assert!(pages.is_empty());
    assert!(matches!(err, Some(EngineError::Resume(_))), "{err:?}");
    assert!(err.unwrap().to_string().contains("another origin"));
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
    assert_eq!(sent(&server).await.len(), before);
}

/// A point made for another pagination (the spec changed between invocations) is refused, not
/// guessed at, and nothing is sent.
#[tokio::test]
async fn a_resume_point_of_another_pagination_is_refused() {
    let spec = spec();
    let offsets = provider(Kind::Offset).await;
    let (head, _) = read(&spec, "offset", &conn(&offsets), incremental(), 1).await;
    let offset_point = stored(head[0].resume.as_ref().unwrap());
    assert_eq!(offset_point.next(), &ResumeNext::Offset(2));
    // A next URL of the same origin, which the read could send to if it did not check.
    let urls = provider(Kind::NextBody).await;
    let (head, _) = read(&spec, "next_body", &conn(&urls), incremental(), 1).await;
    let url_point = stored(head[0].resume.as_ref().unwrap());
    let before = (sent(&offsets).await.len(), sent(&urls).await.len());

    for (point, server, stream) in [
        (&offset_point, &offsets, "cursor"),
        (&offset_point, &offsets, "next_body"),
        (&offset_point, &offsets, "graphql"),
        (&offset_point, &offsets, "body_cursor"),
        (&url_point, &urls, "cursor"),
        (&url_point, &urls, "offset"),
    ] {
        let (pages, err) = read(
            &spec,
            stream,
            &conn(server),
            ReadOptions {
                resume: Some(point.clone()),
                ..incremental()
            },
            usize::MAX,
        )
        .await;
        assert!(pages.is_empty(), "{stream}");
        assert!(
            matches!(err, Some(EngineError::Resume(_))),
            "{stream}: {err:?}"
        );
    }
    assert_eq!(
        (sent(&offsets).await.len(), sent(&urls).await.len()),
        before
    );
}
