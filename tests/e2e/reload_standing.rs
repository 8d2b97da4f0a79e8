//! What the daemon has not taken from its config file, said where a person
//! looks after `systemctl reload`, not only in the log: a reload refused
//! (an invalid file) and `[daemon]` keys that wait for a restart, in
//! systemd's `STATUS=`, `tokenctl status`, `status --check` and the
//! metrics; and cleared by the next good reload.

use crate::support;

use support::daemon::{Daemon, login, stderr, stdout};
use support::openmetrics::parse;
use support::provider::Provider;

/// `tokenctl status --check`: exit status and output.
fn check(daemon: &Daemon) -> (Option<i32>, String) {
    let out = daemon.tokenctl(&["status", "--check"]);
    (out.status.code(), stdout(&out))
}

fn gauge(daemon: &Daemon, name: &str) -> Option<f64> {
    let out = daemon.tokenctl(&["metrics"]);
    assert!(out.status.success(), "{}", stderr(&out));
    parse(&stdout(&out)).expect("OpenMetrics").value(name, &[])
}

/// The `STATUS=` of the reload's `READY=1`.
fn status_after_reload(daemon: &mut Daemon) -> String {
    daemon.reload();
    daemon.wait_for_notification("READY=1")
}

#[test]
fn a_refused_reload_and_a_restart_needed_are_said_until_mended() {
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start(&provider.config("demo"));
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let good = std::fs::read_to_string(&daemon.config).unwrap();
    assert_eq!(check(&daemon), (Some(0), String::new()));
    assert_eq!(
        gauge(&daemon, "tokend_config_last_reload_successful"),
        Some(1.0)
    );

    // An invalid file: refused, the daemon runs on, and says so.
    std::fs::write(&daemon.config, format!("{good}\nno_such_key = 1\n")).unwrap();
    let status = status_after_reload(&mut daemon);
    assert!(
        status.contains("the last reload failed (see the log)"),
        "{status}"
    );
    let said = stdout(&daemon.tokenctl(&["status"]));
    assert!(said.contains("config: the last reload, at "), "{said}");
    assert!(
        said.contains("was refused: the file could not be read, is invalid"),
        "{said}"
    );
    let (code, problems) = check(&daemon);
    assert_eq!(code, Some(1), "{problems}");
    assert!(problems.contains("config: the last reload"), "{problems}");
    assert_eq!(
        gauge(&daemon, "tokend_config_last_reload_successful"),
        Some(0.0)
    );

    // Valid again, but with a [daemon] key only a restart applies.
    let changed = good.replacen("[daemon]\n", "[daemon]\nhttp_timeout = 7\n", 1);
    assert_ne!(changed, good, "no [daemon] table in {good}");
    std::fs::write(&daemon.config, changed).unwrap();
    let status = status_after_reload(&mut daemon);
    assert!(!status.contains("reload failed"), "{status}");
    assert!(
        status.contains("a restart is needed for http_timeout"),
        "{status}"
    );
    let (code, problems) = check(&daemon);
    assert_eq!(code, Some(1), "{problems}");
    assert!(
        problems.contains("config: [daemon] http_timeout changed in the file"),
        "{problems}"
    );
    assert_eq!(
        gauge(&daemon, "tokend_config_last_reload_successful"),
        Some(1.0)
    );
    assert_eq!(gauge(&daemon, "tokend_config_restart_needed"), Some(1.0));

    // The file as the daemon runs it: nothing left to say.
    std::fs::write(&daemon.config, &good).unwrap();
    let status = status_after_reload(&mut daemon);
    assert!(!status.contains("restart"), "{status}");
    assert_eq!(check(&daemon), (Some(0), String::new()));
    assert_eq!(gauge(&daemon, "tokend_config_restart_needed"), Some(0.0));
}

