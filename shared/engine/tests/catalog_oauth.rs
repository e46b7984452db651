//! Every OAuth provider of the catalog, connected and refreshed against a mock of its token endpoint
//! as its spec describes it: the authorization URL carries the spec's scopes, separator, parameters
//! and PKCE challenge; the code exchange authenticates the client the spec's way (`client_secret_post`
//! or `client_secret_basic`), encodes the body the spec's way (form or JSON, Notion) and repeats the
//! redirect URI and the verifier; the response is read by the spec's paths (values kept as connection
//! configuration included); and a refreshable provider's refresh replaces a rotating refresh token or
//! keeps the stored one when the answer has none.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value, json};
use tributary_engine::oauth::{
    AuthorizationRequest, ClientApp, Grant, Pkce, TokenEndpoint, authorization_url, request_token,
    token_request,
};
use tributary_engine::spec::{AuthMode, OAuth2AuthorizationCode, TokenAuthMethod, TokenEncoding};
use tributary_engine::{HttpClient, HttpConfig, catalog};
use tributary_http::EgressPolicy;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn http() -> HttpClient {
    HttpClient::new(HttpConfig {
        egress: EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
        max_attempts: 2,
        backoff_base: Duration::from_millis(1),
        ..HttpConfig::default()
    })
    .unwrap()
}

/// The template with its origin (templated or not) replaced by `origin`, keeping the path: what the
/// deployment's provider-origin override does.
fn at(origin: &str, template: &str) -> String {
    let after_scheme = template.find("://").map_or(0, |i| i + 3);
    let path = template[after_scheme..]
        .find('/')
        .map_or("", |i| &template[after_scheme + i..]);
    format!("{origin}{path}")
}

/// A value for each connection configuration field, matching its pattern.
fn config_for(spec: &tributary_engine::spec::ProviderSpec) -> BTreeMap<String, String> {
    const CANDIDATES: &[&str] = &[
        "acme",
        "appAAAABBBBCCCCDD",
        "12345",
        "us1",
        "login",
        "https://acme.pipedrive.com",
        "https://acme.my.salesforce.com",
    ];
    spec.connection_config
        .iter()
        .map(|f| {
            let value = match &f.pattern {
                None => "acme",
                Some(p) => {
                    let re = regex_lite::Regex::new(&format!("^(?:{p})$")).unwrap();
                    CANDIDATES
                        .iter()
                        .copied()
                        .find(|c| re.is_match(c))
                        .unwrap_or_else(|| {
                            panic!("{}: no candidate value for `{}`", spec.id, f.name)
                        })
                }
            };
            (f.name.clone(), value.to_owned())
        })
        .collect()
}

/// Sets `value` at the dotted `path` of `object`.
fn put(object: &mut Map<String, Value>, path: &str, value: Value) {
    let path = path.strip_prefix("$.").unwrap_or(path);
    let mut steps = path.split('.').peekable();
    let mut here = object;
    while let Some(step) = steps.next() {
        if steps.peek().is_none() {
            here.insert(step.to_owned(), value);
            return;
        }
        here = here
            .entry(step.to_owned())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .unwrap();
    }
}

/// The token answer the spec's paths read, with the given tokens.
fn answer(oauth: &OAuth2AuthorizationCode, access: &str, refresh: Option<&str>) -> Value {
    let fields = &oauth.token_response;
    let mut body = Map::new();
    put(&mut body, &fields.access_token, json!(access));
    if let Some(refresh) = refresh {
        put(&mut body, &fields.refresh_token, json!(refresh));
    }
    put(&mut body, &fields.expires_in, json!(3600));
    for (name, path) in &fields.connection_config {
        put(
            &mut body,
            path,
            json!(format!("https://{name}.example.com")),
        );
    }
    // Slack-style answers say `ok`; a refusal check must not mistake the answer for one.
    body.entry("token_type").or_insert(json!("bearer"));
    Value::Object(body)
}

/// What the mock token endpoint was sent, as a map of fields, whatever the encoding.
fn fields(req: &Request, encoding: TokenEncoding) -> BTreeMap<String, String> {
    match encoding {
        TokenEncoding::Form => url::form_urlencoded::parse(&req.body)
            .into_owned()
            .collect(),
        TokenEncoding::Json => {
            let json: BTreeMap<String, Value> = serde_json::from_slice(&req.body).unwrap();
            json.into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
                .collect()
        }
    }
}

