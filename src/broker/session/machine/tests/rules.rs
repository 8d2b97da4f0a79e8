//! The rules that take a few events to show: store first, outages,
//! generations, backoff, spacing, cancellation, revocation, nudges,
//! warnings, handovers.

use std::time::Duration;

use super::*;
use crate::broker::report::SessionPhase;
use crate::broker::timing;

/// Store first: the new access token is handed out only once the record
/// holding the rotated refresh token is written.
#[test]
fn a_rotated_refresh_token_is_written_before_the_new_access_token_is_handed_out() {
    let mut m = refreshing(at(10));
    let save = answer(&mut m, at(11), Ok(grant("a2", Some("r2"), 3600)));
    // While the write runs, requests join the refresh: neither the old
    // token (too short for them) nor the new one (not stored yet).
    let join = Event::TokenRequested {
        want: Freshness::AtLeast(Duration::from_secs(7200)),
    };
    assert_eq!(feed(&mut m, at(11), join), s(&["reply(join)"]));
    assert_eq!(
        feed(&mut m, at(11), want_default()),
        s(&["reply(token a1)"])
    );
    let installed = written_ok(&mut m, at(12), save);
    assert_eq!(
        installed,
        s(&[
            "schedule",
            "log(Refreshed)",
            "emit(token_refreshed)",
            "emit(state_changed)",
            "reply(ok)"
        ])
    );
    assert_eq!(
        feed(&mut m, at(12), want_default()),
        s(&["reply(token a2)"])
    );
    assert!(m.is_saved());
}

/// A store outage during the write still installs the tokens (the provider
/// has rotated the old refresh token), marks them unsaved, and retries.
#[test]
fn a_failed_write_installs_the_tokens_unsaved_and_retries() {
    let mut m = refreshing(at(10));
    let save = answer(&mut m, at(11), Ok(grant("a2", Some("r2"), 3600)));
    written(&mut m, at(12), save, Err(store_down()));
    assert_eq!(describe(&m), "active");
    assert!(!m.is_saved());
    assert!(matches!(m.last_failure(), Some(BrokerError::Store { .. })));
    // The retry comes within half a minute; the refresh keeps its time.
    let retry_at = at(12) + timing::SAVE_RETRY_BASE / 2;
    assert_eq!(m.save_retry_at, Some(retry_at));
    assert!(m.next_refresh() > Some(at(3000)), "{:?}", m.next_refresh());
    assert_eq!(
        feed(&mut m, at(12), want_default()),
        s(&["reply(token a2)"])
    );
    // The wake-up asks for a background save, and no refresh: the save
    // writes r2, the tokens the session has.
    let due = feed(&mut m, retry_at, Event::RefreshDue);
    assert_eq!(due, s(&["retry_store_save", "schedule"]));
    let retry = m.handle(&ctx(retry_at), Event::SaveIfDirty);
    assert_eq!(briefs(&retry), s(&["save(retry, r2)"]));
    // It fails again: the next retry comes later (backoff), still no refresh.
    let failed = written(&mut m, retry_at, retry, Err(store_down()));
    assert_eq!(failed, s(&["schedule", "reply(error store)"]));
    let second = m.save_retry_at.unwrap();
    assert_eq!(second, retry_at + timing::SAVE_RETRY_BASE);
    let due = feed(&mut m, second, Event::RefreshDue);
    assert_eq!(due, s(&["retry_store_save", "schedule"]));
    let retry = m.handle(&ctx(second), Event::SaveIfDirty);
    let done = written_ok(&mut m, second, retry);
    assert_eq!(done, s(&["emit(state_changed)", "reply(changed true)"]));
    assert!(m.is_saved() && m.last_failure().is_none());
    assert_eq!((m.save_retry_at, m.save_failures), (None, 0));
}

