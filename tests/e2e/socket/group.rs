//! A socket shared with a group (`socket_mode = "0660"`, `socket_group`):
//! the directory tokend makes for it lets that group search it, and a
//! directory above that shuts the group out is named at start and by
//! `tokend --check`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::group_name;
use crate::support::daemon::{Daemon, DaemonOptions, stderr};
use crate::support::other_uid::{NOBODY, OtherUser};
use crate::support::provider::Provider;

/// What the warning about a directory that shuts the group out says.
const UNREACHABLE: &str = "but its members cannot reach it";

/// A group this process may give a directory: `nogroup` as root (whose
/// member `nobody` can then try the socket), else one of its
/// supplementary groups, else its own.
fn a_group_to_grant() -> u32 {
    if rustix::process::geteuid().is_root() {
        return NOBODY;
    }
    let own = rustix::process::getegid().as_raw();
    rustix::process::getgroups()
        .ok()
        .and_then(|groups| {
            groups
                .into_iter()
                .map(rustix::fs::Gid::as_raw)
                .find(|gid| *gid != own)
        })
        .unwrap_or(own)
}

/// A daemon whose socket group `gid` may connect to (`socket_mode`
/// "0660"), or, with `mode` "0600", not.
fn start(provider: &Provider, mode: &str, gid: u32) -> Daemon {
    Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            daemon_keys: format!(
                "socket_mode = \"{mode}\"\nsocket_group = \"{}\"\n",
                group_name(gid)
            ),
            ..DaemonOptions::default()
        },
    )
}

/// How many of the daemon's log lines so far warn that `closed` shuts the
/// socket's group out.
fn warnings(daemon: &Daemon, closed: &str) -> usize {
    daemon
        .log()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(UNREACHABLE) && l.contains(closed))
        .count()
}

