//! Table tests of the machine: states × events → next state + effects.
//!
//! Effects are compared in a short written form ([`brief`]) so that each
//! row reads as the rule it checks.

use std::time::{Duration, SystemTime};

use super::*;
use crate::broker::timing;
use crate::provider::Expiry;
use crate::store::STORED_SESSION_VERSION;

const IDENTITY: &str = "rfc8628|http://127.0.0.1/token|client";

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn at(secs: u64) -> SystemTime {
    t0() + Duration::from_secs(secs)
}

fn ctx(now: SystemTime) -> Context {
    Context {
        now,
        jitter: 0.0,
        store_available: true,
        login_code: None,
    }
}

fn grant(access: &str, refresh: Option<&str>, lifetime: u64) -> TokenGrant {
    TokenGrant {
        access_token: Secret::from(access),
        token_type: "Bearer".into(),
        expiry: Expiry::In(Duration::from_secs(lifetime)),
        refresh_token: refresh.map(Secret::from),
        scope: None,
        refresh_expires_in: None,
    }
}

fn record(identity: &str, access_expires: u64) -> StoredSession {
    StoredSession {
        version: STORED_SESSION_VERSION,
        identity: identity.into(),
        refresh_token: Secret::from("stored-refresh"),
        obtained_at: crate::broker::clock::unix_secs(t0()),
        scope: None,
        access_token: Some(Secret::from("stored-access")),
        token_type: Some("Bearer".into()),
        expires_at: Some(crate::broker::clock::unix_secs(at(access_expires))),
        refresh_expires_at: None,
    }
}

fn transient() -> ProviderError {
    ProviderError::Unreachable {
        endpoint: "http://127.0.0.1/token".into(),
        reason: "connection refused".into(),
    }
}

fn refused() -> ProviderError {
    ProviderError::Rejected {
        endpoint: "http://127.0.0.1/token".into(),
        status: 400,
        error: "invalid_client".into(),
        detail: None,
    }
}

fn revoked() -> ProviderError {
    ProviderError::GrantRevoked {
        error: "invalid_grant".into(),
        detail: None,
    }
}

fn store_down() -> StoreError {
    StoreError::Locked {
        store: "test store",
        reason: "locked".into(),
    }
}

/// The state in a word, with the refresh stage of an active session.
fn describe(m: &SessionMachine) -> &'static str {
    match &m.state {
        SessionState::LoggedOut => "logged_out",
        SessionState::WaitingForStore => "waiting_for_store",
        SessionState::Active {
            refresh: RefreshStage::Idle,
            ..
        } => "active",
        SessionState::Active {
            refresh: RefreshStage::Requested,
            ..
        } => "active/requested",
        SessionState::Active {
            refresh: RefreshStage::Saving,
            ..
        } => "active/saving",
        SessionState::NeedsLogin { .. } => "needs_login",
    }
}

/// An effect in a word or two.
fn brief(effect: &Effect) -> String {
    match effect {
        Effect::StartRefresh { refresh_token, .. } => {
            format!("start_refresh({})", refresh_token.expose())
        }
        Effect::WriteRecord { record, purpose } => {
            let what = match purpose {
                WritePurpose::Refreshed { .. } => "refreshed",
                WritePurpose::LoggedIn { .. } => "logged_in",
                WritePurpose::LoggedOut => "logged_out",
                WritePurpose::Revoked { .. } => "revoked",
                WritePurpose::DirtyRetry { .. } => "retry",
            };
            match record {
                Some(r) => format!("save({what}, {})", r.refresh_token.expose()),
                None => format!("delete({what})"),
            }
        }
        Effect::Schedule(Some(_)) => "schedule".into(),
        Effect::Schedule(None) => "unschedule".into(),
        Effect::RetryStoreSave => "retry_store_save".into(),
        Effect::StoreWideFailure(_) => "store_wide_failure".into(),
        Effect::Emit(BrokerEvent::TokenRefreshed { .. }) => "emit(token_refreshed)".into(),
        Effect::Emit(BrokerEvent::StateChanged { .. }) => "emit(state_changed)".into(),
        Effect::Emit(BrokerEvent::Attention { kind, .. }) => format!("emit({})", kind.name()),
        Effect::Emit(other) => format!("emit({other:?})"),
        Effect::Log(notice) => {
            let name = format!("{notice:?}");
            let end = name.find([' ', '(']).unwrap_or(name.len());
            format!("log({})", &name[..end])
        }
        Effect::Reply(reply) => format!("reply({})", brief_reply(reply)),
    }
}

