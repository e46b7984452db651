//! Salesforce REST: instance URL from the connection, SOQL `query` paged by the relative
//! `nextRecordsUrl`, `403 REQUEST_LIMIT_EXCEEDED` as a rate limit, sObject create, verification
//! with the version's resource list.

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{conn, engine, mocked, query_exactly, read_all, real_base_url, spec};

const TOKEN: &[(&str, &str)] = &[("access_token", "00Dxx0000001gPL!AR8AQJXg")];
const API: &str = "/services/data/v61.0";

fn instance() -> [(&'static str, &'static str); 1] {
    [("instance_url", "https://acme.my.salesforce.com")]
}

#[test]
fn salesforce_base_url_is_the_connection_instance_url() {
    let spec = spec("salesforce");

    let base = real_base_url(&spec, &conn(&instance(), TOKEN));

    assert_eq!(base, "https://acme.my.salesforce.com/services/data/v61.0");
    let foreign = conn(&[("instance_url", "https://attacker.example.com")], TOKEN);
    assert!(
        tributary_engine::connection::Bound::new(&spec, &foreign).is_err(),
        "an instance URL outside Salesforce's domains is refused"
    );
}

/// An org that refuses logins from login.salesforce.com and test.salesforce.com connects through
/// its My Domain login hostname, of any org type; the field takes nothing that would leave
/// `salesforce.com`.
#[test]
fn salesforce_connects_through_a_my_domain_login_hostname() {
    use tributary_engine::connection::check_fields;
    use tributary_engine::oauth::{AuthorizationRequest, Pkce, authorization_url};
    use tributary_engine::spec::AuthMode;

    let spec = spec("salesforce");
    let Some(AuthMode::OAuth2AuthorizationCode(oauth)) = spec.auth.first() else {
        panic!("salesforce connects with OAuth");
    };
    let redirect = url::Url::parse("https://api.example.com/v1/connect/callback").unwrap();
    let pkce = Pkce::from_random(&[7; 32]);
    for (login_domain, host) in [
        ("login", "login.salesforce.com"),
        ("test", "test.salesforce.com"),
        ("acme", ""),
        ("acme.my", "acme.my.salesforce.com"),
        (
            "acme--uat.sandbox.my",
            "acme--uat.sandbox.my.salesforce.com",
        ),
        (
            "acme-dev-ed.develop.my",
            "acme-dev-ed.develop.my.salesforce.com",
        ),
        ("acme.scratch.my", "acme.scratch.my.salesforce.com"),
        ("acme.demo.my", "acme.demo.my.salesforce.com"),
        ("acme.free.my", "acme.free.my.salesforce.com"),
        ("acme.patch.my", "acme.patch.my.salesforce.com"),
        // A Trailhead Playground's login hostname.
        (
            "mindful-koala-rysqkc-dev-ed.trailblaze.my",
            "mindful-koala-rysqkc-dev-ed.trailblaze.my.salesforce.com",
        ),
        ("evil.example/x", ""),
        ("evil.example#", ""),
        ("acme.my.evil", ""),
        ("acme.other.my", ""),
        ("-acme.my", ""),
    ] {
        // `instance_url` comes from the token response: only this field's problems count.
        let problems: Vec<_> =
            check_fields(&spec.connection_config, [("login_domain", login_domain)])
                .into_iter()
                .filter(|(field, _)| field == "login_domain")
                .collect();
        assert_eq!(
            problems.is_empty(),
            !host.is_empty(),
            "{login_domain}: {problems:?}"
        );
        if host.is_empty() {
            continue;
        }
        let config = std::collections::BTreeMap::from([(
            "login_domain".to_owned(),
            login_domain.to_owned(),
        )]);
        let url = authorization_url(
            oauth,
            &config,
            &AuthorizationRequest {
                client_id: "client",
                redirect_uri: &redirect,
                state: "st",
                scopes: None,
                pkce: Some(&pkce),
            },
        )
        .unwrap();
        assert_eq!(url.host_str(), Some(host), "{login_domain}");
        assert_eq!(url.path(), "/services/oauth2/authorize", "{login_domain}");
    }
}

