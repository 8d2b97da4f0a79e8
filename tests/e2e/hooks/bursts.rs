//! The hooks behind many events at once: runs that wait for a free one,
//! thousands of sessions needing a person, one notification for many, a
//! success not hidden by a failure that came after it.

use super::*;

/// A stored session for each of `names` in a new encrypted-file store, and
/// a config of them whose client changed since: no stored session is this
/// config's, and a start finds each needing a login.
fn stored_sessions_of_another_client(provider: &Provider, names: &[String]) -> (String, FileStore) {
    let config: String = names.iter().map(|name| provider.config(name)).collect();
    let store = FileStore::new();
    store.seed(provider, &config, |_| Duration::from_secs(3600));
    let config = config.replace(
        "client_id = \"tokend-test\"",
        "client_id = \"another-client\"",
    );
    (config, store)
}

/// Events that find every run busy wait for one, in order, instead of
/// being skipped: six sessions logged in back to back with a program that
/// takes seconds (a webhook) run it six times, the last two once the
/// first runs end.
#[test]
fn events_that_find_every_run_busy_wait_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, reader) = slow_hook_in(dir.path(), 8);
    let provider = Provider::rfc8628();
    let names = ["p1", "p2", "p3", "p4", "p5", "p6"];
    let config: String = names.iter().map(|name| provider.config(name)).collect();
    let daemon = Daemon::start_with(&config, with_hook(&hook));
    for name in names {
        login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        });
    }
    let mut seen: Vec<String> = (0..names.len())
        .map(|_| reader.wait_for("logged_in"))
        .collect();
    seen.sort();
    let expected: Vec<String> = names.iter().map(|n| format!("logged_in {n}")).collect();
    assert_eq!(seen, expected);
    drop(daemon);
}

/// More sessions needing a person at once than any queue of runs held
/// (1,100 stored sessions of another client, found at a start): the hook
/// runs for every one. A queue of 1,024 waiting runs skipped the rest
/// ("on_event skipped"), and before it the broadcast the hooks followed
/// dropped the oldest events of the burst.
#[test]
fn a_start_where_every_session_needs_a_person_runs_the_hook_for_each() {
    const SESSIONS: usize = 1_100;
    let dir = tempfile::tempdir().unwrap();
    let (hook, reader) = hook_in(dir.path());
    let provider = Provider::rfc8628();
    let names: Vec<String> = (0..SESSIONS).map(|n| format!("p{n:04}")).collect();
    let (config, store) = stored_sessions_of_another_client(&provider, &names);
    let options = DaemonOptions {
        daemon_keys: format!("on_event = [\"/bin/sh\", \"{}\"]\n", hook.display()),
        ..store.options()
    };
    let daemon = Daemon::start_with(&config, options);
    // Each run's line, as it runs (a line missing fails the wait).
    let mut ran: Vec<String> = (0..SESSIONS).map(|_| reader.next_line()).collect();
    ran.sort();
    let expected: Vec<String> = names
        .iter()
        .map(|name| format!("login_required {name}"))
        .collect();
    assert_eq!(ran, expected);
    drop(daemon);
}

/// Many sessions that need a login at once (20 stored sessions of another
/// client, found at a start) are one desktop notification saying how many
/// and naming a few, not one each: 2,000 revoked at once showed 2,000.
#[test]
fn many_sessions_needing_a_login_at_once_are_one_notification() {
    if !jeepney_or_skip("many_sessions_needing_a_login_at_once_are_one_notification") {
        return;
    }
    let bus = PrivateBus::start();
    let notifications = bus_stub(&bus, "notification_server.py", &[]);
    let provider = Provider::rfc8628();
    let names: Vec<String> = (0..20).map(|n| format!("p{n:02}")).collect();
    let (config, store) = stored_sessions_of_another_client(&provider, &names);
    let mut options = store.options();
    options.bus = "session";
    options
        .env
        .push(("DBUS_SESSION_BUS_ADDRESS".into(), bus.address().into()));
    let _daemon = Daemon::start_with(&config, options);
    let shown: serde_json::Value = serde_json::from_str(&notifications.next_line()).unwrap();
    assert_eq!(shown["summary"], "tokend: 20 providers need a login");
    let body = shown["body"].as_str().unwrap();
    assert!(
        body.ends_with(
            " and 17 more: run tokenctl login NAME for each (tokenctl status lists them)"
        ),
        "{body}"
    );
}

/// A login that worked, waiting for a run behind busy ones, and a second
/// login of the provider started and cancelled meanwhile: the hook hears
/// `logged_in` all the same. The second login's end replaced the first's
/// while both waited, and `logged_in` was never run (a hook that raised an
/// alert at `login_required` kept it up).
#[test]
fn a_login_cancelled_after_one_that_worked_keeps_its_logged_in() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, reader) = slow_hook_in(dir.path(), 10);
    let provider = Provider::rfc8628();
    let names = ["busy1", "busy2", "busy3", "busy4", "busy5", "demo"];
    let config: String = names.iter().map(|name| provider.config(name)).collect();
    let daemon = Daemon::start_with(&config, with_hook(&hook));
    for name in &names[..4] {
        login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        });
        reader.wait_for(&format!("logged_in {name}"));
    }
    // Every run is busy for seconds, and busy5's waits for one: demo's
    // events wait behind it.
    login(&daemon, "busy5", |code| {
        provider.approve(code).unwrap();
    });
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let out = daemon.tokenctl(&["login", "demo", "--no-wait"]);
    assert!(out.status.success(), "{out:?}");
    let out = daemon.tokenctl(&["login", "demo", "--cancel"]);
    assert!(out.status.success(), "{out:?}");
    reader.wait_for("logged_in demo");
}
