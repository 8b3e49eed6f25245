//! Rate-limited logging of a recurring event: a flood of refused connections must not become
//! a flood of log lines, yet none of them may go uncounted.

use std::time::Duration;
use tokio::time::Instant;

/// How often a recurring event is logged at most, by default.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// At most one log line per `every` for one kind of event, carrying how many events it
/// stands for. Time comes from `tokio::time`, so a simulation controls it.
#[derive(Debug)]
pub struct LogThrottle {
    every: Duration,
    last: Option<Instant>,
    unlogged: u64,
}

impl LogThrottle {
    /// One line per `every` at most.
    pub fn new(every: Duration) -> Self {
        LogThrottle {
            every,
            last: None,
            unlogged: 0,
        }
    }

    /// Count one event at `now`. `Some(n)`: log it now, as `n` events (this one and those
    /// not logged since the last line); `None`: stay quiet, it is counted for the next line.
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        self.unlogged = self.unlogged.saturating_add(1);
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => None,
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.unlogged))
            }
        }
    }
}

impl Default for LogThrottle {
    fn default() -> Self {
        LogThrottle::new(LOG_EVERY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_is_logged_then_one_line_per_period_counts_the_rest() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut t = LogThrottle::new(Duration::from_secs(10));
        assert_eq!(t.note(at(0)), Some(1));
        for ms in 1..=999 {
            assert_eq!(t.note(at(ms * 10)), None, "{ms}");
        }
        // 999 quiet ones, then the one at the period's end: 1,000 in one line.
        assert_eq!(t.note(at(10_000)), Some(1000));
        assert_eq!(t.note(at(10_001)), None);
        assert_eq!(t.note(at(25_000)), Some(2));
    }
}
