//! Tributary's domain: identifiers, the job envelope that travels through the queue, the health model,
//! the ports (traits) that adapters implement, their errors, and configuration helpers. Nothing here
//! depends on an AWS SDK crate (the adapters live in `tributary-aws`) or speaks HTTP (the API's
//! problem documents and cursors live in `functions/api`).

pub mod action;
pub mod apikey;
pub mod auth;
pub mod canary;
pub mod config;
pub mod connect;
pub mod connection;
pub mod dashboard;
pub mod error;
pub mod health;
pub mod ids;
pub mod inbound;
pub mod insights;
pub mod integration;
pub mod job;
pub mod operation;
pub mod outbound;
pub mod pagination;
pub mod ports;
pub mod records;
pub mod refresh;
pub mod scope;
pub mod sync;
pub mod tenancy;
pub mod time;
pub mod vault;

pub use error::PortError;