#[tokio::test]
async fn every_oauth_provider_connects_and_refreshes_against_its_token_endpoint() {
    let mut checked = Vec::new();
    for spec in catalog::load_all().unwrap() {
        let Some(oauth) = spec.auth.iter().find_map(|m| match m {
            AuthMode::OAuth2AuthorizationCode(o) => Some(o),
            _ => None,
        }) else {
            continue;
        };
        let server = MockServer::start().await;
        let mut local = oauth.clone();
        local.authorization_url = at(&server.uri(), &oauth.authorization_url);
        local.token_url = at(&server.uri(), &oauth.token_url);
        let config = config_for(&spec);
        let redirect = Url::parse("https://tributary.example.com/connect/callback").unwrap();
        let pkce = Pkce::from_random(&[7; 32]);
        let app = ClientApp {
            client_id: "client id".into(),
            client_secret: SecretString::from("secret/+=".to_owned()),
        };

        // The authorization URL.
        let url = authorization_url(
            &local,
            &config,
            &AuthorizationRequest {
                client_id: &app.client_id,
                redirect_uri: &redirect,
                state: "st_state",
                scopes: None,
                pkce: oauth.pkce.then_some(&pkce),
            },
        )
        .unwrap_or_else(|e| panic!("{}: {e}", spec.id));
        let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code", "{}", spec.id);
        assert_eq!(q["client_id"], "client id", "{}", spec.id);
        assert_eq!(q["redirect_uri"], redirect.as_str(), "{}", spec.id);
        assert_eq!(q["state"], "st_state", "{}", spec.id);
        if !oauth.scopes.is_empty() {
            assert_eq!(
                q[&oauth.scope_param],
                oauth.scopes.join(&oauth.scope_separator),
                "{}",
                spec.id
            );
        }
        assert_eq!(
            q.get("code_challenge"),
            oauth.pkce.then(|| pkce.challenge()).as_ref(),
            "{}",
            spec.id
        );
        for (name, value) in &oauth.authorization_params {
            assert_eq!(&q[name], value, "{}", spec.id);
        }

        // The token endpoint: checks the client authentication, the encoding and the grant.
        let seen: Arc<Mutex<Vec<BTreeMap<String, String>>>> = Arc::default();
        let (record, spec_id, method_used, encoding, pkce_used) = (
            seen.clone(),
            spec.id.clone(),
            oauth.token_auth_method,
            oauth.token_body,
            oauth.pkce,
        );
        let token_path = Url::parse(&local.token_url).unwrap().path().to_owned();
        let answers = (
            answer(oauth, "at-1", Some("rt-1")),
            answer(oauth, "at-2", oauth.refresh_token_rotates.then_some("rt-2")),
        );
        let verifier = pkce.verifier().expose_secret().to_owned();
        let token_params = oauth.token_params.clone();
        Mock::given(method("POST"))
            .and(path(token_path.as_str()))
            .respond_with(move |req: &Request| {
                let content_type = req
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let expected = match encoding {
                    TokenEncoding::Form => "application/x-www-form-urlencoded",
                    TokenEncoding::Json => "application/json",
                };
                assert_eq!(content_type, expected, "{spec_id}");
                let sent = fields(req, encoding);
                let basic = req
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match method_used {
                    TokenAuthMethod::ClientSecretPost => {
                        assert_eq!(sent["client_id"], "client id", "{spec_id}");
                        assert_eq!(sent["client_secret"], "secret/+=", "{spec_id}");
                        assert!(basic.is_none(), "{spec_id}");
                    }
                    TokenAuthMethod::ClientSecretBasic => {
                        // RFC 6749 2.3.1: each part form-encoded, then Basic.
                        let expected = format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD
                                .encode("client+id:secret%2F%2B%3D")
                        );
                        assert_eq!(basic.as_deref(), Some(expected.as_str()), "{spec_id}");
                        assert!(!sent.contains_key("client_secret"), "{spec_id}");
                    }
                }
                for (name, value) in &token_params {
                    assert_eq!(
                        sent.get(name),
                        Some(value),
                        "{spec_id}: token parameter {name}"
                    );
                }
                let first = sent["grant_type"] == "authorization_code";
                if first {
                    assert_eq!(sent["code"], "the-code", "{spec_id}");
                    assert_eq!(
                        sent["redirect_uri"], "https://tributary.example.com/connect/callback",
                        "{spec_id}"
                    );
                    assert_eq!(
                        sent.get("code_verifier").cloned(),
                        pkce_used.then(|| verifier.clone()),
                        "{spec_id}"
                    );
                } else {
                    assert_eq!(sent["grant_type"], "refresh_token", "{spec_id}");
                    assert_eq!(sent["refresh_token"], "rt-1", "{spec_id}");
                }
                record.lock().unwrap().push(sent);
                let answer = if first { &answers.0 } else { &answers.1 };
                // GitHub (and RFC 6749 servers of its age) answers form-encoded unless asked for
                // JSON: https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps
                // ("By default, the response takes the following form … Accept: application/json").
                let wants_json = req
                    .headers
                    .get("accept")
                    .is_some_and(|v| v.as_bytes() == b"application/json");
                if wants_json {
                    ResponseTemplate::new(200).set_body_json(answer)
                } else {
                    let form: String = url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(
                            answer
                                .as_object()
                                .into_iter()
                                .flatten()
                                .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned()))),
                        )
                        .finish();
                    ResponseTemplate::new(200)
                        .set_body_raw(form, "application/x-www-form-urlencoded")
                }
            })
            .mount(&server)
            .await;

        let http = http();
        let endpoint = TokenEndpoint::from(&local);
        let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let code = SecretString::from("the-code".to_owned());
        let exchange = token_request(
            &endpoint,
            &config,
            &app,
            &Grant::AuthorizationCode {
                code: &code,
                redirect_uri: &redirect,
                pkce: oauth.pkce.then_some(&pkce),
            },
        )
        .unwrap();
        let tokens = request_token(&http, &exchange, &oauth.token_response, now)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", spec.id));
        assert_eq!(tokens.access_token.expose_secret(), "at-1", "{}", spec.id);
        assert_eq!(
            tokens.expires_at,
            Some(now + time::Duration::seconds(3600)),
            "{}",
            spec.id
        );
        for name in oauth.token_response.connection_config.keys() {
            assert_eq!(
                tokens.connection_config[name],
                format!("https://{name}.example.com"),
                "{}",
                spec.id
            );
        }

        if oauth.refreshable {
            let stored = tokens.refresh_token.clone().expect("a refresh token");
            let refresh = token_request(
                &endpoint,
                &config,
                &app,
                &Grant::RefreshToken {
                    refresh_token: &stored,
                },
            )
            .unwrap();
            let refreshed = request_token(&http, &refresh, &oauth.token_response, now)
                .await
                .unwrap_or_else(|e| panic!("{} refresh: {e}", spec.id))
                .keeping_refresh_token(Some(&stored));
            assert_eq!(
                refreshed.access_token.expose_secret(),
                "at-2",
                "{}",
                spec.id
            );
            let kept = if oauth.refresh_token_rotates {
                "rt-2"
            } else {
                "rt-1"
            };
            assert_eq!(
                refreshed
                    .refresh_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned()),
                Some(kept.to_owned()),
                "{}",
                spec.id
            );
        }
        let calls = seen.lock().unwrap().len();
        assert_eq!(calls, if oauth.refreshable { 2 } else { 1 }, "{}", spec.id);
        checked.push(spec.id.clone());
    }
    assert_eq!(
        checked,
        [
            "airtable",
            "asana",
            "github",
            "google-drive",
            "hubspot",
            "intercom",
            "jira",
            "mailchimp",
            "notion",
            "pipedrive",
            "salesforce",
            "shopify",
            "slack",
            "zendesk"
        ],
        "every OAuth provider of the catalog"
    );
}

