//! Time arithmetic of the supervisor, kept pure so it can be tested without waiting: the next
//! step of an every-so-often schedule, the backoff after a failure, and the UTC day a step
//! budget counts in.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::LimitsSection;

/// Milliseconds in a day. Unix time has no leap seconds, so UTC midnights are its multiples.
const DAY_MS: u64 = 86_400_000;

/// When the step after one due at `due` is due, for a step every `period`: one period later,
/// or at once (`now`) if that moment has already passed. Missed steps are delayed, never
/// bursted, as with tokio's `MissedTickBehavior::Delay`: an overlong step is followed by one
/// step, and the cadence goes on a period after it.
pub(crate) fn next_due(due: Instant, period: Duration, now: Instant) -> Instant {
    (due + period).max(now)
}

/// The start of the UTC day holding `ms` (milliseconds since the Unix epoch).
pub(crate) fn utc_day_start_ms(ms: u64) -> u64 {
    ms - ms % DAY_MS
}

/// The next UTC midnight after `ms`.
pub(crate) fn next_utc_midnight_ms(ms: u64) -> u64 {
    utc_day_start_ms(ms) + DAY_MS
}

/// Exponential backoff with jitter: the n-th consecutive failure waits
/// `min(base · 2ⁿ⁻¹, max)`, of which a random half is taken off ("equal jitter"), so agents
/// that failed together (an RPC outage) do not all retry in the same instant.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(limits: &LimitsSection) -> Self {
        let secs = |s: f64| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX);
        let base = secs(limits.backoff_secs);
        Self {
            base,
            max: secs(limits.max_backoff_secs).max(base),
            failures: 0,
        }
    }

    /// The delay before the next attempt, counting one more failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let full = self.ceiling();
        full / 2 + full.mul_f64(rand::random::<f64>() / 2.0)
    }

    /// The undithered delay of the current failure count.
    fn ceiling(&self) -> Duration {
        let exp = self.failures.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }

    /// Consecutive failures so far.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// A success: the next failure starts from `base` again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_steps_are_delayed_not_bursted() {
        let t0 = Instant::now();
        let p = Duration::from_secs(10);
        // On time: one period later.
        assert_eq!(next_due(t0, p, t0 + Duration::from_secs(3)), t0 + p);
        // The step overran two periods: the next one starts now, not three at once.
        let late = t0 + Duration::from_secs(25);
        assert_eq!(next_due(t0, p, late), late);
        assert_eq!(next_due(late, p, late), late + p);
    }

    #[test]
    fn utc_days() {
        // 2024-03-01T13:45:00Z
        let ms = 1_709_300_700_000;
        assert_eq!(utc_day_start_ms(ms), 1_709_251_200_000);
        assert_eq!(next_utc_midnight_ms(ms), 1_709_337_600_000);
        assert_eq!(utc_day_start_ms(1_709_251_200_000), 1_709_251_200_000);
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_and_resets() {
        let limits = LimitsSection {
            parallel_steps: 1,
            backoff_secs: 1.0,
            max_backoff_secs: 5.0,
        };
        let mut b = Backoff::new(&limits);
        let ceilings: Vec<f64> = (0..6)
            .map(|_| {
                let d = b.next_delay();
                let c = b.ceiling();
                assert!(d >= c / 2 && d <= c, "{d:?} outside [{:?}, {c:?}]", c / 2);
                c.as_secs_f64()
            })
            .collect();
        assert_eq!(ceilings, [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]);
        assert_eq!(b.failures(), 6);
        b.reset();
        b.next_delay();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }
}