fn brief_reply(reply: &Reply) -> String {
    match reply {
        Reply::Token(token) => format!("token {}", token.secret.expose()),
        Reply::JoinRefresh => "join".into(),
        Reply::WaitingForStore => "waiting_for_store".into(),
        Reply::Failed(e) | Reply::Done(Err(e)) => format!("error {}", error_kind(e)),
        Reply::Done(Ok(())) => "ok".into(),
        Reply::Changed(changed) => format!("changed {changed}"),
    }
}

fn error_kind(e: &BrokerError) -> &'static str {
    match e {
        BrokerError::LoginRequired { .. } => "login_required",
        BrokerError::ProviderUnavailable { .. } => "unavailable",
        BrokerError::ProviderRejected { .. } => "rejected",
        BrokerError::TokenTooShort { .. } => "too_short",
        BrokerError::Store { .. } => "store",
        BrokerError::ShuttingDown => "shutting_down",
        _ => "other",
    }
}

fn briefs(effects: &[Effect]) -> Vec<String> {
    effects.iter().map(brief).collect()
}

fn machine() -> SessionMachine {
    SessionMachine::new("p".into(), IDENTITY.into(), Duration::ZERO)
}

/// Feeds `event` at `now`; returns the effects in brief.
fn feed(m: &mut SessionMachine, now: SystemTime, event: Event) -> Vec<String> {
    briefs(&m.handle(&ctx(now), event))
}

/// Logs in at t0 with an access token living `lifetime` seconds, the
/// record written.
fn logged_in(lifetime: u64) -> SessionMachine {
    let mut m = machine();
    let effects = m.handle(
        &ctx(t0()),
        Event::LoginGranted {
            grant: grant("a1", Some("r1"), lifetime),
            sent_at: t0(),
        },
    );
    written_ok(&mut m, t0(), effects);
    m
}

/// Completes the one store write among `effects` successfully.
fn written_ok(m: &mut SessionMachine, now: SystemTime, effects: Vec<Effect>) -> Vec<String> {
    written(m, now, effects, Ok(()))
}

fn written(
    m: &mut SessionMachine,
    now: SystemTime,
    effects: Vec<Effect>,
    result: Result<(), StoreError>,
) -> Vec<String> {
    let purpose = effects
        .into_iter()
        .find_map(|e| match e {
            Effect::WriteRecord { purpose, .. } => Some(purpose),
            _ => None,
        })
        .expect("a store write");
    feed(m, now, Event::RecordWritten { purpose, result })
}

/// A session logged in at t0 (tokens of an hour) whose token request at
/// `now` started a refresh.
fn refreshing(now: SystemTime) -> SessionMachine {
    let mut m = logged_in(3600);
    let effects = feed(
        &mut m,
        now,
        Event::TokenRequested {
            want: Freshness::AtLeast(Duration::from_secs(7200)),
        },
    );
    assert!(
        effects.contains(&"start_refresh(r1)".to_owned()),
        "{effects:?}"
    );
    m
}

fn answer(
    m: &mut SessionMachine,
    now: SystemTime,
    answer: Result<TokenGrant, ProviderError>,
) -> Vec<Effect> {
    let generation = m.generation;
    m.handle(
        &ctx(now),
        Event::RefreshAnswered {
            generation,
            sent_at: now,
            answer,
        },
    )
}

fn want_default() -> Event {
    Event::TokenRequested {
        want: Freshness::Default,
    }
}

fn s(items: &[&str]) -> Vec<String> {
    items.iter().map(|&i| i.to_owned()).collect()
}

/// One row of a table: from the state `setup` builds, `event` at `now`
/// (seconds after t0) leads to `state` with `effects`.
struct Row {
    rule: &'static str,
    setup: fn() -> SessionMachine,
    now: u64,
    event: fn() -> Event,
    state: &'static str,
    effects: &'static [&'static str],
}

fn check(rows: &[Row]) {
    for row in rows {
        let mut m = (row.setup)();
        let got = feed(&mut m, at(row.now), (row.event)());
        assert_eq!(describe(&m), row.state, "{}: state", row.rule);
        assert_eq!(got, s(row.effects), "{}: effects", row.rule);
    }
}

