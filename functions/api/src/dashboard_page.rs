//! The dashboard's HTML: what a tenant's engineer opens to see how its integrations run. Plain,
//! accessible markup with one inline style sheet, charts drawn as inline SVG with a table beside
//! each (the same numbers, for screen readers and for copying), no script and no external asset,
//! readable on a phone. Every value written into a page is escaped.
//!
//! The route (`routes/dashboard.rs`) gathers a [`DashboardData`] from the stores and renders one
//! [`View`]; this module only turns data into HTML.

use tributary_core::insights::Insights;
use tributary_core::operation::{Entry, Operation, OperationState, UsageCounts};

use crate::connect_page::escape;

/// What a view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Integrations and connections with their health, and the latest runs.
    Overview,
    /// Recent operations with state, counts and duration.
    Runs,
    /// Failed operations with their error messages, each linking to its operation.
    Failures,
    /// Usage over 30 days.
    Usage,
    /// Bottlenecks and what to change.
    Insights,
}

impl View {
    /// Every view, in the navigation's order.
    pub const ALL: [View; 5] = [
        View::Overview,
        View::Runs,
        View::Failures,
        View::Usage,
        View::Insights,
    ];

    /// The `view` query value.
    pub fn as_str(self) -> &'static str {
        match self {
            View::Overview => "overview",
            View::Runs => "runs",
            View::Failures => "failures",
            View::Usage => "usage",
            View::Insights => "insights",
        }
    }

    /// The view of a `view` query value.
    pub fn parse(s: &str) -> Option<Self> {
        View::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A connection's health as the dashboard shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Working.
    Active,
    /// Its end user must connect again.
    NeedsReauth,
    /// Its latest sync run failed.
    Failing,
    /// Disabled by the tenant.
    Disabled,
}

impl Health {
    /// The label shown (and the badge's class).
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Active => "active",
            Health::NeedsReauth => "needs re-auth",
            Health::Failing => "failing",
            Health::Disabled => "disabled",
        }
    }
}

/// One integration with its connections' health counts.
#[derive(Debug, Clone)]
pub struct IntegrationRow {
    /// Its id (`int_…`).
    pub id: String,
    /// Its provider (catalog name).
    pub provider: String,
    /// Connections by health.
    pub active: u64,
    /// Connections that need their end user.
    pub needs_reauth: u64,
    /// Connections whose latest run failed.
    pub failing: u64,
    /// Disabled connections.
    pub disabled: u64,
}

/// One connection.
#[derive(Debug, Clone)]
pub struct ConnectionRow {
    /// Its id (`conn_…`).
    pub id: String,
    /// Its provider.
    pub provider: String,
    /// The tenant's id of its end user, if set.
    pub end_user_id: Option<String>,
    /// Its health.
    pub health: Health,
    /// Why, when not active (the status reason or the latest run's error).
    pub reason: Option<String>,
}

/// What a dashboard shows, gathered by the route.
#[derive(Debug, Clone)]
pub struct DashboardData {
    /// The tenant's name.
    pub tenant_name: String,
    /// When the data was read (RFC 3339).
    pub generated_at: String,
    /// Integrations with their connections' health.
    pub integrations: Vec<IntegrationRow>,
    /// Connections (at most 100, the unhealthy first).
    pub connections: Vec<ConnectionRow>,
    /// The latest operations, newest first (at most 50).
    pub recent: Vec<Operation>,
    /// The latest failed operations, newest first (at most 50).
    pub failures: Vec<Operation>,
    /// Usage per day over the last 30 days, oldest first, every day present (zeros included):
    /// `(YYYY-MM-DD, counts)`.
    pub usage_days: Vec<(String, UsageCounts)>,
    /// Bottlenecks over the last 7 days.
    pub insights: Insights,
}

/// The page of `view` over `data`; `operation` is shown instead when set (the page a failure links
/// to). Links to views are `?view=<name>`, to an operation `?operation=<op id>`, relative to the
/// page.
pub fn render(view: View, data: &DashboardData, operation: Option<&Operation>) -> String {
    match operation {
        Some(op) => document(
            data,
            &format!("Operation {}", op.id),
            None,
            &operation_page(op),
        ),
        None => {
            let main = match view {
                View::Overview => overview(data),
                View::Runs => runs(data),
                View::Failures => failures(data),
                View::Usage => usage(&data.usage_days),
                View::Insights => insights(&data.insights),
            };
            document(data, label(view), Some(view), &main)
        }
    }
}

