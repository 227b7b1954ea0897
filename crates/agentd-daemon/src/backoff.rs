//! Retry delays: exponential growth, capped, then *full jitter* applied after the cap
//! (a uniformly random delay in `[0, min(cap, base·2ⁿ)]`, as in AWS's "Exponential Backoff
//! and Jitter"). A thousand daemons that lost the same server therefore spread their
//! reconnects over the whole window instead of arriving together at the cap.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    /// Attempts that stay at `base` before the doubling starts.
    hold: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
            hold: 0,
        }
    }

    /// Keeps the ceiling at `base` for the first `1 + extra` attempts, then doubles.
    pub fn holding(mut self, extra: u32) -> Backoff {
        self.hold = extra;
        self
    }

    /// The ceiling of the next delay, before jitter.
    pub fn ceiling(&self) -> Duration {
        let exp = self.attempt.saturating_sub(self.hold).min(20);
        let factor = 1u32.checked_shl(exp).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next delay: uniform in `[0, ceiling]`; advances the attempt counter.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        full_jitter(ceiling)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// A uniformly random duration in `[0, max]`.
pub fn full_jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return max;
    }
    let nanos = max.as_nanos().min(u64::MAX as u128) as u64;
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_jitters_below_the_ceiling() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let c = b.ceiling();
            let d = b.next_delay();
            assert!(d <= c, "{d:?} > {c:?}");
            ceilings.push(c.as_secs());
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 30, 30, 30]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_over_the_whole_window() {
        // 1,000 daemons at the cap: their delays must cover the window, not bunch at it.
        let cap = Duration::from_secs(30);
        let mut buckets = [0u32; 10];
        for _ in 0..1000 {
            let d = full_jitter(cap);
            let i = ((d.as_secs_f64() / cap.as_secs_f64()) * 10.0).min(9.0) as usize;
            buckets[i] += 1;
        }
        // Uniform: about 100 per bucket; a stampede would put them all in one.
        assert!(buckets.iter().all(|&n| n > 40 && n < 200), "{buckets:?}");
    }
}
