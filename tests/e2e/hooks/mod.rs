//! Telling the world when a session needs a person: the `on_event` program
//! (run with `PROVIDER` and `EVENT`, never a secret) and a desktop
//! notification through a stub notification server on a private session
//! bus, for `logged_in`, `refresh_failed` and `login_required`.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::bus::PrivateBus;
use support::child_lines::{Lines, bus_stub};
use support::daemon::{Daemon, DaemonOptions, login, refresh_now};
use support::file_store::FileStore;
use support::process::make_fifo;
use support::provider::Provider;
use tokend_emulator::Rfc8628Options;

mod bursts;
mod recovery;

/// A hook program in `dir` that writes its environment to `dir/env.EVENT`
/// and "EVENT PROVIDER" into a FIFO the returned lines read: each run is
/// seen as it happens.
fn hook_in(dir: &Path) -> (PathBuf, Lines) {
    let fifo = dir.join("events");
    make_fifo(&fifo);
    let hook = dir.join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "env > {dir}/env.$EVENT\nprintf '%s %s\\n' \"$EVENT\" \"$PROVIDER\" > {fifo}\n",
            dir = dir.display(),
            fifo = fifo.display()
        ),
    )
    .unwrap();
    let reader = Lines::of_fifo(&fifo);
    (hook, reader)
}

/// A hook program in `dir` that writes "EVENT PROVIDER" into a FIFO the
/// returned lines read, then takes `seconds` (a webhook that is slow, or
/// hangs).
fn slow_hook_in(dir: &Path, seconds: u32) -> (PathBuf, Lines) {
    let fifo = dir.join("events");
    make_fifo(&fifo);
    let hook = dir.join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "printf '%s %s\\n' \"$EVENT\" \"$PROVIDER\" > {}\nexec sleep {seconds}\n",
            fifo.display()
        ),
    )
    .unwrap();
    (hook, Lines::of_fifo(&fifo))
}

/// Daemon options that run `hook` (with `/bin/sh`) as the `on_event` program.
fn with_hook(hook: &Path) -> DaemonOptions {
    DaemonOptions {
        daemon_keys: format!("on_event = [\"/bin/sh\", \"{}\"]\n", hook.display()),
        ..DaemonOptions::default()
    }
}

/// Whether the stub notification servers can run (python3-jeepney); if
/// not, says that `test` is skipped.
fn jeepney_or_skip(test: &str) -> bool {
    let has_jeepney = Command::new("/usr/bin/python3")
        .args(["-c", "import jeepney"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_jeepney {
        crate::support::skip::say(format_args!(
            "SKIPPED {test}: python3-jeepney is not installed"
        ));
    }
    has_jeepney
}

/// A daemon on `bus` (as its session bus: notifications on) running `hook`
/// for its events, with `demo` logged in at a provider of 3 s tokens
/// polled every second: the provider, the daemon, the access token.
fn on_session_bus_with_hook(bus: &PrivateBus, hook: &Path) -> (Provider, Daemon, String) {
    let provider = Provider::start(Rfc8628Options {
        interval: Duration::from_secs(1),
        access_token_lifetime: Duration::from_secs(3),
        ..Rfc8628Options::default()
    });
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            bus: "session",
            env: vec![("DBUS_SESSION_BUS_ADDRESS".into(), bus.address().into())],
            daemon_keys: format!("on_event = [\"/bin/sh\", \"{}\"]\n", hook.display()),
            ..DaemonOptions::default()
        },
    );
    let access_token = login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    (provider, daemon, access_token)
}

#[test]
fn hooks_and_notifications_follow_the_sessions() {
    if !jeepney_or_skip("hooks_and_notifications_follow_the_sessions") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (hook, reader) = hook_in(dir.path());

    let bus = PrivateBus::start();
    let notifications = bus_stub(&bus, "notification_server.py", &[]);
    let (provider, daemon, access_token) = on_session_bus_with_hook(&bus, &hook);
    reader.wait_for("logged_in demo");

    // The provider goes down: the background refresh fails.
    provider.set_unavailable(true);
    reader.wait_for("refresh_failed demo");
    // It comes back having revoked the session: a login is needed, and the
    // desktop is told, with the command.
    provider.revoke_all();
    provider.set_unavailable(false);
    reader.wait_for("login_required demo");
    // What the program saw: the provider and the event, no secret.
    for event in ["logged_in", "refresh_failed", "login_required"] {
        let env = std::fs::read_to_string(dir.path().join(format!("env.{event}"))).unwrap();
        assert!(
            env.contains(&format!("EVENT={event}\n")) && env.contains("PROVIDER=demo\n"),
            "{env}"
        );
        // And the daemon's socket, for a tokenctl it runs.
        assert!(
            env.contains(&format!("TOKEND_SOCKET={}\n", daemon.socket.display())),
            "{env}"
        );
        let mut secrets = provider.secrets_sent();
        secrets.push(access_token.clone());
        for secret in &secrets {
            assert!(
                !env.contains(secret.as_str()),
                "a secret in the hook's environment"
            );
        }
    }
    let shown = notifications.wait_for("needs a login");
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["app"], "tokend");
    assert_eq!(shown["summary"], "tokend: demo needs a login");
    assert_eq!(shown["body"], "Run: tokenctl login demo");
    drop(daemon);
}