/// The connection a spec's OAuth mode makes, as the engine binds it.
fn bound_base_url(
    spec: &tributary_engine::spec::ProviderSpec,
    config: BTreeMap<String, String>,
) -> String {
    let conn = tributary_engine::Connection {
        config,
        credentials: BTreeMap::from([("access_token".to_owned(), SecretString::from("at"))]),
        auth_mode: Some("oauth2_authorization_code".into()),
        base_url: None,
    };
    tributary_engine::connection::Bound::new(spec, &conn)
        .unwrap()
        .base_url
        .to_string()
}

#[tokio::test]
async fn every_revocation_is_sent_as_its_spec_says() {
    use tributary_engine::oauth::revoke_request;
    use tributary_engine::spec::{RevokeClientAuth, RevokeStyle, RevokedToken};
    let mut revoking = Vec::new();
    for spec in catalog::load_all().unwrap() {
        for mode in &spec.auth {
            let AuthMode::OAuth2AuthorizationCode(oauth) = mode else {
                continue;
            };
            let Some(revoke) = &oauth.revoke else {
                continue;
            };
            let server = MockServer::start().await;
            Mock::given(wiremock::matchers::any())
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
                .mount(&server)
                .await;
            let mut local = revoke.clone();
            local.url = at(&server.uri(), &revoke.url);
            let app = ClientApp {
                client_id: "client".into(),
                client_secret: SecretString::from("s3cret"),
            };
            let credentials = BTreeMap::from([
                ("access_token".to_owned(), SecretString::from("at-1")),
                ("refresh_token".to_owned(), SecretString::from("rt-1")),
            ]);
            let request =
                revoke_request(&local, &config_for(&spec), Some(&app), &credentials).unwrap();
            http().send(&request).await.unwrap();
            let received = server.received_requests().await.unwrap();
            assert_eq!(received.len(), 1, "{}", spec.id);
            let req = &received[0];
            assert_eq!(req.method.as_str(), revoke.method, "{}", spec.id);
            assert_eq!(
                req.url.path(),
                Url::parse(&local.url.replace(['{', '}'], ""))
                    .unwrap()
                    .path(),
                "{}",
                spec.id
            );
            let token = match revoke.token {
                RevokedToken::RefreshToken => "rt-1",
                RevokedToken::AccessToken => "at-1",
            };
            let form: BTreeMap<String, String> = url::form_urlencoded::parse(&req.body)
                .into_owned()
                .collect();
            let authorization = req
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            match revoke.send {
                RevokeStyle::Form => {
                    assert_eq!(
                        form.get("token").map(String::as_str),
                        Some(token),
                        "{}",
                        spec.id
                    );
                    assert!(form.contains_key("token_type_hint"), "{}", spec.id);
                }
                RevokeStyle::Bearer => {
                    assert_eq!(
                        authorization.as_deref(),
                        Some(format!("Bearer {token}").as_str())
                    );
                }
            }
            match revoke.client_auth {
                RevokeClientAuth::None => {
                    assert!(!form.contains_key("client_secret"), "{}", spec.id);
                }
                RevokeClientAuth::Post => {
                    assert_eq!(form["client_id"], "client", "{}", spec.id);
                    assert_eq!(form["client_secret"], "s3cret", "{}", spec.id);
                }
                RevokeClientAuth::Basic => {
                    let basic = base64::engine::general_purpose::STANDARD.encode("client:s3cret");
                    assert_eq!(authorization, Some(format!("Basic {basic}")), "{}", spec.id);
                }
            }
            revoking.push(spec.id.clone());
        }
    }
    assert_eq!(
        revoking,
        [
            "asana",
            "google-drive",
            "pipedrive",
            "salesforce",
            "slack",
            "zendesk"
        ],
        "the providers whose specs revoke"
    );
}

