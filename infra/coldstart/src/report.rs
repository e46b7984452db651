//! The Markdown table and the verdict on each goal.

use std::fmt::Write as _;
use std::time::Duration;

use crate::size::{Zipped, mb};
use crate::stats::Summary;

/// What the trace audit found for one binary.
#[derive(Debug, Clone)]
pub enum Audit {
    /// No IP traffic before `/next`.
    Clean,
    /// These calls (as strace printed them) before `/next`.
    Calls(Vec<String>),
    /// The audit could not run or the traced start failed.
    Unavailable(String),
}

/// Everything measured for one binary.
#[derive(Debug, Clone)]
pub struct Row {
    /// The cargo binary.
    pub binary: String,
    /// Whether it is the baseline.
    pub is_hello: bool,
    /// Init times over the timed runs, `None` when none succeeded.
    pub summary: Option<Summary>,
    /// Timed runs that reached `/next`.
    pub runs: usize,
    /// Why a run did not reach `/next` (the binary is dropped from later rounds).
    pub failure: Option<String>,
    /// Connections to the AWS endpoint before `/next`, over all runs.
    pub aws_connections: usize,
    /// The trace audit.
    pub audit: Audit,
    /// The zip.
    pub zip: Option<Zipped>,
}

/// The targets of the issue.
#[derive(Debug, Clone, Copy)]
pub struct Goals {
    /// Highest median / hello world median allowed.
    pub ratio: f64,
    /// Largest zip allowed, in bytes.
    pub zip_bytes: u64,
}

/// The rendered report.
#[derive(Debug, Clone)]
pub struct Report {
    /// Table and goals, in Markdown.
    pub markdown: String,
    /// Whether every goal is met.
    pub met: bool,
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**missed**" }
}

