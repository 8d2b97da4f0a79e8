//! A stop that finds work in flight: a refresh the provider has not
//! answered, a store write that has not returned. The stop waits for them
//! (`daemon::SHUTDOWN_GRACE`, 20 s, within the units' `TimeoutStopSec`),
//! and when they still have not finished, the log names each session whose
//! refresh token may be lost: with a provider that rotates refresh tokens,
//! the stored one may be spent, and the next start needs a login.

use crate::support;

use std::time::Duration;

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, login, spawn_tokenctl};
use support::file_store::FileStore;
use support::keyring::TestKeyring;
use support::login_run::LoginRun;
use support::process::signal;
use support::provider::{Provider, fast};
use tokend_emulator::{Endpoint, Fault};

/// How long the test lets a stop take: the daemon's grace and then some.
const STOP_WITHIN: Duration = Duration::from_secs(40);

/// The `unfinished_at_stop` line of a stopped daemon's log, which must
/// name `provider` and say `what`.
fn assert_named_at_stop(daemon: &Daemon, provider: &str, what: &str) {
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("event=\"unfinished_at_stop\""))
        .unwrap_or_else(|| panic!("no unfinished_at_stop line:\n{log}"));
    assert!(line.contains(&format!("provider={provider}")), "{line}");
    assert!(line.contains(what), "{line}");
    assert!(
        line.contains(&format!("tokenctl login {provider}")),
        "{line}"
    );
}

/// `demo` seeded in the encrypted file store (a token of an hour) and
/// tokend on it with `http_timeout` seconds; a `tokenctl token` asking for
/// more than that hour, whose refresh the provider never answers, under
/// way: the provider, the store, the daemon and the waiting client.
fn a_refresh_hanging(http_timeout: u64) -> (Provider, FileStore, Daemon, std::process::Child) {
    let provider = Provider::start(fast());
    let store = FileStore::new();
    store.seed(&provider, &provider.config("demo"), |_| {
        Duration::from_secs(3600)
    });
    let mut options = store.options();
    options.daemon_keys = format!("http_timeout = {http_timeout}\n");
    let daemon = Daemon::start_with(&provider.config("demo"), options);
    provider.inject(Endpoint::Token, Fault::Hang, 1);
    let client = spawn_tokenctl(&daemon.socket, &["token", "demo", "--min-valid", "3700"]);
    provider.wait_for_count(1, |r| r.outcome == "fault:hang");
    (provider, store, daemon, client)
}

/// A refresh whose answer never comes: the stop waits its grace, then
/// names the session.
#[test]
fn a_stop_names_a_refresh_the_provider_had_not_answered() {
    // Longer than the stop's grace: the request is still out when it ends.
    let (_provider, _store, mut daemon, client) = a_refresh_hanging(60);
    let status = daemon.signal_and_wait(rustix::process::Signal::TERM, STOP_WITHIN);
    assert!(status.success(), "{status:?}");
    assert_named_at_stop(&daemon, "demo", "the provider had not answered a refresh");
    let out = client.wait_with_output().unwrap();
    assert!(!out.status.success(), "the waiting client got a token");
}

/// A keyring that hangs (stopped with `SIGSTOP`) while a refresh's new
/// tokens are being saved: the stop names the session whose new refresh
/// token the write held.
#[test]
fn a_stop_names_a_save_the_keyring_had_not_finished() {
    let bus = PrivateBus::start();
    let Some(keyring) =
        TestKeyring::start_or_skip(&bus, "a_stop_names_a_save_the_keyring_had_not_finished")
    else {
        return;
    };
    let provider = Provider::start(fast());
    let mut daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions::with_keyring_on(&bus),
    );
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let refreshes = provider.refresh_count();
    signal(keyring.pid(), rustix::process::Signal::STOP);
    let client = spawn_tokenctl(&daemon.socket, &["token", "demo", "--min-valid", "3700"]);
    provider.wait_for_count(refreshes + 1, |r| {
        r.is_refresh() && r.outcome == "refreshed"
    });
    let status = daemon.signal_and_wait(rustix::process::Signal::TERM, STOP_WITHIN);
    signal(keyring.pid(), rustix::process::Signal::CONT);
    assert!(status.success(), "{status:?}");
    assert_named_at_stop(
        &daemon,
        "demo",
        "the store had not finished writing the session",
    );
    drop(client.wait_with_output());
}

