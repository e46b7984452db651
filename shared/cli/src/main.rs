//! `tributary`: the developer CLI for connector authors — validate and list the catalog, read a
//! stream (one canonical JSON record per line on stdout, progress and a summary on stderr) and run
//! actions.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use secrecy::SecretString;
use tributary_engine::spec::{ProviderSpec, SpecErrors, dates, load};
use tributary_engine::{
    CanonicalError, Connection, EgressPolicy, Engine, EngineError, HttpConfig, ReadOptions,
    StreamState, catalog,
};

/// Prefix of environment variables holding credentials (`TRIBUTARY_CREDENTIAL_API_KEY` → `api_key`).
const CREDENTIAL_ENV: &str = "TRIBUTARY_CREDENTIAL_";
/// Prefix of environment variables holding connection configuration.
const CONFIG_ENV: &str = "TRIBUTARY_CONFIG_";

#[derive(Parser)]
#[command(
    name = "tributary",
    version,
    about = "Tributary connector developer CLI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate or list provider specs.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Read a stream: one JSON record per line on stdout, in canonical form (compact, keys
    /// sorted, numbers as the provider wrote them).
    Read(ReadArgs),
    /// Run an action and print its output.
    Action(ActionArgs),
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Validate a spec file or every `*.yaml` in a directory (default: the embedded catalog).
    Validate {
        /// File or directory.
        path: Option<PathBuf>,
    },
    /// One line per provider: id, auth modes, streams, actions.
    List,
    /// Per provider of the embedded catalog: the day its spec was last checked against the
    /// provider's documentation (`stale` after six months), the API versions it pins, and its
    /// announced ends.
    CheckDates,
}

#[derive(Args)]
struct Target {
    /// A spec file.
    #[arg(
        long,
        conflicts_with = "provider",
        required_unless_present = "provider"
    )]
    spec: Option<PathBuf>,
    /// A provider of the embedded catalog.
    #[arg(long)]
    provider: Option<String>,
    /// Replace the spec's base URL (e.g. a local mock).
    #[arg(long)]
    base_url: Option<String>,
    /// Connection configuration `key=value` (also `TRIBUTARY_CONFIG_<KEY>`).
    #[arg(long = "config", value_name = "K=V")]
    config: Vec<String>,
    /// Credential `key=value` (prefer `TRIBUTARY_CREDENTIAL_<KEY>` to keep it out of shell history).
    #[arg(long = "credential", value_name = "K=V")]
    credentials: Vec<String>,
    /// Auth mode to use (`api_key`, `basic`, `oauth2_authorization_code`, …).
    #[arg(long)]
    auth_mode: Option<String>,
    /// Open the egress guard for an address or CIDR (e.g. 127.0.0.1 for a local mock).
    #[arg(
        long = "allow-egress",
        value_name = "CIDR",
        env = "TRIBUTARY_EGRESS_ALLOW",
        value_delimiter = ','
    )]
    allow_egress: Vec<String>,
    /// Attempts per request.
    #[arg(long, default_value_t = 5)]
    max_attempts: u32,
}

#[derive(Args)]
struct ReadArgs {
    #[command(flatten)]
    target: Target,
    /// Stream name.
    #[arg(long)]
    stream: String,
    /// Stop after this many records.
    #[arg(long)]
    max_records: Option<u64>,
    /// Incremental checkpoint file, read at start and written after a complete pass.
    #[arg(long)]
    state: Option<PathBuf>,
}

