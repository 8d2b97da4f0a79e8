//! The store's rules: store first, failed writes and deletes, outages.

use std::time::Duration;

use super::*;
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
        want: Freshness::AtLeast(MORE_THAN_LEFT),
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

/// A retried save that fails for another reason than the last (the
/// store is back, but the record itself is in the way) says so in status:
/// the outage's "store locked" would send the person to the keyring.
#[test]
fn a_failed_retry_shows_its_own_reason() {
    let mut m = refreshing(at(10));
    let save = answer(&mut m, at(11), Ok(grant("a2", Some("r2"), 3600)));
    written(&mut m, at(12), save, Err(store_down()));
    let retry = m.handle(&ctx(at(40)), Event::SaveIfDirty);
    let in_the_way = StoreError::Corrupt {
        store: "test store",
        provider: "demo".into(),
        reason: "not a session file".into(),
    };
    let failed = written(&mut m, at(40), retry, Err(in_the_way.clone()));
    assert_eq!(
        failed,
        s(&["schedule", "emit(state_changed)", "reply(error store)"])
    );
    match m.last_failure() {
        Some(BrokerError::Store { source, .. }) => assert_eq!(source, &in_the_way),
        other => panic!("{other:?}"),
    }
    assert!(!m.is_saved());
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
    // What is retried is the ended session's record, not a delete: a
    // restart says why the session ended.
    let retry = m.handle(&ctx(retry_at), Event::SaveIfDirty);
    assert_eq!(briefs(&retry), s(&["end(retry)"]));
}

/// While the store is down, a background refresh that comes due waits
/// (half the access token's life left, each time) rather than bring a
/// refresh token that cannot be saved; once the token nears its end it is
/// refreshed all the same, and with the store back it is refreshed at once.
#[test]
fn a_background_refresh_waits_for_the_store_while_the_token_lasts() {
    let mut m = logged_in(3600);
    let due_at = m.next_refresh().expect("a refresh planned");
    let mut down = ctx(due_at);
    down.store_available = false;
    let effects = briefs(&m.handle(&down, Event::RefreshDue));
    assert!(
        effects.contains(&"log(RefreshHeldForStore)".to_owned()),
        "{effects:?}"
    );
    assert!(
        !effects.iter().any(|e| e.starts_with("start_refresh")),
        "{effects:?}"
    );
    let expires = at(3600);
    let left = expires.duration_since(due_at).unwrap();
    assert_eq!(m.next_refresh(), Some(due_at + left / 2));

    // The store is back by the next wake-up: the refresh goes.
    let mut again = m;
    let effects = feed(&mut again, due_at + left / 2, Event::RefreshDue);
    assert!(
        effects.contains(&"start_refresh(r1)".to_owned()),
        "{effects:?}"
    );

    // Still down with under two minutes left: refreshed, saved or not.
    let mut m = logged_in(3600);
    let mut late = ctx(at(3600 - 100));
    late.store_available = false;
    let effects = briefs(&m.handle(&late, Event::RefreshDue));
    assert!(
        effects.contains(&"start_refresh(r1)".to_owned()),
        "{effects:?}"
    );
}

/// While a background refresh is held for the store, a default token
/// request (`tokenctl token`, `GetToken`, the credential helpers) gets the
/// token the hold keeps, rather than refreshing on demand and spending the
/// stored refresh token the hold protects; a request that needs more life
/// than the token has still refreshes.
#[test]
fn a_default_request_does_not_refresh_while_the_store_holds_the_refresh() {
    let mut m = logged_in(3600);
    let due_at = m.next_refresh().expect("a refresh planned");
    let mut down = ctx(due_at);
    down.store_available = false;
    // Before the scheduler's wake-up, and after it held the refresh.
    assert_eq!(
        briefs(&m.handle(&down, want_default())),
        s(&["reply(token a1)"])
    );
    let effects = briefs(&m.handle(&down, Event::RefreshDue));
    assert!(
        effects.contains(&"log(RefreshHeldForStore)".to_owned()),
        "{effects:?}"
    );
    let mut later = ctx(due_at + Duration::from_secs(60));
    later.store_available = false;
    assert_eq!(
        briefs(&m.handle(&later, want_default())),
        s(&["reply(token a1)"])
    );
    // The store working again: a default request past the due time
    // refreshes on demand, as ever.
    let effects = briefs(&m.handle(&ctx(due_at + Duration::from_secs(60)), want_default()));
    assert!(
        effects.contains(&"start_refresh(r1)".to_owned()),
        "{effects:?}"
    );
    // Asking for more life than is left refreshes, store down or not.
    let mut m = logged_in(3600);
    let effects = briefs(&m.handle(
        &down,
        Event::TokenRequested {
            want: Freshness::AtLeast(Duration::from_secs(3600)),
        },
    ));
    assert!(
        effects.contains(&"start_refresh(r1)".to_owned()),
        "{effects:?}"
    );
}