#[test]
fn the_directory_made_for_a_shared_socket_is_0710_with_its_group() {
    let gid = a_group_to_grant();
    let provider = Provider::rfc8628();
    let mut daemon = start(&provider, "0660", gid);
    // The test's directory holds the config; tokend made `run/` for the socket.
    let dir = daemon.socket.parent().unwrap().to_owned();
    let made = std::fs::metadata(&dir).unwrap();
    assert_eq!(made.mode() & 0o7777, 0o710, "{}", dir.display());
    assert_eq!(made.gid(), gid, "{}", dir.display());
    let socket = std::fs::metadata(&daemon.socket).unwrap();
    assert_eq!(socket.mode() & 0o777, 0o660);
    assert_eq!(socket.gid(), gid);

    // A directory above that shuts the group out (as /run/user/UID does,
    // 0700) is named by --check, and by the daemon as it starts.
    std::fs::set_permissions(daemon.dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let closed = format!("{} (mode 0700", daemon.dir.path().display());
    let check = daemon.tokend(&["--check"]);
    assert!(check.status.success(), "{}", stderr(&check));
    let said = stderr(&check);
    assert!(
        said.contains(UNREACHABLE) && said.contains(&closed),
        "{said}"
    );
    assert!(said.contains("set `socket` in [daemon]"), "{said}");
    let before = warnings(&daemon, &closed);
    daemon.stop();
    daemon.restart();
    daemon.wait_for_log(before + 1, &["WARN", UNREACHABLE, &closed]);

    // Once the group may search it, nothing is in the way.
    std::fs::set_permissions(daemon.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let check = daemon.tokend(&["--check"]);
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(!stderr(&check).contains(UNREACHABLE), "{}", stderr(&check));
    // And a member of the group reaches the socket through `run/` (0710),
    // which it cannot list.
    if gid != NOBODY {
        return;
    }
    let Some(nobody) =
        OtherUser::nobody_or_skip("the_directory_made_for_a_shared_socket_is_0710_with_its_group")
    else {
        return;
    };
    let status = nobody
        .command("tokenctl")
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["--json", "status"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
    let listed = nobody.command("ls").arg(&dir).output().unwrap();
    assert!(!listed.status.success(), "nobody listed {}", dir.display());
}

#[test]
fn a_socket_only_its_owner_may_use_warns_of_no_directory() {
    let provider = Provider::rfc8628();
    // A group named, but the mode does not let it connect.
    let mut daemon = start(&provider, "0600", a_group_to_grant());
    let dir = daemon.socket.parent().unwrap();
    let mode = std::fs::metadata(dir).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o700, "{}", dir.display());
    std::fs::set_permissions(daemon.dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let check = daemon.tokend(&["--check"]);
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(!stderr(&check).contains(UNREACHABLE), "{}", stderr(&check));
    // A start after the closing: READY came after the bind, and its log
    // holds no warning.
    daemon.stop();
    daemon.restart();
    assert!(!daemon.log().contains(UNREACHABLE), "{}", daemon.log());
}

/// A uid over its connection cap (64) is refused at every further
/// connection, with an answer each, but the log gets a few lines a minute:
/// a line per refusal let any user with the socket flood the journal
/// (3,000 lines in a third of a second).
#[test]
fn refusals_over_the_connection_cap_are_logged_a_few_a_minute() {
    let Some(nobody) =
        OtherUser::nobody_or_skip("refusals_over_the_connection_cap_are_logged_a_few_a_minute")
    else {
        return;
    };
    let provider = Provider::rfc8628();
    let daemon = start(&provider, "0660", NOBODY);
    std::fs::set_permissions(daemon.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = r"
import socket, sys
path = sys.argv[1]
held = []
for _ in range(64):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    held.append(s)
refused = 0
for i in range(100):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    # A connection taken in waits for a request: its readline would
    # block for ever. Bounded, so that the test fails rather than hangs.
    s.settimeout(30)
    try:
        line = s.makefile('rb').readline()
    except socket.timeout:
        sys.exit(f'connection {65 + i} got no answer: taken in, not refused')
    if b'connections already' in line:
        refused += 1
    s.close()
print(refused)
";
    let out = nobody
        .command("python3")
        .args(["-c", script])
        .arg(&daemon.socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "100");
    daemon.wait_for_log(1, &["refused a connection"]);
    let lines = daemon
        .log()
        .lines()
        .filter(|l| l.contains("refused a connection"))
        .count();
    assert!(
        lines <= 10,
        "{lines} log lines for 100 refusals:\n{}",
        daemon.log()
    );
}

/// A user service shared with another user (the README's tmpfiles line
/// and `socket_group`): the daemon runs as its user (here `nobody`), not
/// as root, the caller or `tokend`, so tokenctl refuses its socket until
/// told whose it is (`--socket-owner`, `TOKEND_SOCKET_OWNER`); then it
/// talks to it. A name no user has is a usage error, before any connect.
#[test]
fn tokenctl_talks_to_a_shared_user_service_it_is_told_of() {
    if OtherUser::nobody_or_skip("tokenctl_talks_to_a_shared_user_service_it_is_told_of").is_none()
    {
        return;
    }
    let provider = Provider::rfc8628();
    let daemon = Daemon::start_with(&provider.config("demo"), DaemonOptions::run_as(NOBODY));
    let refused = daemon.tokenctl(&["--json", "status"]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("name them with --socket-owner or TOKEND_SOCKET_OWNER"),
        "{}",
        stderr(&refused)
    );
    for owner in ["nobody", "65534"] {
        let status = daemon.tokenctl(&["--socket-owner", owner, "--json", "status"]);
        assert!(status.status.success(), "{}", stderr(&status));
        assert!(
            String::from_utf8_lossy(&status.stdout).contains("\"demo\""),
            "{}",
            String::from_utf8_lossy(&status.stdout)
        );
    }
    let by_variable = std::process::Command::new(env!("CARGO_BIN_EXE_tokenctl"))
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["--json", "status"])
        .env("TOKEND_SOCKET_OWNER", "nobody")
        .output()
        .unwrap();
    assert!(by_variable.status.success(), "{}", stderr(&by_variable));
    let unknown = daemon.tokenctl(&["--socket-owner", "no-such-user-here", "status"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(
        stderr(&unknown).contains("no user named `no-such-user-here`"),
        "{}",
        stderr(&unknown)
    );
}

/// A `socket_group` the daemon's user is not in: it cannot give the
/// socket's directory that group, which a start again cannot cure, so the
/// daemon exits 2 (the units do not restart it) saying why and what to
/// do, where it exited 1 with a bare "Operation not permitted" and was
/// restarted until systemd's start limit.
#[test]
fn a_socket_group_the_daemon_is_not_in_stops_the_start_saying_why() {
    let Some(nobody) =
        OtherUser::nobody_or_skip("a_socket_group_the_daemon_is_not_in_stops_the_start_saying_why")
    else {
        return;
    };
    let provider = Provider::rfc8628();
    // Group `users` (100): `nobody` is not in it.
    let mut daemon = Daemon::spawn_with(
        &provider.config("demo"),
        DaemonOptions {
            daemon_keys: "socket_mode = \"0660\"\nsocket_group = \"users\"\n".into(),
            ..DaemonOptions::run_as(NOBODY)
        },
    );
    let status = daemon.wait_for_exit(std::time::Duration::from_secs(60));
    let log = daemon.log();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains("the group `users` (`socket_group`): the daemon's user is not in that group"),
        "{log}"
    );
    assert!(log.contains("set-group-ID"), "{log}");
    // `tokend --check`, run as the daemon's user, says so beforehand.
    let check = nobody
        .command("tokend")
        .arg("--check")
        .arg("--config")
        .arg(&daemon.config)
        .env("XDG_RUNTIME_DIR", daemon.dir.path())
        .output()
        .unwrap();
    let said = stderr(&check);
    assert!(
        said.contains("warning: socket_group `users`: this user is not in that group"),
        "{said}"
    );
}

/// A provider granted to a group (`allow_groups`) serves a user whose
/// primary group it is over the socket (the peer's gid from its
/// credentials; `nogroup` lists no members), where tokenctl and the
/// credential helpers ask; a provider granted to another group stays
/// unknown to that user. Only D-Bus had this checked.
#[test]
fn a_group_grant_by_primary_group_holds_on_the_socket() {
    let Some(nobody) =
        OtherUser::nobody_or_skip("a_group_grant_by_primary_group_holds_on_the_socket")
    else {
        return;
    };
    let provider = Provider::rfc8628();
    let config = format!(
        "{}{}",
        provider.config_with("grouped", &format!("allow_groups = [{NOBODY}]")),
        provider.config_with("others", "allow_groups = [2]"),
    );
    let daemon = Daemon::start_with(
        &config,
        DaemonOptions {
            daemon_keys: format!(
                "socket_mode = \"0660\"\nsocket_group = \"{}\"\n",
                group_name(NOBODY)
            ),
            ..DaemonOptions::default()
        },
    );
    std::fs::set_permissions(daemon.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut tokens = Vec::new();
    for name in ["grouped", "others"] {
        tokens.push(crate::support::daemon::login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        }));
    }
    let token_as_nobody = |name: &str| {
        nobody
            .command("tokenctl")
            .arg("--socket")
            .arg(&daemon.socket)
            .args(["token", name])
            .output()
            .unwrap()
    };
    let out = token_as_nobody("grouped");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        tokens[0].as_str()
    );
    let out = token_as_nobody("others");
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}
