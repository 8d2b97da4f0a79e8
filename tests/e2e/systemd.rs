//! The daemon as systemd sees it: notifications on a notify socket the test
//! binds (READY, STATUS, RELOADING, STOPPING, WATCHDOG), and signals.

use crate::support;

use std::time::Duration;

use support::daemon::{Daemon, DaemonOptions, LoginRun, login, stderr, stdout, token};
use support::file_store::FileStore;
use support::provider::Provider;

fn status_names(daemon: &Daemon) -> Vec<String> {
    let out = daemon.tokenctl(&["--json", "status"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    status
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn ready_status_and_stopping_are_reported() {
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start(&format!("{}{}", provider.config("a"), provider.config("b")));
    let ready = daemon.wait_for_notification("READY=1");
    assert!(
        ready.contains("STATUS=2 providers: 2 logged out"),
        "{ready}"
    );
    login(&daemon, "a", |code| {
        provider.approve(code).unwrap();
    });
    daemon.wait_for_notification("STATUS=2 providers: 1 active, 1 logged out");
    let status = daemon.stop();
    assert!(status.success(), "{status}");
    daemon.wait_for_notification("STOPPING=1");
    assert!(!daemon.socket.exists(), "the socket is removed on exit");
}

/// Before the restore, which may wait on the store for up to three
/// `store_timeout`s, systemd is asked to wait that long (and half a minute
/// more) for `READY=1`: with the longest `store_timeout` the default 90 s
/// start timeout would kill a daemon waiting on a keyring prompt.
#[test]
fn the_start_asks_systemd_for_the_time_its_store_may_take() {
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start_with(
        &provider.config("a"),
        DaemonOptions {
            daemon_keys: "store_timeout = 120".into(),
            ..DaemonOptions::default()
        },
    );
    daemon.wait_for_notification("READY=1");
    let extend = daemon
        .notifications
        .iter()
        .position(|n| n.contains("EXTEND_TIMEOUT_USEC=390000000"));
    let ready = daemon
        .notifications
        .iter()
        .position(|n| n.contains("READY=1"));
    assert!(
        extend.is_some() && extend < ready,
        "{:?}",
        daemon.notifications
    );
    // And what it waits for is said meanwhile.
    let reading = daemon.notifications.iter().position(|n| {
        n.contains("STATUS=starting: reading the stored sessions from the memory store")
    });
    assert!(
        reading.is_some() && reading < ready,
        "{:?}",
        daemon.notifications
    );
}

/// A `tokenctl login` waiting for its person is not work in flight: SIGTERM
/// ends it at once, its client told `shutting_down` (and to log in again
/// once tokend is back), and the daemon stops without waiting out its
/// grace (20 s) for it.
#[test]
fn sigterm_ends_a_login_waiting_for_its_person_at_once() {
    a_stop_ends_a_waiting_login_at_once(DaemonOptions::default());
}

/// The same on D-Bus: the bus connection's tasks end with the daemon (one
/// that watched peers leave the bus held the stop for the whole grace).
#[test]
fn sigterm_on_dbus_ends_at_once_too() {
    let bus = support::bus::PrivateBus::start();
    a_stop_ends_a_waiting_login_at_once(DaemonOptions::on_session_bus(&bus));
}

fn a_stop_ends_a_waiting_login_at_once(options: DaemonOptions) {
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start_with(&provider.config("demo"), options);
    // The prompt is printed: the login now waits for the person.
    let run = LoginRun::start(&daemon.socket, "demo");
    run.user_code();
    let status = daemon.stop();
    assert!(status.success(), "{status}\nlog:\n{}", daemon.log());
    let (done, err, code) = run.finish();
    assert_eq!(done["event"], "done", "{done} {err}");
    assert_eq!(done["ok"], false, "{done}");
    assert_eq!(done["error"]["code"], "shutting_down", "{done}");
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("run `tokenctl login demo` again once tokend is back"),
        "{err}"
    );
    // The stop did not wait out its grace for the login (it would say
    // that it cut requests off).
    let log = daemon.log();
    assert!(
        !log.contains("were cut off") && !log.contains("unfinished_at_stop"),
        "{log}"
    );
}

/// A stop asked for during start-up, while the stored sessions are read
/// (here from a "bus" that accepts the store's connection and never
/// answers), is a clean stop: before, SIGTERM's default action killed the
/// daemon there, and a SIGHUP did too. And the exit is not held by the
/// store's thread still waiting for its answer.
#[test]
fn a_signal_during_start_up_is_handled_not_fatal() {
    for (signal, name) in [
        (rustix::process::Signal::TERM, "SIGTERM"),
        (rustix::process::Signal::HUP, "SIGHUP"),
    ] {
        let provider = Provider::rfc8628();
        let silent_dir = tempfile::tempdir().unwrap();
        let silent_path = silent_dir.path().join("bus");
        let silent = std::os::unix::net::UnixListener::bind(&silent_path).unwrap();
        let mut daemon = Daemon::spawn_with(
            &provider.config("demo"),
            DaemonOptions {
                store: "secret-service",
                env: vec![(
                    "DBUS_SESSION_BUS_ADDRESS".into(),
                    format!("unix:path={}", silent_path.display()),
                )],
                ..DaemonOptions::default()
            },
        );
        // The daemon lists its store as it starts: once it has connected,
        // it is in the middle of its start-up.
        let (connected, accepted) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = connected.send(silent.accept().map(|(stream, _)| stream));
        });
        let _held = accepted
            .recv_timeout(Duration::from_secs(30))
            .expect("tokend connects to the store's bus as it starts")
            .unwrap();
        if signal == rustix::process::Signal::HUP {
            // A reload asked for during start-up waits for it; the daemon
            // lives on. Stop it to see it was not killed meanwhile.
            rustix::process::kill_process(
                rustix::process::Pid::from_raw(i32::try_from(daemon.pid()).unwrap()).unwrap(),
                signal,
            )
            .unwrap();
        }
        let status = daemon.signal_and_wait(rustix::process::Signal::TERM, Duration::from_secs(30));
        assert_eq!(
            status.code(),
            Some(0),
            "{name} during start-up: {status}; log:\n{}",
            daemon.log()
        );
        assert!(
            daemon.log().contains("stopping during start-up"),
            "{}",
            daemon.log()
        );
    }
}