/// A store that is down for good does not retry per session: its
/// recovery saves them all.
#[test]
fn during_an_outage_no_session_retries_its_own_save() {
    let mut m = refreshing(at(10));
    let save = answer(&mut m, at(11), Ok(grant("a2", Some("r2"), 3600)));
    let purpose = match save.into_iter().next() {
        Some(Effect::WriteRecord { purpose, .. }) => purpose,
        other => panic!("{other:?}"),
    };
    let mut outage = ctx(at(12));
    outage.store_available = false;
    m.handle(
        &outage,
        Event::RecordWritten {
            purpose,
            result: Err(store_down()),
        },
    );
    assert!(!m.is_saved());
    assert!(m.next_refresh() > Some(at(1200)), "{:?}", m.next_refresh());
    let mut due = ctx(m.next_refresh().unwrap());
    due.store_available = false;
    let effects = briefs(&m.handle(&due, Event::RefreshDue));
    assert!(
        !effects.contains(&"retry_store_save".to_owned()),
        "{effects:?}"
    );
}

/// Generations: an answer, or a write, that comes back after a logout or
/// a new login changes nothing.
#[test]
fn a_stale_refresh_result_never_overwrites_a_newer_login_or_logout() {
    // Logout while the request is out.
    let mut m = refreshing(at(10));
    let old = m.generation;
    let logout = m.handle(&ctx(at(11)), Event::LogoutRequested);
    written_ok(&mut m, at(11), logout);
    let late = m.handle(
        &ctx(at(12)),
        Event::RefreshAnswered {
            generation: old,
            sent_at: at(10),
            answer: Ok(grant("a2", Some("r2"), 3600)),
        },
    );
    assert_eq!(briefs(&late), s(&["reply(ok)"]), "no write, no install");
    assert_eq!(describe(&m), "logged_out");

    // A new login while the answer is being written.
    let mut m = refreshing(at(10));
    let save = answer(&mut m, at(11), Ok(grant("a2", Some("r2"), 3600)));
    let login = m.handle(
        &ctx(at(11)),
        Event::LoginGranted {
            grant: grant("b1", Some("s1"), 3600),
            sent_at: at(11),
        },
    );
    written_ok(&mut m, at(11), login);
    let late = written_ok(&mut m, at(12), save);
    assert_eq!(late, s(&["reply(ok)"]));
    assert_eq!(
        feed(&mut m, at(12), want_default()),
        s(&["reply(token b1)"])
    );

    // A revocation that lands after a new login does not end it.
    let mut m = refreshing(at(10));
    let delete = answer(&mut m, at(11), Err(revoked()));
    let login = m.handle(
        &ctx(at(11)),
        Event::LoginGranted {
            grant: grant("b1", Some("s1"), 3600),
            sent_at: at(11),
        },
    );
    written_ok(&mut m, at(11), login);
    written_ok(&mut m, at(12), delete);
    assert_eq!(describe(&m), "active");
}

/// Backoff: transient failures double from 5 s to a cap of 5 min (spread
/// over the upper half by the jitter), refusals from a minute; a success
/// starts over.
#[test]
fn failures_back_off_and_a_success_resets() {
    let mut m = logged_in(3600);
    let mut now = at(4000);
    let mut delays = Vec::new();
    for _ in 0..8 {
        let effects = feed(&mut m, now, Event::RefreshDue);
        assert!(effects.contains(&"start_refresh(r1)".into()), "{effects:?}");
        answer(&mut m, now, Err(transient()));
        let next = m.next_refresh().unwrap();
        delays.push(next.duration_since(now).unwrap().as_secs());
        now = next;
    }
    // Jitter 0: half of each doubled delay.
    assert_eq!(delays, [2, 5, 10, 20, 40, 80, 150, 150]);
    assert_eq!(m.failures, 8);

    let mut m = logged_in(3600);
    feed(&mut m, at(4000), Event::RefreshDue);
    answer(&mut m, at(4000), Err(refused()));
    assert_eq!(
        m.next_refresh(),
        Some(at(4030)),
        "refusals start at a minute"
    );

    feed(&mut m, at(4030), Event::RefreshDue);
    let save = answer(&mut m, at(4030), Ok(grant("a2", None, 3600)));
    written_ok(&mut m, at(4030), save);
    assert_eq!(m.failures, 0);
    assert!(m.last_failure().is_none());
}

