//! A provider's token endpoint with one refresh-token family, as providers that rotate refresh
//! tokens behave (Airtable, Salesforce, Xero): each refresh with the current refresh token answers
//! a new access and refresh token (`at-<n>`, `rt-<n>`, after a delay, so that concurrent callers
//! arrive while it is in flight); any other refresh token is `invalid_grant`, and an old one coming
//! back revokes the whole family, so every later refresh is refused too.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// What the endpoint saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyCounts {
    /// Token requests received.
    pub calls: usize,
    /// `invalid_grant` answers.
    pub invalid_grants: usize,
    /// Whether an old refresh token came back (and so the family is revoked).
    pub revoked: bool,
}

#[derive(Default)]
struct Family {
    current: String,
    used: HashSet<String>,
    counts: FamilyCounts,
}

/// The running endpoint.
pub struct TokenFamily {
    /// The mock server (its `uri()` is the provider's origin).
    pub server: MockServer,
    family: Arc<Mutex<Family>>,
}

impl TokenFamily {
    /// Serves `POST <token_path>` with the family whose first refresh token is `rt-0`, answering
    /// each issue after `delay`; with `outage`, every request is a 503.
    pub async fn start(token_path: &str, delay: Duration, outage: bool) -> Self {
        let server = MockServer::start().await;
        let family = Arc::new(Mutex::new(Family {
            current: "rt-0".into(),
            ..Family::default()
        }));
        let state = family.clone();
        Mock::given(method("POST"))
            .and(path(token_path))
            .respond_with(move |req: &Request| {
                let form: BTreeMap<String, String> = url::form_urlencoded::parse(&req.body)
                    .into_owned()
                    .collect();
                let mut f = state.lock().unwrap_or_else(PoisonError::into_inner);
                f.counts.calls += 1;
                if outage {
                    return ResponseTemplate::new(503).set_body_string("maintenance");
                }
                let presented = form.get("refresh_token").cloned().unwrap_or_default();
                if f.counts.revoked || presented != f.current {
                    if f.used.contains(&presented) {
                        f.counts.revoked = true;
                    }
                    f.counts.invalid_grants += 1;
                    return ResponseTemplate::new(400)
                        .set_body_json(serde_json::json!({"error": "invalid_grant"}));
                }
                let n = f.used.len() + 1;
                let old = std::mem::replace(&mut f.current, format!("rt-{n}"));
                f.used.insert(old);
                ResponseTemplate::new(200)
                    .set_delay(delay)
                    .set_body_json(serde_json::json!({
                        "access_token": format!("at-{n}"), "refresh_token": format!("rt-{n}"),
                        "expires_in": 3600, "token_type": "Bearer"
                    }))
            })
            .mount(&server)
            .await;
        Self { server, family }
    }

    /// Forgets the family, as a provider does whose user revoked the app: every refresh token is
    /// `invalid_grant` from now on.
    pub fn forget(&self) {
        self.family
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .current = "rt-forgotten".into();
    }

    /// What it saw so far.
    pub fn counts(&self) -> FamilyCounts {
        self.family
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .counts
            .clone()
    }
}
