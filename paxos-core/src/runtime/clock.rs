//! The node's clock for leases: `tokio::time` (so turmoil and paused tests drive it), read at
//! every input, optionally running fast or slow to test clock drift.

use std::time::Duration;
use tokio::time::Instant;

/// Time since the node started, scaled by its rate.
#[derive(Clone, Copy, Debug)]
pub(super) struct Clock {
    start: Instant,
    rate: f64,
}

impl Clock {
    /// A clock from now, running at `rate` times real (or simulated) time.
    pub(super) fn start(rate: f64) -> Self {
        Clock {
            start: Instant::now(),
            rate,
        }
    }

    /// The reading now.
    pub(super) fn now(&self) -> Duration {
        self.start.elapsed().mul_f64(self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_fast_clock_runs_ahead_by_its_rate() {
        let real = Clock::start(1.0);
        let fast = Clock::start(1.5);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(real.now(), Duration::from_secs(2));
        assert_eq!(fast.now(), Duration::from_secs(3));
    }
}