// Colours come in pairs (light, dark) with text contrast of at least 4.5:1 on the cards; the
// badges and charts never rely on colour alone (badges carry their word, charts a table).
const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#57606a;--bg:#f6f7f9;--card:#fff;--line:#d0d7de;--accent:#0b57d0;--good:#1a7f37;--bad:#b3261e;--warn:#8a5a00;--c1:#0b57d0;--c2:#8250df;--c3:#c2410c}\
@media (prefers-color-scheme:dark){:root{--fg:#e6e8eb;--muted:#a3acb6;--bg:#14171a;--card:#1d2125;--line:#3a4149;--accent:#8ab4f8;--good:#7ee2a8;--bad:#f2b8b5;--warn:#f5d28a;--c1:#8ab4f8;--c2:#d2a8ff;--c3:#fdba74}}\
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);background:var(--bg)}\
header,main{max-width:72rem;margin:0 auto;padding:0 1rem}header{padding-top:1.25rem}main{padding-bottom:3rem}\
h1{font-size:1.5rem;margin:0;overflow-wrap:anywhere}.updated{margin:.1rem 0 .75rem;color:var(--muted);font-size:.9rem}\
nav ul{display:flex;flex-wrap:wrap;gap:.4rem;list-style:none;margin:0 0 1rem;padding:0}\
nav a{display:inline-block;padding:.3rem .85rem;border:1px solid var(--line);border-radius:999px;color:inherit;background:var(--card);text-decoration:none}\
nav a[aria-current=page]{color:#fff;background:var(--accent);border-color:var(--accent);font-weight:600}\
@media (prefers-color-scheme:dark){nav a[aria-current=page]{color:#0b1320}}\
a{color:var(--accent)}a:focus,summary:focus,.scroll:focus{outline:3px solid var(--accent);outline-offset:2px}\
h2{font-size:1.15rem;margin:0 0 .6rem;overflow-wrap:anywhere}p{margin:0 0 .6rem}\
section{background:var(--card);border:1px solid var(--line);border-radius:.75rem;padding:1rem 1.1rem;margin:0 0 1rem;min-width:0}\
.scroll{position:relative;overflow-x:auto;max-width:100%}.scroll+p{margin-top:.6rem}table{border-collapse:collapse;width:100%;font-size:.92rem}\
caption{text-align:left;color:var(--muted);font-size:.85rem;padding:0 0 .35rem}\
th,td{padding:.4rem .6rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;white-space:nowrap}\
th{font-weight:600}.num{text-align:right;font-variant-numeric:tabular-nums}td.wrap{white-space:normal;min-width:14rem;overflow-wrap:anywhere}\
tfoot th,tfoot td{border-bottom:0;font-weight:600}code{font:.88em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}\
.badge{display:inline-block;padding:0 .55em;border:1px solid currentColor;border-radius:999px;font-size:.85em;font-weight:600;white-space:nowrap}\
.good{color:var(--good)}.bad{color:var(--bad)}.warn{color:var(--warn)}.muted{color:var(--muted)}\
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,28rem),1fr));gap:0 1rem}.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(10rem,1fr));gap:.6rem;margin:0}\
.figures div{border:1px solid var(--line);border-radius:.6rem;padding:.55rem .8rem}.figures dt{font-size:.85rem;color:var(--muted)}\
.figures dd{margin:0;font-size:1.35rem;font-weight:650;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}\
.fields{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}.fields dt{font-weight:600}.fields dd{margin:0;overflow-wrap:anywhere}\
svg.chart{display:block;width:100%;height:auto}svg.chart text{fill:var(--muted);font-size:16px;font-family:inherit}\
.axis{stroke:var(--line);stroke-width:1}.grid{stroke:var(--line);stroke-width:1;stroke-dasharray:4 4}\
.s1{fill:var(--c1)}.s2{fill:var(--c2)}.s3{fill:var(--c3)}\
.legend{display:flex;flex-wrap:wrap;gap:.2rem 1rem;list-style:none;margin:.4rem 0 0;padding:0;font-size:.9rem}\
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:.15em;margin-right:.35em}\
.swatch.s1{background:var(--c1)}.swatch.s2{background:var(--c2)}.swatch.s3{background:var(--c3)}\
details{margin-top:.5rem}summary{cursor:pointer;color:var(--accent)}\
.vh{position:absolute;width:1px;height:1px;margin:-1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}\
@media (max-width:40rem){header,main{padding:0 .6rem}header{padding-top:1rem}section{padding:.8rem .7rem}.fields{grid-template-columns:1fr}.fields dd{margin-bottom:.4rem}}";

/// The label of a view in the navigation and the title.
fn label(view: View) -> &'static str {
    match view {
        View::Overview => "Overview",
        View::Runs => "Runs",
        View::Failures => "Failures",
        View::Usage => "Usage",
        View::Insights => "Insights",
    }
}

