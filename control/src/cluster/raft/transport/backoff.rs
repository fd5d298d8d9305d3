//! Retry delays for a peer that cannot be reached.

use std::time::Duration;

/// Exponential backoff with jitter: each delay is drawn from [d/2, d] for a `d` that doubles
/// from `min` up to `max`, so peers that failed together do not retry together.
pub(super) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    rng: u64,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let seed = crate::sys::random_bytes::<8>()
            .map(u64::from_ne_bytes)
            // Jitter only spreads retries; the clock is random enough for that.
            .unwrap_or_else(|_| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        Backoff {
            min,
            max: max.max(min),
            next: min,
            rng: seed | 1, // xorshift must not start at 0
        }
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }

    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = d / 2;
        let spread = half.as_nanos() as u64 + 1;
        half + Duration::from_nanos(self.rng % spread)
    }
}
