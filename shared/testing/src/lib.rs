//! In-memory test doubles of the ports in `tributary_core::ports`, one of each, shared by the tests
//! of every function (as a dev-dependency only; nothing here is production code):
//!
//! - [`MemStore`]: the control table (every store port: canary, job ledger, tenants, credentials,
//!   idempotency keys, rate counters);
//! - [`FakeQueue`]: the jobs queue or its dead-letter queue (sending, rescheduling, depth);
//! - [`FakeSecrets`]: Secrets Manager;
//! - [`ManualClock`]: a clock that moves only when told to;
//! - [`keyring`]: the credential vault's test keyring;
//! - [`token_endpoint::TokenFamily`]: a provider token endpoint that rotates refresh tokens;
//! - [`fixtures`]: domain objects with the fields a test rarely cares about filled in;
//! - [`provider::LocalStripe`]: a local Stripe customers list for sync tests.
//!
//! Each double keeps the semantics of the real adapter in `tributary-aws` that the functions' tests
//! rely on: conditional writes refuse what DynamoDB's conditions would, an (issuer, audience) pair
//! belongs to one registration, the per-tenant issuer cap holds, a tenant is purged in batches, list
//! positions are sort keys scoped to one list. Each also injects faults (a store, queue or secret
//! store that is down), counts calls per port method, and offers seeding and inspection helpers that
//! bypass the ports.

mod calls;
mod clock;
pub mod fixtures;
pub mod provider;
mod queue;
mod secrets;
mod store;
pub mod token_endpoint;

pub use clock::ManualClock;
pub use queue::FakeQueue;
pub use secrets::FakeSecrets;
pub use store::{MemStore, PURGE_BATCH};

/// The test keyring of the credential vault: one key, `k1`, of fixed material.
pub fn keyring() -> tributary_core::vault::Keyring {
    let material = "test-key-material-".repeat(3);
    let doc = format!(r#"{{"active":"k1","k1":"{material}"}}"#);
    tributary_core::vault::Keyring::from_secret(&secrecy::SecretString::from(doc))
        .expect("the test keyring is valid")
}