/// Callers asking in a loop during an outage get the last error, not a
/// request each; a token that still works is handed out instead.
#[test]
fn requests_after_a_failure_are_spaced() {
    let mut m = refreshing(at(10));
    answer(&mut m, at(10), Err(transient()));
    let strict = || Event::TokenRequested {
        want: Freshness::AtLeast(Duration::from_secs(7200)),
    };
    assert_eq!(
        feed(&mut m, at(12), strict()),
        s(&["reply(error unavailable)"])
    );
    assert_eq!(
        feed(&mut m, at(12), want_default()),
        s(&["reply(token a1)"])
    );
    let later = feed(&mut m, at(16), strict());
    assert_eq!(
        later,
        s(&["log(RefreshOnDemand)", "start_refresh(r1)", "reply(join)"])
    );

    // The wall clock set back by an hour after a failure: the spacing is
    // over, not an hour long.
    let mut m = refreshing(at(3610));
    answer(&mut m, at(3610), Err(transient()));
    let set_back = feed(&mut m, at(10), strict());
    assert_eq!(
        set_back,
        s(&["log(RefreshOnDemand)", "start_refresh(r1)", "reply(join)"])
    );
}

/// The answer to a request that waited: one refresh per request.
#[test]
fn a_request_that_waited_gets_the_outcome() {
    type Row = (
        &'static str,
        Freshness,
        Result<(), BrokerError>,
        &'static str,
    );
    let unavailable = BrokerError::ProviderUnavailable {
        provider: "p".into(),
        source: transient(),
    };
    let rows: Vec<Row> = vec![
        (
            "refreshed, long enough",
            Freshness::AtLeast(Duration::from_secs(60)),
            Ok(()),
            "token a1",
        ),
        (
            "refreshed, still too short",
            Freshness::AtLeast(Duration::from_secs(7200)),
            Ok(()),
            "error too_short",
        ),
        (
            "failed, strict",
            Freshness::AtLeast(Duration::from_secs(60)),
            Err(unavailable.clone()),
            "error unavailable",
        ),
        (
            "failed, default: the valid token",
            Freshness::Default,
            Err(unavailable),
            "token a1",
        ),
        (
            "shutdown, strict",
            Freshness::AtLeast(Duration::from_secs(60)),
            Err(BrokerError::ShuttingDown),
            "error shutting_down",
        ),
    ];
    for (rule, want, outcome, reply) in rows {
        let m = logged_in(3600);
        let got = m.refresh_awaited(&ctx(at(10)), want, outcome);
        assert_eq!(brief_reply(&got), reply, "{rule}");
    }
    // The session ended while the caller waited: the refresh's error, or
    // "log in".
    let m = machine();
    let got = m.refresh_awaited(&ctx(at(10)), Freshness::Default, Ok(()));
    assert_eq!(brief_reply(&got), "error login_required");
}

/// Cancellation: a logout cancels the session's work, the refresh in
/// flight included (its answer is discarded), and "login required" names
/// a pending login's code.
#[test]
fn logout_cancels_the_refresh_in_flight() {
    let mut m = refreshing(at(10));
    let generation = m.generation;
    let logout = feed(&mut m, at(11), Event::LogoutRequested);
    assert_eq!(logout, s(&["unschedule", "delete(logged_out)"]));
    assert_ne!(m.generation, generation);
    assert_eq!(describe(&m), "logged_out");
    let mut pending = ctx(at(12));
    pending.login_code = Some("ABCD-EFGH".into());
    let effects = m.handle(&pending, want_default());
    match effects.as_slice() {
        [
            Effect::Reply(Reply::Failed(BrokerError::LoginRequired {
                pending_code: Some(code),
                ..
            })),
        ] => {
            assert_eq!(code, "ABCD-EFGH");
        }
        other => panic!("{other:?}"),
    }
}