fn waiting() -> SessionMachine {
    let mut m = machine();
    m.handle(&ctx(t0()), Event::StoreUnavailable);
    m
}

fn needs_login() -> SessionMachine {
    let mut m = refreshing(at(10));
    let effects = answer(&mut m, at(10), Err(revoked()));
    written_ok(&mut m, at(10), effects);
    m
}

fn active() -> SessionMachine {
    logged_in(3600)
}

fn in_flight() -> SessionMachine {
    refreshing(at(10))
}

fn want_long() -> Event {
    Event::TokenRequested {
        want: Freshness::AtLeast(Duration::from_secs(7200)),
    }
}

/// Token requests and wake-ups, by state.
#[test]
fn requests_by_state() {
    check(&[
        Row {
            rule: "no session: log in",
            setup: machine,
            now: 10,
            event: want_default,
            state: "logged_out",
            effects: &["reply(error login_required)"],
        },
        Row {
            rule: "waiting for the store: say so",
            setup: waiting,
            now: 10,
            event: want_default,
            state: "waiting_for_store",
            effects: &["reply(waiting_for_store)"],
        },
        Row {
            rule: "revoked: log in",
            setup: needs_login,
            now: 10,
            event: want_default,
            state: "needs_login",
            effects: &["reply(error login_required)"],
        },
        Row {
            rule: "fresh token: handed out",
            setup: active,
            now: 10,
            event: want_default,
            state: "active",
            effects: &["reply(token a1)"],
        },
        Row {
            rule: "too short: refresh, and wait for it",
            setup: active,
            now: 10,
            event: want_long,
            state: "active/requested",
            effects: &["log(RefreshOnDemand)", "start_refresh(r1)", "reply(join)"],
        },
        Row {
            rule: "single flight: a second request joins",
            setup: in_flight,
            now: 10,
            event: want_long,
            state: "active/requested",
            effects: &["reply(join)"],
        },
        Row {
            rule: "single flight: a due wake-up starts none",
            setup: in_flight,
            now: 4000,
            event: || Event::RefreshDue,
            state: "active/requested",
            effects: &[],
        },
        Row {
            rule: "due wake-up: refresh",
            setup: active,
            now: 4000,
            event: || Event::RefreshDue,
            state: "active/requested",
            effects: &["start_refresh(r1)"],
        },
        Row {
            rule: "early wake-up: sleep on",
            setup: active,
            now: 10,
            event: || Event::RefreshDue,
            state: "active",
            effects: &["schedule"],
        },
        Row {
            rule: "waiting for the store: nothing is due",
            setup: waiting,
            now: 4000,
            event: || Event::RefreshDue,
            state: "waiting_for_store",
            effects: &[],
        },
    ]);
}

/// Logout and the store, by state.
#[test]
fn lifecycle_by_state() {
    check(&[
        Row {
            rule: "logout: forget, then delete",
            setup: active,
            now: 10,
            event: || Event::LogoutRequested,
            state: "logged_out",
            effects: &["unschedule", "delete(logged_out)"],
        },
        Row {
            rule: "store unavailable: wait for it",
            setup: machine,
            now: 10,
            event: || Event::StoreUnavailable,
            state: "waiting_for_store",
            effects: &[],
        },
        Row {
            rule: "store unavailable: an active session keeps its tokens",
            setup: active,
            now: 10,
            event: || Event::StoreUnavailable,
            state: "active",
            effects: &[],
        },
        Row {
            rule: "store back, no record: logged out",
            setup: waiting,
            now: 10,
            event: || Event::NoStoredRecord,
            state: "logged_out",
            effects: &[],
        },
        Row {
            rule: "nothing unsaved: no write",
            setup: active,
            now: 10,
            event: || Event::SaveIfDirty,
            state: "active",
            effects: &["reply(changed false)"],
        },
    ]);
}