#[tokio::test]
async fn mailchimp_reads_its_data_center_and_jira_its_cloud_id_after_the_exchange() {
    use tributary_engine::oauth::obtain_config;
    let oauth_of = |id: &str| -> (
        tributary_engine::spec::ProviderSpec,
        OAuth2AuthorizationCode,
    ) {
        let spec = catalog::get(id).unwrap().unwrap();
        let oauth = spec
            .auth
            .iter()
            .find_map(|m| match m {
                AuthMode::OAuth2AuthorizationCode(o) => Some(o.clone()),
                _ => None,
            })
            .unwrap();
        (spec, oauth)
    };
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/oauth2/metadata"))
        .and(wiremock::matchers::header("authorization", "OAuth at-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "dc": "us19", "role": "owner", "accountname": "Acme",
            "api_endpoint": "https://us19.api.mailchimp.com"
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/oauth/token/accessible-resources"))
        .and(wiremock::matchers::header("authorization", "Bearer at-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": "11111111-aaaa", "url": "https://other.atlassian.net", "name": "other", "scopes": []},
            {"id": "22222222-bbbb", "url": "https://acme.atlassian.net", "name": "acme", "scopes": []}
        ])))
        .mount(&server)
        .await;
    let token = SecretString::from("at-1");
    let local = |oauth: &OAuth2AuthorizationCode| {
        let mut requests = oauth.config_requests.clone();
        for r in &mut requests {
            r.url = at(&server.uri(), &r.url);
        }
        requests
    };

    let (mailchimp, oauth) = oauth_of("mailchimp");
    assert_eq!(oauth.obtained_config().collect::<Vec<_>>(), ["dc"]);
    let got = obtain_config(&http(), &local(&oauth), &BTreeMap::new(), &token)
        .await
        .unwrap();
    assert_eq!(got, BTreeMap::from([("dc".to_owned(), "us19".to_owned())]));
    assert_eq!(
        bound_base_url(&mailchimp, got),
        "https://us19.api.mailchimp.com/3.0"
    );

    let (jira, oauth) = oauth_of("jira");
    let site = BTreeMap::from([("site".to_owned(), "acme".to_owned())]);
    let got = obtain_config(&http(), &local(&oauth), &site, &token)
        .await
        .unwrap();
    assert_eq!(
        got,
        BTreeMap::from([("cloud_id".to_owned(), "22222222-bbbb".to_owned())])
    );
    let mut config = site.clone();
    config.extend(got);
    assert_eq!(
        bound_base_url(&jira, config),
        "https://api.atlassian.com/ex/jira/22222222-bbbb/rest/api/3"
    );
    // A site the account cannot reach is no connection.
    let elsewhere = BTreeMap::from([("site".to_owned(), "nowhere".to_owned())]);
    assert!(
        obtain_config(&http(), &local(&oauth), &elsewhere, &token)
            .await
            .is_err()
    );
}
