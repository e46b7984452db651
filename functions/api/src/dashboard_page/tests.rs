use std::collections::BTreeMap;

use tributary_core::ids::{ConnectionId, IntegrationId, OperationId, SyncId, TenantId};
use tributary_core::insights::{FailingSync, ProviderDeferral, Recommendation, StreamSpeed};
use tributary_core::operation::{
    NoteEntry, NoteKind, OperationCounts, OperationError, OperationKind, RequestEntry, day_of,
};

use super::*;

/// 2025-11-24T16:00:00Z.
const T0: i64 = 1_764_000_000_000;
const DAY_MS: i64 = 86_400_000;
const HOSTILE: &str = "<script>alert(\"x\")</script>'";

fn operation(
    kind: OperationKind,
    state: OperationState,
    name: &str,
    duration_ms: i64,
) -> Operation {
    Operation {
        id: OperationId::generate(),
        tenant_id: TenantId::generate(),
        kind,
        state,
        connection_id: Some(ConnectionId::generate()),
        integration_id: Some(IntegrationId::generate()),
        provider: Some("stripe".into()),
        sync_id: Some(SyncId::generate()),
        name: Some(name.into()),
        subject: Some("run_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d".into()),
        started_at_ms: T0,
        ended_at_ms: T0 + duration_ms,
        counts: OperationCounts::default(),
        error: None,
        entries: Vec::new(),
        entries_dropped: 0,
        latencies_ms: Vec::new(),
    }
}

fn sync_run() -> Operation {
    let mut op = operation(
        OperationKind::SyncRun,
        OperationState::Succeeded,
        "customers",
        12_400,
    );
    op.counts = OperationCounts {
        requests: 17,
        records_added: 40,
        records_updated: 2,
        records_deleted: 1,
        records_unchanged: 5,
        ..OperationCounts::default()
    };
    op
}

fn failed_run(message: &str) -> Operation {
    let mut op = operation(
        OperationKind::SyncRun,
        OperationState::Failed,
        "invoices",
        850,
    );
    op.error = Some(OperationError {
        class: "auth".into(),
        message: message.into(),
    });
    op
}

/// 30 days ending on T0's day, every counter zero.
fn empty_days() -> Vec<(String, UsageCounts)> {
    (0..30)
        .map(|i| (day_of(T0 - (29 - i) * DAY_MS), UsageCounts::default()))
        .collect()
}

fn usage_days() -> Vec<(String, UsageCounts)> {
    let mut days = empty_days();
    days[3].1 = UsageCounts {
        records_added: 100,
        records_updated: 20,
        records_deleted: 3,
        provider_requests: 5,
        api_calls: 7,
        action_runs: 2,
        proxy_calls: 4,
        webhook_deliveries: 9,
        webhook_failures: 1,
        inbound_webhooks: 6,
        compute_ms: 61_000,
    };
    days[4].1 = UsageCounts {
        records_added: 200,
        records_updated: 40,
        records_deleted: 6,
        provider_requests: 10,
        api_calls: 11,
        webhook_deliveries: 1,
        compute_ms: 4_000,
        ..UsageCounts::default()
    };
    days
}

fn data() -> DashboardData {
    let mut recent: Vec<Operation> = (0..12)
        .map(|i| {
            operation(
                OperationKind::ActionRun,
                OperationState::Succeeded,
                &format!("action-{i}"),
                300,
            )
        })
        .collect();
    recent.insert(0, sync_run());
    DashboardData {
        tenant_name: "Acme".into(),
        generated_at: "2025-11-24T16:00:00Z".into(),
        integrations: vec![IntegrationRow {
            id: "int_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d".into(),
            provider: "stripe".into(),
            active: 7,
            needs_reauth: 3,
            failing: 2,
            disabled: 1,
        }],
        connections: vec![
            ConnectionRow {
                id: "conn_00000000000000000000000000000001".into(),
                provider: "hubspot".into(),
                end_user_id: Some("user-9".into()),
                health: Health::NeedsReauth,
                reason: Some("The provider refused the token.".into()),
            },
            ConnectionRow {
                id: "conn_00000000000000000000000000000002".into(),
                provider: "stripe".into(),
                end_user_id: None,
                health: Health::Active,
                reason: None,
            },
        ],
        recent,
        failures: vec![failed_run("The key was revoked.")],
        usage_days: usage_days(),
        insights: Insights {
            slowest_streams: vec![StreamSpeed {
                sync_id: Some(SyncId::generate()),
                connection_id: None,
                provider: Some("salesforce".into()),
                stream: Some("contacts".into()),
                records: 4_321,
                busy_ms: 98_765,
                ms_per_1000_records: 22_857,
            }],
            deferred_providers: vec![ProviderDeferral {
                provider: "hubspot".into(),
                busy_ms: 1_000,
                deferred_ms: 3_000,
                deferred_share_percent: 75,
                requests: 321,
                rate_limited: 13,
            }],
            failing_syncs: vec![FailingSync {
                sync_id: None,
                connection_id: None,
                provider: Some("zendesk".into()),
                stream: Some("tickets".into()),
                runs: 12,
                failures: 5,
                error_classes: BTreeMap::from([("auth".into(), 4), ("timeout".into(), 1)]),
            }],
            recommendations: vec![Recommendation {
                kind: "reconnect",
                subject: "hubspot".into(),
                message: "Ask the end user to connect again.".into(),
            }],
        },
    }
}

