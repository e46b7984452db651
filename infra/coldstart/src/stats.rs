//! Minimum, median and maximum of a set of durations.

use std::time::Duration;

/// The spread of one binary's init times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Fastest run.
    pub min: Duration,
    /// Middle run (the mean of the two middle ones for an even count).
    pub median: Duration,
    /// Slowest run.
    pub max: Duration,
}

/// The summary of `samples`, `None` when there are none.
pub fn summarize(samples: &[Duration]) -> Option<Summary> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let (first, last) = (sorted.first()?, sorted.last()?);
    let mid = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2
    };
    Some(Summary {
        min: *first,
        median,
        max: *last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().copied().map(Duration::from_millis).collect()
    }

    #[test]
    fn odd_count_takes_the_middle_value() {
        let s = summarize(&ms(&[9, 1, 5])).unwrap();

        assert_eq!(
            (s.min, s.median, s.max),
            (
                Duration::from_millis(1),
                Duration::from_millis(5),
                Duration::from_millis(9)
            )
        );
    }

    #[test]
    fn even_count_averages_the_two_middle_values() {
        let s = summarize(&ms(&[4, 2, 8, 6])).unwrap();

        assert_eq!(s.median, Duration::from_millis(5));
    }

    #[test]
    fn no_samples_no_summary() {
        assert_eq!(summarize(&[]), None);
    }
}