/// The whole document around `main` (HTML the caller escaped); `current` is the view the
/// navigation marks (none on an operation's page).
fn document(data: &DashboardData, title: &str, current: Option<View>, main: &str) -> String {
    let tenant = escape(&data.tenant_name);
    let generated = escape(&data.generated_at);
    let mut nav = String::new();
    for view in View::ALL {
        let mark = if current == Some(view) {
            " aria-current=\"page\""
        } else {
            ""
        };
        nav.push_str(&format!(
            "<li><a href=\"?view={}\"{mark}>{}</a></li>",
            view.as_str(),
            label(view)
        ));
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><meta name=\"referrer\" content=\"no-referrer\">\
         <link rel=\"icon\" href=\"data:,\"><title>{} · {tenant} · Tributary dashboard</title>\
         <style>{STYLE}</style></head><body><header><h1>{tenant}</h1>\
         <p class=\"updated\">Updated <time datetime=\"{generated}\">{generated}</time></p>\
         <nav aria-label=\"Dashboard views\"><ul>{nav}</ul></nav></header><main>{main}</main></body></html>",
        escape(title)
    )
}

/// A section with a heading (`id` names both).
fn section(id: &str, heading: &str, body: &str) -> String {
    format!(
        "<section aria-labelledby=\"{id}-heading\"><h2 id=\"{id}-heading\">{}</h2>{body}</section>",
        escape(heading)
    )
}

/// A column: its heading and whether it holds numbers (right-aligned).
struct Col(&'static str, bool);

/// A table (`rows` is HTML the caller escaped) in a wrapper that scrolls sideways on a narrow
/// screen; the wrapper is focusable so that a keyboard can scroll it.
fn table(id: &str, caption: &str, cols: &[Col], rows: &str, foot: &str) -> String {
    let mut head = String::new();
    for Col(name, numeric) in cols {
        let class = if *numeric { " class=\"num\"" } else { "" };
        head.push_str(&format!("<th scope=\"col\"{class}>{name}</th>"));
    }
    let foot = if foot.is_empty() {
        String::new()
    } else {
        format!("<tfoot>{foot}</tfoot>")
    };
    format!(
        "<div class=\"scroll\" role=\"region\" aria-labelledby=\"{id}-caption\" tabindex=\"0\">\
         <table id=\"{id}\"><caption id=\"{id}-caption\">{}</caption><thead><tr>{head}</tr></thead>\
         <tbody>{rows}</tbody>{foot}</table></div>",
        escape(caption)
    )
}

/// A cell of text (escaped here), or a dash when there is none.
fn text(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => format!("<td>{}</td>", escape(v)),
        _ => "<td><span class=\"muted\">—</span></td>".to_owned(),
    }
}

/// A cell of a number, written plainly (no separators: the numbers can be read back as they are).
fn num(value: impl std::fmt::Display) -> String {
    format!("<td class=\"num\">{value}</td>")
}

/// The caption of a list of the latest `n` things.
fn latest(n: usize, what: &str) -> String {
    if n == 1 {
        format!("The latest {what}")
    } else {
        format!("The latest {n} {what}s, newest first")
    }
}

/// A paragraph saying a list is empty.
fn none(message: &str) -> String {
    format!("<p class=\"muted\">{}</p>", escape(message))
}

/// A time for people and machines; a dash when out of range.
fn time(ms: tributary_core::time::EpochMillis) -> String {
    match tributary_core::time::rfc3339(ms) {
        Some(at) => format!("<time datetime=\"{at}\">{at}</time>"),
        None => "—".to_owned(),
    }
}

/// A duration as people say it: `850 ms`, `12.4 s`, `3 min 5 s`, `2 h 7 min`.
fn duration(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{}.{} s", ms / 1_000, ms % 1_000 / 100)
    } else if ms < 3_600_000 {
        let s = ms / 1_000;
        format!("{} min {} s", s / 60, s % 60)
    } else {
        let min = ms / 60_000;
        format!("{} h {} min", min / 60, min % 60)
    }
}

fn state_badge(state: OperationState) -> String {
    let class = match state {
        OperationState::Succeeded => "good",
        OperationState::Failed | OperationState::Stalled => "bad",
        OperationState::Retrying | OperationState::Deferred | OperationState::Continued => "warn",
        OperationState::Cancelled => "muted",
    };
    format!("<span class=\"badge {class}\">{}</span>", state.as_str())
}

fn health_badge(health: Health) -> String {
    let class = match health {
        Health::Active => "good",
        Health::NeedsReauth => "warn",
        Health::Failing => "bad",
        Health::Disabled => "muted",
    };
    format!("<span class=\"badge {class}\">{}</span>", health.as_str())
}

fn operation_link(op: &Operation) -> String {
    let id = escape(op.id.as_str());
    format!("<a href=\"?operation={id}\"><code>{id}</code></a>")
}

