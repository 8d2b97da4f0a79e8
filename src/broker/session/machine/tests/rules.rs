//! The rules that take a few events to show: generations, waiting
//! requests, cancellation, revocation, nudges, warnings, handovers, logouts
//! and the signals they send. (The store's rules are in `store.rs`, the
//! pacing of refreshes in `pacing.rs` and `retry_after.rs`, when an access
//! token's expiry is said in `access_expiry.rs`.)

use std::time::Duration;

use super::*;
use crate::broker::report::SessionPhase;

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
            Freshness::AtLeast(MORE_THAN_LEFT),
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

/// A nudge (network back) moves only a refresh that waits out a failure
/// to reach the provider, and only earlier; a resume, any transient one.
#[test]
fn a_nudge_moves_only_a_transient_backoff() {
    let network = || Event::RetryAt {
        at: at(11),
        change: WorldChange::Network,
    };
    let mut m = refreshing(at(10));
    answer(&mut m, at(10), Err(transient()));
    let moved = feed(&mut m, at(11), network());
    assert_eq!(moved, s(&["schedule", "reply(changed true)"]));
    assert_eq!(m.next_refresh(), Some(at(11)));

    // A captive portal's page in the provider's place (a network that
    // wants a sign-in first) is such a failure too.
    let portal = ProviderError::Malformed {
        endpoint: "http://127.0.0.1/token".into(),
        problem: "expected a token answer, got an HTML page".into(),
        status: None,
    };
    let mut m = refreshing(at(10));
    answer(&mut m, at(10), Err(portal));
    assert_eq!(
        feed(&mut m, at(11), network()),
        s(&["schedule", "reply(changed true)"])
    );

    let mut m = refreshing(at(10));
    answer(&mut m, at(10), Err(refused()));
    assert_eq!(
        feed(&mut m, at(11), network()),
        s(&["reply(changed false)"])
    );

    // A provider that answered it is unavailable keeps its backoff: the
    // network says nothing of it. A resume moves it: time passed, and
    // any transient failure may be over.
    let busy = unavailable(503, None);
    let mut m = refreshing(at(10));
    answer(&mut m, at(10), Err(busy));
    assert_eq!(
        feed(&mut m, at(11), network()),
        s(&["reply(changed false)"])
    );
    let resumed = Event::RetryAt {
        at: at(11),
        change: WorldChange::Resumed,
    };
    assert_eq!(
        feed(&mut m, at(11), resumed),
        s(&["schedule", "reply(changed true)"])
    );

    let mut m = logged_in(3600);
    assert_eq!(
        feed(&mut m, at(11), network()),
        s(&["reply(changed false)"])
    );
}

/// Its endpoint answering again moves a refresh that waits out any
/// passing failure (a 503, a hang, no route), but not a rate limit's
/// (429), whose retries stay spread; nor a refusal.
#[test]
fn an_endpoint_that_answers_again_moves_all_but_a_rate_limits_backoff() {
    let back = || Event::RetryAt {
        at: at(11),
        change: WorldChange::EndpointAnswers,
    };
    for failure in [unavailable(503, None), transient()] {
        let mut m = refreshing(at(10));
        answer(&mut m, at(10), Err(failure.clone()));
        assert_eq!(
            feed(&mut m, at(11), back()),
            s(&["schedule", "reply(changed true)"])
        );
        assert_eq!(m.next_refresh(), Some(at(11)));
        // Once until a refresh works: failing again, its backoff stands
        // however often the others' refreshes work.
        feed(&mut m, at(11), Event::RefreshDue);
        answer(&mut m, at(12), Err(failure));
        assert_eq!(feed(&mut m, at(12), back()), s(&["reply(changed false)"]));
    }
    for failure in [unavailable(429, None), refused()] {
        let mut m = refreshing(at(10));
        answer(&mut m, at(10), Err(failure));
        assert_eq!(feed(&mut m, at(11), back()), s(&["reply(changed false)"]));
    }
}