/// Records read from the store, by state: installed only while the
/// session waits for them.
#[test]
fn restores_by_state() {
    check(&[
        Row {
            rule: "record read for a waiting session: restored",
            setup: waiting,
            now: 10,
            event: || Event::RecordLoaded {
                cause: RestoreCause::Recovery,
                loaded: Ok(Some(record(IDENTITY, 3600))),
            },
            state: "active",
            effects: &[
                "schedule",
                "log(Restored)",
                "emit(state_changed)",
                "reply(changed true)",
            ],
        },
        Row {
            rule: "record of another client: not used",
            setup: waiting,
            now: 10,
            event: || Event::RecordLoaded {
                cause: RestoreCause::Recovery,
                loaded: Ok(Some(record("other", 3600))),
            },
            state: "logged_out",
            effects: &[
                "log(RestoreSkipped)",
                "emit(state_changed)",
                "reply(changed false)",
            ],
        },
        Row {
            rule: "store still down: keep waiting, tell the store's health",
            setup: waiting,
            now: 10,
            event: || Event::RecordLoaded {
                cause: RestoreCause::Request,
                loaded: Err(store_down()),
            },
            state: "waiting_for_store",
            effects: &["store_wide_failure", "reply(changed false)"],
        },
        Row {
            rule: "a late record never overwrites a login",
            setup: active,
            now: 10,
            event: || Event::RecordLoaded {
                cause: RestoreCause::Start,
                loaded: Ok(Some(record(IDENTITY, 3600))),
            },
            state: "active",
            effects: &["reply(changed false)"],
        },
        Row {
            rule: "a record for a request is read only while waiting",
            setup: machine,
            now: 10,
            event: || Event::RecordLoaded {
                cause: RestoreCause::Request,
                loaded: Ok(Some(record(IDENTITY, 3600))),
            },
            state: "logged_out",
            effects: &["reply(changed false)"],
        },
    ]);
}

/// The provider's answers to a refresh in flight.
#[test]
fn refresh_answers() {
    type AnswerRow = (
        &'static str,
        Result<TokenGrant, ProviderError>,
        &'static str,
        Vec<String>,
    );
    let rows: Vec<AnswerRow> = vec![
        (
            "new tokens: written before anything else",
            Ok(grant("a2", Some("r2"), 3600)),
            "active/saving",
            s(&["save(refreshed, r2)"]),
        ),
        (
            "no new refresh token: the old one is kept and written",
            Ok(grant("a2", None, 3600)),
            "active/saving",
            s(&["save(refreshed, r1)"]),
        ),
        (
            "transient failure: back off",
            Err(transient()),
            "active",
            s(&[
                "log(RefreshFailed)",
                "schedule",
                "emit(refresh_failed)",
                "emit(state_changed)",
                "reply(error unavailable)",
            ]),
        ),
        (
            "refusal: back off longer",
            Err(refused()),
            "active",
            s(&[
                "log(RefreshFailed)",
                "schedule",
                "emit(refresh_failed)",
                "emit(state_changed)",
                "reply(error rejected)",
            ]),
        ),
        (
            "revoked: delete the record first",
            Err(revoked()),
            "active/saving",
            s(&["delete(revoked)"]),
        ),
    ];
    for (rule, outcome, state, effects) in rows {
        let mut m = refreshing(at(10));
        let got = briefs(&answer(&mut m, at(11), outcome));
        assert_eq!(describe(&m), state, "{rule}: state");
        assert_eq!(got, effects, "{rule}: effects");
    }
}

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
    // The retry comes within half a minute, not at the next refresh.
    assert_eq!(
        m.next_refresh(),
        Some(at(12) + timing::ON_DEMAND_RETRY_SPACING * 6)
    );
    assert_eq!(
        feed(&mut m, at(12), want_default()),
        s(&["reply(token a2)"])
    );
    // The wake-up asks for a background save; the save writes r2.
    let due = feed(&mut m, at(60), Event::RefreshDue);
    assert_eq!(due[0], "retry_store_save");
    let retry = m.handle(&ctx(at(60)), Event::SaveIfDirty);
    assert_eq!(briefs(&retry), s(&["save(retry, r2)"]));
    let done = written_ok(&mut m, at(61), retry);
    assert_eq!(done, s(&["emit(state_changed)", "reply(changed true)"]));
    assert!(m.is_saved() && m.last_failure().is_none());
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
                reason: Some(reason),
                ..
            })),
        ] => {
            assert!(reason.contains("ABCD-EFGH"), "{reason}");
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
    assert_eq!(m.state_name(at(11)), "login_required");
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