const RUN_COLUMNS: [Col; 9] = [
    Col("Type", false),
    Col("Name", false),
    Col("Provider", false),
    Col("State", false),
    Col("Started", false),
    Col("Duration", true),
    Col("Records written", true),
    Col("Requests", true),
    Col("Operation", false),
];

fn run_rows(ops: &[Operation]) -> String {
    let mut rows = String::new();
    for op in ops {
        rows.push_str(&format!(
            "<tr><td>{}</td>{}{}<td>{}</td><td>{}</td>{}{}{}<td>{}</td></tr>",
            op.kind.as_str(),
            text(op.name.as_deref()),
            text(op.provider.as_deref()),
            state_badge(op.state),
            time(op.started_at_ms),
            num(duration(op.duration_ms())),
            num(op.records_written()),
            num(op.counts.requests),
            operation_link(op),
        ));
    }
    rows
}

fn overview(data: &DashboardData) -> String {
    let mut out = String::new();

    let integrations = if data.integrations.is_empty() {
        none("No integrations yet.")
    } else {
        let mut rows = String::new();
        for i in &data.integrations {
            rows.push_str(&format!(
                "<tr>{}<td><code>{}</code></td>{}{}{}{}</tr>",
                text(Some(&i.provider)),
                escape(&i.id),
                num(i.active),
                num(i.needs_reauth),
                num(i.failing),
                num(i.disabled),
            ));
        }
        table(
            "integrations",
            "Connections of each integration by health",
            &[
                Col("Provider", false),
                Col("Integration", false),
                Col("Active", true),
                Col("Needs re-auth", true),
                Col("Failing", true),
                Col("Disabled", true),
            ],
            &rows,
            "",
        )
    };
    out.push_str(&section(
        "integrations-section",
        "Integrations",
        &integrations,
    ));

    let connections = if data.connections.is_empty() {
        none("No connections yet.")
    } else {
        let mut rows = String::new();
        for c in &data.connections {
            rows.push_str(&format!(
                "<tr><td><code>{}</code></td>{}{}<td>{}</td><td class=\"wrap\">{}</td></tr>",
                escape(&c.id),
                text(Some(&c.provider)),
                text(c.end_user_id.as_deref()),
                health_badge(c.health),
                c.reason.as_deref().map(escape).unwrap_or_default(),
            ));
        }
        table(
            "connections",
            "Connections, those needing attention first",
            &[
                Col("Connection", false),
                Col("Provider", false),
                Col("End user", false),
                Col("Health", false),
                Col("Reason", false),
            ],
            &rows,
            "",
        )
    };
    out.push_str(&section("connections-section", "Connections", &connections));

    let latest = &data.recent[..data.recent.len().min(10)];
    let body = if latest.is_empty() {
        none("No operations yet.")
    } else {
        format!(
            "{}<p><a href=\"?view=runs\">All recent operations</a></p>",
            table(
                "latest",
                "The latest operations, newest first",
                &RUN_COLUMNS,
                &run_rows(latest),
                ""
            )
        )
    };
    out.push_str(&section("latest-section", "Latest operations", &body));
    out
}

fn runs(data: &DashboardData) -> String {
    let body = if data.recent.is_empty() {
        none(
            "No operations yet: they appear here as syncs, actions, proxied calls and webhooks run.",
        )
    } else {
        table(
            "runs",
            &latest(data.recent.len(), "operation"),
            &RUN_COLUMNS,
            &run_rows(&data.recent),
            "",
        )
    };
    section("runs-section", "Runs", &body)
}

fn failures(data: &DashboardData) -> String {
    let body = if data.failures.is_empty() {
        none("No operation failed recently.")
    } else {
        let mut rows = String::new();
        for op in &data.failures {
            let (class, message) = op.error.as_ref().map_or((None, None), |e| {
                (Some(e.class.as_str()), Some(e.message.as_str()))
            });
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td>{}{}{}<td class=\"wrap\">{}</td>\
                 <td><a href=\"?operation={id}\">Details<span class=\"vh\"> of {id}</span></a></td></tr>",
                time(op.started_at_ms),
                state_badge(op.state),
                op.kind.as_str(),
                text(op.name.as_deref()),
                text(op.provider.as_deref()),
                text(class),
                message.map(escape).unwrap_or_default(),
                id = escape(op.id.as_str()),
            ));
        }
        table(
            "failures",
            &latest(data.failures.len(), "failed operation"),
            &[
                Col("Time", false),
                Col("State", false),
                Col("Type", false),
                Col("Name", false),
                Col("Provider", false),
                Col("Error class", false),
                Col("Message", false),
                Col("Operation", false),
            ],
            &rows,
            "",
        )
    };
    section("failures-section", "Failures", &body)
}