/// A notification server that never answers (a hung desktop shell) holds
/// nothing: the program runs for the event all the same, and for the
/// next. The notification was awaited before the run, with no time limit.
#[test]
fn a_notification_server_that_never_answers_holds_no_run() {
    if !jeepney_or_skip("a_notification_server_that_never_answers_holds_no_run") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (hook, reader) = hook_in(dir.path());
    let bus = PrivateBus::start();
    let notifications = bus_stub(&bus, "notification_server.py", &["--silent"]);
    let (provider, daemon, _) = on_session_bus_with_hook(&bus, &hook);
    reader.wait_for("logged_in demo");
    provider.revoke_all();
    notifications.wait_for("Notify");
    reader.wait_for("login_required demo");
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    reader.wait_for("logged_in demo");
}

/// A stop does not wait for a run of the program: one still going (a
/// webhook that hangs) held every stop for the whole grace, and was
/// reported as requests left unanswered. It ends the run with what the
/// run started: a script's background job (not `exec`ed) outlived tokend
/// for good where no systemd ends the unit's processes.
#[test]
fn a_stop_does_not_wait_for_the_program_and_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("events");
    make_fifo(&fifo);
    let job = dir.path().join("job");
    let hook = dir.path().join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "sleep 300 &\necho $! > {job}\necho \"$EVENT\" > {fifo}\nwait\n",
            job = job.display(),
            fifo = fifo.display()
        ),
    )
    .unwrap();
    let reader = Lines::of_fifo(&fifo);
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start_with(&provider.config("demo"), with_hook(&hook));
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    reader.wait_for("logged_in");
    let job = std::fs::read_to_string(&job).unwrap().trim().to_owned();
    assert!(daemon.stop().success());
    assert!(
        !daemon.log().contains("still unanswered"),
        "{}",
        daemon.log()
    );
    // Killed with the stop; a moment for the kernel to tear it down.
    let gone = || {
        std::fs::read_to_string(format!("/proc/{job}/stat")).map_or(true, |stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
    };
    for _ in 0..200 {
        if gone() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the hook's background job {job} outlived tokend");
}

/// A hook program on a file system that does not answer (an NFS home, a
/// FUSE server that hangs) holds its run only: checking and starting it
/// held the daemon's event loop, and every request, refresh and watchdog
/// ping with it, for as long as the file system hung.
#[test]
fn a_hook_on_a_hung_file_system_holds_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let hangs = dir.path().join("hangs");
    std::fs::create_dir(&hangs).unwrap();
    let hook = hangs.join("hook");
    std::fs::write(&hook, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let provider = Provider::rfc8628();
    let config = format!("{}{}", provider.config("demo"), provider.config("two"));
    let daemon = Daemon::start_with(
        &config,
        DaemonOptions {
            daemon_keys: format!("on_event = [\"{}\"]\n", hook.display()),
            ..DaemonOptions::default()
        },
    );
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let Some(mount) = support::hung_mount::HungMount::over_or_skip(
        &hangs,
        "a_hook_on_a_hung_file_system_holds_nothing_else",
    ) else {
        return;
    };
    login(&daemon, "two", |code| {
        provider.approve(code).unwrap();
    });
    // The hook's run for `two` is stuck on the mount now.
    mount.wait_until_touched();
    let out = daemon.tokenctl(&["--timeout", "10", "token", "demo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(mount);
}

/// The store going down and coming back runs the program too (an
/// operator's alert for a system service whose disk is full), with why,
/// and with `PROVIDER` empty: the event is the store's; also when it is
/// down already as the daemon starts.
#[test]
fn the_store_going_down_and_coming_back_runs_the_hook() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, reader) = hook_in(dir.path());
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let options = store.options();
    let mut daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            daemon_keys: format!("on_event = [\"/bin/sh\", \"{}\"]\n", hook.display()),
            ..options
        },
    );
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    reader.wait_for("logged_in demo");

    // The records' directory replaced by a file: a refresh cannot be saved.
    store.break_records();
    refresh_now(&daemon, "demo");
    assert_eq!(reader.wait_for("store_unavailable"), "store_unavailable ");
    let env = std::fs::read_to_string(dir.path().join("env.store_unavailable")).unwrap();
    assert!(
        env.contains("REASON=encrypted file store is unavailable")
            && env.contains("not a directory")
            && env.lines().any(|line| line == "PROVIDER="),
        "{env}"
    );

    // Back: the status has the store probed at once.
    store.mend_records();
    assert!(daemon.tokenctl(&["status"]).status.success());
    assert_eq!(reader.wait_for("store_available"), "store_available ");
    let env = std::fs::read_to_string(dir.path().join("env.store_available")).unwrap();
    assert!(
        env.lines().any(|line| line == "PROVIDER=") && !env.contains("REASON="),
        "{env}"
    );

    // Down already when the daemon starts (a keyring locked at boot): said
    // as soon as the daemon is up.
    daemon.stop();
    store.break_records();
    daemon.restart();
    assert_eq!(reader.wait_for("store_unavailable"), "store_unavailable ");
    store.mend_records();
}

