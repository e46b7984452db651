//! Tributary's connector engine: declarative provider specs, safe templating, pagination, streams,
//! actions, webhook verification and the embedded provider catalog. Requests go through the guarded
//! client of [`tributary_http`], which [`client`] adapts to provider specs.
//!
//! The crate has no AWS dependency; the sync worker and the API drive it through
//! [`Engine`](crate::engine::Engine).

pub mod action;
pub mod canonical;
pub mod catalog;
pub mod client;
pub mod connection;
pub mod connector;
pub mod cursor;
pub mod engine;
pub mod error;
pub mod grant;
pub mod input_schema;
pub mod oauth;
pub mod origins;
pub mod page;
pub mod read;
pub mod resume;
pub mod selector;
pub mod spec;
pub mod template;
pub mod webhook;

pub use canonical::{CanonicalError, canonical_json};
pub use client::{HttpClient, HttpConfig};
pub use connection::Connection;
pub use cursor::StreamState;
pub use engine::{Engine, EngineConfig};
pub use error::{EngineError, ErrorClass};
pub use page::Record;
pub use read::{Page, ReadOptions};
pub use resume::{ResumeNext, ResumePoint};
pub use spec::ProviderSpec;
/// The egress guard, re-exported from [`tributary_http`].
pub use tributary_http::egress::{self, EgressPolicy};
