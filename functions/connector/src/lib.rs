//! The SQS-triggered worker: the job dispatcher ([`handler`]), sync runs ([`sync`]) and its
//! configuration. The binary in `main.rs` only wires these modules to AWS; the sync benchmark
//! (`benches/sync.rs`) drives the same handler against moto.

pub mod action;
pub mod config;
pub mod handler;
pub mod inbound;
pub mod sync;
pub mod webhooks;
