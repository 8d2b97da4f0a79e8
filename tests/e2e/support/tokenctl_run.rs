//! `tokenctl` run against a daemon's socket as a test runs it, the text
//! of what it printed, and the token requests most tests make (kept at
//! their old path, `support::daemon`, too).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use super::daemon::Daemon;

/// Runs the real `tokenctl` against `socket`.
pub fn tokenctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokenctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("TOKEND_SOCKET")
        // Its words as a UTF-8 terminal shows them ("…"), whatever the
        // runner's locale.
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .output()
        .expect("run tokenctl")
}

/// Starts `tokenctl ARGS...` without waiting (for logins that wait), with
/// SIGINT's default action, as from a terminal: a test runner that ignores
/// SIGINT (a background job of a shell without job control) would pass
/// that on, and tokenctl rightly keeps an inherited ignore, so a test's
/// Ctrl-C would do nothing.
pub fn spawn_tokenctl(socket: &Path, args: &[&str]) -> Child {
    Command::new("env")
        .arg("--default-signal=INT")
        .arg(env!("CARGO_BIN_EXE_tokenctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tokenctl")
}

/// stdout of a finished command, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr of a finished command, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Has the daemon refresh `name` now, as after a refusal of its current
/// token (a `token` request naming it as refused); returns the new token.
///
/// # Panics
/// When the daemon gives no new token.
pub fn refresh_now(daemon: &Daemon, name: &str) -> String {
    let stale = token(daemon, name, &[]);
    let mut client = tokend::client::Client::connect(&daemon.socket).expect("connect");
    let fresh = client
        .token_replacing(name, &stale)
        .expect("a new token")
        .access_token;
    assert_ne!(fresh.expose(), stale.as_str(), "no refresh");
    fresh.expose().to_owned()
}

/// `tokenctl token NAME ARGS...`, which must succeed; returns the token.
pub fn token(daemon: &Daemon, name: &str, args: &[&str]) -> String {
    let mut all = vec!["token", name];
    all.extend_from_slice(args);
    let out = daemon.tokenctl(&all);
    assert!(
        out.status.success(),
        "tokenctl token {name} failed ({:?}): {}\nlog:\n{}",
        out.status.code(),
        stderr(&out),
        daemon.log()
    );
    let text = stdout(&out);
    let token = text.strip_suffix('\n').expect("token ends with a newline");
    assert!(!token.is_empty() && !token.contains('\n'), "{text:?}");
    token.to_owned()
}

/// The number after `name=` in one of the daemon's log lines (the fields
/// its debug lines carry, such as `at_unix_us`).
pub fn log_number(line: &str, name: &str) -> Option<u128> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    let digits: String = line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}
