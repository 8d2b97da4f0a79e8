//! `tokenctl exec`: a command runs with a fresh token in its environment,
//! through the real daemon; tokenctl becomes the command, so the command's
//! exit status is tokenctl's, and the token is never on a command line.

use crate::support;

use std::process::Output;

use support::daemon::{Daemon, login, stderr, stdout};
use support::provider::Provider;

fn logged_in() -> (Provider, Daemon) {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    (provider, daemon)
}

fn exec(daemon: &Daemon, args: &[&str]) -> Output {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    daemon.tokenctl(&all)
}

#[test]
fn the_command_gets_the_token_in_its_environment_and_its_status_is_passed_on() {
    let (provider, daemon) = logged_in();
    // Default variable; the command's own exit status comes back; the
    // command line the command sees (its /proc/PID/cmdline, readable by
    // every local user) has no token.
    let script = r#"printf '%s\n' "$ACCESS_TOKEN"; tr '\0' ' ' < /proc/$$/cmdline; exit 7"#;
    let out = exec(&daemon, &["demo", "--", "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let printed = stdout(&out);
    let mut lines = printed.lines();
    let token = lines.next().unwrap();
    assert!(provider.is_valid_access_token(token), "{printed}");
    assert!(!lines.next().unwrap().contains(token), "{printed}");

    // Another variable, and success.
    let out = exec(
        &daemon,
        &["demo", "--env", "GH_TOKEN", "--", "printenv", "GH_TOKEN"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(provider.is_valid_access_token(stdout(&out).trim()));
}

#[test]
fn nothing_runs_without_a_token_and_bad_input_is_named() {
    let (_provider, daemon) = logged_in();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    // No such provider: the status of `tokenctl token`, and no command.
    let out = exec(&daemon, &["nope", "--", "sh", "-c", &touch]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(!marker.exists(), "the command ran without a token");
    // A variable name that is no name: with `=` in it, or starting with
    // a digit (a shell could not read it); the command does not run.
    for name in ["1BAD=", "1BAD"] {
        let out = exec(&daemon, &["demo", "--env", name, "--", "sh", "-c", &touch]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("is not a variable name"),
            "{name}: {}",
            stderr(&out)
        );
        assert!(!marker.exists(), "{name}: the command ran");
    }
    // A variable the system reads in every program, not the command:
    // the token as PATH left the command unfound ("cannot run sh: No
    // such file or directory", 127); as LD_PRELOAD it ran, the loader
    // printing the token on stderr. Refused, said, nothing run.
    for name in [
        "PATH",
        "LD_PRELOAD",
        "LD_AUDIT",
        "LD_LIBRARY_PATH",
        "BASH_ENV",
        "ENV",
    ] {
        let out = exec(&daemon, &["demo", "--env", name, "--", "sh", "-c", &touch]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let said = stderr(&out);
        assert!(
            said.starts_with(&format!("tokenctl: `--env {name}` would "))
                && said.contains("name another variable (the default is ACCESS_TOKEN)"),
            "{name}: {said}"
        );
        assert!(!marker.exists(), "{name}: the command ran");
    }
    // No such command: 127, as a shell says.
    let out = exec(&daemon, &["demo", "--", "/nonexistent/command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        stderr(&out).contains("cannot run /nonexistent/command"),
        "{}",
        stderr(&out)
    );
    // No command at all: a usage error from the parser.
    let out = exec(&daemon, &["demo"]);
    assert_eq!(out.status.code(), Some(2));
}
