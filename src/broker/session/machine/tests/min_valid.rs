//! A caller asking for nearly a token's whole lifetime does not make a
//! refresh every few seconds: once a refresh brought a token tokend would
//! not refresh yet, the next one such a request starts comes a minute
//! after it (a local user's loop made a rotation every 5 s, and tripped a
//! provider's per-client rate limit for every user of the client).

use super::*;

#[test]
fn near_lifetime_requests_refresh_at_most_once_a_minute() {
    let mut m = logged_in(3600);
    let strict = || Event::TokenRequested {
        want: Freshness::AtLeast(MORE_THAN_LEFT),
    };
    // 3590 s left, 3595 asked: refreshed.
    assert_eq!(
        feed(&mut m, at(10), strict()),
        s(&["log(RefreshOnDemand)", "start_refresh(r1)", "reply(join)"])
    );
    let save = answer(&mut m, at(10), Ok(grant("a2", Some("r2"), 3600)));
    written_ok(&mut m, at(10), save);
    // 3594 s left of the new one, 6 s on: told to ask for less, no refresh.
    let again = feed(&mut m, at(16), strict());
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(again[0].starts_with("reply(error"), "{again:?}");
    // A minute after the last: refreshed again.
    assert_eq!(
        feed(&mut m, at(71), strict()),
        s(&["log(RefreshOnDemand)", "start_refresh(r2)", "reply(join)"])
    );
}
