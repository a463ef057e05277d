//! Exponential backoff with full jitter, for job retries and reconnect
//! loops.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with full jitter: the n-th wait is a random duration
/// in `[base·2ⁿ/2, base·2ⁿ]`, capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// The wait before attempt `attempt` (1-based), without advancing.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(
            1_u32
                .checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let ceiling = exp.min(self.max);
        let floor = ceiling / 2;
        let spread = (ceiling - floor).as_millis() as u64;
        floor + Duration::from_millis(rand::thread_rng().gen_range(0..=spread))
    }

    /// The next wait, advancing the attempt count.
    pub fn next_delay(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        self.delay(self.attempt)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_and_cap() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for _ in 0..100 {
            let first = backoff.delay(1);
            assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first));
            let third = backoff.delay(3);
            assert!((Duration::from_millis(200)..=Duration::from_millis(400)).contains(&third));
            let late = backoff.delay(40);
            assert!((Duration::from_secs(1)..=Duration::from_secs(2)).contains(&late));
        }
    }

    #[test]
    fn next_delay_advances_and_reset_starts_over() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(60));
        backoff.next_delay();
        backoff.next_delay();
        assert!(backoff.next_delay() >= Duration::from_millis(200));
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
