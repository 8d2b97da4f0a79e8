//! A user's daemon and tokenctl started without `XDG_RUNTIME_DIR` (cron,
//! `sudo -u`, an ssh command) meet in the runtime directory logind made
//! for the user, `/run/user/UID`: the daemon used to refuse to start for
//! want of a socket path while tokenctl looked there.
//!
//! A directory variable that is not an absolute path is ignored, and said.
//!
//! The tests of `/run/user` run in a mount namespace of their own with a fresh tmpfs on
//! `/run/user` (`unshare -m`), so the machine's runtime directories are
//! neither seen nor touched; `nobody` stands for the user.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support;
use support::other_uid::{NOBODY, OtherUser};

/// The script run in the private mount namespace: the user's runtime
/// directory made as logind makes it, the daemon started as the user with
/// an environment of nothing but `PATH` (as cron's, near enough), and
/// tokenctl asked for the status the same way. The wait for the socket is
/// bounded (30 s).
const SCRIPT: &str = r#"set -e
mount -t tmpfs tokend-e2e /run/user
if [ -n "$MAKE_RUNTIME_DIR" ]; then
    mkdir -m 0700 "/run/user/$USER_ID"
    chown "$USER_ID:$USER_ID" "/run/user/$USER_ID"
fi
# `exec`: the daemon started in the background is this very process, the
# one `$!` names and `kill` stops (not a subshell around it).
as_user() { exec setpriv --reuid="$USER_ID" --regid="$USER_ID" --clear-groups env -i PATH=/usr/bin:/bin HOME=/nonexistent "$@"; }
(as_user "$TOKEND" --config "$CONFIG" 2>"$LOG" >/dev/null) &
daemon=$!
i=0
while [ ! -S "/run/user/$USER_ID/tokend/tokend.sock" ] && kill -0 "$daemon" 2>/dev/null && [ "$i" -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
status=0
(as_user "$TOKENCTL" status) || status=$?
kill "$daemon" 2>/dev/null || true
wait "$daemon" || true
exit "$status"
"#;

/// Runs [`SCRIPT`]; `None` (the test skipped, said) where this process
/// may not make a mount namespace or switch uid.
fn run(test: &str, make_runtime_dir: bool) -> Option<(std::process::Output, String)> {
    let nobody = OtherUser::nobody_or_skip(test)?;
    let probe = Command::new("unshare").args(["-m", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        support::skip::say(format_args!(
            "SKIPPED {test}: needs `unshare -m` (a mount namespace of its own)"
        ));
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[daemon]\nbus = \"none\"\nstore = \"memory\"\n\n[providers.demo]\ndialect = \"rfc8628\"\n\
         client_id = \"demo\"\ndevice_authorization_endpoint = \"https://127.0.0.1:1/device\"\n\
         token_endpoint = \"https://127.0.0.1:1/token\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = dir.path().join("tokend.log");
    let out = Command::new("timeout")
        .args(["60", "unshare", "-m", "sh", "-c", SCRIPT])
        .env("USER_ID", NOBODY.to_string())
        .env("MAKE_RUNTIME_DIR", if make_runtime_dir { "1" } else { "" })
        .env("TOKEND", nobody.binary("tokend"))
        .env("TOKENCTL", nobody.binary("tokenctl"))
        .env("CONFIG", &config)
        .env("LOG", &log)
        .output()
        .unwrap();
    Some((out, std::fs::read_to_string(&log).unwrap_or_default()))
}

#[test]
fn without_xdg_runtime_dir_the_daemon_and_tokenctl_meet_in_run_user() {
    let Some((out, log)) = run(
        "without_xdg_runtime_dir_the_daemon_and_tokenctl_meet_in_run_user",
        true,
    ) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("demo") && stdout.contains("logged_out"),
        "{}\n{stdout}\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        log.contains(&format!("socket=/run/user/{NOBODY}/tokend/tokend.sock")),
        "{log}"
    );
}

/// Without a runtime directory either, the start names both places it
/// looked and what to do.
#[test]
fn without_any_runtime_directory_the_start_says_where_it_looked() {
    let Some((out, log)) = run(
        "without_any_runtime_directory_the_start_says_where_it_looked",
        false,
    ) else {
        return;
    };
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("XDG_RUNTIME_DIR is not set")
            && log.contains(&format!("there is no /run/user/{NOBODY}"))
            && log.contains("set `socket` in [daemon]"),
        "{log}"
    );
}

/// A directory variable that is not an absolute path is ignored, as the
/// XDG spec says, and said: a relative `XDG_STATE_HOME` that an older
/// tokend used held sessions that a start now does not find.
#[test]
fn a_relative_directory_variable_is_said_to_be_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[daemon]\nbus = \"none\"\nstore = \"memory\"\nsocket = \"/run/tokend-e2e-unused/tokend.sock\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["--check", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .env("XDG_STATE_HOME", ".state")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("XDG_STATE_HOME=.state is not an absolute path and is ignored"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["--check", "--config"])
        .arg(&config)
        .env("XDG_STATE_HOME", dir.path())
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("is ignored"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
