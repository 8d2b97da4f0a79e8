//! The wall clock set ahead or back: the refresh token's own expiry moves
//! with it, so the session keeps its distance from the end the provider
//! set (taken as passed, the session warned early and gave up while the
//! provider would still take the token).

use std::time::Duration;

use super::*;
use crate::broker::clock::ClockStep;

#[test]
fn the_refresh_tokens_expiry_moves_with_the_clock() {
    let with_refresh_lifetime = TokenGrant {
        refresh_expires_in: Some(Duration::from_secs(600)),
        ..grant("a1", Some("r1"), 3600)
    };
    for step in [
        ClockStep::Ahead(Duration::from_secs(3600)),
        ClockStep::Back(Duration::from_secs(3600)),
    ] {
        let mut m = machine();
        let login = m.handle(
            &ctx(t0()),
            Event::LoginGranted {
                grant: with_refresh_lifetime.clone(),
                sent_at: t0(),
            },
        );
        written_ok(&mut m, t0(), login);
        assert_eq!(m.tokens().unwrap().refresh_expires_at, Some(at(600)));
        let now = step.shift(at(10));
        m.handle(&ctx(now), Event::ClockStepped(step));
        assert_eq!(
            m.tokens().unwrap().refresh_expires_at,
            Some(step.shift(at(600))),
            "{step:?}"
        );
    }
}

/// A clock set back while a refresh's new tokens are being written (the
/// `Saving` stage): they were dated on the clock before the step, and
/// move by it when installed, as if the step had come first; the record,
/// written with the old times, is saved again. They were installed on the
/// old clock: a token of an hour taken to have three.
#[test]
fn tokens_being_written_when_the_clock_is_set_move_when_installed() {
    let back = ClockStep::Back(Duration::from_secs(7200));
    let now = back.shift(at(101));
    // The step before the answer: what the tokens must end as.
    let mut before = refreshing(at(100));
    before.handle(&ctx(now), Event::ClockStepped(back));
    let generation = before.generation;
    let save = before.handle(
        &ctx(now),
        Event::RefreshAnswered {
            generation,
            sent_at: now,
            answer: Ok(grant("a2", Some("r2"), 3600)),
        },
    );
    written_ok(&mut before, now, save);
    let expected = before.tokens().unwrap().access.as_ref().unwrap().expires_at;
    // The step while the answer's tokens are being written.
    let mut m = refreshing(at(100));
    let save = answer(&mut m, at(101), Ok(grant("a2", Some("r2"), 3600)));
    assert_eq!(describe(&m), "active/saving");
    feed(&mut m, now, Event::ClockStepped(back));
    let installed = written_ok(&mut m, now, save);
    let got = m.tokens().unwrap().access.as_ref().unwrap().expires_at;
    assert_eq!(got, expected, "{installed:?}");
    assert!(m.is_store_dirty(), "the moved record is saved again");
    assert!(
        installed.contains(&"retry_store_save".to_owned()),
        "{installed:?}"
    );
}
