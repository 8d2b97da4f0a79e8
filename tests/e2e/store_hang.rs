//! A keyring that hangs: running, owning its bus name, answering nothing
//! (stopped with `SIGSTOP` here; a keyring stuck on an unlock prompt looks
//! the same). The first store call that waits out the store timeout makes
//! the store unavailable, as a store that refuses does: `status`, `status
//! --check` and the metrics say so, and later writes are not tried (each
//! would make its caller wait the timeout again); tokens are served from
//! memory meanwhile.
//!
//! The daemons here wait [`STORE_TIMEOUT`] for a store call (`[daemon]
//! store_timeout`), not the default 30 s: the tests wait it out several
//! times, and the messages name the configured figure.

use crate::support;

use std::time::{Duration, Instant};

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, login, refresh_now, stderr, stdout, token};
use support::file_store::FileStore;
use support::keyring::TestKeyring;
use support::openmetrics::{Exposition, parse};
use support::process::signal;
use support::provider::{Provider, fast};

/// The daemons' `store_timeout`.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// A daemon whose sessions live in the keyring on `bus`, waiting
/// [`STORE_TIMEOUT`] for each store call.
fn daemon_on(bus: &PrivateBus, provider: &Provider) -> Daemon {
    Daemon::start_with(
        &format!("{}{}", provider.config("demo"), provider.config("other")),
        DaemonOptions {
            daemon_keys: format!("store_timeout = {}", STORE_TIMEOUT.as_secs()),
            ..DaemonOptions::with_keyring_on(bus)
        },
    )
}

/// A private bus with a keyring on it (`None`, said, where gnome-keyring
/// cannot run), and an emulated provider: what each test here starts from.
fn keyring_and_provider(test: &str) -> Option<(PrivateBus, TestKeyring, Provider)> {
    let bus = PrivateBus::start();
    let keyring = TestKeyring::start_or_skip(&bus, test)?;
    Some((bus, keyring, Provider::start(fast())))
}

fn metrics(daemon: &Daemon) -> Exposition {
    let out = daemon.tokenctl(&["metrics"]);
    assert!(out.status.success(), "{}", stderr(&out));
    parse(&stdout(&out)).expect("OpenMetrics text")
}