/// The width and height of a chart's drawing, and the room for its axis labels.
const CHART_W: f64 = 480.0;
const CHART_H: f64 = 240.0;
const PLOT_LEFT: f64 = 52.0;
const PLOT_RIGHT: f64 = 10.0;
const PLOT_TOP: f64 = 16.0;
const PLOT_H: f64 = 184.0;

/// How tall a bar of `value` is when the tallest is `max`; nothing is drawn when every value is 0.
fn bar_height(value: u64, max: u64) -> f64 {
    if max == 0 {
        0.0
    } else {
        let ratio = value as f64 / max as f64;
        ratio * PLOT_H
    }
}

/// One series of a chart: its label, its colour class and its value per day.
struct Series {
    label: &'static str,
    values: Vec<u64>,
}

/// How a chart with several series draws a day.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One bar per day, the series on top of each other (parts of a whole).
    Stacked,
    /// One bar per series side by side (a count and a subset of it).
    Grouped,
}

/// A bar chart of `series` over `days` as inline SVG, followed by a table of the same numbers.
fn chart(id: &str, title: &str, days: &[&str], series: &[Series], layout: Layout) -> String {
    let n = days.len();
    let day_total = |i: usize| -> u64 {
        series
            .iter()
            .map(|s| s.values.get(i).copied().unwrap_or(0))
            .fold(0, u64::saturating_add)
    };
    let max = match layout {
        Layout::Stacked => (0..n).map(day_total).max().unwrap_or(0),
        Layout::Grouped => series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .max()
            .unwrap_or(0),
    };
    let base = PLOT_TOP + PLOT_H;
    let right = CHART_W - PLOT_RIGHT;
    let slot = (right - PLOT_LEFT) / n.max(1) as f64;
    let bar_w = slot * 0.72;

    let mut bars = String::new();
    for (i, day) in days.iter().enumerate() {
        let x0 = PLOT_LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let mut y = base;
        for (k, s) in series.iter().enumerate() {
            let v = s.values.get(i).copied().unwrap_or(0);
            let h = bar_height(v, max);
            let (x, w, top) = match layout {
                Layout::Stacked => {
                    y -= h;
                    (x0, bar_w, y)
                }
                Layout::Grouped => {
                    let w = bar_w / series.len() as f64;
                    let x = x0 + w * k as f64;
                    (x, w, base - h)
                }
            };
            bars.push_str(&format!(
                "<rect class=\"bar s{}\" x=\"{x:.2}\" y=\"{top:.2}\" width=\"{w:.2}\" height=\"{h:.2}\">\
                 <title>{}: {v} {}</title></rect>",
                k + 1,
                escape(day),
                s.label.to_lowercase(),
            ));
        }
    }

    let label_x = PLOT_LEFT - 8.0;
    let mut axes = format!(
        "<line class=\"axis\" x1=\"{PLOT_LEFT}\" y1=\"{base}\" x2=\"{right}\" y2=\"{base}\"/>\
         <text x=\"{label_x}\" y=\"{}\" text-anchor=\"end\">0</text>",
        base + 5.0,
    );
    // The top of the scale is the largest value; with nothing to draw there is only the 0 line.
    if max > 0 {
        axes.push_str(&format!(
            "<line class=\"grid\" x1=\"{PLOT_LEFT}\" y1=\"{PLOT_TOP}\" x2=\"{right}\" y2=\"{PLOT_TOP}\"/>\
             <text x=\"{label_x}\" y=\"{}\" text-anchor=\"end\">{max}</text>",
            PLOT_TOP + 5.0,
        ));
    }
    let label_y = CHART_H - 14.0;
    if let Some(first) = days.first() {
        axes.push_str(&format!(
            "<text x=\"{PLOT_LEFT}\" y=\"{label_y}\" text-anchor=\"start\">{}</text>",
            escape(first)
        ));
    }
    if let (true, Some(last)) = (n > 1, days.last()) {
        axes.push_str(&format!(
            "<text x=\"{right}\" y=\"{label_y}\" text-anchor=\"end\">{}</text>",
            escape(last)
        ));
    }

    let span = match (days.first(), days.last()) {
        (Some(first), Some(last)) => format!("From {first} to {last}"),
        _ => "No days".to_owned(),
    };
    let mut desc = span;
    for s in series {
        let total = s.values.iter().copied().fold(0, u64::saturating_add);
        let peak = s.values.iter().copied().max().unwrap_or(0);
        desc.push_str(&format!(
            "; {}: {total} in total, at most {peak} in a day",
            s.label.to_lowercase()
        ));
    }
    desc.push('.');

    let svg = format!(
        "<svg class=\"chart\" id=\"chart-{id}\" role=\"img\" viewBox=\"0 0 {CHART_W} {CHART_H}\" \
         aria-labelledby=\"chart-{id}-title chart-{id}-desc\"><title id=\"chart-{id}-title\">{}</title>\
         <desc id=\"chart-{id}-desc\">{}</desc>{axes}{bars}</svg>",
        escape(title),
        escape(&desc),
    );

    let legend = if series.len() > 1 {
        let mut items = String::new();
        for (k, s) in series.iter().enumerate() {
            items.push_str(&format!(
                "<li><span class=\"swatch s{}\" aria-hidden=\"true\"></span>{}</li>",
                k + 1,
                s.label
            ));
        }
        format!("<ul class=\"legend\" aria-label=\"Legend\">{items}</ul>")
    } else {
        String::new()
    };

    let with_total = layout == Layout::Stacked && series.len() > 1;
    let mut cols = vec![Col("Day", false)];
    cols.extend(series.iter().map(|s| Col(s.label, true)));
    if with_total {
        cols.push(Col("Total", true));
    }
    let mut rows = String::new();
    for (i, day) in days.iter().enumerate() {
        rows.push_str(&format!("<tr><th scope=\"row\">{}</th>", escape(day)));
        for s in series {
            rows.push_str(&num(s.values.get(i).copied().unwrap_or(0)));
        }
        if with_total {
            rows.push_str(&num(day_total(i)));
        }
        rows.push_str("</tr>");
    }
    let mut foot = format!("<tr><th scope=\"row\">{n} days</th>");
    for s in series {
        foot.push_str(&num(s.values.iter().copied().fold(0, u64::saturating_add)));
    }
    if with_total {
        foot.push_str(&num((0..n).map(day_total).fold(0, u64::saturating_add)));
    }
    foot.push_str("</tr>");
    let table = table(
        &format!("table-{id}"),
        &format!("{title}, per day"),
        &cols,
        &rows,
        &foot,
    );

    section(
        &format!("{id}-section"),
        title,
        &format!("{svg}{legend}<details><summary>Table</summary>{table}</details>"),
    )
}