/// A stop asked for while a reload waits (for the refresh in flight of a
/// session it replaces, which the provider does not answer) is not held by
/// it: the stop was read only once the reload ended, up to `http_timeout`
/// later (600 s here), and systemd's stop timeout ended it with SIGKILL.
#[test]
fn a_stop_during_a_reload_is_not_held_by_it() {
    let (provider, _store, mut daemon, client) = a_refresh_hanging(600);

    // `demo`'s table changes: the reload replaces its session, and waits
    // for its refresh in flight.
    daemon.write_config(&format!("{}scopes = [\"more\"]\n", provider.config("demo")));
    signal(daemon.pid(), rustix::process::Signal::HUP);
    daemon.wait_for_log(1, &["reloading the config"]);
    let status = daemon.signal_and_wait(rustix::process::Signal::TERM, STOP_WITHIN);
    assert!(status.success(), "{status:?}");
    daemon.wait_for_log(1, &["a stop was asked for during the reload"]);
    // The refresh still out is named, though its session was retired.
    assert_named_at_stop(&daemon, "demo", "the provider had not answered a refresh");
    let out = client.wait_with_output().unwrap();
    assert!(!out.status.success(), "the waiting client got a token");
}

/// A stop asked for while a reload waits for a store call that does not
/// end (a keyring that hangs, `store_timeout` 120 s: the restore of the
/// provider the reload adds) is not held by it: the reload is abandoned a
/// moment after the stop, and the daemon stops within its grace.
#[test]
fn a_stop_during_a_reload_held_by_the_store_is_not_held_by_it() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(
        &bus,
        "a_stop_during_a_reload_held_by_the_store_is_not_held_by_it",
    ) else {
        return;
    };
    let provider = Provider::start(fast());
    let mut options = DaemonOptions::with_keyring_on(&bus);
    options.daemon_keys.push_str("store_timeout = 120\n");
    let mut daemon = Daemon::start_with(&provider.config("demo"), options);
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    signal(keyring.pid(), rustix::process::Signal::STOP);
    daemon.write_config(&format!(
        "{}{}",
        provider.config("demo"),
        provider.config("added")
    ));
    signal(daemon.pid(), rustix::process::Signal::HUP);
    daemon.wait_for_log(1, &["reloading the config"]);
    let status = daemon.signal_and_wait(rustix::process::Signal::TERM, STOP_WITHIN);
    signal(keyring.pid(), rustix::process::Signal::CONT);
    assert!(status.success(), "{status:?}");
    daemon.wait_for_log(1, &["the reload did not end within"]);
}

/// While a stop waits for a request in flight (here a refresh the provider
/// answers after 12 s, past `http_timeout`: its late answer is listened
/// for, and saved), no background refresh starts: one
/// started then would have only the rest of the grace, and one cut short
/// may lose a rotated refresh token. `busy`'s tokens live 4 s, so several
/// of its refreshes fall due during the wait.
#[test]
fn a_stop_starts_no_background_refresh_while_it_waits() {
    let hanging = Provider::start(fast());
    let busy = Provider::start(fast());
    busy.set_access_token_lifetime(Duration::from_secs(4));
    let store = FileStore::new();
    store.seed(&hanging, &hanging.config("demo"), |_| {
        Duration::from_secs(3600)
    });
    store.seed(&busy, &busy.config("busy"), |_| Duration::from_secs(4));
    let mut options = store.options();
    options.daemon_keys = "http_timeout = 8\n".into();
    let config = format!("{}{}", hanging.config("demo"), busy.config("busy"));
    let mut daemon = Daemon::start_with(&config, options);
    // The scheduler keeps `busy` fresh on its own.
    busy.wait_for_count(2, |r| r.is_refresh() && r.outcome == "refreshed");
    hanging.inject(Endpoint::Token, Fault::Delay(Duration::from_secs(12)), 1);
    let client = spawn_tokenctl(&daemon.socket, &["token", "demo", "--min-valid", "3700"]);
    hanging.wait_for_count(1, tokend_emulator::RecordedRequest::is_refresh);

    let before = busy.refresh_count();
    let status = daemon.signal_and_wait(rustix::process::Signal::TERM, STOP_WITHIN);
    assert!(status.success(), "{status:?}");
    // The client was told at `http_timeout` that no answer had come ...
    let out = client.wait_with_output().unwrap();
    assert!(!out.status.success(), "the waiting client got a token");
    // ... and no refresh of `busy` started meanwhile (one may have been on
    // its way when the signal came).
    let during = busy.refresh_count() - before;
    assert!(during <= 1, "{during} background refreshes during the stop");
    assert!(
        !daemon.log().contains("event=\"unfinished_at_stop\""),
        "{}",
        daemon.log()
    );
    busy.assert_no_violations();
}