#[derive(Args)]
struct ActionArgs {
    #[command(flatten)]
    target: Target,
    /// Action name.
    #[arg(long)]
    action: String,
    /// Input as JSON.
    #[arg(long)]
    input: String,
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Spec(#[from] SpecErrors),
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("page {page}: a record is not usable JSON: {source}")]
    Record { page: u64, source: CanonicalError },
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Catalog(CatalogCommand::Validate { path }) => validate(path.as_deref()),
            Command::Catalog(CatalogCommand::List) => list(),
            Command::Catalog(CatalogCommand::CheckDates) => check_dates(),
            Command::Read(args) => read(args).await,
            Command::Action(args) => action(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match &e {
                CliError::Engine(err) => eprintln!("error ({:?}): {err}", err.class()),
                other => eprintln!("error: {other}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn validate(path: Option<&Path>) -> Result<(), CliError> {
    let mut files: Vec<(String, String)> = Vec::new();
    match path {
        None => {
            for (name, text) in catalog::FILES {
                files.push((format!("catalog/{name}"), (*text).to_owned()));
            }
        }
        Some(p) if p.is_dir() => {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(io_err(p))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            entries.sort();
            for f in entries {
                let text = std::fs::read_to_string(&f).map_err(io_err(&f))?;
                files.push((f.display().to_string(), text));
            }
        }
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(io_err(p))?;
            files.push((p.display().to_string(), text));
        }
    }
    let mut error_count = 0usize;
    let mut ids = BTreeMap::new();
    for (name, text) in &files {
        match load(text, name) {
            Ok(spec) => {
                for finding in dates::review(&spec, today()) {
                    if finding.severity == dates::Severity::Error {
                        eprintln!("{name}: {}", finding.message);
                        error_count += 1;
                    } else {
                        eprintln!("{name}: {}: {}", finding.severity.label(), finding.message);
                    }
                }
                if let Some(prev) = ids.insert(spec.id.clone(), name.clone()) {
                    eprintln!(
                        "{name}: [{}] duplicate provider id (also in {prev})",
                        spec.id
                    );
                    error_count += 1;
                }
            }
            Err(errs) => {
                for e in errs.0 {
                    eprintln!("{e}");
                    error_count += 1;
                }
            }
        }
    }
    if error_count == 0 {
        eprintln!("{} spec(s) valid", files.len());
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "{} error(s) in {} spec(s)",
            error_count,
            files.len()
        )))
    }
}

/// Today (UTC), the day sunsets and checks are judged against.
fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

fn check_dates() -> Result<(), CliError> {
    let today = today();
    let mut out = std::io::stdout().lock();
    for s in catalog::load_all()? {
        let checked = match (&s.checked, dates::is_stale(&s, today)) {
            (Some(day), false) => day.clone(),
            (Some(day), true) => format!("{day} (stale)"),
            (None, _) => "never (stale)".to_owned(),
        };
        let pinned = dates::pinned_versions(&s);
        let _ = writeln!(
            out,
            "{:<16} checked={checked:<20} pinned={}",
            s.id,
            if pinned.is_empty() {
                "-".to_owned()
            } else {
                pinned.join("; ")
            }
        );
        for d in &s.deprecations {
            let _ = writeln!(
                out,
                "{:<16}   ends {}: {} -> {}",
                "", d.sunset, d.endpoint, d.replacement
            );
        }
        for finding in dates::review(&s, today) {
            let level = finding.severity.label();
            let _ = writeln!(out, "{:<16}   {level}: {}", "", finding.message);
        }
    }
    Ok(())
}

fn list() -> Result<(), CliError> {
    let specs = catalog::load_all()?;
    let mut out = std::io::stdout().lock();
    for s in specs {
        let auth: Vec<&str> = s.auth.iter().map(|a| a.kind()).collect();
        let streams: Vec<&str> = s.streams.iter().map(|x| x.name.as_str()).collect();
        let actions: Vec<&str> = s.actions.iter().map(|x| x.name.as_str()).collect();
        let _ = writeln!(
            out,
            "{:<16} auth={:<45} streams={:<50} actions={}",
            s.id,
            auth.join(","),
            streams.join(","),
            actions.join(",")
        );
    }
    Ok(())
}

fn load_target(t: &Target) -> Result<ProviderSpec, CliError> {
    match (&t.spec, &t.provider) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).map_err(io_err(path))?;
            Ok(load(&text, &path.display().to_string())?)
        }
        (None, Some(id)) => catalog::get(id)
            .ok_or_else(|| CliError::Usage(format!("no provider `{id}` in the catalog")))?
            .map_err(CliError::from),
        (None, None) => Err(CliError::Usage("give --spec FILE or --provider ID".into())),
    }
}

fn pairs(
    items: &[String],
    env_prefix: &str,
    what: &str,
) -> Result<BTreeMap<String, String>, CliError> {
    let mut map = BTreeMap::new();
    for (k, v) in std::env::vars() {
        if let Some(name) = k.strip_prefix(env_prefix) {
            map.insert(name.to_ascii_lowercase(), v);
        }
    }
    for item in items {
        let (k, v) = item.split_once('=').ok_or_else(|| {
            CliError::Usage(format!(
                "--{what} expects key=value, got `{}`",
                item.split('=').next().unwrap_or_default()
            ))
        })?;
        map.insert(k.to_owned(), v.to_owned());
    }
    Ok(map)
}