#[tokio::test]
async fn salesforce_soql_query_follows_next_records_url() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/query")))
        .and(header("authorization", "Bearer 00Dxx0000001gPL!AR8AQJXg"))
        .and(header("sforce-query-options", "batchSize=2000"))
        .and(query_exactly(&[(
            "q",
            "SELECT Id, FirstName, LastName, Email, Phone, AccountId, CreatedDate, SystemModstamp FROM Contact ORDER BY SystemModstamp ASC",
        )]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalSize": 3,
            "done": false,
            "nextRecordsUrl": format!("{API}/query/01gRO0000016PIAYA2-2000"),
            "records": [
                {"attributes": {"type": "Contact"}, "Id": "003RO0000001", "LastName": "Lovelace"},
                {"attributes": {"type": "Contact"}, "Id": "003RO0000002", "LastName": "Hopper"}
            ]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/query/01gRO0000016PIAYA2-2000")))
        .and(query_exactly(&[]))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!([
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/query/01gRO0000016PIAYA2-2000")))
        .and(header("authorization", "Bearer 00Dxx0000001gPL!AR8AQJXg"))
        // The locator URL carries no parameters: the query is not sent again.
        .and(query_exactly(&[]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalSize": 3,
            "done": true,
            "records": [{"attributes": {"type": "Contact"}, "Id": "003RO0000003", "LastName": "Liskov"}]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let spec = spec("salesforce");
    let got = read_all(
        &engine(),
        &spec,
        "contacts",
        &mocked(&server, API, &instance(), TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(
        got.ids("Id"),
        ["003RO0000001", "003RO0000002", "003RO0000003"]
    );
    assert_eq!(got.pages, 2);
    assert_eq!(
        got.retries, 1,
        "REQUEST_LIMIT_EXCEEDED is retried as a rate limit"
    );
}

/// Accounts and opportunities are SOQL queries too, each its own `q` (and nothing else) on the first
/// request and the batch size in `Sforce-Query-Options`; the next batch is the relative
/// `nextRecordsUrl`, sent without parameters.
#[tokio::test]
async fn salesforce_accounts_and_opportunities_follow_next_records_url() {
    let cases = [
        (
            "accounts",
            "SELECT Id, Name, Industry, Website, CreatedDate, SystemModstamp FROM Account ORDER BY SystemModstamp ASC",
            "Account",
            ["001RO000001aAAAA", "001RO000001bAAAA", "001RO000001cAAAA"],
            "01gRO0000016PIAYA2-2000",
        ),
        (
            "opportunities",
            "SELECT Id, Name, StageName, Amount, CloseDate, AccountId, SystemModstamp FROM Opportunity ORDER BY SystemModstamp ASC",
            "Opportunity",
            ["006RO000001aAAAA", "006RO000001bAAAA", "006RO000001cAAAA"],
            "01gRO0000016PIBYA2-2000",
        ),
    ];
    for (stream, soql, sobject, ids, locator) in cases {
        let server = MockServer::start().await;
        let record = |id: &str| {
            json!({
                "attributes": {"type": sobject, "url": format!("{API}/sobjects/{sobject}/{id}")},
                "Id": id,
                "Name": format!("{sobject} {id}"),
                "SystemModstamp": "2026-11-30T10:00:00.000+0000"
            })
        };
        Mock::given(method("GET"))
            .and(path(format!("{API}/query")))
            .and(header("authorization", "Bearer 00Dxx0000001gPL!AR8AQJXg"))
            .and(header("sforce-query-options", "batchSize=2000"))
            .and(query_exactly(&[("q", soql)]))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "totalSize": 3,
                "done": false,
                "nextRecordsUrl": format!("{API}/query/{locator}"),
                "records": [record(ids[0]), record(ids[1])]
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("{API}/query/{locator}")))
            .and(header("authorization", "Bearer 00Dxx0000001gPL!AR8AQJXg"))
            .and(query_exactly(&[]))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "totalSize": 3,
                "done": true,
                "records": [record(ids[2])]
            })))
            .expect(1)
            .mount(&server)
            .await;

        let got = read_all(
            &engine(),
            &spec("salesforce"),
            stream,
            &mocked(&server, API, &instance(), TOKEN),
        )
        .await
        .unwrap_or_else(|e| panic!("{stream}: {e}"));

        assert_eq!(got.ids("Id"), ids, "{stream}");
        assert_eq!(got.pages, 2, "{stream}");
    }
}

#[tokio::test]
async fn salesforce_create_contact_posts_sobject_fields_and_returns_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/sobjects/Contact")))
        .and(header("authorization", "Bearer 00Dxx0000001gPL!AR8AQJXg"))
        .and(body_json(
            json!({"LastName": "Lovelace", "Email": "ada@example.com"}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "003RO0000009xyzAAA", "success": true, "errors": []
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("salesforce"),
            "create_contact",
            &mocked(&server, API, &instance(), TOKEN),
            &json!({"last_name": "Lovelace", "email": "ada@example.com"}),
        )
        .await
        .unwrap();

    assert_eq!(out, "003RO0000009xyzAAA");
}

/// Verification reads `GET /services/data/v61.0/`, which every user with API access may (not
/// `/limits`, which needs "View Setup and Configuration"); an invalid session is refused.
#[tokio::test]
async fn salesforce_verifies_with_the_version_resource_list() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/")))
        .and(header("authorization", "Bearer 00Dxx0000001gPL!AR8AQJXg"))
        .and(query_exactly(&[]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "sobjects": format!("{API}/sobjects"),
            "query": format!("{API}/query"),
            "limits": format!("{API}/limits")
        })))
        .expect(1)
        .mount(&server)
        .await;
    let spec = spec("salesforce");
    let connection = mocked(&server, API, &instance(), TOKEN);
    engine().verify(&spec, &connection).await.unwrap();

    let refused = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/")))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!([
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ])))
        .mount(&refused)
        .await;
    let err = engine()
        .verify(&spec, &mocked(&refused, API, &instance(), TOKEN))
        .await
        .unwrap_err();
    assert_eq!(err.class(), tributary_engine::ErrorClass::Auth, "{err}");
}

