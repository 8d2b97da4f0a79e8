//! A reload's handover keeps what the retired session learned: its
//! backoff and the provider's `Retry-After`, and the warnings it gave.

use super::*;

/// A provider that asked for an hour's wait is not asked sooner because a
/// reload rebuilt the session (an `allow_users` edit, say).
#[test]
fn a_retry_after_stands_across_a_handover() {
    let limited = unavailable(429, Some(600));
    let mut old = refreshing(at(10));
    answer(&mut old, at(10), Err(limited));
    let mut new = machine();
    feed(
        &mut new,
        at(20),
        Event::TakeOver(Box::new(old.handover().unwrap())),
    );
    assert!(
        new.next_refresh() >= Some(at(610)),
        "{:?}",
        new.next_refresh()
    );
    // A request for a longer-lived token meanwhile gets the failure.
    let want = Event::TokenRequested {
        want: Freshness::AtLeast(MORE_THAN_LEFT),
    };
    assert_eq!(
        feed(&mut new, at(30), want),
        s(&["reply(error unavailable)"])
    );
}

/// The refresh-token expiry warning, given once, is not given again by the
/// session a reload puts in the retired one's place.
#[test]
fn a_warning_given_is_not_given_again_after_a_handover() {
    let warning = Duration::from_secs(7 * 24 * 3600);
    let mut old = SessionMachine::new("p".into(), IDENTITY.into(), warning);
    let mut g = grant("a0", Some("r0"), 300);
    g.refresh_expires_in = Some(Duration::from_secs(1800));
    let login = old.handle(
        &ctx(t0()),
        Event::LoginGranted {
            grant: g,
            sent_at: t0(),
        },
    );
    written_ok(&mut old, t0(), login);
    // A refresh that keeps the refresh token (and its expiry): warned.
    feed(&mut old, at(250), Event::RefreshDue);
    let save = answer(&mut old, at(250), Ok(grant("a1", None, 300)));
    let warned = written_ok(&mut old, at(250), save);
    assert!(
        warned.contains(&"emit(refresh_token_expiring)".to_owned()),
        "{warned:?}"
    );

    let mut new = SessionMachine::new("p".into(), IDENTITY.into(), warning);
    let took_over = feed(
        &mut new,
        at(260),
        Event::TakeOver(Box::new(old.handover().unwrap())),
    );
    // Its next refresh shows the same expiry again.
    feed(&mut new, at(500), Event::RefreshDue);
    let save = answer(&mut new, at(500), Ok(grant("a2", None, 300)));
    let refreshed = written_ok(&mut new, at(500), save);
    for effects in [took_over, refreshed] {
        assert!(
            !effects.contains(&"emit(refresh_token_expiring)".to_owned()),
            "{effects:?}"
        );
    }
}

/// A logout whose delete the store did not take is handed over: the new
/// session is logged out and owes the delete (it waited for the store to
/// read a record, and a token request asked the store again), and
/// retries it as the retired one would have.
#[test]
fn a_logout_owing_its_delete_is_handed_over() {
    let mut old = logged_in(3600);
    let logout = old.handle(&ctx(at(11)), Event::LogoutRequested);
    written(&mut old, at(11), logout, Err(store_down()));
    let handover = old.handover().expect("the owed delete is handed over");
    let mut new = machine();
    let took_over = feed(&mut new, at(20), Event::TakeOver(Box::new(handover)));
    assert_eq!(describe(&new), "logged_out");
    assert!(new.owes_a_logouts_delete());
    retries_after_handover(&mut new, &took_over, "delete(retry)");
    // A logout that was carried out leaves nothing to hand over.
    let mut done = logged_in(3600);
    let logout = done.handle(&ctx(at(11)), Event::LogoutRequested);
    written_ok(&mut done, at(11), logout);
    assert!(done.handover().is_none());
}

/// An ended session whose record the store did not take (one record's
/// trouble, the store working) goes on retrying it after a reload: the new
/// session planned no retry, and the dead refresh token stayed in the
/// store until the next restart.
#[test]
fn an_unsaved_ended_record_is_retried_after_a_handover() {
    let mut old = refreshing(at(10));
    let ended = answer(&mut old, at(11), Err(revoked()));
    written(&mut old, at(12), ended, Err(store_down()));
    assert!(old.save_retry_at.is_some());
    let mut new = machine();
    let took_over = feed(
        &mut new,
        at(20),
        Event::TakeOver(Box::new(old.handover().unwrap())),
    );
    assert_eq!(describe(&new), "needs_login");
    retries_after_handover(&mut new, &took_over, "end(retry)");
}

/// The session `new`, which `took_over` a handover, planned the retry of
/// the write the store did not take, and makes it (`write`, in brief)
/// when it comes.
fn retries_after_handover(new: &mut SessionMachine, took_over: &[String], write: &str) {
    assert!(took_over.contains(&"schedule".to_owned()), "{took_over:?}");
    let retry_at = new.save_retry_at.expect("its retry planned");
    assert_eq!(
        feed(new, retry_at, Event::RefreshDue),
        s(&["retry_store_save", "unschedule"])
    );
    let retry = new.handle(&ctx(retry_at), Event::SaveIfDirty);
    assert_eq!(briefs(&retry), s(&[write]));
}
