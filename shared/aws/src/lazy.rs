//! A service client built on first use. The first client of each AWS service parses that service's
//! endpoint partitions (JSON and regular expressions): an adapter that only some requests use (the
//! queue behind the API's health details, the secret behind the admin key) should not pay it at cold
//! start.

use std::fmt;
use std::sync::{Arc, OnceLock};

/// A client built by `make` the first time [`Lazy::get`] is called; clones share it.
pub struct Lazy<C> {
    cell: Arc<OnceLock<C>>,
    make: Arc<dyn Fn() -> C + Send + Sync>,
}

impl<C> Lazy<C> {
    /// A client `make` builds when first needed.
    pub fn new(make: impl Fn() -> C + Send + Sync + 'static) -> Self {
        Self {
            cell: Arc::new(OnceLock::new()),
            make: Arc::new(make),
        }
    }

    /// The client, built now if it was not yet.
    pub fn get(&self) -> &C {
        self.cell.get_or_init(|| (self.make)())
    }

    /// Whether it has been built.
    pub fn is_built(&self) -> bool {
        self.cell.get().is_some()
    }
}

impl<C: Clone + Send + Sync + 'static> From<C> for Lazy<C> {
    /// A client already built.
    fn from(client: C) -> Self {
        let cell = OnceLock::new();
        let _ = cell.set(client.clone());
        Self {
            cell: Arc::new(cell),
            make: Arc::new(move || client.clone()),
        }
    }
}

impl<C> Clone for Lazy<C> {
    fn clone(&self) -> Self {
        Self {
            cell: Arc::clone(&self.cell),
            make: Arc::clone(&self.make),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for Lazy<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cell.get() {
            Some(client) => f.debug_tuple("Lazy").field(client).finish(),
            None => f.write_str("Lazy(<not built>)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn builds_once_on_first_use_and_clones_share_it() {
        let builds = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&builds);
        let lazy = Lazy::new(move || counter.fetch_add(1, Ordering::SeqCst) + 1);
        let clone = lazy.clone();
        assert!(!lazy.is_built());
        assert_eq!(builds.load(Ordering::SeqCst), 0);
        assert_eq!(*clone.get(), 1);
        assert_eq!(*lazy.get(), 1);
        assert!(lazy.is_built());
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_built_client_is_used_as_it_is() {
        let lazy = Lazy::from(7_u8);
        assert!(lazy.is_built());
        assert_eq!(*lazy.get(), 7);
    }
}
