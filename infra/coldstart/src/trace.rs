//! The audit for "no network call before the first `/next`", whatever the destination: one start of
//! each binary under `strace`, listing every IPv4 or IPv6 `connect`, `sendto` and `sendmsg` made before
//! the runtime's own connection to the Runtime API. The AWS endpoint listener only sees calls to AWS;
//! this also sees DNS, metadata and anything else. It is not timed (ptrace slows every system call).

use std::ffi::OsStr;
use std::net::IpAddr;
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use crate::Error;
use crate::launch::{Failure, environment, run_until_next};
use crate::listeners::{AwsEndpoint, RuntimeApi};
use crate::subjects::Subject;

/// Runs `subject` once under `strace` and returns the network calls it made before `/next`, as
/// strace printed them.
pub async fn audit(
    strace: &Path,
    subject: &Subject,
    api: &RuntimeApi,
    aws: &AwsEndpoint,
    dir: &Path,
    timeout: Duration,
) -> Result<Result<Vec<String>, Failure>, Error> {
    let trace = dir.join(format!("{}.strace", subject.binary));
    let log = dir.join(format!("{}.strace.log", subject.binary));
    let env = environment(subject, api, aws);
    let args: [&OsStr; 7] = [
        OsStr::new("-f"),
        OsStr::new("-qq"),
        OsStr::new("-e"),
        OsStr::new("trace=connect,sendto,sendmsg"),
        OsStr::new("-o"),
        trace.as_os_str(),
        subject.program.as_os_str(),
    ];
    let (_, outcome) = run_until_next(strace.as_os_str(), &args, &env, api, &log, timeout).await?;
    if let Err(failure) = outcome {
        return Ok(Err(failure));
    }
    let text =
        std::fs::read_to_string(&trace).map_err(|e| Error::io("read", trace.display(), e))?;
    Ok(Ok(network_before_next(&text, api.port())))
}

/// The IP destination of a traced call, if it names one.
fn destination(line: &str) -> Option<(IpAddr, u16)> {
    static V4: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)"#)
            .expect("the pattern is valid")
    });
    static V6: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"sin6_port=htons\((\d+)\).*?inet_pton\(AF_INET6, "([^"]+)""#)
            .expect("the pattern is valid")
    });
    let captures = V4.captures(line).or_else(|| V6.captures(line))?;
    let port = captures[1].parse().ok()?;
    let ip = captures[2].parse().ok()?;
    Some((ip, port))
}

/// The calls in `trace` (strace's output) to an IP destination before the first connection to the
/// Runtime API on loopback `runtime_api_port`.
pub fn network_before_next(trace: &str, runtime_api_port: u16) -> Vec<String> {
    let mut calls = Vec::new();
    for line in trace.lines() {
        let Some((ip, port)) = destination(line) else {
            continue;
        };
        if ip.is_loopback() && port == runtime_api_port {
            break;
        }
        // Without the pid strace puts first: the call alone.
        let call = line.split_once(' ').map_or(line, |(_, rest)| rest).trim();
        calls.push(call.to_owned());
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = r#"4100  connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT (No such file or directory)
4101  connect(9, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.2")}, 16) = 0
4101  sendto(9, "\x12\x34", 2, MSG_NOSIGNAL, NULL, 0) = 2
4102  connect(10, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2600:1f18::1", &sin6_addr), sin6_scope_id=0}, 28) = -1 EINPROGRESS (Operation now in progress)
4102  connect(11, {sa_family=AF_INET, sin_port=htons(9001), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 EINPROGRESS (Operation now in progress)
4102  connect(12, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("52.1.2.3")}, 16) = 0
"#;

    #[test]
    fn calls_before_the_runtime_connection_are_listed_and_unix_sockets_are_not() {
        let calls = network_before_next(TRACE, 9001);

        assert_eq!(calls.len(), 2, "{calls:?}");
        assert!(calls[0].contains("htons(53)"));
        assert!(calls[1].contains("2600:1f18::1"));
    }

    #[test]
    fn a_clean_init_lists_nothing() {
        let trace = "7  connect(11, {sa_family=AF_INET, sin_port=htons(9001), sin_addr=inet_addr(\"127.0.0.1\")}, 16) = 0\n";

        assert!(network_before_next(trace, 9001).is_empty());
    }
}
