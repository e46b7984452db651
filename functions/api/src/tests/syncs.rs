//! `/v1/syncs`: creation checked against the connection's provider spec, one sync per
//! (connection, model), pausing and resuming moving the next run, deletion handed to a purge job,
//! manual runs queued with their job (one at a time, never left unexecuted), cancellation, and
//! idempotent replays.

use serde_json::{Value, json};
use tributary_core::ids::{ConnectionId, IntegrationId, SyncId, SyncRunId, TenantId};
use tributary_core::job::JobKind;
use tributary_core::pagination::PageRequest;
use tributary_core::ports::{QueueDepth, SyncStore as _};
use tributary_core::sync::{Frequency, RunState, SyncConfig, SyncEventType, SyncRun, SyncStatus};
use tributary_core::time::rfc3339;

use super::{as_tenant, is_problem, tenant};
use crate::testing::{MemStore, NOW, Req, Res, TestApi, call, deps};

/// A connection of `provider` for `t`, seeded in the store.
pub(super) fn connection(store: &MemStore, t: &TenantId, provider: &str) -> ConnectionId {
    let id = ConnectionId::generate();
    store.put_connection(&tributary_testing::fixtures::oauth_connection(
        t,
        &IntegrationId::generate(),
        &id,
        provider,
        "v1.k1.sealed".into(),
    ));
    id
}

struct Setup {
    d: TestApi,
    t: TenantId,
    /// A Stripe connection (full-refresh streams only).
    stripe: ConnectionId,
    /// A GitHub connection (`issues` is incremental).
    github: ConnectionId,
}

fn setup() -> Setup {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let stripe = connection(&store, &t, "stripe");
    let github = connection(&store, &t, "github");
    Setup {
        d: deps(store, Ok(QueueDepth::default())),
        t,
        stripe,
        github,
    }
}

