//! A stored record that could not be read for its own sake (a file tokend
//! may not read, two keyring items matching it, a damaged record) leaves
//! the session unreadable, not logged out: a request is told the record's
//! trouble rather than "log in" (which would replace it), and the record
//! is read again, so that mending the cause brings the session back.

use super::*;
use crate::broker::report::SessionPhase;

/// A per-record error, as the encrypted file store says it of a file
/// given to root.
fn not_ours() -> StoreError {
    StoreError::Corrupt {
        store: "test store",
        provider: "p".into(),
        reason: "cannot read p.session: Permission denied; give it back".into(),
    }
}

fn loaded(
    m: &mut SessionMachine,
    now: SystemTime,
    cause: RestoreCause,
    loaded: LoadResult,
) -> Vec<String> {
    feed(m, now, Event::RecordLoaded { cause, loaded })
}

/// A machine whose record could not be read at start (t0).
fn unreadable() -> SessionMachine {
    let mut m = machine();
    let start = loaded(&mut m, t0(), RestoreCause::Start, Err(not_ours()));
    // Logged once; the start announces nothing (nobody has seen it yet).
    assert_eq!(start, s(&["log(LoadFailed)", "reply(changed false)"]));
    m
}

#[test]
fn a_record_unreadable_for_its_own_sake_is_no_logged_out_session() {
    let mut m = unreadable();
    assert_eq!(describe(&m), "unreadable");
    assert_eq!(m.phase(at(1)), SessionPhase::Unreadable);
    assert!(m.holds_tokens(), "a logout has a record to forget");
    assert!(matches!(
        m.last_failure(),
        Some(BrokerError::Store { source, .. }) if *source == not_ours()
    ));
    // A request is told the record's trouble, with its advice: not "log
    // in", which a script would follow and replace the stored session.
    for want in [
        want_default(),
        Event::TokenRequested {
            want: Freshness::AtLeast(Duration::from_secs(60)),
        },
    ] {
        let asked = m.handle(&ctx(at(1)), want);
        let Some(Effect::Reply(Reply::Failed(BrokerError::Store { source, .. }))) = asked.last()
        else {
            panic!("the store's error: {:?}", briefs(&asked));
        };
        assert_eq!(*source, not_ours());
    }
    // With a login waiting for its person, that login is what to do.
    let mut waiting_login = ctx(at(1));
    waiting_login.login_code = Some("WDJB-MJHT".into());
    let asked = briefs(&m.handle(&waiting_login, want_default()));
    assert_eq!(asked, s(&["reply(error login_required)"]));
    // Nothing to refresh (a wake-up does as for a logged-out session),
    // and nothing to save.
    assert_eq!(
        feed(&mut m, at(2), Event::RefreshDue),
        feed(&mut machine(), at(2), Event::RefreshDue)
    );
    assert_eq!(
        feed(&mut m, at(2), Event::SaveIfDirty),
        s(&["reply(changed false)"])
    );
    // A store outage leaves it as it is; a reload's successor reads it
    // again rather than take it over.
    feed(&mut m, at(2), Event::StoreUnavailable);
    assert_eq!(describe(&m), "unreadable");
    assert!(m.handover().is_none());
}

