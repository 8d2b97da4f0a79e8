//! When a session says that its access token expired (it wakes at the
//! expiry to say so, and asks for a login if it has no refresh token):
//! after a login or a restore, when a failing refresh or a `Retry-After`
//! outlasts the token, and not before a restored session's first refresh.

use super::*;
use crate::broker::report::SessionPhase;

/// A session whose token expires with no refresh before it (here: no
/// refresh token) wakes at the expiry to say its status changed: "expired"
/// is worked out from the clock, and front-ends that cache properties
/// showed "active" for good. Said once per token.
#[test]
fn an_expiry_no_refresh_precedes_is_signalled() {
    let mut m = machine();
    let installed = logged_in_with(&mut m, grant("a1", None, 20));
    assert!(
        installed
            .iter()
            .any(|e| matches!(e, Effect::Schedule(Some(wake)) if *wake == at(20))),
        "{installed:?}"
    );
    assert_eq!(m.phase(at(19)), SessionPhase::Active);
    let woken = feed(&mut m, at(20), Event::RefreshDue);
    assert!(
        woken.contains(&"emit(state_changed)".to_owned()),
        "{woken:?}"
    );
    // No refresh token: only a login brings another, and the session says
    // so as a refused refresh does (it showed "expired, refreshing fails"
    // and ran no hook).
    assert!(
        woken.contains(&"emit(login_required)".to_owned())
            && woken.contains(&"log(AccessExpiredNoRefresh)".to_owned()),
        "{woken:?}"
    );
    assert_eq!(m.phase(at(21)), SessionPhase::LoginRequired);
    assert!(woken.contains(&"unschedule".to_owned()), "{woken:?}");
    let again = feed(&mut m, at(21), Event::RefreshDue);
    assert!(
        !again.contains(&"emit(state_changed)".to_owned())
            && !again.contains(&"emit(login_required)".to_owned()),
        "{again:?}"
    );
}

/// The same after a restart: a restored session without a refresh token
/// wakes at its access token's expiry (it was planned while it still
/// looked logged out, which has no expiry to wake for, and never woke:
/// D-Bus and systemd's STATUS kept saying "active").
#[test]
fn a_restored_session_without_a_refresh_token_wakes_at_its_expiry() {
    let mut stored = record(IDENTITY, 20);
    stored.refresh_token = None;
    let mut m = machine();
    let restored = m.handle(
        &ctx(t0()),
        Event::RecordLoaded {
            cause: RestoreCause::Start,
            loaded: Ok(Some(stored)),
        },
    );
    assert_eq!(
        restored.iter().rev().find_map(|e| match e {
            Effect::Schedule(wake) => Some(*wake),
            _ => None,
        }),
        Some(Some(at(20))),
        "{restored:?}"
    );
    let woken = feed(&mut m, at(20), Event::RefreshDue);
    assert!(
        woken.contains(&"emit(state_changed)".to_owned())
            && woken.contains(&"emit(login_required)".to_owned()),
        "{woken:?}"
    );

    // One that expired while tokend was down wakes soon after the restore
    // to say so (its expiry is past: nothing else would wake it).
    let mut stored = record(IDENTITY, 20);
    stored.refresh_token = None;
    let mut m = machine();
    let restored = m.handle(
        &ctx(at(30)),
        Event::RecordLoaded {
            cause: RestoreCause::Start,
            loaded: Ok(Some(stored)),
        },
    );
    let wake = restored.iter().rev().find_map(|e| match e {
        Effect::Schedule(wake) => Some(*wake),
        _ => None,
    });
    assert!(
        wake.flatten().is_some_and(|at_| at_ <= at(35)),
        "{restored:?}"
    );
    let woken = feed(&mut m, at(35), Event::RefreshDue);
    assert!(
        woken.contains(&"emit(login_required)".to_owned())
            && woken.contains(&"log(AccessExpiredNoRefresh)".to_owned()),
        "{woken:?}"
    );
    assert_eq!(m.phase(at(35)), SessionPhase::LoginRequired);
}