fn empty_data() -> DashboardData {
    DashboardData {
        tenant_name: String::new(),
        generated_at: String::new(),
        integrations: Vec::new(),
        connections: Vec::new(),
        recent: Vec::new(),
        failures: Vec::new(),
        usage_days: Vec::new(),
        insights: Insights::default(),
    }
}

fn detailed_operation() -> Operation {
    let mut op = failed_run("Stripe answered 401.");
    op.entries = vec![
        Entry::Request(RequestEntry {
            at_ms: T0 + 5,
            method: "GET".into(),
            host: "api.stripe.com".into(),
            path: "/v1/customers?limit=&starting_after=".into(),
            status: Some(401),
            duration_ms: 83,
            attempt: 2,
            error_class: Some("auth".into()),
        }),
        Entry::Note(NoteEntry {
            at_ms: T0 + 90,
            kind: NoteKind::RateLimited,
            message: "Retry-After 30 s".into(),
        }),
    ];
    op.entries_dropped = 57;
    op
}

/// Every page the data can make: each view, and an operation's page.
fn pages(data: &DashboardData, op: &Operation) -> Vec<String> {
    let mut pages: Vec<String> = View::ALL
        .into_iter()
        .map(|v| render(v, data, None))
        .collect();
    pages.push(render(View::Overview, data, Some(op)));
    pages
}

/// The heights of the bars of the chart `id`, in drawing order.
fn bar_heights(page: &str, id: &str) -> Vec<f64> {
    let start = page
        .find(&format!("<svg class=\"chart\" id=\"chart-{id}\""))
        .expect("the chart is drawn");
    let svg = &page[start..start + page[start..].find("</svg>").expect("closed")];
    svg.split("<rect ")
        .skip(1)
        .map(|rect| {
            let h = rect.split("height=\"").nth(1).expect("a height");
            h[..h.find('"').expect("quoted")].parse().expect("a number")
        })
        .collect()
}

/// The text of the element with `id` up to its closing `</tag>`.
fn element<'a>(page: &'a str, tag: &str, id: &str) -> &'a str {
    let attribute = page
        .find(&format!(" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no id={id}"));
    let start = page[..attribute]
        .rfind(&format!("<{tag}"))
        .expect("the tag");
    let end = page[start..].find(&format!("</{tag}>")).expect("closed");
    &page[start..start + end]
}

#[test]
fn hostile_text_is_escaped_on_every_page() {
    let mut data = data();
    data.tenant_name = HOSTILE.into();
    data.generated_at = HOSTILE.into();
    data.connections[0].reason = Some(HOSTILE.into());
    data.connections[0].end_user_id = Some(HOSTILE.into());
    data.integrations[0].provider = HOSTILE.into();
    data.failures = vec![failed_run(HOSTILE)];
    data.failures[0].name = Some(HOSTILE.into());
    data.recent[0].name = Some(HOSTILE.into());
    data.usage_days[0].0 = HOSTILE.into();
    data.insights.slowest_streams[0].stream = Some(HOSTILE.into());
    data.insights.failing_syncs[0]
        .error_classes
        .insert(HOSTILE.into(), 1);
    data.insights.recommendations[0].message = HOSTILE.into();
    let mut op = detailed_operation();
    op.error = Some(OperationError {
        class: HOSTILE.into(),
        message: HOSTILE.into(),
    });
    op.entries.push(Entry::Note(NoteEntry {
        at_ms: T0,
        kind: NoteKind::Warning,
        message: HOSTILE.into(),
    }));

    for (i, page) in pages(&data, &op).iter().enumerate() {
        assert!(!page.contains(HOSTILE), "page {i} holds the raw text");
        assert!(!page.contains("alert(\"x\")"), "page {i} holds a raw quote");
        assert!(
            page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;"),
            "page {i} lacks the escaped text"
        );
        assert!(
            page.contains("<h1>&lt;script&gt;"),
            "page {i}: the tenant name"
        );
    }
}