/// A daemon for provider `a` with a watchdog of 400 ms, as `WatchdogSec=`
/// sets it: a beat every 200 ms.
fn watched_daemon(provider: &Provider) -> Daemon {
    Daemon::start_with(
        &provider.config("a"),
        DaemonOptions {
            env: vec![("WATCHDOG_USEC".into(), "400000".into())],
            ..DaemonOptions::default()
        },
    )
}

#[test]
fn the_watchdog_is_fed_when_systemd_asks() {
    let provider = Provider::rfc8628();
    let mut daemon = watched_daemon(&provider);
    // Pinged at half the timeout; wait for a few pings.
    for _ in 0..3 {
        daemon.notifications.retain(|n| !n.contains("WATCHDOG=1"));
        daemon.wait_for_notification("WATCHDOG=1");
    }
}

/// A socket removed under the daemon leaves it serving no one, and it
/// would not notice: the watchdog's beat does, and the daemon says so
/// once, stops as for SIGTERM and exits 1, so that systemd starts it again
/// (and the new one binds the path).
#[test]
fn a_daemon_whose_socket_is_gone_stops_with_a_failure() {
    let provider = Provider::rfc8628();
    let mut daemon = watched_daemon(&provider);
    daemon.wait_for_notification("WATCHDOG=1");
    std::fs::remove_file(&daemon.socket).unwrap();
    let status = daemon.wait_for_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{}", daemon.log());
    daemon.wait_for_notification("STOPPING=1");
    let log = daemon.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains(&format!(
            "the socket {} was removed or replaced: clients cannot reach tokend there: stopping, so that the service manager starts tokend again",
            daemon.socket.display()
        )),
        "{log}"
    );
}

#[test]
fn no_watchdog_pings_without_watchdog_usec() {
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start(&provider.config("a"));
    // A status request round-trips through the daemon; by then a watchdog
    // ping at start-up would have arrived before READY.
    assert!(daemon.tokenctl(&["status"]).status.success());
    daemon.stop();
    daemon.wait_for_notification("STOPPING=1");
    assert!(
        !daemon.notifications.iter().any(|n| n.contains("WATCHDOG")),
        "{:?}",
        daemon.notifications
    );
}

