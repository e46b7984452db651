//! Tributary's domain: identifiers, the job envelope that travels through the queue, the health model,
//! the ports (traits) that adapters implement, errors and their RFC 9457 rendering, and configuration
//! helpers. Nothing here depends on an AWS SDK crate: the adapters live in `tributary-aws`.

pub mod apikey;
pub mod auth;
pub mod canary;
pub mod config;
pub mod error;
pub mod health;
pub mod ids;
pub mod job;
pub mod pagination;
pub mod ports;
pub mod problem;
pub mod scope;
pub mod tenancy;
pub mod time;

pub use error::PortError;
pub use problem::{ApiError, Problem};
