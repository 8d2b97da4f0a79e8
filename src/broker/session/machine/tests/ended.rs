//! A session the provider ended keeps saying so after a restart: its
//! record is replaced by one with no token, only when and why (it was
//! deleted, and the restarted session read "logged out", the reason gone).

use super::*;

/// The ended session's record, as the revocation wrote it, and the
/// machine after the write.
fn ended_at_11() -> (SessionMachine, StoredSession) {
    let mut m = refreshing(at(10));
    let effects = answer(&mut m, at(11), Err(revoked()));
    let record = effects
        .iter()
        .find_map(|e| match e {
            Effect::WriteRecord { record, .. } => record.clone(),
            _ => None,
        })
        .expect("the ended session's record, not a delete");
    written_ok(&mut m, at(12), effects);
    (m, record)
}

/// A new machine (a restart) given `record` as read at its start: the
/// effects, in brief.
fn restarted_with(record: StoredSession) -> (SessionMachine, Vec<String>) {
    let mut restarted = machine();
    let restore = feed(
        &mut restarted,
        at(600),
        Event::RecordLoaded {
            cause: RestoreCause::Start,
            loaded: Ok(Some(record)),
        },
    );
    (restarted, restore)
}

#[test]
fn the_ended_record_holds_no_token_and_says_why() {
    let (m, record) = ended_at_11();
    assert_eq!(describe(&m), "needs_login");
    assert!(record.refresh_token.is_none() && record.access_token.is_none());
    assert_eq!(record.identity, IDENTITY);
    let end = record.ended.expect("when and why");
    assert_eq!(end.at, crate::broker::clock::unix_secs(at(11)));
    assert!(end.reason.contains("invalid_grant"), "{}", end.reason);
}

#[test]
fn a_restart_reads_the_ended_session_as_needing_a_login_and_why() {
    let (_, record) = ended_at_11();
    let read = StoredSession::from_bytes(&record.to_bytes()).expect("a valid record");
    let (mut restarted, restore) = restarted_with(read);
    // Not restored as a session with tokens; said in the log, and not
    // announced again (`on_event` ran when it ended).
    assert_eq!(restore, s(&["log(RestoredEnded)", "reply(changed false)"]));
    assert_eq!(describe(&restarted), "needs_login");
    let asked = restarted.handle(&ctx(at(600)), want_default());
    let Some(Effect::Reply(Reply::Failed(e))) = asked.last() else {
        panic!("a refusal: {:?}", briefs(&asked));
    };
    let said = e.to_string();
    assert!(
        said.contains("invalid_grant")
            && said.contains("(the session ended at 2027-01-15 08:00:11 UTC)"),
        "{said}"
    );
    // Nothing is refreshed, and a later store retry writes nothing.
    assert_eq!(
        feed(&mut restarted, at(601), Event::SaveIfDirty),
        s(&["reply(changed false)"])
    );
}

#[test]
fn a_record_of_an_older_config_is_not_read_as_ended() {
    let record = StoredSession::ended("another|identity", 1, "refused");
    let (restarted, restore) = restarted_with(record);
    assert_eq!(restore, s(&["reply(changed false)"]));
    // Not a session of this config's; nothing said (a skipped record
    // announces that the config changed, at every start).
    assert_eq!(describe(&restarted), "logged_out");
    assert!(restarted.last_failure.is_none());
}