/// Revocation ends the session once its record is deleted.
#[test]
fn a_revoked_grant_needs_a_login() {
    let mut m = refreshing(at(10));
    let delete = answer(&mut m, at(11), Err(revoked()));
    let ended = written_ok(&mut m, at(11), delete);
    assert_eq!(
        ended,
        s(&[
            "log(LoginRequired)",
            "unschedule",
            "emit(login_required)",
            "emit(state_changed)",
            "reply(error login_required)"
        ])
    );
    assert_eq!(describe(&m), "needs_login");
    assert_eq!(m.phase(at(11)), SessionPhase::LoginRequired);
    assert_eq!(feed(&mut m, at(12), Event::RefreshDue), s(&["unschedule"]));
}

/// A nudge (network back) moves only a refresh that waits out a transient
/// failure, and only earlier.
#[test]
fn a_nudge_moves_only_a_transient_backoff() {
    let mut m = refreshing(at(10));
    answer(&mut m, at(10), Err(transient()));
    let moved = feed(&mut m, at(11), Event::RetryAt { at: at(11) });
    assert_eq!(moved, s(&["schedule", "reply(changed true)"]));
    assert_eq!(m.next_refresh(), Some(at(11)));

    let mut m = refreshing(at(10));
    answer(&mut m, at(10), Err(refused()));
    assert_eq!(
        feed(&mut m, at(11), Event::RetryAt { at: at(11) }),
        s(&["reply(changed false)"])
    );

    let mut m = logged_in(3600);
    assert_eq!(
        feed(&mut m, at(11), Event::RetryAt { at: at(11) }),
        s(&["reply(changed false)"])
    );
}

/// The refresh-token expiry warning comes once per refresh token.
#[test]
fn the_refresh_token_expiry_is_warned_about_once() {
    let mut m = SessionMachine::new("p".into(), IDENTITY.into(), Duration::from_secs(3600 * 24));
    let mut g = grant("a1", Some("r1"), 3600);
    g.refresh_expires_in = Some(Duration::from_secs(3600 * 12));
    let login = m.handle(
        &ctx(t0()),
        Event::LoginGranted {
            grant: g,
            sent_at: t0(),
        },
    );
    let installed = written_ok(&mut m, t0(), login);
    assert!(
        installed.contains(&"emit(refresh_token_expiring)".into()),
        "{installed:?}"
    );
    let again = feed(&mut m, at(100), Event::RefreshDue);
    assert!(
        !again.contains(&"emit(refresh_token_expiring)".into()),
        "{again:?}"
    );
}

/// A reload hands the tokens over; a logged-out session has nothing to give.
#[test]
fn a_handover_keeps_the_session() {
    assert!(machine().handover().is_none());
    let old = logged_in(3600);
    let mut new = machine();
    let effects = feed(
        &mut new,
        at(10),
        Event::TakeOver(Box::new(old.handover().unwrap())),
    );
    assert_eq!(effects, s(&["schedule"]));
    assert_eq!(
        feed(&mut new, at(10), want_default()),
        s(&["reply(token a1)"])
    );
}

/// A logout forgets the ended session's last refresh: `status` does not
/// show it for the session that comes next.
#[test]
fn a_logout_forgets_the_last_refresh() {
    let mut m = refreshing(at(10));
    let save = answer(&mut m, at(11), Ok(grant("a2", Some("r2"), 3600)));
    written_ok(&mut m, at(11), save);
    assert_eq!(m.last_refresh(), Some(at(11)));
    let logout = m.handle(&ctx(at(12)), Event::LogoutRequested);
    written_ok(&mut m, at(12), logout);
    assert_eq!(m.last_refresh(), None);
}

