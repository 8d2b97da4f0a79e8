//! Tests of the machine: tables of states × events → next state + effects
//! (`tables`), and the rules that take a few events to show (`rules`).
//!
//! Effects are compared in a short written form ([`brief`]) so that each
//! row reads as the rule it checks.

mod access_expiry;
mod clock_step;
mod default_requests;
mod ended;
mod expiry_warning;
mod handover;
mod late_answer;
mod long_outage;
mod min_valid;
mod pacing;
mod refused_again;
mod retry_after;
mod rules;
mod store;
mod tables;
mod unreadable;

use std::time::{Duration, SystemTime};

use super::*;
use crate::provider::{Expiry, ProviderError, TokenGrant};
use crate::secret::Secret;
use crate::store::{STORED_SESSION_VERSION, StoredSession};

const IDENTITY: &str = "rfc8628|http://127.0.0.1/token|client";

/// A request for more life than a token of an hour has left once a few
/// seconds have passed, but no more than it lives: a request that has it
/// refreshed. (More than the provider's lifetime would be refused without
/// a refresh within a minute of the last: see `default_requests`.)
const MORE_THAN_LEFT: Duration = Duration::from_secs(3595);

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
        expiry_problem: None,
    }
}

fn record(identity: &str, access_expires: u64) -> StoredSession {
    StoredSession {
        version: STORED_SESSION_VERSION,
        identity: identity.into(),
        refresh_token: Some(Secret::from("stored-refresh")),
        obtained_at: crate::broker::clock::unix_secs(t0()),
        scope: None,
        access_token: Some(Secret::from("stored-access")),
        token_type: Some("Bearer".into()),
        expires_at: Some(crate::broker::clock::unix_secs(at(access_expires))),
        refresh_expires_at: None,
        ended: None,
    }
}

fn transient() -> ProviderError {
    ProviderError::Unreachable {
        endpoint: "http://127.0.0.1/token".into(),
        reason: "connection refused".into(),
    }
}

/// The provider's answer that it is unavailable: HTTP `status` (429,
/// 503), with a `Retry-After` of `retry_after` seconds if any.
fn unavailable(status: u16, retry_after: Option<u64>) -> ProviderError {
    ProviderError::Unavailable {
        endpoint: "http://127.0.0.1/token".into(),
        status,
        detail: None,
        retry_after: retry_after.map(Duration::from_secs),
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
        SessionState::Unreadable { .. } => "unreadable",
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
                WritePurpose::LoggedOut { .. } => "logged_out",
                WritePurpose::Revoked { .. } => "revoked",
                WritePurpose::RefreshTokenKept { .. } => "refresh_token_kept",
                WritePurpose::DirtyRetry { .. } => "retry",
            };
            match record {
                // An ended session's record: no token, when and why.
                Some(r) if r.ended.is_some() => format!("end({what})"),
                Some(r) => format!(
                    "save({what}, {})",
                    r.refresh_token.as_ref().map_or("-", Secret::expose)
                ),
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

/// Logs `m` in at t0 with `grant`, the record written: the effects of
/// the write's completion, whole.
fn logged_in_with(m: &mut SessionMachine, grant: TokenGrant) -> Vec<Effect> {
    logged_in_in(m, &ctx(t0()), grant)
}

/// [`logged_in_with`], in `context` (its jitter draw, say).
fn logged_in_in(m: &mut SessionMachine, context: &Context, grant: TokenGrant) -> Vec<Effect> {
    let login = m.handle(
        context,
        Event::LoginGranted {
            grant,
            sent_at: t0(),
        },
    );
    let purpose = login
        .into_iter()
        .find_map(|e| match e {
            Effect::WriteRecord { purpose, .. } => Some(purpose),
            _ => None,
        })
        .expect("a store write");
    m.handle(
        context,
        Event::RecordWritten {
            purpose,
            result: Ok(()),
        },
    )
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
            want: Freshness::AtLeast(MORE_THAN_LEFT),
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
