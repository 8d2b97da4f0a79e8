//! When to refresh, and how long to back off: pure functions of time.
//!
//! Kept apart from the state machine so the arithmetic can be tested
//! exhaustively without a provider, a runtime or a clock.

use std::time::{Duration, SystemTime};

/// The least margin before expiry at which a refresh is planned, for tokens
/// that live long enough to afford it. A `token` request without a
/// `min_valid` takes a token until this margin (see `Freshness::Default`).
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

/// The least time between a refresh (or a login) and the background
/// refresh that follows it, however short-lived the tokens: a session
/// never refreshes in a tight loop. (Tokens that come spent back off
/// further: see `SessionMachine::space_from_last_refresh`.)
pub const MIN_REFRESH_SPACING: Duration = Duration::from_secs(1);

/// How far apart refreshes on demand of a token of unknown life come (see
/// `SessionMachine::unknown_life_wants_refresh`): a caller asking for some
/// of its life every second would otherwise have it refreshed every
/// [`ON_DEMAND_RETRY_SPACING`], 720 rotations an hour, where a token whose
/// provider said it lives an hour costs one. No provider's token is
/// believed to die within a minute of its issue.
pub const UNKNOWN_LIFE_REFRESH_SPACING: Duration = Duration::from_secs(60);

/// How soon after the wait its replacement would meet, a token a
/// refusal's refresh brought must be refused for the refusal to count as
/// "again" (within `refused_again_spacing(n) + REFUSED_AGAIN_WINDOW` of
/// its arrival, see [`refused_again_spacing`]): a client retrying against
/// a server that refuses every token refuses each new one within seconds,
/// and goes on through the wait; a token refused later had worked (one of
/// unknown life that died), and its refusal is a first one, replaced at
/// once.
pub const REFUSED_AGAIN_WINDOW: Duration = Duration::from_secs(60);

/// The longest wait between refreshes for tokens a server keeps refusing
/// (see [`refused_again_spacing`]).
pub const REFUSED_AGAIN_MAX_SPACING: Duration = Duration::from_secs(3600);

/// How long after a refresh that replaced a refused token, itself refused
/// (`in_a_row` such refreshes), the next replacement may come: a minute,
/// doubling with each, up to an hour. A server that refuses every token
/// (one without the scope it wants, a Basic answer where it takes only
/// Bearer) had a refresh, and a rotation, at each of a client's retries:
/// 600 an hour for a job retrying every 5 s.
#[must_use]
pub fn refused_again_spacing(in_a_row: u32) -> Duration {
    let doublings = in_a_row.saturating_sub(1).min(10);
    UNKNOWN_LIFE_REFRESH_SPACING
        .saturating_mul(1 << doublings)
        .min(REFUSED_AGAIN_MAX_SPACING)
}

/// How long a refresh that had no answer within `http_timeout` is listened
/// for on its open connection (from the send; at least `http_timeout`).
/// Long enough for a provider that hangs for minutes (a paused VM, an
/// overloaded database, a stuck proxy) to answer a request it still acts
/// on; bounded because each such refresh holds one of its endpoint's
/// permits, and a provider that vanished from the network never answers.
pub const LATE_ANSWER_WAIT: Duration = Duration::from_secs(600);

/// How long a default request that holds a still-valid token waits for
/// a refresh (its own or one already out) before it takes that token: a
/// default request asks for a token that works, which it has; a provider
/// that hangs or fails must not hold it up (the refresh goes on, and the
/// next request gets what it brings). A healthy provider answers well
/// within it, and the caller gets the new token.
pub const DEFAULT_REQUEST_REFRESH_WAIT: Duration = Duration::from_secs(2);

/// First retry of a save that failed while the store as a whole works
/// (one record's trouble): 15 to 30 s later. The newest refresh token is
/// only in memory until it is saved, so sooner than the next refresh.
pub const SAVE_RETRY_BASE: Duration = Duration::from_secs(30);

/// Longest wait between retries of such a save: a record that stays
/// unwritable (something in its place, a file the daemon may not replace)
/// costs a write attempt every half hour at most, not a log line a minute.
pub const SAVE_RETRY_CAP: Duration = Duration::from_secs(1800);

/// How long past its expiry an access token whose refresh is on its way
/// (none failed) still shows as `active`: the refresh after a start or a
/// resume, due at once, is answered within it by a provider that works.
/// Past it the session shows `expired`, whatever keeps the refresh: behind
/// a slow endpoint's `max_concurrent_refreshes` permits, sessions whose
/// tokens had been dead for minutes read `active`, `status --check` said
/// nothing, and their callers waited out tokenctl's 60 s.
pub const EXPIRED_SHOWN_ACTIVE_FOR: Duration = Duration::from_secs(30);

/// Whether `now` falls within `spacing` after `since`. A wall clock set
/// back (before `since`) counts as the spacing having passed: otherwise a
/// clock corrected by an hour would hold back on-demand attempts for an
/// hour.
#[must_use]
pub fn within(now: SystemTime, since: SystemTime, spacing: Duration) -> bool {
    now.duration_since(since)
        .is_ok_and(|elapsed| elapsed < spacing)
}

