//! What a request does while the token it would get is past its refresh
//! margin but still valid, or shorter-lived than it asks: take the token,
//! or have it refreshed, and how often; and what `status` shows of a
//! session whose refresh is held back past its expiry.

use std::time::Duration;

use super::*;
use crate::broker::report::SessionPhase;

/// While refreshes fail, a default request takes the still-valid token at
/// once: it neither waits on the provider nor sends refreshes of its own
/// beside the backoff's (before: one every 5 s per caller asking, whatever
/// the backoff had reached, each waited for).
#[test]
fn a_default_request_keeps_a_valid_token_while_refreshes_fail() {
    let mut m = due_for_refresh();
    answer(&mut m, at(3100), Err(transient()));
    for secs in [3101, 3110, 3200, 3590] {
        assert_eq!(
            feed(&mut m, at(secs), want_default()),
            s(&["reply(token a1)"]),
            "at {secs}"
        );
    }
    // Expired, it has nothing that works to give: a refresh on demand.
    let effects = feed(&mut m, at(3601), want_default());
    assert!(effects.contains(&"start_refresh(r1)".into()), "{effects:?}");
}

/// A default request joins the refresh that is out (a healthy provider
/// answers in moments, and the caller gets the new token), but once it has
/// been out for `DEFAULT_REQUEST_REFRESH_WAIT` the caller takes the token
/// that still works (a provider that hangs).
#[test]
fn a_default_request_takes_its_token_when_the_refresh_is_slow() {
    let mut m = due_for_refresh();
    assert_eq!(feed(&mut m, at(3101), want_default()), s(&["reply(join)"]));
    assert_eq!(
        feed(&mut m, at(3102), want_default()),
        s(&["reply(token a1)"])
    );
    // Asking for some life is still a wait for the refresh.
    let strict = Event::TokenRequested {
        want: Freshness::AtLeast(Duration::from_secs(900)),
    };
    assert_eq!(feed(&mut m, at(3103), strict), s(&["reply(join)"]));
}

/// A request for more life than the provider's tokens have is refused
/// without a refresh while the last refresh such a request had is less
/// than a minute old (each would rotate the refresh token to bring the
/// same lifetime: 720 an hour for a caller asking every 5 s); after that,
/// one refresh to learn whether the provider now issues longer ones.
#[test]
fn more_life_than_the_provider_gives_is_refreshed_for_once_a_minute() {
    let mut m = logged_in(300);
    let strict = || Event::TokenRequested {
        want: Freshness::AtLeast(Duration::from_secs(600)),
    };
    let effects = feed(&mut m, at(1), strict());
    assert!(effects.contains(&"start_refresh(r1)".into()), "{effects:?}");
    let effects = answer(&mut m, at(1), Ok(grant("a2", Some("r2"), 300)));
    written_ok(&mut m, at(1), effects);
    for secs in [10, 30, 60] {
        assert_eq!(
            feed(&mut m, at(secs), strict()),
            s(&["reply(error too_short)"]),
            "at {secs}"
        );
    }
    let effects = feed(&mut m, at(62), strict());
    assert!(effects.contains(&"start_refresh(r2)".into()), "{effects:?}");
}

/// A session logged in at t0 with tokens of an hour, whose background
/// refresh started at t0 + 3100 s (past its margin: it was due).
fn due_for_refresh() -> SessionMachine {
    let mut m = logged_in(3600);
    let due = m.next_refresh().unwrap();
    assert!(due <= at(3100), "due at {due:?}");
    let effects = feed(&mut m, at(3100), Event::RefreshDue);
    assert!(effects.contains(&"start_refresh(r1)".into()), "{effects:?}");
    m
}

/// A session whose refresh its endpoint holds back (another account of the
/// same client was told `Retry-After`) counts no failure of its own, but
/// once its token expired it is shown expired, not active: nothing comes
/// before the wait ends (it showed `active` with an expired token).
#[test]
fn a_session_held_back_past_its_expiry_is_shown_expired() {
    let mut m = logged_in(3600);
    let due = m.next_refresh().unwrap();
    let started = feed(&mut m, due, Event::RefreshDue);
    assert!(started.contains(&"start_refresh(r1)".into()), "{started:?}");
    let generation = m.generation;
    m.handle(
        &ctx(due),
        Event::RefreshHeld {
            generation,
            failure: unavailable(429, Some(7200)),
        },
    );
    assert_eq!(m.failures, 0);
    assert_eq!(m.phase(at(3500)), SessionPhase::Active);
    assert_eq!(m.phase(at(3700)), SessionPhase::Expired);
}