fn usage(days: &[(String, UsageCounts)]) -> String {
    let mut total = UsageCounts::default();
    for (_, counts) in days {
        total.add(counts);
    }
    let written = total
        .records_added
        .saturating_add(total.records_updated)
        .saturating_add(total.records_deleted);
    let figures: [(&str, &str, String); 9] = [
        ("total-records", "Records written", written.to_string()),
        (
            "total-provider-requests",
            "Provider requests",
            total.provider_requests.to_string(),
        ),
        ("total-api-calls", "API calls", total.api_calls.to_string()),
        (
            "total-action-runs",
            "Action runs",
            total.action_runs.to_string(),
        ),
        (
            "total-proxy-calls",
            "Proxy calls",
            total.proxy_calls.to_string(),
        ),
        (
            "total-webhook-deliveries",
            "Webhook deliveries",
            total.webhook_deliveries.to_string(),
        ),
        (
            "total-webhook-failures",
            "Failed webhook deliveries",
            total.webhook_failures.to_string(),
        ),
        (
            "total-inbound-webhooks",
            "Provider webhooks received",
            total.inbound_webhooks.to_string(),
        ),
        (
            "total-compute-time",
            "Compute time",
            duration(total.compute_ms),
        ),
    ];
    let mut dl = String::new();
    for (id, name, value) in figures {
        dl.push_str(&format!(
            "<div><dt>{name}</dt><dd id=\"{id}\">{value}</dd></div>"
        ));
    }
    let heading = match (days.first(), days.last()) {
        (Some((first, _)), Some((last, _))) => {
            format!("Last {} days ({first} to {last})", days.len())
        }
        _ => "Last 30 days".to_owned(),
    };
    let mut out = section(
        "totals",
        &heading,
        &format!("<dl class=\"figures\" id=\"totals\">{dl}</dl>"),
    );

    out.push_str("<div class=\"charts\">");
    let names: Vec<&str> = days.iter().map(|(d, _)| d.as_str()).collect();
    let per_day = |f: fn(&UsageCounts) -> u64| days.iter().map(|(_, c)| f(c)).collect::<Vec<_>>();
    out.push_str(&chart(
        "records",
        "Records written per day",
        &names,
        &[
            Series {
                label: "Added",
                values: per_day(|c| c.records_added),
            },
            Series {
                label: "Updated",
                values: per_day(|c| c.records_updated),
            },
            Series {
                label: "Deleted",
                values: per_day(|c| c.records_deleted),
            },
        ],
        Layout::Stacked,
    ));
    out.push_str(&chart(
        "provider-requests",
        "Provider requests per day",
        &names,
        &[Series {
            label: "Provider requests",
            values: per_day(|c| c.provider_requests),
        }],
        Layout::Stacked,
    ));
    out.push_str(&chart(
        "api-calls",
        "API calls per day",
        &names,
        &[Series {
            label: "API calls",
            values: per_day(|c| c.api_calls),
        }],
        Layout::Stacked,
    ));
    out.push_str(&chart(
        "webhooks",
        "Webhook deliveries and failures per day",
        &names,
        &[
            Series {
                label: "Deliveries",
                values: per_day(|c| c.webhook_deliveries),
            },
            Series {
                label: "Failures",
                values: per_day(|c| c.webhook_failures),
            },
        ],
        Layout::Grouped,
    ));
    out.push_str("</div>");
    out
}