/// What the daemon has not taken from its file is the daemon's, shown as
/// its store is: to a user who may see a provider, not to one with no
/// role on any (who learns nothing of the daemon).
#[test]
fn the_config_standing_is_shown_only_to_users_who_see_a_provider() {
    use std::os::unix::fs::PermissionsExt as _;
    use support::daemon::DaemonOptions;
    use support::other_uid::{NOBODY, OtherUser};

    let Some(nobody) =
        OtherUser::nobody_or_skip("the_config_standing_is_shown_only_to_users_who_see_a_provider")
    else {
        return;
    };
    let provider = Provider::rfc8628();
    let mine = provider.config("mine");
    let mut daemon = Daemon::start_with(
        &mine,
        DaemonOptions {
            daemon_keys: crate::socket::socket_shared_with_nobody(),
            ..DaemonOptions::default()
        },
    );
    for dir in [daemon.dir.path(), daemon.socket.parent().unwrap()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let good = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(&daemon.config, format!("{good}\nno_such_key = 1\n")).unwrap();
    daemon.reload();
    let socket = daemon.socket.clone();
    let as_nobody = |args: &[&str]| {
        nobody
            .command("tokenctl")
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .output()
            .unwrap()
    };
    // No role on any provider: nothing of the daemon.
    let status = as_nobody(&["status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(!stdout(&status).contains("config:"), "{}", stdout(&status));
    let check = as_nobody(&["status", "--check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
    // A role on one (the file mended with it, then broken again): told.
    let shared = provider.config_with("shared", &format!("allow_users = [{NOBODY}]"));
    daemon.write_config(&format!("{mine}{shared}"));
    daemon.reload();
    let with_role = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(&daemon.config, format!("{with_role}\nno_such_key = 1\n")).unwrap();
    daemon.reload();
    let status = as_nobody(&["status"]);
    assert!(
        stdout(&status).contains("config: the last reload, at "),
        "{}",
        stdout(&status)
    );
}

/// A reload that finds the file with no provider at all (truncated by an
/// editor or a config tool that then writes it, and the reload caught it
/// between) is refused: taken, it removed every provider, and with the
/// memory store every session was gone for good.
#[test]
fn a_reload_to_no_provider_is_refused_and_the_sessions_stay() {
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start(&provider.config("demo"));
    let token = login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let good = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(&daemon.config, "").unwrap();
    let status = status_after_reload(&mut daemon);
    assert!(
        status.contains("the last reload failed (see the log)"),
        "{status}"
    );
    assert!(
        daemon.log().contains("the new config has no providers"),
        "{}",
        daemon.log()
    );
    let out = daemon.tokenctl(&["token", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), token);
    // The file mended: a reload takes it, and the session is as it was.
    std::fs::write(&daemon.config, &good).unwrap();
    let status = status_after_reload(&mut daemon);
    assert!(!status.contains("reload failed"), "{status}");
    assert_eq!(stdout(&daemon.tokenctl(&["token", "demo"])).trim(), token);
}

/// A reload that cannot read the file (gone, or the daemon out of file
/// descriptors) says so and runs on: it was logged as an invalid file,
/// which `tokend --check` then called valid.
#[test]
fn a_reload_that_cannot_read_the_file_says_so() {
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start(&provider.config("demo"));
    let good = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::remove_file(&daemon.config).unwrap();
    let status = status_after_reload(&mut daemon);
    assert!(
        status.contains("the last reload failed (see the log)"),
        "{status}"
    );
    let log = daemon.log();
    assert!(
        log.contains("cannot read the config: No such file or directory")
            && log
                .contains("still running with the previous one (reload again once it can be read)")
            && !log.contains("the new config is invalid"),
        "{log}"
    );
    // Readable again: the next reload takes it.
    std::fs::write(&daemon.config, good).unwrap();
    std::fs::set_permissions(
        &daemon.config,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let status = status_after_reload(&mut daemon);
    assert!(!status.contains("reload failed"), "{status}");
    // Both ends of a reload carry their event, for `journalctl EVENT=`.
    let log = daemon.log();
    assert!(
        log.contains("reloading the config")
            && log.contains("event=\"reload_started\"")
            && log.contains("config reloaded")
            && log.contains("event=\"reloaded\""),
        "{log}"
    );
}