/// A session whose token expires with no refresh before it (here: no
/// refresh token) wakes at the expiry to say its status changed: "expired"
/// is worked out from the clock, and front-ends that cache properties
/// showed "active" for good. Said once per token.
#[test]
fn an_expiry_no_refresh_precedes_is_signalled() {
    let mut m = machine();
    let login = m.handle(
        &ctx(t0()),
        Event::LoginGranted {
            grant: grant("a1", None, 20),
            sent_at: t0(),
        },
    );
    let purpose = login
        .into_iter()
        .find_map(|e| match e {
            Effect::WriteRecord { purpose, .. } => Some(purpose),
            _ => None,
        })
        .unwrap();
    let installed = m.handle(
        &ctx(t0()),
        Event::RecordWritten {
            purpose,
            result: Ok(()),
        },
    );
    assert!(
        installed
            .iter()
            .any(|e| matches!(e, Effect::Schedule(Some(wake)) if *wake == at(20))),
        "{installed:?}"
    );
    let woken = feed(&mut m, at(20), Event::RefreshDue);
    assert!(
        woken.contains(&"emit(state_changed)".to_owned()),
        "{woken:?}"
    );
    assert!(woken.contains(&"unschedule".to_owned()), "{woken:?}");
    let again = feed(&mut m, at(21), Event::RefreshDue);
    assert!(
        !again.contains(&"emit(state_changed)".to_owned()),
        "{again:?}"
    );
}

/// A logout of a session that is logged out already deletes any record
/// (a skipped restore leaves one) but tells no front-end of a change, so
/// D-Bus sends no `PropertiesChanged` for nothing; logging out a session
/// that had something to show does.
#[test]
fn a_logout_of_a_logged_out_session_signals_no_change() {
    let mut m = machine();
    let logout = m.handle(&ctx(at(1)), Event::LogoutRequested);
    assert!(briefs(&logout).contains(&"delete(logged_out)".to_owned()));
    let done = written_ok(&mut m, at(1), logout);
    assert_eq!(done, s(&["log(LoggedOut)", "reply(ok)"]));
    // A failed delete is news: status shows why the record is still there.
    let logout = m.handle(&ctx(at(2)), Event::LogoutRequested);
    let failed = written(&mut m, at(2), logout, Err(store_down()));
    assert!(
        failed.contains(&"emit(state_changed)".to_owned()),
        "{failed:?}"
    );
    // And so is the logout of a live session.
    let mut m = logged_in(3600);
    let logout = m.handle(&ctx(at(3)), Event::LogoutRequested);
    let done = written_ok(&mut m, at(3), logout);
    assert!(done.contains(&"emit(state_changed)".to_owned()), "{done:?}");
}

/// A logout whose delete fails (the store is down) is still a logout in
/// memory, but the record it leaves is deleted when the store works again,
/// and the outage does not make the session wait to be read back: a
/// restart must not bring back a session that was logged out.
#[test]
fn a_logout_whose_delete_failed_deletes_again_and_is_not_restored() {
    let mut m = logged_in(3600);
    let logout = m.handle(&ctx(at(11)), Event::LogoutRequested);
    assert!(briefs(&logout).contains(&"delete(logged_out)".to_owned()));
    written(&mut m, at(11), logout, Err(store_down()));
    assert_eq!(describe(&m), "logged_out");
    assert!(m.is_store_dirty(), "the record is still to be deleted");
    assert!(m.last_failure().is_some(), "status says why");
    // The outage does not turn it into a session waiting for its record.
    feed(&mut m, at(12), Event::StoreUnavailable);
    assert_eq!(describe(&m), "logged_out");
    // The store's recovery deletes the record.
    let retry = m.handle(&ctx(at(60)), Event::SaveIfDirty);
    assert_eq!(briefs(&retry), s(&["delete(retry)"]));
    let done = written_ok(&mut m, at(61), retry);
    assert_eq!(done, s(&["emit(state_changed)", "reply(changed true)"]));
    assert!(!m.is_store_dirty() && m.last_failure().is_none());
    // Nothing more to write.
    let again = m.handle(&ctx(at(62)), Event::SaveIfDirty);
    assert_eq!(briefs(&again), s(&["reply(changed false)"]));
}