/// Milliseconds as seconds with one decimal (`12.3 s`).
fn seconds(ms: u64) -> String {
    format!("{}.{} s", ms / 1_000, ms % 1_000 / 100)
}

fn insights(insights: &Insights) -> String {
    use tributary_core::insights::MIN_RECORDS_FOR_SPEED;
    let mut out = String::new();

    let body = if insights.slowest_streams.is_empty() {
        none(&format!(
            "No stream read {MIN_RECORDS_FOR_SPEED} records or more in the last 7 days: too few to rank by speed."
        ))
    } else {
        let mut rows = String::new();
        for s in &insights.slowest_streams {
            rows.push_str(&format!(
                "<tr>{}{}{}{}{}</tr>",
                text(s.stream.as_deref()),
                text(s.provider.as_deref()),
                num(s.records),
                num(duration(s.busy_ms)),
                num(seconds(s.ms_per_1000_records)),
            ));
        }
        table(
            "slowest-streams",
            "Streams by time per 1,000 records, slowest first",
            &[
                Col("Stream", false),
                Col("Provider", false),
                Col("Records", true),
                Col("Time reading", true),
                Col("Per 1,000 records", true),
            ],
            &rows,
            "",
        )
    };
    out.push_str(&section("slowest-section", "Slowest streams", &body));

    let body = if insights.deferred_providers.is_empty() {
        none("No provider rate limited or deferred a run in the last 7 days.")
    } else {
        let mut rows = String::new();
        for p in &insights.deferred_providers {
            rows.push_str(&format!(
                "<tr>{}{}{}{}</tr>",
                text(Some(&p.provider)),
                num(format!("{} %", p.deferred_share_percent)),
                num(duration(p.deferred_ms)),
                num(format!("{} / {}", p.rate_limited, p.requests)),
            ));
        }
        table(
            "deferred-providers",
            "Providers by share of run time deferred, most first",
            &[
                Col("Provider", false),
                Col("Run time deferred", true),
                Col("Time deferred", true),
                Col("Rate-limited / requests", true),
            ],
            &rows,
            "",
        )
    };
    out.push_str(&section("deferred-section", "Providers losing time", &body));

    let body = if insights.failing_syncs.is_empty() {
        none("No sync run failed in the last 7 days.")
    } else {
        let mut rows = String::new();
        for f in &insights.failing_syncs {
            let classes = f
                .error_classes
                .iter()
                .map(|(class, n)| format!("{} × {n}", escape(class)))
                .collect::<Vec<_>>()
                .join(", ");
            rows.push_str(&format!(
                "<tr>{}{}{}<td class=\"wrap\">{classes}</td></tr>",
                text(f.stream.as_deref()),
                text(f.provider.as_deref()),
                num(format!("{} / {}", f.failures, f.runs)),
            ));
        }
        table(
            "failing-syncs",
            "Syncs by failed runs, most first",
            &[
                Col("Stream", false),
                Col("Provider", false),
                Col("Failures / runs", true),
                Col("Error classes", false),
            ],
            &rows,
            "",
        )
    };
    out.push_str(&section("failing-section", "Failing syncs", &body));

    let body = if insights.recommendations.is_empty() {
        none("Nothing to change.")
    } else {
        let items: String = insights
            .recommendations
            .iter()
            .map(|r| format!("<li>{}</li>", escape(&r.message)))
            .collect();
        format!("<ul id=\"recommendations\">{items}</ul>")
    };
    out.push_str(&section(
        "recommendations-section",
        "Recommendations",
        &body,
    ));
    out
}

