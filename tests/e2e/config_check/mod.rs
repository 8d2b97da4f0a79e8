//! `tokend --check` and start-up with bad configs: every problem listed as
//! `file:line:col: message`, non-zero exit, and no half-started daemon.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

mod name_service;

fn tokend(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tokend")
}

#[test]
fn check_lists_every_problem_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[daemon]\nbus = \"sesion\"\n\n[providers.gh]\nclientid = \"x\"\ntoken_endpoint = \"http://example.com/token\"\n",
    )
    .unwrap();
    let out = tokend(&["--check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for expected in [
        format!("{file}:2:7: `bus` must be \"session\", \"system\" or \"none\", not \"sesion\""),
        format!("{file}:4:1: missing key `client_id` in [providers.gh]"),
        format!("{file}:5:1: unknown key `clientid` in [providers.gh]; did you mean `client_id`?"),
        format!("{file}:6:18: `token_endpoint` uses plain http:// to a host that is not loopback"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("not starting"), "{err}");
    assert!(out.stdout.is_empty());
}

/// The file's text a message quotes (a provider's name here) is shown
/// escaped: an escape sequence in it reached the terminal raw.
#[test]
fn check_shows_control_characters_of_the_file_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("esc.toml");
    std::fs::write(
        &path,
        "[providers.\"esc\\u001b[31mred\"]\nclient_id = \"x\"\n",
    )
    .unwrap();
    let out = tokend(&["--check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid provider name \"esc\\u{1b}[31mred\"") && !err.contains('\u{1b}'),
        "{err:?}"
    );
}

#[test]
fn a_bad_config_never_starts_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tokend.sock");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\nsocket = \"{}\"\nbus = \"none\"\n[providers.x]\nclient_id = 1\n",
            socket.display()
        ),
    )
    .unwrap();
    let out = tokend(&["--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !socket.exists(),
        "a half-configured daemon created its socket"
    );
}

/// `--check` says who holds which role on each provider.
#[test]
fn check_explains_the_roles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roles.toml");
    std::fs::write(
        &path,
        "[providers.gh]\ndevice_authorization_endpoint = \"https://github.com/login/device/code\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"Iv1\"\nallow_users = [2000, 2001]\nmanage_users = [1001]\n[providers.other]\ndevice_authorization_endpoint = \"https://x.example/d\"\ntoken_endpoint = \"https://x.example/t\"\nclient_id = \"c\"\n",
    )
    .unwrap();
    let out = tokend(&["--check", "--config", path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("  gh: manage: root, the daemon's user, uid 1001; use: uid 2000, uid 2001"),
        "{text}"
    );
    assert!(
        text.contains("  other: manage: root, the daemon's user; use: nobody else"),
        "{text}"
    );
    // A name that is no user is an error at its position.
    std::fs::write(
        &path,
        "[providers.gh]\ndevice_authorization_endpoint = \"https://github.com/login/device/code\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"Iv1\"\nmanage_users = [\"no-such-user-here\"]\n",
    )
    .unwrap();
    let out = tokend(&["--check", "--config", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("roles.toml:5:")
            && err.contains("`manage_users`: no user named `no-such-user-here`"),
        "{err}"
    );
}

#[test]
fn check_accepts_a_valid_config_and_shows_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(
        &path,
        "[daemon]\nsocket = \"/run/tokend-test/t.sock\"\n[providers.gh]\ndevice_authorization_endpoint = \"https://github.com/login/device/code\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"Iv1\"\nclient_secret = \"s\"\nclient_auth = \"none\"\n",
    )
    .unwrap();
    let out = tokend(&["--check", "--config", path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (1 provider)"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: a client secret is set but"));
}

#[test]
fn a_missing_config_file_is_named() {
    let out = tokend(&["--check", "--config", "/nonexistent/tokend.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/tokend.toml: cannot read the config"),
        "{err}"
    );
}