/// A provider that issues no refresh token (a GitHub OAuth app, an Oracle
/// login without `offline_access`): the access token is all there is, and
/// it is what the store keeps, so a restart needs no new login. Restored,
/// even of unknown expiry (nothing could check it), it is handed out, as
/// before the restart.
#[test]
fn an_access_token_without_a_refresh_token_is_kept_and_restored() {
    let mut m = machine();
    let mut no_expiry = grant("a1", None, 0);
    no_expiry.expiry = crate::provider::Expiry::Unknown;
    let effects = m.handle(
        &ctx(t0()),
        Event::LoginGranted {
            grant: no_expiry,
            sent_at: t0(),
        },
    );
    let record = effects
        .iter()
        .find_map(|e| match e {
            Effect::WriteRecord { record, .. } => Some(record.clone()),
            _ => None,
        })
        .expect("a store write");
    let record = record.expect("a record, not a delete");
    assert!(record.refresh_token.is_none());
    assert_eq!(record.access_token.as_ref().map(Secret::expose), Some("a1"));
    assert_eq!(record.expires_at, None);

    // A restart: the record read back through its bytes, into a new machine.
    let read = StoredSession::from_bytes(&record.to_bytes()).expect("a valid record");
    let mut restarted = machine();
    feed(
        &mut restarted,
        at(600),
        Event::RecordLoaded {
            cause: RestoreCause::Start,
            loaded: Ok(Some(read)),
        },
    );
    assert_eq!(describe(&restarted), "active");
    assert_eq!(
        feed(&mut restarted, at(600), want_default()),
        s(&["reply(token a1)"])
    );
}

/// A record with neither token is not a session.
#[test]
fn a_record_without_any_token_is_refused() {
    let mut empty = record(IDENTITY, 3600);
    empty.refresh_token = None;
    empty.access_token = None;
    let err = StoredSession::from_bytes(&empty.to_bytes()).unwrap_err();
    assert!(
        err.contains("neither a refresh token nor an access token"),
        "{err}"
    );
}

/// A record whose refresh token is empty is refused, also beside a usable
/// access token: the empty refresh token would be sent to the provider
/// (and its refusal end the session) when the access token expires.
#[test]
fn a_record_with_an_empty_refresh_token_is_refused() {
    let mut empty = record(IDENTITY, 3600);
    empty.refresh_token = Some(Secret::from(""));
    assert!(empty.access_token.is_some());
    let err = StoredSession::from_bytes(&empty.to_bytes()).unwrap_err();
    assert!(err.contains("empty refresh token"), "{err}");
}

