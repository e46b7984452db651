//! `make bench-coldstart`: cold starts of the functions and of the hello world, interleaved, then the
//! table. Exits non-zero when a goal is missed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tributary_coldstart::launch::{Failure, cold_start};
use tributary_coldstart::listeners::{AwsEndpoint, RuntimeApi};
use tributary_coldstart::report::{Audit, Goals, Row, render};
use tributary_coldstart::size::{Origin, pick, zip};
use tributary_coldstart::stats::summarize;
use tributary_coldstart::subjects::{Subject, from_template};
use tributary_coldstart::{Error, trace};
use tributary_local::Template;

#[derive(Debug, Parser)]
#[command(
    about = "Cold start (exec to first /next) and zip size of every function, against a lambda_runtime hello world"
)]
struct Args {
    /// The release binaries (the functions' and coldstart-hello).
    #[arg(long, default_value = "target/coldstart/release")]
    bin_dir: PathBuf,
    /// The SAM template giving the functions and their environment.
    #[arg(long, default_value = "infra/template.yaml")]
    template: PathBuf,
    /// `sam build`'s output; functions without a bootstrap there are zipped from --bin-dir.
    #[arg(long, env = "SAM_BUILD_DIR", default_value = ".aws-sam/build")]
    sam_build_dir: PathBuf,
    /// Timed rounds; each starts every binary once, in rotating order.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(20..))]
    rounds: u32,
    /// Untimed rounds first (page cache, listener warm-up).
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// Seconds a process may take to reach /next (Lambda's init limit is 10).
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// The interpreter that zips like the SAM CLI.
    #[arg(long, env = "PYTHON", default_value = "python3")]
    python: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match bench(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench-coldstart: {e}");
            ExitCode::from(2)
        }
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn find_on_path(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|candidate| candidate.is_file())
    })
}

async fn bench(args: &Args) -> Result<bool, Error> {
    let template = Template::load(&args.template)?;
    let subjects = from_template(&template, &args.bin_dir)?;
    for s in &subjects {
        if !s.program.is_file() {
            return Err(Error::BinaryMissing(s.program.clone()));
        }
    }
    let work = args.bin_dir.join("coldstart-runs");
    std::fs::create_dir_all(&work).map_err(|e| Error::io("create", work.display(), e))?;
    let api = RuntimeApi::start().await?;
    let aws = AwsEndpoint::start().await?;
    let timeout = Duration::from_secs(args.timeout);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_before = load_average();

    let mut rows: Vec<Row> = subjects
        .iter()
        .map(|s| Row {
            binary: s.binary.clone(),
            is_hello: s.is_hello(),
            summary: None,
            runs: 0,
            failure: None,
            aws_connections: 0,
            audit: Audit::Unavailable("not run".into()),
            zip: None,
        })
        .collect();
    let mut samples = vec![Vec::new(); subjects.len()];
    let total = args.warmup + args.rounds;
    let progress = std::io::stderr().is_terminal();
    eprintln!(
        "bench-coldstart: {total} rounds of {} binaries, then one traced start each",
        subjects.len()
    );
    for round in 0..total {
        let timed = round >= args.warmup;
        if progress {
            eprint!(
                "\rbench-coldstart: round {}/{total}{}",
                round + 1,
                if timed { "" } else { " (warm-up)" }
            );
        }
        // Rotating the order spreads any effect of position in a round over every binary.
        for k in 0..subjects.len() {
            let i = (k + round as usize) % subjects.len();
            if rows[i].failure.is_some() {
                continue;
            }
            let log = work.join(format!("{}.log", subjects[i].binary));
            match cold_start(&subjects[i], &api, &aws, &log, timeout).await? {
                Ok(sample) => {
                    rows[i].aws_connections += sample.aws_connections;
                    if timed {
                        samples[i].push(sample.init);
                    }
                }
                Err(failure) => rows[i].failure = Some(describe(&failure, &api, &log)),
            }
        }
    }
    if progress {
        eprintln!();
    }
    for (row, samples) in rows.iter_mut().zip(&samples) {
        row.summary = summarize(samples);
        row.runs = samples.len();
    }

    let strace = find_on_path("strace");
    for (row, subject) in rows.iter_mut().zip(&subjects) {
        row.audit = match &strace {
            None => Audit::Unavailable("strace not found".into()),
            Some(strace) => {
                match trace::audit(strace, subject, &api, &aws, &work, timeout * 3).await? {
                    Ok(calls) if calls.is_empty() => Audit::Clean,
                    Ok(calls) => Audit::Calls(calls),
                    Err(failure) => Audit::Unavailable(failure.to_string()),
                }
            }
        };
    }

    let sam_present = args.sam_build_dir.is_dir();
    for (row, subject) in rows.iter_mut().zip(&subjects) {
        let (binary, origin) = pick(
            &args.sam_build_dir,
            subject.logical_id.as_deref(),
            &subject.program,
        );
        let out = work.join(format!("{}.zip", subject.binary));
        row.zip = Some(zip(&args.python, &binary, origin, &out)?);
    }

    print_header(args, &subjects, &rows, cpus, &load_before, sam_present);
    let report = render(
        &rows,
        Goals {
            ratio: 1.5,
            zip_bytes: 3_000_000,
        },
    );
    println!("{}", report.markdown);
    for (row, subject) in rows.iter().zip(&subjects) {
        if let Audit::Calls(calls) = &row.audit {
            println!("{} before its first /next (strace):", subject.binary);
            for call in calls {
                println!("    {call}");
            }
        }
    }
    Ok(report.met)
}

fn describe(failure: &Failure, api: &RuntimeApi, log: &Path) -> String {
    let mut text = failure.to_string();
    let others = api.other_requests();
    if !others.is_empty() {
        text.push_str(&format!("; it called {}", others.join(", ")));
    }
    let tail = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = tail.lines().rev().take(3).collect();
    if !tail.is_empty() {
        let lines: Vec<&str> = tail.into_iter().rev().collect();
        text.push_str(&format!("; output: {}", lines.join(" / ")));
    }
    text
}

fn print_header(
    args: &Args,
    subjects: &[Subject],
    rows: &[Row],
    cpus: usize,
    load_before: &str,
    sam_present: bool,
) {
    let runs = rows.iter().map(|r| r.runs).min().unwrap_or(0);
    println!(
        "Init = exec to the first GET /2018-06-01/runtime/invocation/next, {} binaries interleaved, \
         {} timed rounds after {} warm-up ({} runs each at least), release profile, {}.",
        subjects.len(),
        args.rounds,
        args.warmup,
        runs,
        args.bin_dir.display()
    );
    println!(
        "Machine: {}, {cpus} CPUs, load average {load_before} before and {} after.",
        std::env::consts::ARCH,
        load_average()
    );
    let zips = rows
        .iter()
        .filter_map(|r| r.zip.as_ref())
        .filter(|z| z.origin == Origin::SamBuild)
        .count();
    let functions = subjects.iter().filter(|s| !s.is_hello()).count();
    if !sam_present {
        println!(
            "Zips: no sam build output at {}: the release binaries of {} are zipped instead.",
            args.sam_build_dir.display(),
            args.bin_dir.display()
        );
    } else if zips < functions {
        println!(
            "Zips: {} of {functions} functions from sam build output at {}, the others from the release binaries.",
            zips,
            args.sam_build_dir.display()
        );
    } else {
        println!(
            "Zips: sam build output at {} (the hello world from the release binaries).",
            args.sam_build_dir.display()
        );
    }
    println!();
}
