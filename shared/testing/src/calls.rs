//! Per-method call counts, shared by the doubles.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// How many times each port method of one double was called.
#[derive(Debug)]
pub(crate) struct Calls {
    double: &'static str,
    methods: &'static [&'static str],
    counts: Mutex<HashMap<&'static str, usize>>,
}

impl Calls {
    /// Counts for `double`, whose port methods are `methods`.
    pub(crate) fn new(double: &'static str, methods: &'static [&'static str]) -> Self {
        Self {
            double,
            methods,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one call of `method`.
    pub(crate) fn count(&self, method: &'static str) {
        debug_assert!(self.methods.contains(&method), "{method}");
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(method)
            .or_default() += 1;
    }

    /// How many times `method` was called. Panics on a name that is not one of the double's port
    /// methods, so that a misspelt name cannot make "never called" pass.
    pub(crate) fn of(&self, method: &str) -> usize {
        assert!(
            self.methods.contains(&method),
            "{} has no port method `{method}` (it has {:?})",
            self.double,
            self.methods
        );
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(method)
            .copied()
            .unwrap_or(0)
    }
}
