//! Capped exponential reconnect backoff with seeded jitter.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// Delays between reconnect attempts: `min · 2^attempt`, capped at `max`, each drawn
/// uniformly from its upper half so that peers restarted together do not redial in lockstep.
/// The jitter comes from a seeded RNG, so a simulation replays exactly.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: StdRng,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            min,
            max,
            attempt: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The delay before the next attempt; grows until [`Backoff::reset`].
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(self.rng.gen_range(0..=jitter_nanos))
    }

    /// A connection succeeded: start again from `min`.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Mix a base seed with a purpose and an id into an independent stream seed (splitmix64).
pub(crate) fn derive_seed(seed: u64, purpose: u64, id: u64) -> u64 {
    let mut z = seed ^ purpose.rotate_left(32) ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        let (min, max) = (Duration::from_millis(10), Duration::from_millis(100));
        let mut b = Backoff::new(min, max, 1);
        let delays: Vec<_> = (0..8).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d >= min / 2 && *d <= max));
        assert!(delays[7] >= max / 2);
        b.reset();
        assert!(b.next_delay() <= min);
    }

    #[test]
    fn same_seed_same_delays() {
        let d = |seed| {
            let mut b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1), seed);
            (0..10).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(d(7), d(7));
        assert_ne!(d(7), d(8));
    }
}
