//! Tributary's guarded outbound HTTP client and egress policy.
//!
//! Every request to a third party (a provider API, an OIDC issuer) goes through [`HttpClient`]:
//! destinations are checked by the [`EgressPolicy`] before connecting and on every redirect, retries
//! use full-jitter backoff within an attempt count and a time budget, and bodies are capped. How a
//! response is judged is a seam: [`Classifier`] (status codes and standard rate-limit headers) is
//! the default, and a caller with its own rules implements [`Classify`].
//!
//! [`issuer_url`] is the one rule for the URLs of OIDC issuers, shared by the API that registers
//! them and the authorizer that fetches from them.

pub mod classify;
pub mod client;
pub mod egress;
pub mod error;
pub mod issuer_url;
pub mod observe;
pub mod tls;

pub use classify::{Classifier, Classify, ErrorClass, Failure, RateLimitHeaders, ResetFormat};
pub use client::{AuthParts, HttpClient, HttpConfig, OutRequest, Response, Stats};
pub use egress::{EgressDenied, EgressPolicy};
pub use error::HttpError;