/// Renders `rows` (the hello world among them) against `goals`.
pub fn render(rows: &[Row], goals: Goals) -> Report {
    let hello = rows
        .iter()
        .find(|r| r.is_hello)
        .and_then(|r| r.summary)
        .map(|s| s.median);
    let ratio = |row: &Row| -> Option<f64> {
        Some(row.summary?.median.as_secs_f64() / hello?.as_secs_f64())
    };
    let mut md = String::new();
    md.push_str(
        "| function | init min (ms) | median (ms) | max (ms) | median / hello | zip size |\n",
    );
    md.push_str("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    for row in rows {
        let name = if row.is_hello {
            format!("{} (hello world)", row.binary)
        } else {
            row.binary.clone()
        };
        let (min, median, max) = match row.summary {
            Some(s) => (ms(s.min), ms(s.median), ms(s.max)),
            None => ("–".into(), "–".into(), "–".into()),
        };
        let ratio = ratio(row).map_or("–".into(), |r| format!("{r:.2}×"));
        let zip = row.zip.as_ref().map_or("–".into(), Zipped::label);
        let _ = writeln!(
            md,
            "| {name} | {min} | {median} | {max} | {ratio} | {zip} |"
        );
    }
    let functions: Vec<&Row> = rows.iter().filter(|r| !r.is_hello).collect();

    let mut met = true;
    md.push_str("\nGoals:\n");

    let failures: Vec<String> = rows
        .iter()
        .filter_map(|r| r.failure.as_ref().map(|f| format!("{}: {f}", r.binary)))
        .collect();
    if !failures.is_empty() {
        met = false;
        let _ = writeln!(
            md,
            "- every binary reaches its first /next: **missed** ({})",
            failures.join("; ")
        );
    }

    let slow: Vec<String> = functions
        .iter()
        .filter_map(|r| match ratio(r) {
            Some(x) if x <= goals.ratio => None,
            Some(x) => Some(format!("{} {x:.2}×", r.binary)),
            None => Some(format!("{} not measured", r.binary)),
        })
        .collect();
    let worst = functions
        .iter()
        .filter_map(|r| Some((ratio(r)?, &r.binary)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    met &= slow.is_empty();
    let detail = if slow.is_empty() {
        worst.map_or(String::new(), |(x, b)| format!(" (highest: {b}, {x:.2}×)"))
    } else {
        format!(" ({})", slow.join(", "))
    };
    let _ = writeln!(
        md,
        "- every function's median init within {}× the hello world's: {}{detail}",
        goals.ratio,
        verdict(slow.is_empty())
    );

    let big: Vec<String> = functions
        .iter()
        .filter_map(|r| match &r.zip {
            Some(z) if z.bytes <= goals.zip_bytes => None,
            Some(z) => Some(format!("{} {:.2} MB", r.binary, mb(z.bytes))),
            None => Some(format!("{} not zipped", r.binary)),
        })
        .collect();
    let largest = functions
        .iter()
        .filter_map(|r| Some((r.zip.as_ref()?.bytes, &r.binary)))
        .max();
    met &= big.is_empty();
    let detail = if big.is_empty() {
        largest.map_or(String::new(), |(bytes, b)| {
            format!(" (largest: {b}, {:.2} MB)", mb(bytes))
        })
    } else {
        format!(" ({})", big.join(", "))
    };
    let _ = writeln!(
        md,
        "- every zip ≤ {} MB: {}{detail}",
        mb(goals.zip_bytes),
        verdict(big.is_empty())
    );

    let mut network = Vec::new();
    let mut unaudited = Vec::new();
    for r in &functions {
        if r.aws_connections > 0 {
            network.push(format!(
                "{}: {} connection(s) to AWS_ENDPOINT_URL",
                r.binary, r.aws_connections
            ));
        }
        match &r.audit {
            Audit::Clean => {}
            Audit::Calls(calls) => network.push(format!(
                "{}: {} call(s) under strace, first `{}`",
                r.binary,
                calls.len(),
                calls.first().map_or("", String::as_str)
            )),
            Audit::Unavailable(why) => unaudited.push(format!("{}: {why}", r.binary)),
        }
    }
    met &= network.is_empty();
    let detail = if network.is_empty() {
        let traced = if unaudited.is_empty() {
            "and no IPv4/IPv6 connect, sendto or sendmsg under strace".to_owned()
        } else {
            format!("; strace audit not done for {}", unaudited.join("; "))
        };
        format!(
            " (no connection to AWS_ENDPOINT_URL or the metadata endpoint in any run, {traced})"
        )
    } else {
        format!(" ({})", network.join("; "))
    };
    let _ = writeln!(
        md,
        "- no network call before the first /next: {}{detail}",
        verdict(network.is_empty())
    );
    Report { markdown: md, met }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::size::Origin;

    fn row(binary: &str, is_hello: bool, median_ms: u64, zip_bytes: u64) -> Row {
        let median = Duration::from_millis(median_ms);
        Row {
            binary: binary.into(),
            is_hello,
            summary: Some(Summary {
                min: median,
                median,
                max: median,
            }),
            runs: 20,
            failure: None,
            aws_connections: 0,
            audit: Audit::Clean,
            zip: Some(Zipped {
                path: PathBuf::from(binary),
                origin: Origin::Release,
                arch: "x86_64".into(),
                bytes: zip_bytes,
            }),
        }
    }

    const GOALS: Goals = Goals {
        ratio: 1.5,
        zip_bytes: 3_000_000,
    };

    #[test]
    fn functions_within_the_goals_meet_them() {
        let rows = [
            row("hello", true, 10, 1_000_000),
            row("fn", false, 14, 2_900_000),
        ];

        let report = render(&rows, GOALS);

        assert!(report.met, "{}", report.markdown);
        assert!(
            report
                .markdown
                .contains("| fn | 14.00 | 14.00 | 14.00 | 1.40× |")
        );
    }

    #[test]
    fn a_slow_function_a_big_zip_or_a_network_call_misses() {
        let slow = [row("hello", true, 10, 1), row("fn", false, 16, 1)];
        let big = [row("hello", true, 10, 1), row("fn", false, 10, 3_000_001)];
        let mut chatty = [row("hello", true, 10, 1), row("fn", false, 10, 1)];
        chatty[1].aws_connections = 1;

        for rows in [&slow[..], &big[..], &chatty[..]] {
            let report = render(rows, GOALS);

            assert!(!report.met, "{}", report.markdown);
            assert!(
                report.markdown.contains("**missed** (fn"),
                "{}",
                report.markdown
            );
        }
    }
}