fn build(t: &Target) -> Result<(ProviderSpec, Connection, Engine), CliError> {
    let spec = load_target(t)?;
    let config = pairs(&t.config, CONFIG_ENV, "config")?;
    let credentials = pairs(&t.credentials, CREDENTIAL_ENV, "credential")?
        .into_iter()
        .map(|(k, v)| (k, SecretString::from(v)))
        .collect();
    let conn = Connection {
        config,
        credentials,
        auth_mode: t.auth_mode.clone(),
        base_url: t.base_url.clone(),
    };
    let egress = EgressPolicy::with_allowlist(&t.allow_egress)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let engine = Engine::new(HttpConfig {
        egress,
        max_attempts: t.max_attempts.max(1),
        ..HttpConfig::default()
    })?;
    Ok((spec, conn, engine))
}

async fn read(args: ReadArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let (spec, conn, engine) = build(&args.target)?;
    let state: Option<StreamState> =
        match &args.state {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p).map_err(io_err(p))?;
                Some(serde_json::from_str(&text).map_err(|e| {
                    CliError::Usage(format!("{}: not a state file: {e}", p.display()))
                })?)
            }
            _ => None,
        };
    let opts = ReadOptions {
        max_records: args.max_records,
        state,
        resume: None,
    };
    let mut pages = engine.read(&spec, &args.stream, &conn, opts)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let (mut records, mut page_count) = (0u64, 0u64);
    let mut checkpoint = None;
    let mut failure: Option<CliError> = None;
    'pages: while let Some(page) = pages.next().await {
        match page {
            Ok(page) => {
                page_count += 1;
                for r in &page.records {
                    // The provider's text may span lines (pretty-printed) or spell one record
                    // several ways; JSON Lines needs one compact line, and one text per record
                    // makes outputs comparable.
                    let line = match r.canonical() {
                        Ok(line) => line,
                        Err(source) => {
                            failure = Some(CliError::Record {
                                page: page.number,
                                source,
                            });
                            break 'pages;
                        }
                    };
                    let write = out
                        .write_all(line.as_bytes())
                        .and_then(|()| out.write_all(b"\n"));
                    if let Err(e) = write {
                        // A closed pipe (`| head`) ends the read quietly.
                        if e.kind() == std::io::ErrorKind::BrokenPipe {
                            return Ok(());
                        }
                        return Err(CliError::Io {
                            path: "stdout".into(),
                            source: e,
                        });
                    }
                    records += 1;
                }
                if page_count % 50 == 0 {
                    eprintln!("… {records} records, {page_count} pages");
                }
                if page.checkpoint.is_some() {
                    checkpoint = page.checkpoint;
                }
            }
            Err(e) => {
                failure = Some(e.into());
                break;
            }
        }
    }
    out.flush().map_err(|e| CliError::Io {
        path: "stdout".into(),
        source: e,
    })?;
    drop(out);
    if let (Some(p), Some(cp)) = (&args.state, &checkpoint) {
        let text = serde_json::to_string_pretty(cp).map_err(|e| CliError::Usage(e.to_string()))?;
        std::fs::write(p, text + "\n").map_err(io_err(p))?;
    }
    let stats = engine.client().stats();
    eprintln!(
        "stream={} records={records} pages={page_count} requests={} retries={} elapsed={:.2}s{}",
        args.stream,
        stats.requests.load(std::sync::atomic::Ordering::Relaxed),
        stats.retries.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        match (&args.state, &checkpoint) {
            (Some(_), Some(cp)) => format!(" state_cursor={}", cp.cursor.as_deref().unwrap_or("-")),
            _ => String::new(),
        }
    );
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn action(args: ActionArgs) -> Result<(), CliError> {
    let (spec, conn, engine) = build(&args.target)?;
    let input: serde_json::Value = serde_json::from_str(&args.input)
        .map_err(|e| CliError::Usage(format!("--input is not JSON: {e}")))?;
    let output = engine.action(&spec, &args.action, &conn, &input).await?;
    let text = serde_json::to_string_pretty(&output).map_err(|e| CliError::Usage(e.to_string()))?;
    println!("{text}");
    Ok(())
}