/// How far apart two readings of one expiry may be and still be the same:
/// an expiry given relative (`refresh_expires_in`, whole seconds counted on
/// the provider's clock) is placed from when the request was sent, so a
/// fixed end read twice lands a second or so apart.
pub const EXPIRY_READING_SLACK: Duration = Duration::from_secs(2);

/// Whether `a` and `b` are one expiry read twice (within
/// [`EXPIRY_READING_SLACK`]).
#[must_use]
pub fn about_the_same(a: SystemTime, b: SystemTime) -> bool {
    let apart = a.duration_since(b).or_else(|_| b.duration_since(a));
    apart.is_ok_and(|apart| apart <= EXPIRY_READING_SLACK)
}

/// Whether a refresh moved a refresh token's end from `before` to `after`
/// (its new token living `lifetime`): later by more than a reading's slack,
/// and for short lifetimes by more than a twelfth of it (refreshes ahead of
/// the end come a sixth of the lifetime apart at the least, [`refresh_due`]).
#[must_use]
pub fn expiry_moved(before: SystemTime, after: SystemTime, lifetime: Duration) -> bool {
    let slack = EXPIRY_READING_SLACK.min(lifetime / 12);
    after
        .duration_since(before)
        .is_ok_and(|moved| moved > slack)
}

/// When to refresh a token obtained at `obtained` that expires at `expires`.
///
/// The least margin is 15 % of the lifetime, raised to [`MIN_MARGIN`] when
/// the lifetime allows (at most half of it); `jitter` in `0.0..=1.0` adds up
/// to two thirds of that least margin, so the margin spans 15 % to 25 % of a
/// long lifetime. Spreading by a share of the margin keeps sessions that
/// were logged in together (or restored together, or whose tokens expire in
/// the same minute) from refreshing in the same second ever after; the
/// spread applies above the floor too, or every short-lived token would be
/// due exactly [`MIN_MARGIN`] before its expiry. The margin never exceeds
/// five sixths of the lifetime.
#[must_use]
pub fn refresh_due(obtained: SystemTime, expires: SystemTime, jitter: f64) -> SystemTime {
    let Ok(lifetime) = expires.duration_since(obtained) else {
        return obtained;
    };
    let least = lifetime.mul_f64(0.15).max(MIN_MARGIN.min(lifetime / 2));
    let margin = least.mul_f64(1.0 + 2.0 / 3.0 * jitter.clamp(0.0, 1.0));
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

    /// A refresh token's expiry read twice moved when it moved by more
    /// than the reading's slack: 2 s, or a twelfth of a short lifetime.
    #[test]
    fn an_expiry_moved_by_more_than_the_readings_slack() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let hour = Duration::from_secs(3600);
        assert!(!expiry_moved(t, t + Duration::from_millis(1500), hour));
        assert!(expiry_moved(t, t + Duration::from_secs(3), hour));
        // Tokens of 12 s: a twelfth is 1 s, less than the 2 s slack.
        let short = Duration::from_secs(12);
        assert!(expiry_moved(t, t + Duration::from_millis(1500), short));
        assert!(!expiry_moved(t, t + Duration::from_millis(900), short));
        assert!(!expiry_moved(t + hour, t, hour), "earlier is no move");
    }

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
    fn jitter_spreads_short_lifetimes_above_the_floor() {
        // 2 minutes: the floor (60 s) is the least margin, and jitter adds
        // up to 40 s more, never reaching the token's start.
        assert_eq!(refresh_due(t(0), t(120), 0.0), t(60));
        assert_eq!(refresh_due(t(0), t(120), 1.0), t(20));
        let dues: std::collections::BTreeSet<_> = (0..=100)
            .map(|i| refresh_due(t(0), t(120), f64::from(i) / 100.0))
            .collect();
        assert!(dues.len() > 30, "{} distinct", dues.len());
        for lifetime in [1, 2, 10, 59, 61, 399, 401, 86_400] {
            let due = refresh_due(t(0), t(lifetime), 1.0);
            assert!(due > t(0), "{lifetime} s: due at the start");
        }
    }

    #[test]
    fn jitter_spreads_many_sessions() {
        let dues: std::collections::BTreeSet<_> = (0..=100)
            .map(|i| refresh_due(t(0), t(3600), f64::from(i) / 100.0))
            .collect();
        assert!(dues.len() > 90, "{} distinct", dues.len());
    }

    #[test]
    fn a_spacing_ends_when_the_clock_is_set_back() {
        let spacing = Duration::from_secs(5);
        assert!(within(t(10), t(10), spacing));
        assert!(within(t(14), t(10), spacing));
        assert!(!within(t(15), t(10), spacing));
        // Set back by an hour: the spacing is over, not an hour longer.
        assert!(!within(t(10), t(3610), spacing));
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