fn operation_page(op: &Operation) -> String {
    let id = escape(op.id.as_str());
    let code = |v: Option<String>| match v {
        Some(v) => format!("<code>{}</code>", escape(&v)),
        None => "<span class=\"muted\">—</span>".to_owned(),
    };
    let plain = |v: Option<&str>| match v {
        Some(v) => escape(v),
        None => "<span class=\"muted\">—</span>".to_owned(),
    };
    let fields: [(&str, String); 12] = [
        ("Id", format!("<code>{id}</code>")),
        ("Type", op.kind.as_str().to_owned()),
        ("State", state_badge(op.state)),
        (
            "Connection",
            code(op.connection_id.as_ref().map(ToString::to_string)),
        ),
        (
            "Integration",
            code(op.integration_id.as_ref().map(ToString::to_string)),
        ),
        ("Provider", plain(op.provider.as_deref())),
        ("Sync", code(op.sync_id.as_ref().map(ToString::to_string))),
        ("Name", plain(op.name.as_deref())),
        ("Subject", code(op.subject.clone())),
        ("Started", time(op.started_at_ms)),
        ("Ended", time(op.ended_at_ms)),
        ("Duration", duration(op.duration_ms())),
    ];
    let mut dl = String::new();
    for (name, value) in fields {
        dl.push_str(&format!("<dt>{name}</dt><dd>{value}</dd>"));
    }
    let mut out = section(
        "operation",
        &format!("Operation {}", op.id),
        &format!(
            "<p><a href=\"?view=failures\">Back to failures</a> · <a href=\"?view=runs\">Back to runs</a></p>\
             <dl class=\"fields\" id=\"operation-fields\">{dl}</dl>"
        ),
    );

    if let Some(error) = &op.error {
        out.push_str(&section(
            "operation-error",
            "Error",
            &format!(
                "<dl class=\"fields\" id=\"error\"><dt>Class</dt><dd><code>{}</code></dd>\
                 <dt>Message</dt><dd>{}</dd></dl>",
                escape(&error.class),
                escape(&error.message)
            ),
        ));
    }

    let c = &op.counts;
    let figures: [(&str, &str, String); 8] = [
        ("count-requests", "Requests", c.requests.to_string()),
        (
            "count-failed-requests",
            "Failed requests",
            c.failed_requests.to_string(),
        ),
        (
            "count-rate-limited",
            "Rate limited",
            c.rate_limited.to_string(),
        ),
        ("count-deferred", "Time deferred", duration(c.deferred_ms)),
        (
            "count-records-added",
            "Records added",
            c.records_added.to_string(),
        ),
        (
            "count-records-updated",
            "Records updated",
            c.records_updated.to_string(),
        ),
        (
            "count-records-deleted",
            "Records deleted",
            c.records_deleted.to_string(),
        ),
        (
            "count-records-unchanged",
            "Records unchanged",
            c.records_unchanged.to_string(),
        ),
    ];
    let mut counts = String::new();
    for (fid, name, value) in figures {
        counts.push_str(&format!(
            "<div><dt>{name}</dt><dd id=\"{fid}\">{value}</dd></div>"
        ));
    }
    let mut body = format!("<dl class=\"figures\" id=\"counts\">{counts}</dl>");
    if !c.errors_by_class.is_empty() {
        let items: String = c
            .errors_by_class
            .iter()
            .map(|(class, n)| format!("<li><code>{}</code>: {n}</li>", escape(class)))
            .collect();
        body.push_str(&format!(
            "<p>Failed requests by error class:</p><ul id=\"errors-by-class\">{items}</ul>"
        ));
    }
    out.push_str(&section("counts-section", "Counts", &body));

    let mut body = if op.entries.is_empty() {
        none("No entries kept.")
    } else {
        let mut rows = String::new();
        for entry in &op.entries {
            match entry {
                Entry::Request(r) => rows.push_str(&format!(
                    "<tr><td>{}</td><td>request</td><td>{}</td><td>{}</td><td class=\"wrap\"><code>{}</code></td>{}{}{}{}</tr>",
                    time(r.at_ms),
                    escape(&r.method),
                    escape(&r.host),
                    escape(&r.path),
                    r.status.map_or_else(|| text(None), num),
                    num(duration(r.duration_ms)),
                    num(r.attempt),
                    text(r.error_class.as_deref()),
                )),
                Entry::Note(n) => rows.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td colspan=\"7\" class=\"wrap\">{}</td></tr>",
                    time(n.at_ms),
                    n.kind.as_str(),
                    escape(&n.message),
                )),
            }
        }
        table(
            "entries",
            "Provider requests and notes, oldest first",
            &[
                Col("Time", false),
                Col("Entry", false),
                Col("Method", false),
                Col("Host", false),
                Col("Path", false),
                Col("Status", true),
                Col("Duration", true),
                Col("Attempt", true),
                Col("Error class", false),
            ],
            &rows,
            "",
        )
    };
    if op.entries_dropped > 0 {
        body.push_str(&format!(
            "<p id=\"entries-dropped\">{} more entries not kept (they are counted above).</p>",
            op.entries_dropped
        ));
    }
    out.push_str(&section("entries-section", "Entries", &body));
    out
}

#[cfg(test)]
mod tests;
