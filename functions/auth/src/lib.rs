//! The HTTP API Lambda REQUEST authorizer: tenant API keys, JWTs from a tenant's registered OIDC
//! issuer, and the deployment admin key. The binary in `main.rs` only wires these modules to AWS.

pub mod apikey;
pub mod config;
pub mod denial;
pub mod handler;
pub mod jwks;
pub mod jwt;
pub mod tenant;
