//! [`ManualClock`].

use std::sync::atomic::{AtomicI64, Ordering};

use tributary_core::time::{Clock, EpochMillis};

/// A clock that stands still until told to move: handlers read "now" from it, and a test moves it
/// with [`ManualClock::advance`] (backwards too, to play a clock that jumps back).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `ms`.
    pub fn at(ms: EpochMillis) -> Self {
        Self(AtomicI64::new(ms))
    }

    /// Moves the clock by `ms` (forward when positive).
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> EpochMillis {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_stands_still_and_advances() {
        let c = ManualClock::at(10);
        assert_eq!(c.now_ms(), 10);
        assert_eq!(c.now_ms(), 10);
        c.advance(5);
        assert_eq!(c.now_ms(), 15);
        c.advance(-20);
        assert_eq!(c.now_ms(), -5);
    }
}