#[test]
fn sighup_reloads_providers_and_keeps_unchanged_sessions() {
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start(&format!(
        "{}{}",
        provider.config("keep"),
        provider.config("gone")
    ));
    let kept = login(&daemon, "keep", |code| {
        provider.approve(code).unwrap();
    });
    login(&daemon, "gone", |code| {
        provider.approve(code).unwrap();
    });

    // Add one, remove one, keep one.
    daemon.write_config(&format!(
        "{}{}",
        provider.config("keep"),
        provider.config("new")
    ));
    daemon.notifications.clear();
    daemon.reload();
    assert_eq!(status_names(&daemon), ["keep", "new"]);
    assert_eq!(
        token(&daemon, "keep", &[]),
        kept,
        "an unchanged provider keeps its session"
    );
    let out = daemon.tokenctl(&["token", "gone"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    // A change that keeps client and endpoint keeps the tokens too.
    daemon.write_config(&format!(
        "{}{}",
        provider.config_with("keep", "scopes = [\"more\"]"),
        provider.config("new")
    ));
    daemon.reload();
    assert_eq!(token(&daemon, "keep", &[]), kept);
    // ... with the scopes they were granted (none: none were asked for at
    // the login), not the config's new ones, which a login would ask for.
    let status = stdout(&daemon.tokenctl(&["--json", "status", "keep"]));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status[0]["scopes"], serde_json::json!([]), "{status}");
    // A change of client id is another session: login required.
    daemon.write_config(&format!(
        "{}{}",
        provider
            .config("keep")
            .replace("tokend-test", "another-client"),
        provider.config("new")
    ));
    daemon.reload();
    assert_eq!(daemon.tokenctl(&["token", "keep"]).status.code(), Some(4));
}

/// `refresh_endpoint` is part of the session's identity: a reload that
/// points refreshes at another host does not hand that host the refresh
/// token the old one issued.
#[test]
fn a_new_refresh_endpoint_never_receives_the_old_refresh_token() {
    let provider = Provider::rfc8628();
    let other_host = Provider::rfc8628();
    let with_refresh =
        |refresh: &str| provider.config_with("demo", &format!("refresh_endpoint = \"{refresh}\""));
    let store = FileStore::new();
    let mut daemon = Daemon::start_with(
        &with_refresh(provider.token_endpoint().as_str()),
        store.options(),
    );
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    daemon.write_config(&with_refresh(other_host.token_endpoint().as_str()));
    daemon.reload();
    // Another session: login required, and nothing went to the new host.
    let out = daemon.tokenctl(&["token", "demo", "--min-valid", "86400"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(other_host.refresh_count(), 0);
    assert!(
        other_host.requests().is_empty(),
        "{:?}",
        other_host.requests()
    );
    // After a restart too: the stored session is not restored for it, and
    // status says why.
    daemon.stop();
    daemon.restart();
    let out = daemon.tokenctl(&["token", "demo", "--min-valid", "86400"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(other_host.requests().is_empty());
    let status = stdout(&daemon.tokenctl(&["--json", "status", "demo"]));
    assert!(
        status.contains("the stored session is of another client or endpoint"),
        "{status}"
    );
}

#[test]
fn an_invalid_reload_keeps_the_running_config() {
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start(&provider.config("keep"));
    let kept = login(&daemon, "keep", |code| {
        provider.approve(code).unwrap();
    });
    daemon.write_config(&format!(
        "{}\n[providers.broken]\nclient_id = 5\n",
        provider.config("keep")
    ));
    daemon.reload();
    let log = daemon.log();
    assert!(
        log.contains("`client_id` must be a string, not integer"),
        "{log}"
    );
    assert!(
        log.contains("the new config is invalid; still running with the previous one"),
        "{log}"
    );
    assert_eq!(status_names(&daemon), ["keep"]);
    assert_eq!(token(&daemon, "keep", &[]), kept);
}

/// A reload that removes a provider while its login waits for the person
/// ends the login saying so, not as if someone had logged out.
#[test]
fn a_reload_that_removes_a_provider_ends_its_login_saying_why() {
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start(&format!(
        "{}{}",
        provider.config("keep"),
        provider.config("gone")
    ));
    let run = LoginRun::start(&daemon.socket, "gone");
    let _ = run.user_code();
    daemon.write_config(&provider.config("keep"));
    daemon.reload();
    let (done, err, code) = run.finish();
    assert_eq!(code, support::flows::EXIT_LOGIN_FAILED, "{done} {err}");
    assert!(
        err.contains("login was cancelled (a reload removed the provider from the config)"),
        "{err}"
    );

    // A login of a provider whose table changes (any key: here its
    // scopes) is cancelled saying that, not that its client changed.
    let run = LoginRun::start(&daemon.socket, "keep");
    let _ = run.user_code();
    daemon.write_config(&format!("{}scopes = [\"more\"]\n", provider.config("keep")));
    daemon.reload();
    let (done, err, code) = run.finish();
    assert_eq!(code, support::flows::EXIT_LOGIN_FAILED, "{done} {err}");
    assert!(
        err.contains("a reload changed the provider's table: run the login again"),
        "{err}"
    );
}

/// A reload that changes only who may use or manage a provider, or what
/// the credential helpers are told, applies it to the running session: a
/// login waiting for the person carries on and its tokens are served.
#[test]
fn a_reload_that_changes_only_access_keeps_the_pending_login() {
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start(&provider.config("keep"));
    let run = LoginRun::start(&daemon.socket, "keep");
    let code = run.user_code();
    daemon.write_config(&format!(
        "{}allow_users = [4242]\nmanage_users = [4243]\nhosts = [\"git.example.org\"]\n",
        provider.config("keep")
    ));
    daemon.reload();
    provider.approve(&code).expect("approve");
    let (done, err, exit) = run.finish();
    assert_eq!(exit, 0, "{done} {err}\nlog:\n{}", daemon.log());
    assert!(!token(&daemon, "keep", &[]).is_empty());
    let status = daemon.tokenctl(&["--json", "status", "keep"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status[0]["hosts"][0], "git.example.org", "{status}");
}

/// At its stop the daemon removes its socket only if it is still its own:
/// a file put at that path meanwhile stays.
#[test]
fn a_stop_leaves_a_file_that_replaced_the_socket() {
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start(&provider.config("demo"));
    std::fs::remove_file(&daemon.socket).unwrap();
    std::fs::write(&daemon.socket, "not tokend's\n").unwrap();
    let status = daemon.stop();
    assert!(status.success(), "{status}");
    assert_eq!(
        std::fs::read_to_string(&daemon.socket).unwrap(),
        "not tokend's\n"
    );
}

/// A reload whose config takes long to read (a file system that does not
/// answer; the user and group database behind sssd or LDAP that does not)
/// keeps the daemon answering meanwhile: the load runs off the event loop.
/// A FIFO in the config file's place blocks the read until the test writes
/// the config into it.
#[test]
fn a_reload_that_waits_on_its_file_keeps_the_daemon_answering() {
    use std::os::unix::fs::OpenOptionsExt as _;

    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start(&provider.config("demo"));
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    daemon.write_config(&format!(
        "{}{}",
        provider.config("demo"),
        provider.config("more")
    ));
    let config = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::remove_file(&daemon.config).unwrap();
    support::process::make_fifo(&daemon.config);
    daemon.notifications.clear();
    support::process::signal(daemon.pid(), rustix::process::Signal::HUP);
    daemon.wait_for_notification("RELOADING=1");
    let out = daemon.tokenctl(&["--timeout", "5", "token", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The file answers: the reload goes on and adds the provider. (Not
    // blocking: the daemon has the FIFO open for reading by now.)
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed())
        .open(&daemon.config)
        .expect("the daemon reads the FIFO");
    std::io::Write::write_all(&mut fifo, config.as_bytes()).unwrap();
    drop(fifo);
    daemon.wait_for_notification("READY=1");
    let out = daemon.tokenctl(&["status", "more"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