/// What a stop during a refresh the provider leaves hanging holds: the
/// provider, the seeded store, the stopping daemon, and what `start` began.
struct Stopping<W> {
    _provider: Provider,
    _store: FileStore,
    daemon: Daemon,
    waiting: W,
}

/// A daemon on `bus` (as its session bus) with `demo` seeded, whose
/// refresh `start` asks for (a D-Bus call, a socket client) and the
/// provider leaves hanging; then told to stop. Returns once it says it is
/// stopping.
fn stopping_during_a_hanging_refresh<W>(
    bus: &PrivateBus,
    start: impl FnOnce(&Daemon) -> W,
) -> Stopping<W> {
    let provider = Provider::start(fast());
    let store = FileStore::new();
    store.seed(&provider, &provider.config("demo"), |_| {
        Duration::from_secs(3600)
    });
    let mut options = store.options();
    options.daemon_keys = "http_timeout = 15\n".into();
    options.bus = "session";
    options.env.extend(DaemonOptions::on_session_bus(bus).env);
    let daemon = Daemon::start_with(&provider.config("demo"), options);
    provider.inject(Endpoint::Token, Fault::Hang, 1);
    let waiting = start(&daemon);
    provider.wait_for_count(1, |r| r.outcome == "fault:hang");
    signal(daemon.pid(), rustix::process::Signal::TERM);
    daemon.wait_for_log(1, &["stopping"]);
    Stopping {
        _provider: provider,
        _store: store,
        daemon,
        waiting,
    }
}

/// `busctl call` of `args` (a method and its arguments) on the broker.
fn broker_call(bus: &PrivateBus, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new("busctl");
    command
        .arg(format!("--address={}", bus.address()))
        .args([
            "call",
            "org.tokend.Broker1",
            "/org/tokend/Broker1",
            "org.tokend.Broker1",
        ])
        .args(args);
    command
}