#[test]
fn overview_shows_integrations_connections_and_the_ten_latest_operations() {
    let data = data();
    let page = render(View::Overview, &data, None);

    let integrations = element(&page, "table", "integrations");
    for cell in ["stripe", "int_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d"] {
        assert!(integrations.contains(cell), "{cell}");
    }
    for n in [7, 3, 2, 1] {
        assert!(
            integrations.contains(&format!("<td class=\"num\">{n}</td>")),
            "{n}"
        );
    }
    let connections = element(&page, "table", "connections");
    assert!(connections.contains("conn_00000000000000000000000000000001"));
    assert!(connections.contains("user-9"));
    assert!(connections.contains("The provider refused the token."));
    // Health is written, not only coloured.
    assert!(connections.contains("<span class=\"badge warn\">needs re-auth</span>"));
    assert!(connections.contains("<span class=\"badge good\">active</span>"));

    let latest = element(&page, "table", "latest");
    assert_eq!(latest.matches("<tr><td>").count(), 10);
    assert!(latest.contains(data.recent[9].id.as_str()));
    assert!(!latest.contains(data.recent[10].id.as_str()));
}

#[test]
fn runs_view_shows_each_operation_with_its_counts_and_a_link() {
    let data = data();
    let page = render(View::Runs, &data, None);
    let runs = element(&page, "table", "runs");
    assert_eq!(runs.matches("<tr><td>").count(), data.recent.len());

    let run = &data.recent[0];
    let row_start = runs
        .find("<tr><td>sync_run</td>")
        .expect("the sync run's row");
    let row = &runs[row_start..row_start + runs[row_start..].find("</tr>").expect("row")];
    assert!(row.contains("<td>customers</td>"));
    assert!(row.contains("<td>stripe</td>"));
    assert!(row.contains(">succeeded</span>"));
    assert!(row.contains("2025-11-24T16:00:00Z"));
    assert!(row.contains("<td class=\"num\">12.4 s</td>"));
    assert!(row.contains("<td class=\"num\">43</td>"), "records written");
    assert!(row.contains("<td class=\"num\">17</td>"), "requests");
    assert!(row.contains(&format!("href=\"?operation={}\"", run.id)));
}

#[test]
fn failures_view_shows_each_error_with_a_link_and_says_when_there_is_none() {
    let data = data();
    let page = render(View::Failures, &data, None);
    let failures = element(&page, "table", "failures");
    let op = &data.failures[0];
    assert!(failures.contains(">failed</span>"));
    assert!(failures.contains("<td>auth</td>"));
    assert!(failures.contains("The key was revoked."));
    assert!(failures.contains(&format!("<a href=\"?operation={}\">Details", op.id)));

    let mut calm = data.clone();
    calm.failures.clear();
    let page = render(View::Failures, &calm, None);
    assert!(!page.contains("id=\"failures\""));
    assert!(page.contains("No operation failed recently."));
}

#[test]
fn usage_view_shows_totals_charts_and_tables_of_the_data() {
    let page = render(View::Usage, &data(), None);
    for (id, value) in [
        ("total-records", "369"),
        ("total-provider-requests", "15"),
        ("total-api-calls", "18"),
        ("total-action-runs", "2"),
        ("total-proxy-calls", "4"),
        ("total-webhook-deliveries", "10"),
        ("total-webhook-failures", "1"),
        ("total-inbound-webhooks", "6"),
        ("total-compute-time", "1 min 5 s"),
    ] {
        assert!(
            page.contains(&format!("<dd id=\"{id}\">{value}</dd>")),
            "{id} = {value}"
        );
    }
    for id in ["records", "provider-requests", "api-calls", "webhooks"] {
        assert!(page.contains(&format!(
            "role=\"img\" viewBox=\"0 0 480 240\" aria-labelledby=\"chart-{id}-title chart-{id}-desc\""
        )));
        assert!(page.contains(&format!("<title id=\"chart-{id}-title\">")));
        assert!(page.contains(&format!("<desc id=\"chart-{id}-desc\">")));
        assert_eq!(
            element(&page, "table", &format!("table-{id}"))
                .matches("<tr><th scope=\"row\">")
                .count(),
            31
        );
    }
    let day = &data().usage_days[4].0;
    let records = element(&page, "table", "table-records");
    assert!(records.contains(&format!(
        "<tr><th scope=\"row\">{day}</th><td class=\"num\">200</td><td class=\"num\">40</td><td class=\"num\">6</td><td class=\"num\">246</td></tr>"
    )));
    let webhooks = element(&page, "table", "table-webhooks");
    assert!(webhooks.contains(&format!(
        "<tr><th scope=\"row\">{}</th><td class=\"num\">9</td><td class=\"num\">1</td></tr>",
        data().usage_days[3].0
    )));
    // The axes: the largest day's value, the first and the last day.
    let chart = &page[page.find("id=\"chart-records\"").expect("chart")..];
    assert!(chart.contains("text-anchor=\"end\">246</text>"));
    assert!(chart.contains(&format!(">{}</text>", data().usage_days[0].0)));
    assert!(chart.contains(&format!(">{}</text>", data().usage_days[29].0)));
}