/// A delete that failed while the store works (one record's trouble:
/// something in its place) is tried again by the session itself, after a
/// logout as after a revocation; the session does not wait for a store
/// recovery that never comes.
#[test]
fn a_delete_that_failed_with_the_store_working_is_retried() {
    let mut m = logged_in(3600);
    let logout = m.handle(&ctx(at(11)), Event::LogoutRequested);
    let failed = written(&mut m, at(11), logout, Err(store_down()));
    assert!(failed.contains(&"schedule".to_owned()), "{failed:?}");
    let retry_at = m.save_retry_at.expect("a retry planned");
    let due = feed(&mut m, retry_at, Event::RefreshDue);
    assert_eq!(due, s(&["retry_store_save", "unschedule"]));
    let retry = m.handle(&ctx(retry_at), Event::SaveIfDirty);
    assert_eq!(briefs(&retry), s(&["delete(retry)"]));
    written_ok(&mut m, retry_at, retry);
    assert!(!m.is_store_dirty());

    let mut m = refreshing(at(10));
    let deleted = answer(&mut m, at(11), Err(revoked()));
    written(&mut m, at(12), deleted, Err(store_down()));
    assert_eq!(describe(&m), "needs_login");
    let retry_at = m.save_retry_at.expect("a retry planned");
    assert_eq!(
        feed(&mut m, retry_at, Event::RefreshDue),
        s(&["retry_store_save", "unschedule"])
    );
}

/// Tokens that come spent (the answer took longer than they live, or the
/// clock is off) are not refreshed again at once, forever: the next
/// refresh backs off, further each time in a row, with a warning; tokens
/// that come with their life are refreshed as planned again, never sooner
/// than a second after the refresh before.
#[test]
fn tokens_that_come_spent_are_not_refreshed_back_to_back() {
    let mut m = logged_in(3600);
    let mut waits = Vec::new();
    let mut now = at(3000);
    for _ in 0..4 {
        feed(&mut m, now, Event::RefreshDue);
        // Sent 3 s before the answer, the token lived 2 s: dead on arrival.
        let generation = m.generation;
        let save = m.handle(
            &ctx(now),
            Event::RefreshAnswered {
                generation,
                sent_at: now - Duration::from_secs(3),
                answer: Ok(grant("a2", Some("r2"), 2)),
            },
        );
        let installed = written_ok(&mut m, now, save);
        assert!(
            installed.contains(&"log(ArrivedSpent)".to_owned()),
            "{installed:?}"
        );
        let next = m.next_refresh().unwrap();
        waits.push(next.duration_since(now).unwrap().as_millis());
        now = next;
    }
    // Backoff doubling from 5 s (jitter 0: the lower half of each step).
    assert_eq!(waits, [2_500, 5_000, 10_000, 20_000]);

    // Half of a 2 s token eaten by the round trip: spent too.
    feed(&mut m, now, Event::RefreshDue);
    let generation = m.generation;
    let sent_at = now - Duration::from_millis(1500);
    let save = m.handle(
        &ctx(now),
        Event::RefreshAnswered {
            generation,
            sent_at,
            answer: Ok(grant("a3", Some("r3"), 2)),
        },
    );
    let installed = written_ok(&mut m, now, save);
    assert!(installed.contains(&"log(ArrivedSpent)".to_owned()));

    // A 1 s token that comes whole: not spent, so the backoff starts over;
    // planned at half its life, but not sooner than a second after this
    // refresh.
    now = m.next_refresh().unwrap();
    feed(&mut m, now, Event::RefreshDue);
    let save = answer(&mut m, now, Ok(grant("a4", Some("r4"), 1)));
    let installed = written_ok(&mut m, now, save);
    assert!(!installed.contains(&"log(ArrivedSpent)".to_owned()));
    assert_eq!(m.next_refresh(), Some(now + timing::MIN_REFRESH_SPACING));
    assert_eq!(m.expired_grants, 0);
}

