//! States × events → next state + effects, a row per rule.
use super::*;

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
        want: Freshness::AtLeast(MORE_THAN_LEFT),
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
                "emit(login_required)",
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
            "revoked: replace the record by the ended session's first",
            Err(revoked()),
            "active/saving",
            s(&["end(revoked)"]),
        ),
    ];
    for (rule, outcome, state, effects) in rows {
        let mut m = refreshing(at(10));
        let got = briefs(&answer(&mut m, at(11), outcome));
        assert_eq!(describe(&m), state, "{rule}: state");
        assert_eq!(got, effects, "{rule}: effects");
    }
}
