//! A client-side rate limit, as client-go's token bucket: on average `qps` requests a second,
//! up to `burst` at once. Kept as the generic cell rate algorithm: one instant, no timer task.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Spaces requests out to `qps` a second, allowing bursts of `burst`.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// The time between two requests at the steady rate.
    interval: Duration,
    /// How far ahead of the steady rate a burst may run.
    tolerance: Duration,
    /// When the next request would be due at the steady rate.
    due: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limiter for `qps` requests a second (bursts of `burst`); `None` when `qps` is not
    /// positive (no limit).
    pub(crate) fn new(qps: f32, burst: u32) -> Option<Self> {
        if !qps.is_finite() || qps <= 0.0 {
            return None;
        }
        let interval = Duration::from_secs_f64(1.0 / f64::from(qps));
        Some(Self {
            interval,
            tolerance: interval.saturating_mul(burst.saturating_sub(1)),
            due: Mutex::new(None),
        })
    }

    /// Waits until a request may be sent.
    pub(crate) async fn acquire(&self) {
        let now = Instant::now();
        let ready = {
            let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
            let slot = due.map_or(now, |due| due.max(now));
            *due = Some(slot + self.interval);
            slot.checked_sub(self.tolerance).unwrap_or(now).max(now)
        };
        tokio::time::sleep_until(ready).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_at_once_then_requests_follow_the_rate() {
        let limiter = RateLimiter::new(2.0, 3).expect("a limit");
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..6 {
            limiter.acquire().await;
            sent.push(Instant::now() - start);
        }
        let ms: Vec<_> = sent.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 0, 0, 500, 1000, 1500]);
    }

    #[test]
    fn no_positive_rate_means_no_limit() {
        assert!(RateLimiter::new(0.0, 10).is_none());
        assert!(RateLimiter::new(-1.0, 10).is_none());
        assert!(RateLimiter::new(f32::NAN, 10).is_none());
    }
}