/// A refresh token that expires before the access token's refresh is
/// refreshed ahead of its own expiry, as long as refreshes move that
/// expiry later; once one does not, only the access token plans it.
#[test]
fn a_refresh_token_that_dies_first_is_refreshed_before_it() {
    let with_refresh_lifetime = |access: &str, refresh: Option<&str>, rt_secs: u64| TokenGrant {
        refresh_expires_in: Some(Duration::from_secs(rt_secs)),
        ..grant(access, refresh, 3600)
    };
    let mut m = machine();
    let login = m.handle(
        &ctx(t0()),
        Event::LoginGranted {
            grant: with_refresh_lifetime("a1", Some("r1"), 600),
            sent_at: t0(),
        },
    );
    written_ok(&mut m, t0(), login);
    // 600 s of refresh token: 15 % (90 s) before its end, not at 3000 s.
    assert_eq!(m.next_refresh(), Some(at(510)));

    // The refresh rotates it with a new 600 s: planned by the new one.
    feed(&mut m, at(510), Event::RefreshDue);
    let save = answer(
        &mut m,
        at(510),
        Ok(with_refresh_lifetime("a2", Some("r2"), 600)),
    );
    written_ok(&mut m, at(510), save);
    assert_eq!(m.next_refresh(), Some(at(1020)));

    // A refresh that keeps the refresh token and its expiry: no refresh
    // for it any more (a login is needed by then: the warning says so).
    feed(&mut m, at(1020), Event::RefreshDue);
    let save = answer(&mut m, at(1020), Ok(grant("a3", None, 3600)));
    written_ok(&mut m, at(1020), save);
    assert_eq!(m.next_refresh(), Some(at(1020 + 3060)));

    // A logout, then a login: the new refresh token is planned for again.
    let logout = m.handle(&ctx(at(1030)), Event::LogoutRequested);
    written_ok(&mut m, at(1030), logout);
    let login = m.handle(
        &ctx(at(1040)),
        Event::LoginGranted {
            grant: with_refresh_lifetime("a5", Some("r5"), 600),
            sent_at: at(1040),
        },
    );
    written_ok(&mut m, at(1040), login);
    assert_eq!(m.next_refresh(), Some(at(1040 + 510)));
}

/// A login that ended without tokens is what status says of a session
/// that has none; a session with tokens keeps its own last error.
#[test]
fn a_failed_login_is_the_last_error_of_a_session_without_tokens() {
    let denied = || BrokerError::LoginFailed {
        provider: "p".into(),
        reason: "was denied".into(),
    };
    let mut m = machine();
    feed(&mut m, at(1), Event::LoginFailed(denied()));
    assert!(matches!(
        m.last_failure(),
        Some(BrokerError::LoginFailed { .. })
    ));
    let mut m = logged_in(3600);
    feed(&mut m, at(1), Event::LoginFailed(denied()));
    assert!(m.last_failure().is_none());
}

/// A refusal that may mean the grant is gone (Trakt's bare 400) is retried
/// while the access token works, and ends the session once it has expired.
#[test]
fn a_refusal_that_perhaps_means_revoked_ends_the_session_only_after_expiry() {
    let perhaps = || ProviderError::RefusedPerhapsRevoked {
        endpoint: "http://127.0.0.1/token".into(),
        status: 400,
        error: "Bad Request".into(),
        detail: None,
    };
    let mut m = refreshing(at(3000));
    let effects = briefs(&answer(&mut m, at(3000), Err(perhaps())));
    assert!(
        effects.contains(&"log(RefreshFailed)".to_owned()),
        "{effects:?}"
    );
    assert_eq!(describe(&m), "active");

    let mut m = refreshing(at(3700));
    let deleted = answer(&mut m, at(3700), Err(perhaps()));
    written_ok(&mut m, at(3700), deleted);
    assert_eq!(describe(&m), "needs_login");
}