/// A D-Bus call that comes while a stop waits for one in flight (a refresh
/// the provider does not answer) is told at once that tokend is stopping.
/// It went unanswered: no stream read calls any more, while the call in
/// flight kept the connection and the bus name; after the grace the
/// caller got the bus's `NoReply`.
#[test]
fn a_dbus_call_during_a_stop_is_told_tokend_is_stopping() {
    let bus = PrivateBus::start();
    let mut stopping = stopping_during_a_hanging_refresh(&bus, |_| {
        broker_call(&bus, &["GetTokenMinValid", "su", "demo", "3700"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    });
    let during = broker_call(&bus, &["GetTokenMinValid", "su", "demo", "0"])
        .output()
        .unwrap();
    assert!(!during.status.success());
    let said = String::from_utf8_lossy(&during.stderr);
    assert!(said.contains("stopping"), "{said}");
    let status = stopping.daemon.wait_for_exit(STOP_WITHIN);
    assert!(status.success(), "{status:?}");
    drop(stopping.waiting);
}

/// A D-Bus call made during a stop that waits on a refresh no D-Bus call
/// asked for (a socket client's) is told tokend is stopping: the bus name
/// stays taken until the stop's work is done. It was let go at the stop's
/// start, and the call got the bus's `ServiceUnknown` (with the activation
/// files, the bus would have asked systemd to start tokend again).
#[test]
fn a_dbus_call_during_a_stop_without_dbus_calls_in_flight_is_told_too() {
    let bus = PrivateBus::start();
    let mut stopping = stopping_during_a_hanging_refresh(&bus, |daemon| {
        spawn_tokenctl(&daemon.socket, &["token", "demo", "--min-valid", "3700"])
    });
    let during = broker_call(&bus, &["ListProviders"]).output().unwrap();
    assert!(!during.status.success());
    let said = String::from_utf8_lossy(&during.stderr);
    assert!(said.contains("tokend is stopping"), "{said}");
    let status = stopping.daemon.wait_for_exit(STOP_WITHIN);
    assert!(status.success(), "{status:?}");
    let _ = stopping.waiting.wait();
}

/// A stop while the poll that brings an approved login's tokens is under
/// way (the provider answers it late): the stop waits for that answer
/// (within its grace) and saves the session, which the next start
/// restores. The poll was cut short with the login's wait: the provider
/// had spent the device code on those tokens, the person who approved had
/// to log in again, and the log said nothing of it.
#[test]
fn a_stop_waits_for_the_poll_that_brings_an_approved_logins_tokens() {
    let provider = Provider::start(fast());
    let store = FileStore::new();
    let mut daemon = Daemon::start_with(&provider.config("demo"), store.options());
    provider.inject(
        Endpoint::Token,
        Fault::LateSuccess(Duration::from_secs(3)),
        1,
    );
    let run = LoginRun::start(&daemon.socket, "demo");
    provider.approve(&run.user_code()).unwrap();
    provider.wait_for_count(1, |r| r.outcome.contains("fault:late_success"));
    let status = daemon.signal_and_wait(rustix::process::Signal::TERM, STOP_WITHIN);
    assert!(status.success(), "{status:?}");
    let (done, err, _) = run.finish();
    let log = daemon.log();
    assert!(
        log.contains("event=\"login_finished\""),
        "{done} {err}\n{log}"
    );
    daemon.restart();
    let out = daemon.tokenctl(&["--json", "status", "demo"]);
    let status: serde_json::Value =
        serde_json::from_str(&support::daemon::stdout(&out)).expect("status JSON");
    assert_eq!(status[0]["state"], "active", "{status}\n{}", daemon.log());
}

/// A stop while a login's poll is out to a provider that does not answer
/// it: the stop waits for it a few seconds, not its whole grace (20 s),
/// and names the login, whose tokens the provider may have issued.
#[test]
fn a_stop_names_a_logins_poll_the_provider_did_not_answer() {
    let provider = Provider::start(fast());
    let mut daemon = Daemon::start(&provider.config("demo"));
    let run = LoginRun::start(&daemon.socket, "demo");
    let _code = run.user_code();
    provider.inject(Endpoint::Token, Fault::Hang, 1);
    provider.wait_for_count(1, |r| r.outcome == "fault:hang");
    let status = daemon.signal_and_wait(rustix::process::Signal::TERM, STOP_WITHIN);
    assert!(status.success(), "{status:?}");
    let log = daemon.log();
    let named = log
        .lines()
        .find(|l| l.contains("event=\"unfinished_at_stop\""))
        .unwrap_or_else(|| panic!("no unfinished_at_stop line:\n{log}"));
    assert!(
        named.contains("provider=demo")
            && named.contains("login's poll")
            && named.contains("tokenctl login demo"),
        "{named}"
    );
    // The stop's grace did not run out: nothing was cut off at its end.
    assert!(!log.contains("cut off"), "{log}");
    let (done, _, code) = run.finish();
    assert_eq!(code, 3, "{done}");
}

/// A refresh a request asked for, queued behind its endpoint's one permit
/// (`max_concurrent_refreshes = 1`; `a`'s refresh answered after 4 s)
/// when the stop begins, is not sent at all: the request is told tokend
/// is stopping (exit 3), `a`'s answer is waited for and saved, and no
/// session is named as cut short. (It was sent when the permit came back,
/// seconds into the stop: behind a slow provider its answer came after
/// the grace, and the rotated refresh token was lost with the session.)
#[test]
fn a_stop_sends_no_refresh_queued_behind_its_endpoints_permits() {
    let provider = Provider::start(fast());
    let store = FileStore::new();
    let config = format!("{}{}", provider.config("a"), provider.config("b"));
    store.seed(&provider, &config, |_| Duration::from_secs(3600));
    let mut options = store.options();
    options.daemon_keys = "max_concurrent_refreshes = 1\n".into();
    let mut daemon = Daemon::start_with(&config, options);
    provider.inject(Endpoint::Token, Fault::Delay(Duration::from_secs(4)), 1);
    let first = spawn_tokenctl(&daemon.socket, &["token", "a", "--min-valid", "3700"]);
    provider.wait_for_count(1, tokend_emulator::RecordedRequest::is_refresh);
    let queued = spawn_tokenctl(&daemon.socket, &["token", "b", "--min-valid", "3700"]);
    daemon.wait_for_log(1, &["provider=b event=\"refresh_on_demand\""]);
    let status = daemon.signal_and_wait(rustix::process::Signal::TERM, STOP_WITHIN);
    assert!(status.success(), "{status:?}");
    let out = queued.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(
        provider.refresh_count(),
        1,
        "b's refresh was sent during the stop:\n{}",
        daemon.log()
    );
    drop(first.wait_with_output());
    let saved = daemon.wait_for_log(1, &["provider=a event=\"refresh_saved\""]);
    assert!(saved[0].contains("ok=true"), "{saved:?}");
    assert!(
        !daemon.log().contains("event=\"unfinished_at_stop\""),
        "{}",
        daemon.log()
    );
    provider.assert_no_violations();
}