#[test]
fn the_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["--check", "--config", example])
        .env("XDG_RUNTIME_DIR", "/run/user/1000")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tokend --check --config CONFIG` in a mount namespace of its own, with
/// each `(file, over)` of `binds` mounted over `over` (the machine's own
/// files untouched): its status, and its stdout and stderr together.
pub(crate) fn check_with_binds(binds: &[(&Path, &str)], config: &Path) -> (bool, String) {
    let mounts: Vec<String> = binds
        .iter()
        .map(|(file, over)| format!("mount --bind {} {over}", file.display()))
        .collect();
    let script = format!(
        "{} && exec {} --check --config {}",
        mounts.join(" && "),
        env!("CARGO_BIN_EXE_tokend"),
        config.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), all)
}

/// A `RUST_LOG` that is not log directives (`verbose`) does not silence the
/// daemon: it is ignored, the log says so, and the config's level holds.
#[test]
fn a_bad_rust_log_is_ignored_and_said() {
    use crate::support::daemon::{Daemon, DaemonOptions};
    use crate::support::provider::Provider;
    let provider = Provider::rfc8628();
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            env: vec![("RUST_LOG".into(), "verbose".into())],
            ..DaemonOptions::default()
        },
    );
    let said = daemon.wait_for_log(1, &["RUST_LOG is ignored", "`verbose` is neither"]);
    assert!(said[0].contains("WARN"), "{said:?}");
    // The default level (info) still logs: the start-up line is there.
    assert!(daemon.log().contains(" INFO "), "{}", daemon.log());
}

/// `tokend --check | head -1`: a reader that leaves early is no error of
/// the config, and no panic (println! panicked on the closed pipe).
#[test]
fn check_into_a_closed_pipe_still_answers_by_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(
        &path,
        "[providers.a]\ndevice_authorization_endpoint = \"https://x/d\"\ntoken_endpoint = \"https://x/t\"\nclient_id = \"c\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A pipe whose reading end is closed before tokend writes.
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["--check", "--config", path.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A regular file at the configured socket path is never removed: before,
/// tokend took anything that refused a connection for a stale socket,
/// deleted it and put its socket there. `--check` says so too.
#[test]
fn a_file_at_the_socket_path_is_refused_not_removed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let precious = dir.path().join("precious.txt");
    std::fs::write(&precious, "important\n").unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\nsocket = \"{}\"\nbus = \"none\"\nstore = \"memory\"\n",
            precious.display()
        ),
    )
    .unwrap();
    let expected = format!("{} exists and is not a socket", precious.display());
    let check = tokend(&["--check", "--config", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(2), "{err}");
    assert!(err.contains(&expected), "{err}");
    // Ending as every refused check ends.
    assert_eq!(
        err.lines().last(),
        Some("tokend: the config has 1 error; not starting"),
        "{err}"
    );
    // Exit 2 as --check's: only a person can cure it, so the units do not
    // restart it.
    let run = tokend(&["--config", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(err.contains(&expected), "{err}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "important\n");
}

/// A daemon that cannot reach its bus exits leaving no socket that nothing
/// answers, and says why once (the cause was repeated three times).
#[test]
fn a_start_that_fails_on_the_bus_leaves_no_socket() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = dir.path().join("tokend.sock");
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\nsocket = \"{}\"\nbus = \"session\"\nstore = \"memory\"\n",
            socket.display()
        ),
    )
    .unwrap();
    let missing = dir.path().join("no-bus-here");
    let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["--config", path.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}", missing.display()),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot connect to the session bus"), "{err}");
    let cause = "No such file or directory";
    assert_eq!(err.matches(cause).count(), 1, "{err}");
    assert!(!socket.exists(), "a socket nothing answers was left behind");
}

/// Under systemd (stderr is the journal, `JOURNAL_STREAM` names it), the
/// lines that say why the daemon did not start carry the error priority
/// (`<3>`): the journal files unprefixed lines as "info", and
/// `journalctl -p err` showed nothing.
#[test]
fn under_the_journal_start_up_errors_are_errors() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[daemon]\nbogus = 1\n").unwrap();
    let log_path = dir.path().join("stderr");
    let log = std::fs::File::create(&log_path).unwrap();
    let meta = log.metadata().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["--config", path.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(log)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
    let err = std::fs::read_to_string(&log_path).unwrap();
    assert!(!err.is_empty());
    for line in err.lines() {
        let priority = if line.contains(": warning: ") {
            "<4>"
        } else {
            "<3>"
        };
        assert!(line.starts_with(priority), "{err}");
    }
    assert!(err.contains("<3>"), "{err}");
    assert!(err.contains("unknown key `bogus`"), "{err}");
}

/// A user's tokend started without `$HOME` or `$XDG_CONFIG_HOME` (`env -i`)
/// looks for its config under the home directory of the password
/// database, not under `.config` of whatever directory it runs in.
#[test]
fn without_home_the_default_config_is_under_the_users_home() {
    let Some(nobody) =
        crate::support::other_uid::OtherUser::nobody_or_skip("without_home_the_default_config")
    else {
        return;
    };
    let out = nobody
        .command("tokend")
        .arg("--check")
        .env_clear()
        .current_dir("/")
        .output()
        .expect("run tokend as nobody");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with('/'), "a relative config path: {err}");
    assert!(err.contains("/.config/tokend/config.toml"), "{err}");
}

/// The README's `tokend --check` example prints what the README shows,
/// line for line (a warning added since had made it untrue).
#[test]
fn the_readmes_check_example_is_what_check_prints() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split_once("Check a config without starting anything.")
        .expect("the README's --check example")
        .1;
    let block = |fence: &str, text: &str| -> String {
        let start = text.find(fence).expect(fence) + fence.len();
        let end = text[start..].find("```").expect("a closing fence");
        text[start..start + end].trim_start_matches('\n').to_owned()
    };
    let toml = block("```toml", section);
    let console = block("```console", section);
    let mut lines = console.lines();
    let command = lines.next().unwrap();
    assert_eq!(command, "$ tokend --check --config bad.toml");
    let expected: Vec<&str> = lines.collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["--check", "--config", "bad.toml"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("run tokend");
    assert_eq!(out.status.code(), Some(2));
    let printed = String::from_utf8_lossy(&out.stderr);
    // Less what depends on where this test's file is and who checks it
    // (root, on a machine with the system service's user, is told that
    // the service would not see a file under /tmp).
    let printed_lines: Vec<&str> = printed
        .lines()
        .filter(|line| !line.contains("cannot be read by its daemon"))
        .collect();
    assert_eq!(printed_lines, expected, "{printed}");
}
