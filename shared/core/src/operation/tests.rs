use super::*;

fn recorder() -> Arc<Recorder> {
    Arc::new(Recorder::new(
        OperationId::derive(1_000, "t"),
        "ten_00000000000000000000000000000001".parse().unwrap(),
        OperationKind::SyncRun,
        1_000,
    ))
}

fn ok_request(attempt: u32) -> ObservedRequest<'static> {
    ObservedRequest {
        method: "GET",
        host: "api.stripe.com",
        path: "/v1/customers",
        query: Some("limit=100&starting_after=cus_secret&api_key=sk_live_x"),
        status: Some(200),
        duration_ms: 12,
        attempt,
        error_class: None,
    }
}

#[test]
fn a_request_entry_keeps_query_names_and_no_values() {
    assert_eq!(
        loggable_path(
            "/v1/customers",
            Some("limit=100&starting_after=cus_1&key=sk_live_x&flag")
        ),
        "/v1/customers?limit=&starting_after=&key=&flag="
    );
    assert_eq!(loggable_path("/v1/customers", None), "/v1/customers");
    assert_eq!(loggable_path("/v1/customers", Some("")), "/v1/customers");
    let r = recorder();
    r.request(&ok_request(1), 1_001);
    let op = r.finish(OperationState::Succeeded, 1_010).unwrap();
    let json = serde_json::to_string(&op).unwrap();
    assert!(!json.contains("sk_live_x"), "{json}");
    assert!(!json.contains("cus_secret"), "{json}");
}

#[test]
fn a_million_requests_keep_counts_and_a_bounded_sample_with_the_failures() {
    let r = recorder();
    for i in 0..1_000_000u32 {
        r.request(&ok_request(1), i64::from(i));
        if i % 100_000 == 0 {
            r.request(
                &ObservedRequest {
                    status: Some(429),
                    error_class: Some("rate_limited"),
                    ..ok_request(2)
                },
                i64::from(i),
            );
        }
    }
    let op = r.finish(OperationState::Succeeded, 2_000_000).unwrap();
    assert_eq!(op.counts.requests, 1_000_010);
    assert_eq!(op.counts.rate_limited, 10);
    assert_eq!(op.counts.errors_by_class.get("rate_limited"), Some(&10));
    assert_eq!(op.entries.len(), MAX_SUCCESS_SAMPLE + 10);
    assert_eq!(op.entries_dropped, 1_000_010 - op.entries.len() as u64);
    let failures = op
        .entries
        .iter()
        .filter(|e| matches!(e, Entry::Request(r) if r.status == Some(429)))
        .count();
    assert_eq!(failures, 10, "every failure is kept while there is room");
    assert_eq!(op.latencies_ms.len(), MAX_LATENCY_SAMPLE);
    assert!(serde_json::to_vec(&op).unwrap().len() < 16 * 1024);
}

#[test]
fn notes_and_requests_stop_at_the_entry_bound() {
    let r = recorder();
    for i in 0..(MAX_ENTRIES + 5) {
        r.note(NoteKind::Warning, &"x".repeat(2_000), i as i64);
    }
    let op = r.finish(OperationState::Succeeded, 2_000).unwrap();
    assert_eq!(op.entries.len(), MAX_ENTRIES);
    assert_eq!(op.entries_dropped, 5);
    let Entry::Note(n) = &op.entries[0] else {
        panic!("a note")
    };
    assert_eq!(n.message.chars().count(), MAX_MESSAGE_CHARS);
}

#[tokio::test]
async fn work_inside_a_recording_describes_its_operation_and_outside_does_nothing() {
    note(NoteKind::Info, "outside", 0);
    describe(|d| d.op.provider = Some("nobody".into()));
    let r = recorder();
    recording(r.clone(), async {
        describe(|d| {
            d.op.provider = Some("stripe".into());
            d.state = Some(OperationState::Continued);
        });
        tokio::task::yield_now().await;
        note(NoteKind::Continuation, "continues at page 3", 1_005);
        observe_request(&ok_request(1), 1_006);
    })
    .await;
    let op = r.finish(OperationState::Succeeded, 1_010).unwrap();
    assert_eq!(op.provider.as_deref(), Some("stripe"));
    assert_eq!(op.state, OperationState::Continued, "the work's state wins");
    assert_eq!(op.entries.len(), 2);
    assert_eq!(op.counts.requests, 1);
    assert_eq!(op.duration_ms(), 10);
}

