//! `make bench-coldstart`: how long each function's init takes (exec to its first
//! `GET /2018-06-01/runtime/invocation/next`) next to a `lambda_runtime` hello world built with the same
//! profile, whether anything reaches the network before that request, and how big each zip is.
//!
//! Lambda bills init, and a Rust hello world initialises in about 15 ms there: the functions should
//! stay within 1.5x of it, in a zip of at most 3 MB.

pub mod error;
pub mod launch;
pub mod listeners;
pub mod report;
pub mod size;
pub mod stats;
pub mod subjects;
pub mod trace;

pub use error::Error;
