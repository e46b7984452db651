//! The API's routes, one module each.

pub mod health;
pub mod me;