#[test]
fn bar_heights_are_proportional_to_the_values() {
    let page = render(View::Usage, &data(), None);

    let requests = bar_heights(&page, "provider-requests");
    assert_eq!(requests.len(), 30);
    // Day 4 has 10 requests (the most), day 3 has 5.
    assert!((requests[4] - PLOT_H).abs() < 0.01);
    assert!(
        (requests[4] - 2.0 * requests[3]).abs() < 0.01,
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .enumerate()
            .all(|(i, h)| i == 3 || i == 4 || *h == 0.0)
    );

    // Stacked: a day's three parts add up to its share of the tallest day (246 vs 123).
    let records = bar_heights(&page, "records");
    assert_eq!(records.len(), 90);
    let day = |d: usize| records[3 * d] + records[3 * d + 1] + records[3 * d + 2];
    assert!((day(4) - PLOT_H).abs() < 0.01);
    // Each part is written to 0.01: three roundings of 0.005 at most.
    assert!((day(4) - 2.0 * day(3)).abs() < 0.031, "{records:?}");
    assert!(
        (records[12] - 2.0 * records[9]).abs() < 0.011,
        "added: 200 vs 100"
    );
}

#[test]
fn zero_usage_draws_empty_bars_without_dividing_by_zero() {
    let mut data = data();
    data.usage_days = empty_days();
    let page = render(View::Usage, &data, None);
    for id in ["records", "provider-requests", "api-calls", "webhooks"] {
        let heights = bar_heights(&page, id);
        assert!(!heights.is_empty());
        assert!(heights.iter().all(|h| *h == 0.0), "{id}: {heights:?}");
    }
    assert!(!page.contains("NaN") && !page.contains("inf"));
    assert!(page.contains("<dd id=\"total-records\">0</dd>"));
    assert_eq!(bar_height(0, 0), 0.0);
    assert_eq!(bar_height(7, 0), 0.0);
}

#[test]
fn insights_view_shows_each_list_and_says_when_one_is_empty() {
    let page = render(View::Insights, &data(), None);
    let slow = element(&page, "table", "slowest-streams");
    assert!(slow.contains("<td>contacts</td>") && slow.contains("<td>salesforce</td>"));
    assert!(slow.contains("<td class=\"num\">4321</td>"));
    assert!(
        slow.contains("<td class=\"num\">22.8 s</td>"),
        "seconds per 1,000 records"
    );
    let deferred = element(&page, "table", "deferred-providers");
    assert!(deferred.contains("<td class=\"num\">75 %</td>"));
    assert!(deferred.contains("<td class=\"num\">13 / 321</td>"));
    let failing = element(&page, "table", "failing-syncs");
    assert!(
        failing.contains("<td>tickets</td>") && failing.contains("<td class=\"num\">5 / 12</td>")
    );
    assert!(failing.contains("auth × 4, timeout × 1"));
    assert!(element(&page, "ul", "recommendations").contains("Ask the end user to connect again."));

    let page = render(View::Insights, &empty_data(), None);
    for sentence in [
        "too few to rank by speed",
        "No provider rate limited or deferred a run",
        "No sync run failed",
        "Nothing to change.",
    ] {
        assert!(page.contains(sentence), "{sentence}");
    }
}

#[test]
fn an_empty_data_set_renders_every_view() {
    let data = empty_data();
    let op = operation(OperationKind::Proxy, OperationState::Succeeded, "", 0);
    for page in pages(&data, &op) {
        assert!(page.starts_with("<!doctype html>") && page.ends_with("</html>"));
    }
    let overview = render(View::Overview, &data, None);
    for sentence in [
        "No integrations yet.",
        "No connections yet.",
        "No operations yet.",
    ] {
        assert!(overview.contains(sentence), "{sentence}");
    }
    assert!(render(View::Runs, &data, None).contains("No operations yet"));
    let usage = render(View::Usage, &data, None);
    assert!(usage.contains("<dd id=\"total-records\">0</dd>"));
    assert!(bar_heights(&usage, "records").is_empty());
}