#[test]
fn a_skipped_operation_is_not_logged() {
    let r = recorder();
    r.describe(|d| d.skip = true);
    assert!(r.finish(OperationState::Succeeded, 1_001).is_none());
}

#[test]
fn usage_of_an_operation_counts_its_records_requests_and_kind() {
    let r = Recorder::new(
        OperationId::derive(0, "d"),
        "ten_00000000000000000000000000000001".parse().unwrap(),
        OperationKind::WebhookDelivery,
        86_400_000 * 3 + 5,
    );
    r.describe(|d| d.state = Some(OperationState::Retrying));
    let op = r
        .finish(OperationState::Succeeded, 86_400_000 * 3 + 50)
        .unwrap();
    let u = op.usage();
    assert_eq!((u.webhook_deliveries, u.webhook_failures), (1, 1));
    assert_eq!(u.compute_ms, 45);
    assert_eq!(op.usage_key().day, "1970-01-04");
}

#[test]
fn days_round_trip_and_bad_days_are_refused() {
    let ms = day_start_ms("2026-12-07").unwrap();
    assert_eq!(day_of(ms), "2026-12-07");
    assert_eq!(day_of(ms + 86_399_999), "2026-12-07");
    assert_eq!(day_of(ms - 1), "2026-12-06");
    assert_eq!(day_start_ms("2026-13-01"), None);
    assert_eq!(day_start_ms("yesterday"), None);
}

#[test]
fn the_filter_matches_on_every_field_and_the_time_range_is_half_open() {
    let r = recorder();
    r.describe(|d| d.op.provider = Some("stripe".into()));
    let op = r.finish(OperationState::Failed, 1_500).unwrap();
    assert!(OperationFilter::default().matches(&op));
    let f = |f: OperationFilter| f.matches(&op);
    assert!(f(OperationFilter {
        kind: Some(OperationKind::SyncRun),
        state: Some(OperationState::Failed),
        from_ms: Some(1_000),
        to_ms: Some(1_001),
        ..Default::default()
    }));
    assert!(!f(OperationFilter {
        to_ms: Some(1_000),
        ..Default::default()
    }));
    assert!(!f(OperationFilter {
        state: Some(OperationState::Succeeded),
        ..Default::default()
    }));
    assert!(!f(OperationFilter {
        connection_id: Some(crate::ids::ConnectionId::generate()),
        ..Default::default()
    }));
}

#[test]
fn sync_day_stats_come_from_sync_runs_only_and_count_failures_by_class() {
    let r = recorder();
    r.describe(|d| {
        d.op.counts.records_added = 7;
        d.op.counts.records_unchanged = 3;
        d.op.error = Some(OperationError {
            class: "auth".into(),
            message: "refused".into(),
        });
    });
    let op = r.finish(OperationState::Failed, 3_000).unwrap();
    let s = SyncDayStats::of(&op).unwrap();
    assert_eq!(
        (s.records, s.runs_ended, s.runs_failed, s.busy_ms),
        (10, 1, 1, 2_000)
    );
    assert_eq!(s.errors_by_class.get("auth"), Some(&1));
    let mut other = op.clone();
    other.kind = OperationKind::Proxy;
    assert!(SyncDayStats::of(&other).is_none());
}

#[test]
fn retention_defaults_to_14_days_and_refuses_what_is_out_of_range() {
    let env = |v: &str| crate::config::Env::from_pairs([("OPERATIONS_RETENTION_DAYS", v)]);
    assert_eq!(
        retention_days(&crate::config::Env::from_pairs(Vec::<(&str, &str)>::new())).unwrap(),
        14
    );
    assert_eq!(retention_days(&env("90")).unwrap(), 90);
    for bad in ["0", "366", "-1", "two weeks"] {
        assert!(retention_days(&env(bad)).is_err(), "{bad}");
    }
}