#[test]
fn a_keyring_that_hangs_is_a_store_outage() {
    let Some((bus, keyring, provider)) =
        keyring_and_provider("a_keyring_that_hangs_is_a_store_outage")
    else {
        return;
    };
    let daemon = daemon_on(&bus, &provider);
    let first = login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let other_first = login(&daemon, "other", |code| {
        provider.approve(code).unwrap();
    });
    signal(keyring.pid(), rustix::process::Signal::STOP);
    // A refresh, asked for by refusing the current token; the new token is
    // then the one served. (Of two sessions: the token a refusal's refresh
    // brought, refused too, is replaced only a minute later.)
    let refresh = |name: &str| {
        let fresh = refresh_now(&daemon, name);
        assert_eq!(token(&daemon, name, &[]), fresh);
        fresh
    };

    // The refresh's save waits out the store timeout; the new token is
    // served from memory all the same.
    let second = refresh("demo");
    assert_ne!(second, first);
    let out = daemon.tokenctl(&["status"]);
    let said = stdout(&out);
    assert!(said.contains("no answer within 5 s"), "{said}");
    let out = daemon.tokenctl(&["status", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let before = metrics(&daemon);
    assert_eq!(before.value("tokend_store_up", &[]), Some(0.0));
    assert_eq!(before.value("tokend_store_errors_total", &[]), Some(1.0));

    // The next refresh does not try the store that hangs.
    let third = refresh("other");
    assert_ne!(third, other_first);
    let after = metrics(&daemon);
    assert_eq!(after.value("tokend_store_errors_total", &[]), Some(1.0));

    // The retry loop's probe (hastened by the status) waits out the
    // timeout as well: a store call that failed, counted as one.
    wait_for_store_errors(&daemon, 2, "the probe that timed out was not counted");
    // Then the loop's scheduled try (15 to 30 s after the outage began)
    // waits it out too; the next is 30 s or more away.
    wait_for_store_errors(&daemon, 3, "the scheduled probe was not counted");

    // The keyring runs again. Nothing announces that, but the calls that
    // waited for it are answered now, and that ends the outage at once,
    // not at the loop's next try: the token only memory held is saved.
    signal(keyring.pid(), rustix::process::Signal::CONT);
    let back = daemon.wait_for_log(1, &["event=\"store_available\""]);
    assert!(back[0].contains("noticed=\"late_answer\""), "{back:?}");
    daemon.wait_for_log(1, &["after the store came back"]);
    let out = daemon.tokenctl(&["--json", "status", "demo"]);
    assert!(stdout(&out).contains("\"saved\":true"), "{}", stdout(&out));
}

/// Waits until the metrics count `count` store errors. A probe that times
/// out during the outage writes no log line (the outage is the same), so
/// the metrics are read until they say so: within the retry loop's first
/// backoff (at most 30 s), the timeout and a margin.
fn wait_for_store_errors(daemon: &Daemon, count: u32, what: &str) {
    let deadline = Instant::now() + STORE_TIMEOUT + Duration::from_secs(40);
    loop {
        let errors = metrics(daemon).value("tokend_store_errors_total", &[]);
        if errors == Some(f64::from(count)) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {errors:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A logout that meets a keyring that hangs waits out the store timeout
/// (the record must be deleted, or the session would come back at the
/// next start); a person at a terminal is told why after 3 s rather than
/// left with nothing until then (30 s by default). The session is logged out in memory at once,
/// and the answer says the record waits.
#[test]
fn a_logout_waiting_for_a_keyring_that_hangs_says_why_on_a_terminal() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(&bus, "a_logout_waiting_for_a_keyring") else {
        return;
    };
    let provider = Provider::start(fast());
    let daemon = daemon_on(&bus, &provider);
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    signal(keyring.pid(), rustix::process::Signal::STOP);

    // On a terminal (a pty, from `script`).
    let command = format!(
        "{} --socket {} logout demo",
        env!("CARGO_BIN_EXE_tokenctl"),
        daemon.socket.display()
    );
    let output = std::process::Command::new("script")
        .args(["--quiet", "--command", &command, "/dev/null"])
        .env("TERM", "dumb")
        .env_remove("TOKEND_SOCKET")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script");
    let screen = String::from_utf8_lossy(&output.stdout);
    let notice = "the logout of `demo` is not done after 3 s: tokend is waiting for its store";
    assert_eq!(screen.matches(notice).count(), 1, "{screen}");
    assert!(
        screen.contains(
            "provider `demo`: logged out in tokend, but its record could not be deleted \
             (store failed: no answer within 5 s"
        ) && screen.contains("it is deleted when the store works again"),
        "{screen}"
    );
    let out = daemon.tokenctl(&["--json", "status", "demo"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("status JSON");
    assert_eq!(status[0]["state"], "logged_out", "{status}");
    signal(keyring.pid(), rustix::process::Signal::CONT);
}

/// A state directory whose file system does not answer keeps the start
/// waiting, and the log and systemd's `STATUS=` say what it waits for;
/// the start carries on when it answers. (A hung FUSE mount over the
/// logout journal alone, so that the lock beside it is taken first; a FIFO
/// there served, until the journal was opened without waiting on one.)
#[test]
fn a_start_waiting_for_its_state_directory_says_so() {
    let provider = Provider::start(fast());
    let store = FileStore::new();
    let journal = store.state_dir().join("pending-logouts");
    let Some(mount) = support::hung_mount::HungMount::over_file_or_skip(
        &journal,
        "a_start_waiting_for_its_state_directory_says_so",
    ) else {
        return;
    };
    let mut daemon = Daemon::spawn_with(&provider.config("demo"), store.options());
    let status = daemon.wait_for_notification("STATUS=the start has waited");
    assert!(
        status.contains(&format!(
            "the state directory {}",
            store.state_dir().display()
        )),
        "{status}"
    );
    daemon.wait_for_log(
        1,
        &["is its file system hung? tokend starts when it answers"],
    );
    // The file system answers (its server gone, with an error): the start
    // goes on.
    drop(mount);
    daemon.wait_for_notification("READY=1");
    let out = daemon.tokenctl(&["status", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A refresh whose save waits out the timeout of a keyring that hangs,
/// longer than its new access token lives: the caller that waited for it
/// is told the store's trouble (`store_error`, which names the timeout),
/// not "login required" (the session has a working refresh token).
#[test]
fn a_token_spent_while_its_save_waited_is_said_as_the_stores_trouble() {
    let Some((bus, keyring, provider)) =
        keyring_and_provider("a_token_spent_while_its_save_waited_is_said...")
    else {
        return;
    };
    let daemon = daemon_on(&bus, &provider);
    let first = login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    provider.set_access_token_lifetime(Duration::from_secs(2));
    signal(keyring.pid(), rustix::process::Signal::STOP);
    let mut client = tokend::client::Client::connect(&daemon.socket).expect("connect");
    let refused = client.token_replacing("demo", &first);
    signal(keyring.pid(), rustix::process::Signal::CONT);
    let said = format!("{refused:?}");
    assert!(
        said.contains("StoreError") && said.contains("no answer within 5 s"),
        "{said}"
    );
    assert!(!said.contains("login"), "{said}");
}

/// A keyring that hangs at the start: the restore waits for it (the
/// socket is not bound meanwhile, and clients are told that no tokend
/// listens there), and after 5 s the log and systemd's `STATUS=` say what
/// the start waits for. It said nothing for the whole store timeout.
#[test]
fn a_start_waiting_for_a_keyring_that_hangs_says_so() {
    let Some((bus, keyring, provider)) =
        keyring_and_provider("a_start_waiting_for_a_keyring_that_hangs_says_so")
    else {
        return;
    };
    signal(keyring.pid(), rustix::process::Signal::STOP);
    let mut daemon = Daemon::spawn_with(
        &provider.config("demo"),
        DaemonOptions {
            daemon_keys: "store_timeout = 60".into(),
            ..DaemonOptions::with_keyring_on(&bus)
        },
    );
    let status = daemon.wait_for_notification("STATUS=the start has waited");
    assert!(
        status.contains("Secret Service to give the stored sessions"),
        "{status}"
    );
    daemon.wait_for_log(1, &["event=\"slow_start\"", "unlock prompt"]);
    signal(keyring.pid(), rustix::process::Signal::CONT);
    daemon.wait_for_notification("READY=1");
    let out = daemon.tokenctl(&["status", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// An approved login whose tokens' save waits for a keyring that hangs:
/// meanwhile `status` says the login was approved and its tokens are
/// being saved, and a `token` request waits for them and gets the token.
/// It was told "login required (a login is pending: enter code …)", and
/// status showed the code to enter, already approved.
#[test]
fn a_token_asked_while_an_approved_logins_save_waits_gets_the_token() {
    let Some((bus, keyring, provider)) = keyring_and_provider("a_token_asked_while_an_approved...")
    else {
        return;
    };
    let daemon = daemon_on(&bus, &provider);
    let run = support::daemon::LoginRun::start(&daemon.socket, "demo");
    let code = run.user_code();
    signal(keyring.pid(), rustix::process::Signal::STOP);
    provider.approve(&code).unwrap();
    // The approval is read at the next poll (every second here), and the
    // save then waits out STORE_TIMEOUT: status is asked until it says so,
    // for half a minute at most.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut approved = None;
    while approved.is_none() && Instant::now() < deadline {
        let said = stdout(&daemon.tokenctl(&["--json", "status", "demo"]));
        approved = said.contains("the login was approved").then_some(said);
    }
    let said = approved.expect("status never said the login was approved");
    assert!(said.contains("\"state\":\"login_pending\""), "{said}");
    assert!(!said.contains(&code), "{said}");
    let check = stdout(&daemon.tokenctl(&["status", "--check", "demo"]));
    assert!(check.contains("demo: the login was approved"), "{check}");
    let out = daemon.tokenctl(&["token", "demo"]);
    signal(keyring.pid(), rustix::process::Signal::CONT);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(provider.is_valid_access_token(stdout(&out).trim()));
    // Logged in, the tokens in memory: the login says its save failed.
    let (done, err, code) = run.finish();
    assert_eq!(
        (code, &done["ok"]),
        (9, &serde_json::json!(true)),
        "{done} {err}"
    );
    assert!(done["unsaved"].is_string(), "{done}");
}

/// A logout while the keyring hangs, then a reload (a config edited): the
/// provider stays logged out, its record's delete owed, and a token asked
/// for is refused as logged out at once. The reload's new session took the
/// provider for one the store had not been read for: it waited for the
/// store, a token request asked the hung keyring (a store timeout) and was
/// answered with the store's error, and a logout still under way when the
/// reload came waited a second store timeout behind it.
#[test]
fn a_logout_the_keyring_could_not_take_stays_a_logout_across_a_reload() {
    let Some((bus, keyring, provider)) =
        keyring_and_provider("a_logout_the_keyring_could_not_take_stays_a_logout_across_a_reload")
    else {
        return;
    };
    let mut daemon = daemon_on(&bus, &provider);
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    signal(keyring.pid(), rustix::process::Signal::STOP);
    let out = daemon.tokenctl(&["logout", "demo"]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    daemon.write_config(&format!(
        "{}{}",
        provider.config_with("demo", "scopes = [\"changed\"]"),
        provider.config("other")
    ));
    daemon.reload();
    let out = daemon.tokenctl(&["--json", "status", "demo"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("status JSON");
    assert_eq!(status[0]["state"], "logged_out", "{status}");
    let token = daemon.tokenctl(&["token", "demo"]);
    assert_eq!(
        token.status.code(),
        Some(4),
        "{}\n{}",
        stderr(&token),
        daemon.log()
    );
    // The delete the new session owes is carried out when the keyring
    // answers again.
    signal(keyring.pid(), rustix::process::Signal::CONT);
    let back = daemon.wait_for_log(1, &["after the store came back"]);
    assert!(back[0].contains("saved=1"), "{back:?}");
    let out = daemon.tokenctl(&["--json", "status", "demo"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("status JSON");
    assert_eq!(
        (&status[0]["state"], &status[0]["saved"]),
        (&serde_json::json!("logged_out"), &serde_json::json!(true)),
        "{status}"
    );
}

/// A `tokenctl login` and a D-Bus `Login` that join a login after its
/// approval, while its tokens are being saved (the keyring has not
/// answered yet): the first is told how the login ends, as its starter
/// is (logged in, not saved: the keyring never answers); the second gets the code of the login after it, as a call a
/// moment later would. (Both were told the login "finished before its
/// prompt could be shown", `tokenctl` exit 8, while it was logging in.)
#[test]
fn logins_joined_while_an_approved_login_is_saved_are_told_how_it_ends() {
    let Some((bus, keyring, provider)) =
        keyring_and_provider("logins_joined_while_an_approved_login_is_saved_are_told_how_it_ends")
    else {
        return;
    };
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            bus: "session",
            daemon_keys: format!("store_timeout = {}", STORE_TIMEOUT.as_secs()),
            ..DaemonOptions::with_keyring_on(&bus)
        },
    );
    let first = support::login_run::LoginRun::start(&daemon.socket, "demo");
    let code = first.user_code();
    signal(keyring.pid(), rustix::process::Signal::STOP);
    provider.approve(&code).unwrap();
    daemon.wait_for_log(1, &["provider=demo event=\"login_approved\""]);
    let joined = support::daemon::spawn_tokenctl(&daemon.socket, &["--json", "login", "demo"]);
    daemon.wait_for_log(2, &["provider=demo", "event=\"login_requested\""]);
    let dbus = bus
        .command("busctl")
        .arg(format!("--address={}", bus.address()))
        .args([
            "--timeout=60",
            "call",
            "org.tokend.Broker1",
            "/org/tokend/Broker1",
            "org.tokend.Broker1",
            "Login",
            "s",
            "demo",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run busctl");
    daemon.wait_for_log(3, &["provider=demo", "event=\"login_requested\""]);
    // The save waits out the store's timeout (a keyring stopped does not
    // answer the call it got when it runs again): logged in, not saved,
    // which both are told, exit 9.
    let (first_done, _, first_exit) = first.finish();
    let joined = joined.wait_with_output().unwrap();
    signal(keyring.pid(), rustix::process::Signal::CONT);
    let said = stdout(&joined);
    let done: serde_json::Value =
        serde_json::from_str(said.lines().last().unwrap_or_default()).expect("a done line");
    assert_eq!(
        (joined.status.code(), &done["ok"]),
        (Some(9), &serde_json::json!(true)),
        "{said} {}",
        stderr(&joined)
    );
    assert!(!said.contains("\"prompt\""), "no code to show: {said}");
    assert_eq!(first_exit, 9, "{first_done}");
    assert_eq!(done["unsaved"], first_done["unsaved"], "{done}");
    let dbus = dbus.wait_with_output().unwrap();
    assert!(dbus.status.success(), "{}", stderr(&dbus));
    let answer = stdout(&dbus);
    assert!(answer.starts_with("sssu \""), "{answer}");
    assert!(!answer.contains(&code), "a new code: {answer}");
}