/// Salesforce answers a refresh with a new access token, the org's `instance_url` and no
/// `expires_in`; it adds a new `refresh_token` only when the app rotates them
/// (https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_oauth_refresh_token_flow.htm).
/// Read by the spec's paths, the answer without one keeps the stored refresh token, the one with one
/// replaces it, and the connection is bound to the instance URL of the answer.
#[test]
fn salesforce_refresh_keeps_the_stored_refresh_token_unless_rotated() {
    use secrecy::{ExposeSecret, SecretString};
    use tributary_engine::oauth::read_token_response;
    use tributary_engine::spec::AuthMode;

    let spec = spec("salesforce");
    let oauth = spec
        .auth
        .iter()
        .find_map(|m| match m {
            AuthMode::OAuth2AuthorizationCode(o) => Some(o),
            _ => None,
        })
        .expect("salesforce connects with OAuth");
    let stored =
        SecretString::from("5Aep861TSESvWeug_xvFHRBTTbf_YrTWgEyjBJrbJ0gSSKp1Ypk".to_owned());
    let now = time::OffsetDateTime::now_utc();
    let documented = json!({
        "access_token": "00DRO0000001gPL!AQ4AQFt2W1Qm",
        "signature": "HfBA4r8nR1cs9mn+7a9bTfYxTRGN1n8ZG6ZJvO3uB8c=",
        "scope": "refresh_token api",
        "instance_url": "https://acme.my.salesforce.com",
        "id": "https://login.salesforce.com/id/00DRO0000001gPL2AI/005RO000000GbR9YAK",
        "token_type": "Bearer",
        "issued_at": "1765098000000"
    });

    let refreshed = read_token_response(
        &oauth.token_response,
        documented.to_string().as_bytes(),
        now,
    )
    .unwrap()
    .keeping_refresh_token(Some(&stored));

    assert_eq!(
        refreshed.access_token.expose_secret(),
        "00DRO0000001gPL!AQ4AQFt2W1Qm"
    );
    assert_eq!(
        refreshed
            .refresh_token
            .as_ref()
            .map(ExposeSecret::expose_secret),
        Some(stored.expose_secret()),
        "without rotation the stored refresh token stays in force"
    );
    assert_eq!(refreshed.expires_at, None, "Salesforce sends no lifetime");
    let instance = &refreshed.connection_config["instance_url"];
    assert_eq!(
        real_base_url(&spec, &conn(&[("instance_url", instance)], TOKEN)),
        "https://acme.my.salesforce.com/services/data/v61.0"
    );

    let mut rotating = documented;
    rotating["refresh_token"] = json!("5Aep861TSESvWeug_rotated");
    let rotated = read_token_response(&oauth.token_response, rotating.to_string().as_bytes(), now)
        .unwrap()
        .keeping_refresh_token(Some(&stored));
    assert_eq!(
        rotated
            .refresh_token
            .as_ref()
            .map(ExposeSecret::expose_secret),
        Some("5Aep861TSESvWeug_rotated"),
        "a rotated refresh token replaces the stored one"
    );
}
