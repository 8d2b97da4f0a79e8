//! When to refresh, and how long to back off: pure functions of time.
//!
//! Kept apart from the state machine so the arithmetic can be tested
//! exhaustively without a provider, a runtime or a clock.

use std::time::{Duration, SystemTime};

/// The least margin before expiry at which a refresh is planned, for tokens
/// that live long enough to afford it. Matches the default `min_valid` of the
/// `token` op, so a caller asking with the default rarely waits for a refresh.
pub const MIN_MARGIN: Duration = Duration::from_secs(60);

/// First retry delay after a transient failure.
pub const TRANSIENT_BACKOFF_BASE: Duration = Duration::from_secs(5);

/// Longest delay between retries after transient failures: an outage ends,
/// and sessions should notice within minutes without hammering meanwhile.
pub const TRANSIENT_BACKOFF_CAP: Duration = Duration::from_secs(300);

/// First retry delay after a permanent refusal (bad client id, ...).
pub const PERMANENT_BACKOFF_BASE: Duration = Duration::from_secs(60);

/// Longest delay between retries after permanent refusals.
pub const PERMANENT_BACKOFF_CAP: Duration = Duration::from_secs(1800);

/// How soon after a failed attempt a caller's request may trigger another
/// one. Callers asking in a loop during an outage get the last error instead
/// of a request each.
pub const ON_DEMAND_RETRY_SPACING: Duration = Duration::from_secs(5);

/// When to refresh a token obtained at `obtained` that expires at `expires`.
///
/// The margin before expiry is 15 % to 25 % of the lifetime (chosen by
/// `jitter` in `0.0..=1.0`), and at least [`MIN_MARGIN`] when the lifetime
/// allows (at most half of it). Spreading by a share of the lifetime keeps
/// sessions that were logged in together from refreshing in the same second
/// ever after.
#[must_use]
pub fn refresh_due(obtained: SystemTime, expires: SystemTime, jitter: f64) -> SystemTime {
    let Ok(lifetime) = expires.duration_since(obtained) else {
        return obtained;
    };
    let share = 0.15 + 0.10 * jitter.clamp(0.0, 1.0);
    let margin = lifetime.mul_f64(share).max(MIN_MARGIN.min(lifetime / 2));
    expires - margin
}

/// Delay before retry number `failures` (1 for the first retry): doubling
/// from `base` up to `cap`, then spread over its upper half by `jitter`
/// (`0.0..=1.0`) so that sessions failing together do not retry together.
#[must_use]
pub fn backoff(failures: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let full = base.saturating_mul(1 << exponent).min(cap);
    full / 2 + (full / 2).mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn refresh_lands_between_75_and_85_percent_of_a_long_lifetime() {
        for jitter in [0.0, 0.5, 1.0] {
            let due = refresh_due(t(0), t(3600), jitter);
            let at = due.duration_since(t(0)).unwrap();
            assert!(
                at >= HOUR.mul_f64(0.75) && at <= HOUR.mul_f64(0.85),
                "{at:?}"
            );
        }
        assert!(refresh_due(t(0), t(3600), 0.0) > refresh_due(t(0), t(3600), 1.0));
    }

    #[test]
    fn short_lifetimes_keep_a_usable_margin() {
        // 5 minutes: 15 % is 45 s, so the 60 s floor applies.
        assert_eq!(refresh_due(t(0), t(300), 0.0), t(240));
        // 60 s: the floor is capped at half the lifetime.
        assert_eq!(refresh_due(t(0), t(60), 0.0), t(30));
        // Already expired or nonsense: refresh at once.
        assert_eq!(refresh_due(t(10), t(5), 0.5), t(10));
    }

    #[test]
    fn jitter_spreads_many_sessions() {
        let dues: std::collections::BTreeSet<_> = (0..=100)
            .map(|i| refresh_due(t(0), t(3600), f64::from(i) / 100.0))
            .collect();
        assert!(dues.len() > 90, "{} distinct", dues.len());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = |n| backoff(n, TRANSIENT_BACKOFF_BASE, TRANSIENT_BACKOFF_CAP, 1.0);
        assert_eq!(b(1), Duration::from_secs(5));
        assert_eq!(b(2), Duration::from_secs(10));
        assert_eq!(b(3), Duration::from_secs(20));
        assert_eq!(b(10), TRANSIENT_BACKOFF_CAP);
        assert_eq!(b(u32::MAX), TRANSIENT_BACKOFF_CAP);
        let low = backoff(3, TRANSIENT_BACKOFF_BASE, TRANSIENT_BACKOFF_CAP, 0.0);
        assert_eq!(low, Duration::from_secs(10), "jitter spans the upper half");
    }
}