/// A session restored with an access token that expired while it was not
/// running (tokend stopped, or the provider out of the config) refreshes
/// soon, spread; a wake-up before that refresh (another of its plans, a
/// timer firing early) does not log that "no refresh has brought another"
/// token: none was tried yet (a reload re-adding providers logged that
/// warning for each of them).
#[test]
fn a_restored_expired_token_is_not_said_expired_before_its_refresh() {
    let mut m = machine();
    let context = Context {
        jitter: 1.0,
        ..ctx(at(30))
    };
    m.handle(
        &context,
        Event::RecordLoaded {
            cause: RestoreCause::Start,
            loaded: Ok(Some(record(IDENTITY, 20))),
        },
    );
    let due = m.next_refresh().unwrap();
    assert!(due > at(30) && due <= at(35), "{due:?}");
    let early = feed(&mut m, at(31), Event::RefreshDue);
    assert!(
        !early.contains(&"log(AccessExpired)".to_owned()),
        "{early:?}"
    );
    // Its refresh fails: now it is said, once.
    assert!(
        feed(&mut m, due, Event::RefreshDue).contains(&"start_refresh(stored-refresh)".to_owned())
    );
    let failed = briefs(&answer(&mut m, due, Err(transient())));
    assert!(
        failed.contains(&"log(AccessExpired)".to_owned()),
        "{failed:?}"
    );
}

/// A refresh sent before the access token's expiry whose failure comes
/// after it (a provider that answers nothing until the HTTP timeout):
/// the expiry is said with the failure, since no wake-up for it is left.
#[test]
fn an_expiry_passed_during_a_failing_refresh_is_said() {
    let mut m = refreshing(at(3590));
    let effects = briefs(&answer(&mut m, at(3640), Err(transient())));
    assert!(
        effects.contains(&"log(AccessExpired)".to_owned()),
        "{effects:?}"
    );
    // Once per token.
    let due = m.next_refresh().unwrap();
    feed(&mut m, due, Event::RefreshDue);
    let effects = briefs(&answer(&mut m, due, Err(transient())));
    assert!(
        !effects.contains(&"log(AccessExpired)".to_owned()),
        "{effects:?}"
    );
}

/// A retry spaced past the access token's expiry (here a `Retry-After`
/// of an hour) still has the session wake at the expiry, so that its
/// status turns "expired" then (D-Bus clients are told), not at the retry.
#[test]
fn a_retry_past_the_expiry_still_wakes_the_session_at_the_expiry() {
    let limited = unavailable(503, Some(3600));
    let mut m = refreshing(at(10));
    let effects = answer(&mut m, at(10), Err(limited));
    let wakes: Vec<Option<SystemTime>> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Schedule(at) => Some(*at),
            _ => None,
        })
        .collect();
    assert_eq!(wakes, [Some(at(3600))]);
    assert!(m.next_refresh() >= Some(at(3610)));
    // Woken at the expiry, with a refresh token: expired, its refresh
    // still to come; no login is asked for (only a session without a
    // refresh token needs one then).
    let woken = feed(&mut m, at(3600), Event::RefreshDue);
    assert!(
        woken.contains(&"emit(state_changed)".to_owned())
            && !woken.contains(&"emit(login_required)".to_owned()),
        "{woken:?}"
    );
    // Said in the log: from now on callers are refused.
    assert!(
        woken.contains(&"log(AccessExpired)".to_owned()),
        "{woken:?}"
    );
    assert_eq!(
        m.phase(at(3601)),
        crate::broker::report::SessionPhase::Expired
    );
}

/// An expired token whose refresh is on its way (sent, or queued behind
/// its endpoint's permits) and has not failed shows `active` for
/// `EXPIRED_SHOWN_ACTIVE_FOR` past its expiry, then `expired`: behind a
/// slow endpoint's permits, sessions dead for minutes read `active`.
#[test]
fn an_expired_token_whose_refresh_does_not_come_shows_expired_after_a_while() {
    let mut m = machine();
    logged_in_with(&mut m, grant("a1", Some("r1"), 20));
    let due = feed(&mut m, at(20), Event::RefreshDue);
    assert!(
        due.iter().any(|e| e.starts_with("start_refresh")),
        "{due:?}"
    );
    assert_eq!(m.phase(at(21)), SessionPhase::Active);
    assert_eq!(m.phase(at(49)), SessionPhase::Active);
    assert_eq!(m.phase(at(51)), SessionPhase::Expired);
}

/// A token long expired (restored after a night's stop or sleep) whose
/// refresh has just started reads `active` for the window counted from
/// that start, not `expired` at once: `status --check` raised a false
/// alarm at every start and resume.
#[test]
fn a_long_expired_token_whose_refresh_just_started_shows_active() {
    let mut m = machine();
    logged_in_with(&mut m, grant("a1", Some("r1"), 20));
    let due = feed(&mut m, at(20_000), Event::RefreshDue);
    assert!(
        due.iter().any(|e| e.starts_with("start_refresh")),
        "{due:?}"
    );
    assert_eq!(m.phase(at(20_001)), SessionPhase::Active);
    assert_eq!(m.phase(at(20_031)), SessionPhase::Expired);
}