#[test]
fn reading_it_again_brings_the_session_back_once_the_cause_is_mended() {
    let mut m = unreadable();
    // Read again for a request, still unreadable for the same reason:
    // quiet (requests read it every few seconds).
    let again = loaded(&mut m, at(6), RestoreCause::Request, Err(not_ours()));
    assert_eq!(again, s(&["reply(changed false)"]));
    assert_eq!(describe(&m), "unreadable");
    // For another reason: said, and announced.
    let other = StoreError::Corrupt {
        store: "test store",
        provider: "p".into(),
        reason: "2 keyring items match it".into(),
    };
    let changed = loaded(&mut m, at(7), RestoreCause::Change, Err(other));
    assert_eq!(
        changed,
        s(&[
            "log(LoadFailed)",
            "emit(state_changed)",
            "reply(changed false)"
        ])
    );
    // Mended: restored, as the store's recovery restores a waiting one.
    let back = loaded(
        &mut m,
        at(8),
        RestoreCause::Change,
        Ok(Some(record(IDENTITY, 3600))),
    );
    assert_eq!(
        back,
        s(&[
            "schedule",
            "log(Restored)",
            "emit(state_changed)",
            "reply(changed true)"
        ])
    );
    assert_eq!(describe(&m), "active");
    assert!(m.last_failure().is_none(), "{:?}", m.last_failure());
    let asked = briefs(&m.handle(&ctx(at(9)), want_default()));
    assert_eq!(asked, s(&["reply(token stored-access)"]));
}

#[test]
fn a_record_gone_meanwhile_is_a_logged_out_session() {
    let mut m = unreadable();
    let gone = loaded(&mut m, at(6), RestoreCause::Request, Ok(None));
    assert_eq!(gone, s(&["emit(state_changed)", "reply(changed false)"]));
    assert_eq!(describe(&m), "logged_out");
    assert!(m.last_failure().is_none());
    let asked = briefs(&m.handle(&ctx(at(7)), want_default()));
    assert_eq!(asked, s(&["reply(error login_required)"]));
}

#[test]
fn a_store_down_when_it_is_read_again_makes_it_wait_for_the_store() {
    let mut m = unreadable();
    let down = loaded(&mut m, at(6), RestoreCause::Request, Err(store_down()));
    assert_eq!(down, s(&["store_wide_failure", "reply(changed false)"]));
    assert_eq!(describe(&m), "waiting_for_store");
}

/// Requests read it again at most once per 5 s from its last reading
/// (a clock set back counts as the spacing passed).
#[test]
fn requests_read_it_again_spaced() {
    let mut m = unreadable();
    assert!(!m.claim_reread(at(4)));
    assert!(m.claim_reread(at(5)));
    assert!(!m.claim_reread(at(9)), "claimed at 5");
    // A reading for another cause (a change notice) counts as the last.
    loaded(&mut m, at(12), RestoreCause::Change, Err(not_ours()));
    assert!(!m.claim_reread(at(16)));
    assert!(m.claim_reread(at(17)));
    assert!(m.claim_reread(at(1)), "the clock set back");
    // Only an unreadable session claims one.
    assert!(!machine().claim_reread(at(100)));
    assert!(!logged_in(3600).claim_reread(at(100)));
}

#[test]
fn a_logout_deletes_it_and_a_late_reading_does_not_bring_it_back() {
    let mut m = unreadable();
    let logout = feed(&mut m, at(3), Event::LogoutRequested);
    assert_eq!(logout, s(&["unschedule", "delete(logged_out)"]));
    assert_eq!(describe(&m), "logged_out");
    assert!(m.last_failure().is_none());
    // A reading started before the logout lands after it: not installed.
    assert!(!m.may_restore(RestoreCause::Request));
    let late = loaded(
        &mut m,
        at(4),
        RestoreCause::Request,
        Ok(Some(record(IDENTITY, 3600))),
    );
    assert_eq!(late, s(&["reply(changed false)"]));
    assert_eq!(describe(&m), "logged_out");
}

/// A person may decide to log in anew over it: the login's tokens are
/// the session's, and a reading that lands later changes nothing.
#[test]
fn a_login_replaces_it() {
    let mut m = unreadable();
    logged_in_with(&mut m, grant("a-new", Some("r-new"), 3600));
    assert_eq!(describe(&m), "active");
    assert!(m.last_failure().is_none(), "{:?}", m.last_failure());
    assert!(!m.may_restore(RestoreCause::Change));
    let asked = briefs(&m.handle(&ctx(t0()), want_default()));
    assert_eq!(asked, s(&["reply(token a-new)"]));
}