#[test]
fn a_relative_hook_program_is_refused_by_the_config_check() {
    let provider = Provider::rfc8628();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\non_event = [\"hook.sh\"]\n{}",
            provider.config("demo")
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["--check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`on_event`: `hook.sh` must be an absolute path"),
        "{err}"
    );
}

/// A hook program another user could change (writable by all, or in a
/// directory all may write) is refused by `--check`, naming it: tokend runs
/// it as its own user, with the socket at hand, so whoever changes it gets
/// every token and the store's key.
#[test]
fn a_hook_program_others_can_change_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let provider = Provider::rfc8628();
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let hook = bin.join("hook.sh");
    std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\non_event = [\"{}\"]\n{}",
            hook.display(),
            provider.config("demo")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_tokend"))
            .args(["--check", "--config"])
            .arg(&path)
            .output()
            .unwrap()
    };
    for (hook_mode, bin_mode, named) in [(0o777, 0o755, &hook), (0o755, 0o777, &bin)] {
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(hook_mode)).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(bin_mode)).unwrap();
        let out = check();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "`on_event`: tokend will not run `{}`: {} (owner uid",
                hook.display(),
                named.display()
            )) && err.contains("is writable by every user"),
            "{err}"
        );
    }
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A reload that changes a provider's client logs its active session out
/// (the stored tokens are another client's): `on_event` hears
/// `login_required`, as for any session that needs a login. It was only in
/// the log, and the provider's clients just stopped working.
#[test]
fn a_reload_that_logs_a_session_out_runs_the_hook() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, reader) = hook_in(dir.path());
    let provider = Provider::rfc8628();
    let daemon = Daemon::start_with(&provider.config("demo"), with_hook(&hook));
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    reader.wait_for("logged_in demo");
    daemon.write_config(&provider.config("demo").replace(
        "client_id = \"tokend-test\"",
        "client_id = \"another-client\"",
    ));
    support::process::signal(daemon.pid(), rustix::process::Signal::HUP);
    reader.wait_for("login_required demo");
}

/// The program is checked again before each run, not only at start: one
/// that another user may change once the daemon runs (a `chmod 777` by
/// mistake) is not run, and the log says why. tokend runs it as its own
/// user, with the socket at hand.
#[test]
fn a_hook_program_made_writable_after_the_start_is_not_run() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    // `hook_in`'s program, run itself (the check is of the program named,
    // not of a script /bin/sh is given): a `#!` line and the exec bit.
    let (hook, reader) = hook_in(dir.path());
    let script = std::fs::read_to_string(&hook).unwrap();
    std::fs::write(&hook, format!("#!/bin/sh\n{script}")).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ran = dir.path().join("env.logged_in");
    let provider = Provider::rfc8628();
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            daemon_keys: format!("on_event = [\"{}\"]\n", hook.display()),
            ..DaemonOptions::default()
        },
    );
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    reader.wait_for("logged_in demo");
    std::fs::remove_file(&ran).expect("the first run's environment");

    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(daemon.tokenctl(&["logout", "demo"]).status.success());
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let refused = daemon.wait_for_log(1, &["tokend will not run", "hook.sh"]);
    assert!(refused[0].contains("writable by every user"), "{refused:?}");
    assert!(!ran.exists(), "the changed program ran");
}
