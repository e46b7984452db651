//! Tributary's connector engine: declarative provider specs, safe templating, the guarded HTTP
//! client, pagination, streams, actions, webhook verification and the embedded provider catalog.
//!
//! The crate has no AWS dependency; the sync worker and the API drive it through
//! [`Engine`](crate::engine::Engine).

pub mod action;
pub mod catalog;
pub mod client;
pub mod connection;
pub mod connector;
pub mod cursor;
pub mod egress;
pub mod engine;
pub mod error;
pub mod page;
pub mod read;
pub mod selector;
pub mod spec;
pub mod template;
pub mod webhook;

pub use client::{HttpClient, HttpConfig};
pub use connection::Connection;
pub use cursor::StreamState;
pub use egress::EgressPolicy;
pub use engine::Engine;
pub use error::{EngineError, ErrorClass};
pub use page::Record;
pub use read::{Page, ReadOptions};
pub use spec::ProviderSpec;