/// Whether an attribute ` on…=` is in `page`.
fn has_event_handler(page: &str) -> bool {
    page.match_indices(" on").any(|(i, _)| {
        let rest = &page[i + 3..];
        let name = rest.chars().take_while(char::is_ascii_alphabetic).count();
        name > 0 && rest[name..].starts_with('=')
    })
}

#[test]
fn no_page_has_a_script_an_event_handler_or_an_external_url() {
    let data = data();
    for (i, page) in pages(&data, &detailed_operation()).iter().enumerate() {
        let lower = page.to_lowercase();
        assert!(!lower.contains("<script"), "page {i}");
        assert!(
            !lower.contains("http://") && !lower.contains("https://"),
            "page {i}"
        );
        assert!(
            !lower.contains(" src=") && !lower.contains("javascript:"),
            "page {i}"
        );
        assert!(!has_event_handler(&lower), "page {i}");
    }
}

#[test]
fn every_page_has_the_landmarks_and_marks_its_view_in_the_navigation() {
    let data = data();
    for view in View::ALL {
        let page = render(view, &data, None);
        for part in [
            "<html lang=\"en\">",
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">",
            "<meta name=\"robots\" content=\"noindex\">",
            "<link rel=\"icon\" href=\"data:,\">",
            "<header><h1>Acme</h1>",
            "Updated <time datetime=\"2025-11-24T16:00:00Z\">",
            "<nav aria-label=\"Dashboard views\">",
            "<main>",
            "max-width:72rem",
            "overflow-x:auto",
        ] {
            assert!(page.contains(part), "{}: {part}", view.as_str());
        }
        assert_eq!(page.matches("aria-current=\"page\"").count(), 1);
        assert!(page.contains(&format!(
            "<a href=\"?view={}\" aria-current=\"page\">",
            view.as_str()
        )));
        for other in View::ALL {
            assert!(page.contains(&format!("href=\"?view={}\"", other.as_str())));
        }
    }
}

#[test]
fn an_operation_page_shows_its_fields_counts_entries_and_what_was_dropped() {
    let data = data();
    let op = detailed_operation();
    // Whatever the view, the operation is shown.
    let page = render(View::Usage, &data, Some(&op));
    assert!(!page.contains("id=\"totals\""));
    assert!(!page.contains("aria-current=\"page\""));

    let fields = element(&page, "dl", "operation-fields");
    for value in [
        op.id.to_string(),
        op.connection_id.as_ref().expect("set").to_string(),
        op.integration_id.as_ref().expect("set").to_string(),
        "sync_run".into(),
        ">failed</span>".into(),
        "invoices".into(),
        "run_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d".into(),
        "2025-11-24T16:00:00Z".into(),
        "2025-11-24T16:00:00.85Z".into(),
        "850 ms".into(),
    ] {
        assert!(fields.contains(&value), "{value}");
    }
    assert!(element(&page, "dl", "error").contains("Stripe answered 401."));

    let entries = element(&page, "table", "entries");
    assert!(entries.contains(
        "<td>request</td><td>GET</td><td>api.stripe.com</td><td class=\"wrap\"><code>/v1/customers?limit=&amp;starting_after=</code></td>\
         <td class=\"num\">401</td><td class=\"num\">83 ms</td><td class=\"num\">2</td><td>auth</td>"
    ));
    assert!(
        entries.contains(
            "<td>rate_limited</td><td colspan=\"7\" class=\"wrap\">Retry-After 30 s</td>"
        )
    );
    assert!(page.contains("<p id=\"entries-dropped\">57 more entries not kept"));
    assert!(page.contains("href=\"?view=failures\"") && page.contains("href=\"?view=runs\""));

    let mut complete = op.clone();
    complete.entries_dropped = 0;
    assert!(!render(View::Runs, &data, Some(&complete)).contains("entries-dropped"));
}

#[test]
fn durations_read_as_people_say_them() {
    assert_eq!(duration(0), "0 ms");
    assert_eq!(duration(850), "850 ms");
    assert_eq!(duration(12_400), "12.4 s");
    assert_eq!(duration(185_000), "3 min 5 s");
    assert_eq!(duration(7_420_000), "2 h 3 min");
}
