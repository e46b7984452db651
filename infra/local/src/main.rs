//! `tributary-local`: brings the local stack up (see the crate docs) and keeps it up until Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tributary_local::{Mode, Stack, StackOptions, workspace};

/// Run Tributary locally: moto, the functions, and API Gateway / SQS / schedule emulation.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// How the functions run: `watch` rebuilds on change (cargo lambda watch); `binaries` runs
    /// target/debug builds.
    #[arg(long, value_enum, default_value_t = RunMode::Watch)]
    mode: RunMode,
    /// Gateway port on 127.0.0.1.
    #[arg(long, env = "TRIBUTARY_PORT", default_value_t = 3000)]
    port: u16,
    /// moto's port (0: any free port; the URL is written to .tributary/local.env).
    #[arg(long, default_value_t = 0)]
    moto_port: u16,
    /// cargo lambda watch's invoke port (0: any free port).
    #[arg(long, default_value_t = 0)]
    invoke_port: u16,
    /// Fire schedules at this interval instead of the template's rate (e.g. 10s).
    #[arg(long, value_parser = parse_interval)]
    schedule_every: Option<Duration>,
    /// Function log format (`Text` reads better in a terminal; the template says JSON).
    #[arg(long)]
    log_format: Option<String>,
    /// Function log level (overrides the template's).
    #[arg(long)]
    log_level: Option<String>,
    /// Do not echo function logs to the terminal (they are still written to the log directory).
    #[arg(long)]
    quiet: bool,
    /// Run moto one request at a time: its threaded server can fail a transaction with a 500 (a
    /// table copied while another request writes it) under concurrent traffic, which AWS never does.
    #[arg(long)]
    serialized_moto: bool,
    /// A template parameter, `Name=value` (repeatable): for example
    /// `--parameter ProviderOrigins=stripe=http://127.0.0.1:9000` to point a provider at a local one.
    #[arg(long = "parameter", value_parser = parse_parameter)]
    parameters: Vec<(String, String)>,
    /// Where to write the URLs and the admin key for scripts (and read the admin key back from).
    #[arg(long, default_value_os_t = workspace::local_env_path())]
    env_file: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RunMode {
    Watch,
    Binaries,
}

fn parse_parameter(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not `Name=value`"))?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("`{name}` is not a template parameter name"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    tributary_local::parse_interval(text).map_err(|e| e.to_string())
}

/// The admin key from a previous run, so scripts keep working across restarts.
fn previous_admin_key(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("TRIBUTARY_ADMIN_KEY="))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

async fn run(args: Args) -> Result<(), tributary_local::Error> {
    let env_path = args.env_file.clone();
    let mut parameters = StackOptions::default().parameters;
    parameters.extend(args.parameters);
    let options = StackOptions {
        parameters,
        mode: match args.mode {
            RunMode::Watch => Mode::Watch,
            RunMode::Binaries => Mode::Binaries,
        },
        gateway_port: args.port,
        moto_port: args.moto_port,
        invoke_port: args.invoke_port,
        schedule_every: args.schedule_every,
        admin_key: previous_admin_key(&env_path),
        echo_logs: !args.quiet,
        log_format: args.log_format,
        log_level: args.log_level,
        serialized_moto: args.serialized_moto,
        ..StackOptions::default()
    };
    let stack = Stack::start(options).await?;
    if let Some(dir) = env_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| tributary_local::Error::Io {
            action: "create",
            path: dir.to_path_buf(),
            source: e,
        })?;
    }
    std::fs::write(&env_path, stack.env_file()).map_err(|e| tributary_local::Error::Io {
        action: "write",
        path: env_path.clone(),
        source: e,
    })?;
    println!(
        "\nTributary is running locally.\n  API        {api}\n  Admin key  {key}\n  AWS (moto) {aws}\n  Logs       {logs}\n  Env file   {env}\n\n  curl {api}/v1/health\n  curl -H \"Authorization: Bearer $TRIBUTARY_ADMIN_KEY\" {api}/v1/me   (after: set -a; . {env}; set +a)\n\nCtrl-C stops everything.",
        api = stack.api_url(),
        key = stack.admin_key(),
        aws = stack.endpoint_url(),
        logs = stack.log_dir().display(),
        env = env_path.display(),
    );
    wait_for_stop().await;
    eprintln!("stopping…");
    stack.shutdown().await;
    Ok(())
}

async fn wait_for_stop() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tributary-local: {e}");
            ExitCode::FAILURE
        }
    }
}