/// Bytes that are not a record (a Secret Service item a person or script
/// wrote) are refused without quoting them: a value of the wrong type
/// may be a token, and the reason goes to the journal and to `status`.
#[test]
fn a_record_of_the_wrong_shape_is_refused_without_its_content() {
    for bytes in [
        r#""tok-SECRET-123""#,
        r#"{"version":1,"identity":"x","obtained_at":"tok-SECRET-123","access_token":"a"}"#,
        r#"{"tok-SECRET-123":1}"#,
        r#"["tok-SECRET-123"]"#,
    ] {
        let err = StoredSession::from_bytes(bytes.as_bytes()).unwrap_err();
        assert!(!err.contains("SECRET"), "{bytes}: {err}");
        assert!(err.contains("not a tokend session record"), "{err}");
        assert!(err.contains("line 1 column"), "{err}");
    }
    // A syntax error names where, and quotes nothing either.
    let err = StoredSession::from_bytes(br#"{"access_token":tok-SECRET"#).unwrap_err();
    assert!(!err.contains("SECRET"), "{err}");
}

/// A session whose refresh (sent at 10 s) was answered at 11 s with a new
/// refresh token, `r2`, beside an access token that cannot be used; and
/// the effects of that answer (the write of `r2`).
fn answered_with_refresh_token_only() -> (SessionMachine, Vec<Effect>) {
    let mut m = refreshing(at(10));
    let unusable = ProviderError::AccessTokenUnusable {
        endpoint: "http://127.0.0.1/token".into(),
        problem: "no `access_token` in the token answer".into(),
        refresh_token: Secret::from("r2"),
    };
    let save = answer(&mut m, at(11), Err(unusable));
    (m, save)
}

/// A refresh answer whose access token cannot be used, beside a new
/// refresh token: the refresh token is stored first (a rotating provider
/// retired the one sent), the refresh fails as transient, the old access
/// token is still served, and the retry sends the kept refresh token.
#[test]
fn a_new_refresh_token_beside_an_unusable_access_token_is_kept() {
    let (mut m, save) = answered_with_refresh_token_only();
    assert_eq!(briefs(&save), s(&["save(refresh_token_kept, r2)"]));
    assert_eq!(describe(&m), "active/saving");
    let failed = written_ok(&mut m, at(12), save);
    assert_eq!(failed[0], "log(RefreshTokenKept)", "{failed:?}");
    assert!(
        failed.contains(&"log(RefreshFailed)".to_owned()),
        "{failed:?}"
    );
    assert_eq!(failed.last().unwrap(), "reply(error unavailable)");
    assert_eq!(describe(&m), "active");
    assert!(m.is_saved());
    // The access token it had still serves; the retry sends r2.
    assert_eq!(
        feed(&mut m, at(12), want_default()),
        s(&["reply(token a1)"])
    );
    let retry = m.next_refresh().expect("a retry");
    let effects = feed(&mut m, retry, Event::RefreshDue);
    assert!(
        effects.contains(&"start_refresh(r2)".to_owned()),
        "{effects:?}"
    );
}

/// The same answer while the store is failing: the kept refresh token is
/// held in memory, the session marked unsaved with a save retry planned.
#[test]
fn a_kept_refresh_token_the_store_refuses_stays_in_memory_and_is_retried() {
    let (mut m, save) = answered_with_refresh_token_only();
    written(&mut m, at(12), save, Err(store_down()));
    assert!(!m.is_saved());
    assert!(m.save_retry_at.is_some());
    let SessionState::Active { tokens, .. } = &m.state else {
        panic!("{}", describe(&m));
    };
    assert_eq!(tokens.refresh.as_ref().map(Secret::expose), Some("r2"));
}

/// A refresh whose save waited for a store that did not answer, until its
/// new access token was spent: the caller that waited is told the store's
/// error (exit 9, which names the hung store), not "login required" (the
/// session has a working refresh token), and the next request refreshes.
#[test]
fn tokens_spent_while_the_store_hung_are_said_as_the_stores_trouble() {
    let mut m = logged_in(20);
    // The token has expired: a default request refreshes.
    let effects = feed(&mut m, at(25), want_default());
    assert!(
        effects.contains(&"start_refresh(r1)".to_owned()),
        "{effects:?}"
    );
    let save = answer(&mut m, at(25), Ok(grant("a2", Some("r2"), 20)));
    // The write gives up after 30 s; the new token lived 20.
    written(&mut m, at(55), save, Err(store_down()));
    let got = m.refresh_awaited(&ctx(at(55)), Freshness::Default, Ok(()));
    assert_eq!(brief_reply(&got), "error store");
    let again = feed(&mut m, at(56), want_default());
    assert!(again.contains(&"start_refresh(r2)".to_owned()), "{again:?}");
}
