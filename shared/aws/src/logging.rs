//! The functions' log subscriber, configured as Lambda's advanced logging controls say (what
//! `lambda_runtime::tracing::init_default_subscriber` does), with a target filter instead of
//! `EnvFilter`: `EnvFilter` compiles its directives with the `regex` crate, which was a tenth of a
//! function's zip.
//!
//! - Level: `AWS_LAMBDA_LOG_LEVEL` (the template's `LoggingConfig`) when set, else `RUST_LOG`, else
//!   `INFO`. `RUST_LOG` takes a level (`debug`) or targets with levels
//!   (`info,tributary_aws=debug`); an unreadable value means `INFO`.
//!   Release builds carry no `debug!` or `trace!` events (the `release_max_level_info` features of
//!   `tracing` and `log`): the deployed functions log at `INFO` and above, builds for tests and
//!   `make dev` at every level.
//! - Format: JSON when `AWS_LAMBDA_LOG_FORMAT` is `JSON`, else text; no timestamps (CloudWatch adds
//!   them) and no targets.

use std::str::FromStr;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The filter the environment asks for.
pub fn filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> Targets {
    let info = || Targets::new().with_default(LevelFilter::INFO);
    if let Some(level) = lambda_level {
        return LevelFilter::from_str(level.trim())
            .map_or_else(|_| info(), |level| Targets::new().with_default(level));
    }
    match rust_log {
        Some(directives) if !directives.trim().is_empty() => {
            Targets::from_str(directives.trim()).unwrap_or_else(|_| info())
        }
        _ => info(),
    }
}

/// Installs the subscriber (once per process; a second call does nothing).
pub fn init() {
    let var = |name| std::env::var(name).ok();
    let filter = filter(
        var("AWS_LAMBDA_LOG_LEVEL").as_deref(),
        var("RUST_LOG").as_deref(),
    );
    let json = var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_writer(std::io::stdout);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if json {
        registry.with(fmt.json()).try_init()
    } else {
        registry.with(fmt).try_init()
    };
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::filter;

    #[test]
    fn the_lambda_level_wins_then_rust_log_then_info() {
        let f = filter(Some("DEBUG"), Some("error"));
        assert!(f.would_enable("tributary_api", &Level::DEBUG));
        assert!(!f.would_enable("tributary_api", &Level::TRACE));

        let f = filter(None, Some("warn,tributary_aws=trace"));
        assert!(f.would_enable("tributary_aws::sqs", &Level::TRACE));
        assert!(!f.would_enable("hyper", &Level::INFO));
        assert!(f.would_enable("hyper", &Level::WARN));

        for (lambda, rust_log) in [
            (None, None),
            (None, Some("")),
            (Some("loud"), None),
            (None, Some("a=b=c")),
        ] {
            let f = filter(lambda, rust_log);
            assert!(
                f.would_enable("any", &Level::INFO),
                "{lambda:?} {rust_log:?}"
            );
            assert!(
                !f.would_enable("any", &Level::DEBUG),
                "{lambda:?} {rust_log:?}"
            );
        }
    }
}
