//! The two local listeners a measured process sees.
//!
//! The Runtime API stub records when a process's first `GET /2018-06-01/runtime/invocation/next`
//! arrives and then holds that request, so the process stays parked at the end of its init until it
//! is killed. The AWS endpoint (`AWS_ENDPOINT_URL`, and the instance metadata endpoint) accepts and
//! drops every connection and remembers when: any connection before `/next` is a network call made
//! during init.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::Error;

/// The path a runtime polls for its next invocation; the first request to it ends init.
pub const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn bind() -> Result<(TcpListener, SocketAddr), Error> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| Error::io("bind", "127.0.0.1:0", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("read the address of", "127.0.0.1:0", e))?;
    Ok((listener, addr))
}

/// A minimal Lambda Runtime API on a free loopback port.
#[derive(Debug, Clone)]
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    next: Mutex<Option<oneshot::Sender<Instant>>>,
    others: Mutex<Vec<String>>,
    release: watch::Sender<u64>,
}

impl RuntimeApi {
    /// Binds and serves until the benchmark exits.
    pub async fn start() -> Result<Self, Error> {
        let (listener, addr) = bind().await?;
        let shared = Arc::new(Shared {
            next: Mutex::new(None),
            others: Mutex::new(Vec::new()),
            release: watch::Sender::new(0),
        });
        let app = Router::new()
            .fallback(runtime_request)
            .with_state(Arc::clone(&shared));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { addr, shared })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// The port, to tell the runtime's connection from any other in a trace.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Prepares for the next process: the first `/next` from now on resolves the receiver with the
    /// instant it arrived.
    pub fn arm(&self) -> oneshot::Receiver<Instant> {
        let (tx, rx) = oneshot::channel();
        *lock(&self.shared.next) = Some(tx);
        lock(&self.shared.others).clear();
        rx
    }

    /// Lets the held `/next` requests finish: their processes are gone.
    pub fn release(&self) {
        self.shared
            .release
            .send_modify(|generation| *generation += 1);
    }

    /// Requests other than `/next` since [`Self::arm`] (an init error report, say).
    pub fn other_requests(&self) -> Vec<String> {
        lock(&self.shared.others).clone()
    }
}

async fn runtime_request(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
) -> StatusCode {
    let at = Instant::now();
    if method == Method::GET && uri.path() == NEXT_PATH {
        // Subscribed before the benchmark learns of the request, so its release cannot be missed.
        let mut released = shared.release.subscribe();
        if let Some(first) = lock(&shared.next).take() {
            let _ = first.send(at);
        }
        let _ = released.changed().await;
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        lock(&shared.others).push(format!("{method} {}", uri.path()));
        StatusCode::ACCEPTED
    }
}

/// Where `AWS_ENDPOINT_URL` points: counts connections and serves none.
#[derive(Debug, Clone)]
pub struct AwsEndpoint {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<Instant>>>,
}

impl AwsEndpoint {
    /// Binds and accepts until the benchmark exits.
    pub async fn start() -> Result<Self, Error> {
        let (listener, addr) = bind().await?;
        let connections = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                lock(&seen).push(Instant::now());
                drop(stream);
            }
        });
        Ok(Self { addr, connections })
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted in `[from, to]`.
    pub fn connections_between(&self, from: Instant, to: Instant) -> usize {
        lock(&self.connections)
            .iter()
            .filter(|at| (from..=to).contains(*at))
            .count()
    }
}