/// At a resume, a refresh that came due while the machine slept is moved
/// to its moment of the second, as the failed ones are, and counted: it
/// was left where it was, overdue, and every such session started at one
/// instant (the README promised the spread; the log counted none).
#[test]
fn a_resume_spreads_the_overdue_refreshes() {
    let mut m = logged_in(3600);
    let due = m.next_refresh().expect("a refresh planned");
    let woke = due + Duration::from_secs(600);
    let moment = woke + Duration::from_millis(700);
    let resumed = Event::RetryAt {
        at: moment,
        change: WorldChange::Resumed,
    };
    assert_eq!(
        feed(&mut m, woke, resumed),
        s(&["schedule", "reply(changed true)"])
    );
    assert_eq!(m.next_refresh(), Some(moment));
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

/// Such a refusal of a short-lived token's refresh (Trakt's bare 400 in
/// passing) is retried while the token still works: within half of what
/// is left of its life, not after a refusal's 30 to 60 s, which put a
/// 20-second token's retry past its expiry, where the same answer ends
/// the session. A long-lived token's retry keeps the refusal's backoff.
#[test]
fn a_refusal_that_perhaps_means_revoked_is_retried_before_the_token_expires() {
    let perhaps = ProviderError::RefusedPerhapsRevoked {
        endpoint: "http://127.0.0.1/oauth/token".into(),
        status: 400,
        error: "Bad Request".into(),
        detail: None,
    };
    let mut m = logged_in(20);
    let due = m.next_refresh().expect("a refresh planned");
    let started = feed(&mut m, due, Event::RefreshDue);
    assert!(
        started.contains(&"start_refresh(r1)".to_owned()),
        "{started:?}"
    );
    let _ = answer(&mut m, due, Err(perhaps.clone()));
    let left = at(20).duration_since(due).unwrap();
    let retry = m.next_refresh().expect("a retry planned");
    assert_eq!(retry, due + left / 2, "{left:?} left");
    // Refused again at the retry: again within what is left.
    let started = feed(&mut m, retry, Event::RefreshDue);
    assert!(
        started.contains(&"start_refresh(r1)".to_owned()),
        "{started:?}"
    );
    let _ = answer(&mut m, retry, Err(perhaps.clone()));
    let again = m.next_refresh().expect("a retry planned");
    assert!(again > retry && again < at(20), "{again:?}");
    assert_eq!(describe(&m), "active");

    let mut m = refreshing(at(3000));
    let _ = answer(&mut m, at(3000), Err(perhaps));
    assert_eq!(
        m.next_refresh(),
        Some(at(3000) + timing::PERMANENT_BACKOFF_BASE / 2)
    );
}

/// Retired by a reload (its tokens handed to the provider's new session),
/// a session starts no refresh: not when one comes due, not on demand.
#[test]
fn a_retired_session_starts_no_refresh() {
    let mut m = logged_in(3600);
    m.retire();
    let due = m.next_refresh().expect("a planned refresh");
    let woken = feed(&mut m, due + Duration::from_secs(1), Event::RefreshDue);
    assert!(
        !woken.iter().any(|e| e.starts_with("start_refresh")),
        "{woken:?}"
    );
    let asked = feed(
        &mut m,
        due + Duration::from_secs(2),
        Event::TokenRequested {
            want: Freshness::AtLeast(MORE_THAN_LEFT),
        },
    );
    assert_eq!(asked, s(&["reply(error shutting_down)"]));
}

/// A revocation right after a refresh whose success answer was cut off
/// says so: the rotated refresh token was in that answer and was lost
/// with it ("the provider revoked the session" alone blamed the
/// provider for tokend's loss). Without the cut-off answer, it does not;
/// after a refresh sent and not answered in time, it does too.
#[test]
fn a_revocation_after_a_cut_off_success_names_it() {
    let reason_of = |effects: &[Effect]| {
        effects
            .iter()
            .find_map(|e| match e {
                Effect::WriteRecord {
                    purpose: WritePurpose::Revoked { reason, .. },
                    ..
                } => Some(reason.clone()),
                _ => None,
            })
            .expect("the record deleted")
    };
    for (first, named) in [(200, true), (503, false)] {
        let mut m = refreshing(at(10));
        let cut = ProviderError::CutOff {
            endpoint: "http://127.0.0.1/token".into(),
            status: first,
            reason: "connection closed before message completed".into(),
        };
        let _ = answer(&mut m, at(11), Err(cut));
        let again = feed(&mut m, at(100), Event::RefreshDue);
        assert!(again.contains(&"start_refresh(r1)".to_owned()), "{again:?}");
        let reason = reason_of(&answer(&mut m, at(101), Err(revoked())));
        assert!(reason.contains("revoked the session"), "{reason}");
        assert_eq!(
            reason.contains("answered with success but the answer was cut off"),
            named,
            "{first}: {reason}"
        );
    }
    // A refresh sent and never answered in time: the provider may have
    // rotated the token in the answer that never came.
    let mut m = refreshing(at(10));
    let unanswered = ProviderError::Unanswered {
        endpoint: "http://127.0.0.1/token".into(),
        waited_secs: 600,
        listening: false,
    };
    let _ = answer(&mut m, at(610), Err(unanswered));
    let again = feed(&mut m, at(700), Event::RefreshDue);
    assert!(again.contains(&"start_refresh(r1)".to_owned()), "{again:?}");
    let reason = reason_of(&answer(&mut m, at(701), Err(revoked())));
    assert!(
        reason.contains("the refresh before it was sent but got no answer in time"),
        "{reason}"
    );
}