impl Setup {
    fn req(&self, method: &str, path: &str) -> Req {
        as_tenant(Req::new(method, path), &self.t)
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Res {
        let mut req = self.req(method, path);
        if let Some(body) = body {
            req = req.json(body);
        }
        call(&self.d, req).await
    }

    fn customers(&self) -> Value {
        json!({"connection_id": self.stripe, "stream": "customers", "model": "customers",
               "frequency": {"every_seconds": 3600}})
    }

    /// Creates the Stripe customers sync; its id.
    async fn create(&self) -> SyncId {
        let res = self.send("POST", "/v1/syncs", Some(self.customers())).await;
        assert_eq!(res.status, 201, "{:?}", res.body);
        res.body["id"].as_str().unwrap().parse().unwrap()
    }

    async fn stored(&self, id: &SyncId) -> SyncConfig {
        self.d.store.get_sync(&self.t, id).await.unwrap().unwrap()
    }

    async fn edit(&self, id: &SyncId, f: impl FnOnce(&mut SyncConfig)) {
        let mut sync = self.stored(id).await;
        let read = sync.version;
        f(&mut sync);
        sync.version += 1;
        assert!(self.d.store.update_sync(&sync, read).await.unwrap());
    }

    async fn run(&self, sync: &SyncId, run: &str) -> SyncRun {
        let run: SyncRunId = run.parse().unwrap();
        self.d
            .store
            .get_run(&self.t, sync, &run)
            .await
            .unwrap()
            .unwrap()
    }

    async fn set_run_state(&self, sync: &SyncId, run: &str, state: RunState) {
        let mut r = self.run(sync, run).await;
        let read = r.version;
        r.state = state;
        r.version += 1;
        assert!(self.d.store.update_run(&r, read).await.unwrap());
    }

    async fn trigger(&self, sync: &SyncId, body: Option<Value>) -> Res {
        self.send("POST", &format!("/v1/syncs/{sync}/runs"), body)
            .await
    }

    async fn list_syncs(&self) -> Vec<Value> {
        let res = self.send("GET", "/v1/syncs", None).await;
        assert_eq!(res.status, 200, "{:?}", res.body);
        res.body["data"].as_array().unwrap().clone()
    }
}

fn at(ms: i64) -> Value {
    rfc3339(ms).unwrap().into()
}

#[tokio::test]
async fn a_sync_takes_its_stream_s_mode_and_is_scheduled_with_its_jitter() {
    let s = setup();
    let res = s.send("POST", "/v1/syncs", Some(s.customers())).await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    let id: SyncId = res.body["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(res.headers["location"], format!("/v1/syncs/{id}"));
    let next = Frequency::Interval {
        every_seconds: 3600,
    }
    .next_run_ms(&id, NOW)
    .unwrap();
    let expected = json!({
        "id": id.to_string(), "connection_id": s.stripe.to_string(),
        "integration_id": res.body["integration_id"], "provider": "stripe",
        "stream": "customers", "model": "customers", "frequency": {"every_seconds": 3600},
        "mode": "full_refresh", "mapping": null, "status": "active", "status_reason": null,
        "deletion_guard_percent": 50, "retention_days": null, "has_checkpoint": false,
        "next_run_at": at(next), "active_run_id": null, "last_run": null,
        "created_at": at(NOW), "updated_at": at(NOW)
    });
    assert_eq!(res.body, expected);
    assert_eq!(s.stored(&id).await.next_run_at_ms, Some(next));
    // An incremental stream syncs incrementally unless told otherwise; a paused sync waits.
    let res = s
        .send(
            "POST",
            "/v1/syncs",
            Some(json!({"connection_id": s.github, "stream": "issues", "model": "issues",
                        "frequency": {"cron": "0 */6 * * *"}, "status": "paused",
                        "mapping": {"fields": [{"to": "title"}, {"to": "number", "type": "integer"}]},
                        "deletion_guard_percent": 10, "retention_days": 30})),
        )
        .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    assert_eq!(res.body["mode"], "incremental");
    assert_eq!(res.body["status"], "paused");
    assert_eq!(res.body["next_run_at"], Value::Null);
    assert_eq!(res.body["frequency"], json!({"cron": "0 */6 * * *"}));
    assert_eq!(
        res.body["mapping"]["fields"][1],
        json!({"to": "number", "type": "integer"})
    );
    assert_eq!(res.body["deletion_guard_percent"], 10);
    assert_eq!(res.body["retention_days"], 30);
    let full = s
        .send(
            "POST",
            "/v1/syncs",
            Some(
                json!({"connection_id": s.github, "stream": "issues", "model": "all-issues",
                        "frequency": {"every_seconds": 60}, "mode": "full_refresh"}),
            ),
        )
        .await;
    assert_eq!(full.body["mode"], "full_refresh", "{:?}", full.body);
    // Audited.
    let audit = call(&s.d, s.req("GET", "/v1/audit-events")).await;
    assert!(
        audit.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "sync.created" && e["target"] == id.to_string()),
        "{:?}",
        audit.body
    );
}

#[tokio::test]
async fn creation_refuses_each_invalid_field_pointing_at_it_and_stores_nothing() {
    let s = setup();
    let with = |changes: Value| {
        let mut body = s.customers();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    let random = ConnectionId::generate().to_string();
    for (body, pointer, needle) in [
        (
            with(json!({"connection_id": "conn_nope"})),
            "/connection_id",
            "No connection",
        ),
        (
            with(json!({"connection_id": random})),
            "/connection_id",
            "No connection",
        ),
        (
            with(json!({"stream": "payouts"})),
            "/stream",
            "`customers`, `charges`, `invoices`",
        ),
        (with(json!({"stream": ""})), "/stream", "1 to 64"),
        (
            with(json!({"mode": "incremental"})),
            "/mode",
            "full_refresh",
        ),
        (
            with(json!({"mode": "sometimes"})),
            "/mode",
            "unknown variant",
        ),
        (
            with(json!({"model": "1customers"})),
            "/model",
            "starting with a letter",
        ),
        (
            with(json!({"model": "a/b"})),
            "/model",
            "starting with a letter",
        ),
        (
            with(json!({"frequency": {"every_seconds": 59}})),
            "/frequency/every_seconds",
            "between 60",
        ),
        (
            with(json!({"frequency": {"cron": "*/5 * * * * *"}})),
            "/frequency/cron",
            "5 fields",
        ),
        (
            with(json!({"frequency": {"cron": "0 0 31 2 *"}})),
            "/frequency/cron",
            "never fires",
        ),
        (with(json!({"frequency": {}})), "/frequency", "exactly one"),
        (
            with(json!({"frequency": {"every_seconds": 60, "cron": "0 * * * *"}})),
            "/frequency",
            "exactly one",
        ),
        (
            with(json!({"frequency": {"every": 60}})),
            "/frequency/every",
            "unknown field",
        ),
        (
            with(json!({"mapping": {"fields": []}})),
            "/mapping/fields",
            "between 1 and 200",
        ),
        (
            with(json!({"mapping": {"fields": [{"to": "a"}, {"to": "a.b"}]}})),
            "/mapping/fields/1",
            "overlaps",
        ),
        (
            with(json!({"mapping": {"fields": [{"to": "n", "type": "integer", "default": "x"}]}})),
            "/mapping/fields/0",
            "default",
        ),
        (
            with(json!({"mapping": {"fields": [{"to": "a", "bogus": 1}]}})),
            "/mapping/fields/0/bogus",
            "unknown field",
        ),
        (
            with(json!({"mapping": {"fields": [{"to": "mail", "from": "emial"}]}})),
            "/mapping/fields/0/from",
            "has no field `emial`",
        ),
        (
            with(
                json!({"mapping": {"fields": [{"to": "email"}, {"to": "street", "from": "address.street"}]}}),
            ),
            "/mapping/fields/1/from",
            "has no field `street`",
        ),
        (
            with(json!({"mapping": {"fields": [{"to": "nickname"}]}})),
            "/mapping/fields/0/to",
            "has no field `nickname`",
        ),
        (
            with(json!({"mapping": {"fields": [{"to": "domain", "from": "email.domain"}]}})),
            "/mapping/fields/0/from",
            "`email` is a string",
        ),
        (
            with(json!({"deletion_guard_percent": 101})),
            "/deletion_guard_percent",
            "0 to 100",
        ),
        (
            with(json!({"retention_days": 0})),
            "/retention_days",
            "1 to 3650",
        ),
        (
            with(json!({"retention_days": 3651})),
            "/retention_days",
            "1 to 3650",
        ),
        (
            with(json!({"status": "deleting"})),
            "/status",
            "unknown variant",
        ),
        (
            with(json!({"tenant_id": "ten_x"})),
            "/tenant_id",
            "unknown field",
        ),
        (
            with(json!({"frequency": null})),
            "/",
            "missing field `frequency`",
        ),
    ] {
        let res = s.send("POST", "/v1/syncs", Some(body.clone())).await;
        is_problem(&res, 400, "validation_failed");
        assert_eq!(
            res.body["errors"][0]["pointer"], pointer,
            "{body}: {:?}",
            res.body
        );
        let detail = res.body["errors"][0]["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{body}: {detail}");
    }
    assert!(s.list_syncs().await.is_empty());
    assert!(s.d.jobs.sent().is_empty());
}

#[tokio::test]
async fn a_second_sync_of_a_connection_s_model_is_a_409_naming_the_model() {
    let s = setup();
    s.create().await;
    let mut again = s.customers();
    again["stream"] = "charges".into();
    let res = s.send("POST", "/v1/syncs", Some(again.clone())).await;
    is_problem(&res, 409, "conflict");
    assert!(
        res.body["detail"]
            .as_str()
            .unwrap()
            .contains("model `customers`"),
        "{:?}",
        res.body
    );
    // Another model of the same connection, or the same model of another connection, is fine.
    again["model"] = "charges".into();
    assert_eq!(s.send("POST", "/v1/syncs", Some(again)).await.status, 201);
    let other = connection(&s.d.store, &s.t, "stripe");
    let mut elsewhere = s.customers();
    elsewhere["connection_id"] = other.to_string().into();
    assert_eq!(
        s.send("POST", "/v1/syncs", Some(elsewhere)).await.status,
        201
    );
    assert_eq!(s.list_syncs().await.len(), 3);
    let filtered = s
        .send("GET", &format!("/v1/syncs?connection_id={other}"), None)
        .await;
    assert_eq!(filtered.body["data"].as_array().unwrap().len(), 1);
    for bad in [
        "connection_id=conn_x",
        "limit=0",
        "cursor=bm9wZQ",
        "model=x",
    ] {
        let res = s.send("GET", &format!("/v1/syncs?{bad}"), None).await;
        is_problem(&res, 400, "validation_failed");
    }
}

#[tokio::test]
async fn pausing_clears_the_next_run_and_resuming_schedules_it_from_now() {
    let s = setup();
    let id = s.create().await;
    let path = format!("/v1/syncs/{id}");
    let hourly = Frequency::Interval {
        every_seconds: 3600,
    };

    let later = NOW + 600_000;
    s.d.clock.advance(600_000);
    let res = s
        .send("PATCH", &path, Some(json!({"status": "paused"})))
        .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body["status"], "paused");
    assert_eq!(res.body["next_run_at"], Value::Null);
    assert_eq!(res.body["updated_at"], at(later));
    let stored = s.stored(&id).await;
    assert_eq!(
        (stored.status, stored.next_run_at_ms),
        (SyncStatus::Paused, None)
    );

    // A run paused it for the end user; the tenant resumes it: scheduled from now, reason gone.
    s.edit(&id, |sync| sync.status_reason = Some("needs_reauth".into()))
        .await;
    let resumed_at = later + 7_200_000;
    s.d.clock.advance(7_200_000);
    let res = s
        .send("PATCH", &path, Some(json!({"status": "active"})))
        .await;
    assert_eq!(res.body["status"], "active", "{:?}", res.body);
    assert_eq!(res.body["status_reason"], Value::Null);
    let next = hourly.next_run_ms(&id, resumed_at).unwrap();
    assert_eq!(res.body["next_run_at"], at(next));
    assert_eq!(s.stored(&id).await.next_run_at_ms, Some(next));

    // A new frequency moves an active sync's next run; the other fields change as asked.
    let res = s
        .send(
            "PATCH",
            &path,
            Some(
                json!({"frequency": {"cron": "30 6 * * *"}, "deletion_guard_percent": 0,
                        "retention_days": 7, "mapping": {"fields": [{"to": "email"}]}}),
            ),
        )
        .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    let daily = Frequency::Cron {
        cron: "30 6 * * *".into(),
    };
    assert_eq!(
        res.body["next_run_at"],
        at(daily.next_run_ms(&id, resumed_at).unwrap())
    );
    assert_eq!(res.body["deletion_guard_percent"], 0);
    assert_eq!(res.body["retention_days"], 7);
    assert_eq!(res.body["mapping"], json!({"fields": [{"to": "email"}]}));
    // `null` removes the mapping and the retention; absent fields stay.
    let res = s
        .send(
            "PATCH",
            &path,
            Some(json!({"mapping": null, "retention_days": null})),
        )
        .await;
    assert_eq!(res.body["mapping"], Value::Null);
    assert_eq!(res.body["retention_days"], Value::Null);
    assert_eq!(res.body["deletion_guard_percent"], 0);
    assert_eq!(res.body["frequency"], json!({"cron": "30 6 * * *"}));

    for (body, pointer) in [
        (
            json!({"frequency": {"every_seconds": 10}}),
            "/frequency/every_seconds",
        ),
        (json!({"status": "deleting"}), "/status"),
        (
            json!({"deletion_guard_percent": 300}),
            "/deletion_guard_percent",
        ),
        (json!({"retention_days": 0}), "/retention_days"),
        (json!({"mapping": {"fields": []}}), "/mapping/fields"),
        (json!({"model": "other"}), "/model"),
    ] {
        let res = s.send("PATCH", &path, Some(body.clone())).await;
        is_problem(&res, 400, "validation_failed");
        assert_eq!(res.body["errors"][0]["pointer"], pointer, "{body}");
    }
    let random = format!("/v1/syncs/{}", SyncId::generate());
    is_problem(
        &s.send("PATCH", &random, Some(json!({"status": "paused"})))
            .await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn deleting_marks_the_sync_deleting_and_sends_a_purge_job_on_every_call() {
    let s = setup();
    let id = s.create().await;
    let path = format!("/v1/syncs/{id}");
    let res = s.send("DELETE", &path, None).await;
    assert_eq!(res.status, 202, "{:?}", res.body);
    assert_eq!(res.body["status"], "deleting");
    assert_eq!(res.body["next_run_at"], Value::Null);
    let purge = JobKind::PurgeSync {
        tenant_id: s.t.clone(),
        sync_id: id.clone(),
    };
    let kinds = || {
        s.d.jobs
            .sent()
            .into_iter()
            .map(|j| j.kind)
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds(), vec![purge.clone()]);
    // Nothing changes or runs meanwhile.
    is_problem(
        &s.send("PATCH", &path, Some(json!({"status": "active"})))
            .await,
        409,
        "conflict",
    );
    let res = s.trigger(&id, Some(json!({}))).await;
    is_problem(&res, 409, "conflict");
    assert!(
        res.body["detail"]
            .as_str()
            .unwrap()
            .contains("being deleted")
    );
    // Again: 202, and the job again (the first may have been lost).
    let again = s.send("DELETE", &path, None).await;
    assert_eq!(again.status, 202);
    assert_eq!(kinds(), vec![purge.clone(), purge.clone()]);
    // A queue that fails is a 503; the sync stays deleting for the next call.
    s.d.jobs.fail(true);
    is_problem(
        &s.send("DELETE", &path, None).await,
        503,
        "service_unavailable",
    );
    s.d.jobs.fail(false);
    assert_eq!(s.stored(&id).await.status, SyncStatus::Deleting);
    assert_eq!(s.send("DELETE", &path, None).await.status, 202);
    assert_eq!(kinds().len(), 3);
    is_problem(
        &s.send("DELETE", &format!("/v1/syncs/{}", SyncId::generate()), None)
            .await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn a_manual_run_is_queued_with_its_job_and_another_waits_until_it_ends() {
    let s = setup();
    let id = s.create().await;
    let res = s.trigger(&id, None).await;
    assert_eq!(res.status, 202, "{:?}", res.body);
    let run = res.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        res.headers["location"],
        format!("/v1/syncs/{id}/runs/{run}")
    );
    assert_eq!(res.body["state"], "queued");
    assert_eq!(res.body["trigger"], "manual");
    assert_eq!(res.body["full_resync"], false);
    assert_eq!(res.body["sync_id"], id.to_string());
    assert_eq!(res.body["queued_at"], at(NOW));
    let sent = s.d.jobs.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].kind,
        JobKind::SyncRun {
            tenant_id: s.t.clone(),
            sync_id: id.clone(),
            run_id: run.parse().unwrap(),
            continuation: 0
        }
    );
    assert_eq!(
        s.stored(&id).await.active_run_id,
        Some(run.parse().unwrap())
    );
    let got = s.send("GET", &format!("/v1/syncs/{id}"), None).await;
    assert_eq!(got.body["active_run_id"], run.as_str());

    // While it is queued or running, another run is refused, naming it.
    for state in [RunState::Queued, RunState::Running, RunState::Continued] {
        if state != RunState::Queued {
            s.set_run_state(&id, &run, state).await;
        }
        let res = s.trigger(&id, Some(json!({}))).await;
        is_problem(&res, 409, "conflict");
        let detail = res.body["detail"].as_str().unwrap();
        assert!(
            detail.contains(&run) && detail.contains(state.as_str()),
            "{detail}"
        );
    }
    assert_eq!(s.d.jobs.sent().len(), 1);

    // Once it ended, the next run goes: from the beginning, with the checkpoint cleared.
    s.set_run_state(&id, &run, RunState::Succeeded).await;
    s.edit(&id, |sync| sync.checkpoint = Some(json!({"since": 1})))
        .await;
    let res = s
        .trigger(
            &id,
            Some(json!({"full_resync": true, "reset_checkpoint": true})),
        )
        .await;
    assert_eq!(res.status, 202, "{:?}", res.body);
    assert_eq!(res.body["full_resync"], true);
    let second = res.body["id"].as_str().unwrap();
    assert_ne!(second, run);
    let stored = s.stored(&id).await;
    assert_eq!(stored.checkpoint, None);
    assert_eq!(stored.active_run_id, Some(second.parse().unwrap()));
    assert_eq!(s.d.jobs.sent().len(), 2);
    // `full_resync` alone keeps the checkpoint.
    s.set_run_state(&id, second, RunState::Failed).await;
    s.edit(&id, |sync| sync.checkpoint = Some(json!({"since": 2})))
        .await;
    let res = s.trigger(&id, Some(json!({"full_resync": true}))).await;
    assert_eq!(res.status, 202, "{:?}", res.body);
    assert_eq!(s.stored(&id).await.checkpoint, Some(json!({"since": 2})));
    for (body, pointer) in [
        (json!({"full_resync": "yes"}), "/full_resync"),
        (json!({"wait": true}), "/wait"),
    ] {
        let res = s.trigger(&id, Some(body)).await;
        is_problem(&res, 400, "validation_failed");
        assert_eq!(res.body["errors"][0]["pointer"], pointer);
    }
    is_problem(
        &s.trigger(&SyncId::generate(), None).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn a_run_whose_job_cannot_be_sent_is_failed_and_the_sync_released() {
    let s = setup();
    let id = s.create().await;
    s.edit(&id, |sync| sync.checkpoint = Some(json!({"since": 1})))
        .await;
    s.d.jobs.fail(true);
    let res = s
        .trigger(&id, Some(json!({"reset_checkpoint": true})))
        .await;
    is_problem(&res, 503, "service_unavailable");
    assert!(!res.body.to_string().contains("arn:"));
    let runs = s.send("GET", &format!("/v1/syncs/{id}/runs"), None).await;
    let runs = runs.body["data"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["state"], "failed");
    assert_eq!(runs[0]["error"]["class"], "internal");
    assert!(runs[0]["ended_at"].is_string());
    let stored = s.stored(&id).await;
    assert_eq!(stored.active_run_id, None);
    assert_eq!(stored.checkpoint, Some(json!({"since": 1})), "restored");
    // The next trigger works.
    s.d.jobs.fail(false);
    let res = s.trigger(&id, None).await;
    assert_eq!(res.status, 202, "{:?}", res.body);
    assert_eq!(s.d.jobs.sent().len(), 1);
}

#[tokio::test]
async fn a_queued_run_is_cancelled_at_once_and_a_running_one_asked_to_stop() {
    let s = setup();
    let id = s.create().await;
    let queued = s.trigger(&id, None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancel = |run: &str| {
        let path = format!("/v1/syncs/{id}/runs/{run}/cancel");
        let s = &s;
        async move { s.send("POST", &path, None).await }
    };

    let later = NOW + 5_000;
    s.d.clock.advance(5_000);
    let res = cancel(&queued).await;
    assert_eq!(res.status, 202, "{:?}", res.body);
    assert_eq!(res.body["state"], "cancelled");
    assert_eq!(res.body["ended_at"], at(later));
    let stored = s.stored(&id).await;
    assert_eq!(stored.active_run_id, None);
    let last = stored.last_run.unwrap();
    assert_eq!((last.state, last.ended_at_ms), (RunState::Cancelled, later));
    assert!(
        s.d.store
            .sync_events()
            .iter()
            .any(|e| e.kind == SyncEventType::RunCancelled
                && e.run_id.as_ref().map(ToString::to_string) == Some(queued.clone()))
    );
    // An ended run is not cancelled again.
    let res = cancel(&queued).await;
    is_problem(&res, 409, "run_finished");
    assert!(res.body["detail"].as_str().unwrap().contains("cancelled"));

    // A running run is asked to stop; it stays the sync's active run until the connector stops it.
    let running = s.trigger(&id, None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.set_run_state(&id, &running, RunState::Running).await;
    let res = cancel(&running).await;
    assert_eq!(res.status, 202, "{:?}", res.body);
    assert_eq!(res.body["state"], "running");
    assert_eq!(res.body["cancel_requested"], true);
    assert_eq!(res.body["ended_at"], Value::Null);
    assert!(s.run(&id, &running).await.cancel_requested);
    assert_eq!(
        s.stored(&id).await.active_run_id,
        Some(running.parse().unwrap())
    );
    assert_eq!(
        cancel(&running).await.status,
        202,
        "again: nothing more to do"
    );
    for state in [RunState::Succeeded, RunState::Failed, RunState::Stalled] {
        s.set_run_state(&id, &running, state).await;
        is_problem(&cancel(&running).await, 409, "run_finished");
    }
    is_problem(
        &cancel(&SyncRunId::generate().to_string()).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn runs_are_listed_newest_first_a_page_at_a_time() {
    let s = setup();
    let id = s.create().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let res = s.trigger(&id, None).await;
        assert_eq!(res.status, 202, "{:?}", res.body);
        let run = res.body["id"].as_str().unwrap().to_owned();
        s.set_run_state(&id, &run, RunState::Succeeded).await;
        ids.push(run);
        // Run ids are ordered by the system time of their creation.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut path = format!("/v1/syncs/{id}/runs?limit=2");
    loop {
        let res = s.send("GET", &path, None).await;
        assert_eq!(res.status, 200, "{:?}", res.body);
        seen.extend(
            res.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned()),
        );
        match res.body["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/syncs/{id}/runs?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let one = s
        .send("GET", &format!("/v1/syncs/{id}/runs/{}", ids[0]), None)
        .await;
    assert_eq!(one.body["state"], "succeeded");
    // A run is found only under its own sync.
    let other = {
        let mut body = s.customers();
        body["model"] = "other".into();
        s.send("POST", "/v1/syncs", Some(body)).await.body["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    is_problem(
        &s.send("GET", &format!("/v1/syncs/{other}/runs/{}", ids[0]), None)
            .await,
        404,
        "not_found",
    );
    let foreign_cursor = crate::pagination::encode_cursor("SYNC#sync_x");
    let res = s
        .send(
            "GET",
            &format!("/v1/syncs/{id}/runs?cursor={foreign_cursor}"),
            None,
        )
        .await;
    is_problem(&res, 400, "validation_failed");
}

#[tokio::test]
async fn creating_and_triggering_replay_the_first_answer_for_the_same_idempotency_key() {
    let s = setup();
    let create = || {
        call(
            &s.d,
            s.req("POST", "/v1/syncs")
                .header("idempotency-key", "sync-1")
                .json(s.customers()),
        )
    };
    let first = create().await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let replay = create().await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body, first.body);
    assert_eq!(s.list_syncs().await.len(), 1);

    let id = first.body["id"].as_str().unwrap();
    // Without a body (no content type either): a plain run.
    let trigger = || {
        call(
            &s.d,
            s.req("POST", &format!("/v1/syncs/{id}/runs"))
                .header("idempotency-key", "run-1"),
        )
    };
    let first = trigger().await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    let replay = trigger().await;
    assert_eq!(replay.status, 202);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body["id"], first.body["id"]);
    assert_eq!(s.d.jobs.sent().len(), 1, "one job for one run");
    // The same key with a body is another request.
    let other = call(
        &s.d,
        s.req("POST", &format!("/v1/syncs/{id}/runs"))
            .header("idempotency-key", "run-1")
            .json(json!({"full_resync": true})),
    )
    .await;
    is_problem(&other, 422, "idempotency_key_reused");
    let runs = PageRequest {
        limit: 100,
        after: None,
    };
    let stored =
        s.d.store
            .list_runs(&s.t, &id.parse().unwrap(), &runs)
            .await
            .unwrap();
    assert_eq!(stored.items.len(), 1);
}

/// A stream that declares its records' fields (Stripe customers) refuses a mapping reading one it
/// cannot have, on creation and on change; fields it has, nested ones and an open object's keys
/// (`metadata`) are accepted.
#[tokio::test]
async fn a_mapping_reading_a_field_the_stream_cannot_have_is_refused_on_change_too() {
    let s = setup();
    let mut body = s.customers();
    body["mapping"] = json!({"fields": [
        {"to": "email"},
        {"to": "city", "from": "address.city"},
        {"to": "crm", "from": "metadata.crm_id"}
    ]});
    let res = s.send("POST", "/v1/syncs", Some(body)).await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    let id = res.body["id"].as_str().unwrap().to_owned();
    let before = s.stored(&id.parse().unwrap()).await;

    let res = s
        .send(
            "PATCH",
            &format!("/v1/syncs/{id}"),
            Some(json!({"mapping": {"fields": [{"to": "email"}, {"to": "zip", "from": "address.zip"}]}})),
        )
        .await;
    is_problem(&res, 400, "validation_failed");
    assert_eq!(res.body["errors"][0]["pointer"], "/mapping/fields/1/from");
    assert_eq!(
        s.stored(&id.parse().unwrap()).await,
        before,
        "nothing changed"
    );

    let res = s
        .send(
            "PATCH",
            &format!("/v1/syncs/{id}"),
            Some(json!({"mapping": {"fields": [{"to": "zip", "from": "address.postal_code"}]}})),
        )
        .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
}
