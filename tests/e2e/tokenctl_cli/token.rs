//! `tokenctl token`: the token alone on stdout, the failures' exit codes,
//! and where the socket is looked for.

use super::*;

#[test]
fn token_prints_exactly_the_token() {
    let daemon = CannedDaemon::answering(vec![json(&Answer::success(TokenAnswer {
        access_token: Secret::from("gho_tok3n"),
        token_type: "Bearer".into(),
        expires_at: Some(1_790_000_000),
    }))]);
    let output = run_with_socket(&daemon.socket(), &["token", "github", "--min-valid", "300"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(output.stdout, b"gho_tok3n\n");
    assert!(output.stderr.is_empty(), "{output:?}");
    assert_eq!(
        daemon.requests(),
        [Request::Token {
            provider: "github".into(),
            min_valid: Some(300),
            refused: None,
        }]
    );
}

/// A token with a control character (from a foreign or older daemon) is
/// not printed: a newline or escape would split or corrupt the header a
/// script builds from it. Exit 1, nothing on stdout, and the reason said.
#[test]
fn a_token_with_a_control_character_is_refused() {
    let daemon = CannedDaemon::answering(vec![json(&Answer::success(TokenAnswer {
        access_token: Secret::from("gho_tok\u{1b}[2J3n"),
        token_type: "Bearer".into(),
        expires_at: None,
    }))]);
    let output = run_with_socket(&daemon.socket(), &["token", "github"]);
    daemon.requests();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    assert!(
        text(&output.stderr).contains("unusable token"),
        "{output:?}"
    );
}

/// Runs `token github` against a daemon answering `code`, returning the output.
fn token_failure(code: ErrorCode, message: &str) -> Output {
    let daemon = CannedDaemon::answering(vec![error_line(code, message)]);
    let output = run_with_socket(&daemon.socket(), &["token", "github"]);
    daemon.requests();
    assert!(output.stdout.is_empty(), "{output:?}");
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr,
        format!("tokenctl: {message}\n"),
        "one line, not doubled"
    );
    output
}

#[test]
fn token_failures_have_distinct_exit_codes() {
    let cases = [
        (
            ErrorCode::LoginRequired,
            4,
            "provider `github`: login required — run `tokenctl login github`",
        ),
        (
            ErrorCode::AccessDenied,
            5,
            "provider `github`: this user may not use it",
        ),
        (
            ErrorCode::ProviderUnavailable,
            6,
            "provider `github`: token endpoint unreachable, retry later",
        ),
        (
            ErrorCode::UnknownProvider,
            7,
            "no provider `github` in the config",
        ),
        (ErrorCode::Internal, 1, "something broke"),
    ];
    for (code, status, message) in cases {
        let output = token_failure(code, message);
        assert_eq!(output.status.code(), Some(status), "{code:?}: {output:?}");
    }
}

#[test]
fn no_daemon_is_exit_3_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tokend.sock");
    let output = run_with_socket(&socket, &["token", "github"]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(stderr.contains(&socket.display().to_string()), "{stderr}");
    // Named with --socket: the advice is about that path.
    assert!(stderr.contains("no tokend listens there"), "{stderr}");
    assert!(!stderr.contains("pass --socket"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // A socket file left behind by a daemon that is gone.
    drop(UnixListener::bind(&socket).unwrap());
    let output = run_with_socket(&socket, &["status"]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
}

#[test]
fn socket_from_environment_and_option() {
    let token = json(&Answer::success(TokenAnswer {
        access_token: Secret::from("from-env"),
        token_type: "Bearer".into(),
        expires_at: None,
    }));
    let daemon = CannedDaemon::answering(vec![token.clone()]);
    let output = tokenctl()
        .env("TOKEND_SOCKET", daemon.socket())
        .args(["token", "github"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(output.stdout, b"from-env\n");
    daemon.requests();

    // --socket wins over the environment.
    let daemon = CannedDaemon::answering(vec![token]);
    let output = tokenctl()
        .env("TOKEND_SOCKET", "/nonexistent/tokend.sock")
        .arg("--socket")
        .arg(daemon.socket())
        .args(["token", "github"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    daemon.requests();
}

/// `$RUNTIME_DIRECTORY` is the runtime directory of the unit tokenctl runs
/// in, not the daemon's: tokenctl does not look for the socket there (it
/// did, and a service with a `RuntimeDirectory=` of its own could not reach
/// the user's daemon). Where it looks instead is a unit test of
/// `Environment::client_socket_path` (this test runs as root, whose
/// default is the system daemon's socket).
#[test]
fn the_runtime_directory_of_the_callers_unit_is_not_searched() {
    let daemon = CannedDaemon::answering(status_stream(&[]));
    let output = tokenctl()
        .env("RUNTIME_DIRECTORY", daemon.dir.path())
        .args(["status", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains(&daemon.dir.path().display().to_string()),
        "{stderr}"
    );
    assert!(
        daemon.requests().is_empty(),
        "tokenctl used $RUNTIME_DIRECTORY"
    );
}

/// A usage error's `Usage:` line is the verb's own when `TOKEND_SOCKET` is
/// set: clap showed the variable's `--socket <PATH>` there as if it were
/// required. The exit status and the error are as without the variable.
#[test]
fn a_usage_error_beside_the_socket_variable_shows_the_verbs_own_usage() {
    let unset = tokenctl().args(["token"]).output().unwrap();
    let set = tokenctl()
        .env("TOKEND_SOCKET", "/run/tokend/elsewhere.sock")
        .args(["token"])
        .output()
        .unwrap();
    let stderr = text(&set.stderr);
    assert!(stderr.contains("Usage: tokenctl token <NAME>"), "{stderr}");
    assert!(!stderr.contains("--socket"), "{stderr}");
    assert_eq!(
        (set.status.code(), stderr),
        (unset.status.code(), text(&unset.stderr))
    );
    assert_eq!(set.status.code(), Some(2));
}

/// An empty `TOKEND_SOCKET` counts as unset: tokenctl looks where it looks
/// with no variable (clap took the empty value for `--socket ""` and
/// refused every verb with exit 2, "a value is required for '--socket
/// <PATH>'"), and `--socket` still works beside it.
#[test]
fn an_empty_socket_variable_counts_as_unset() {
    let unset = tokenctl().args(["token", "github"]).output().unwrap();
    let empty = tokenctl()
        .env("TOKEND_SOCKET", "")
        .args(["token", "github"])
        .output()
        .unwrap();
    let stderr = text(&empty.stderr);
    assert!(!stderr.contains("a value is required"), "{stderr}");
    assert_ne!(empty.status.code(), Some(2), "{empty:?}");
    assert_eq!(
        (empty.status.code(), &empty.stdout, stderr),
        (unset.status.code(), &unset.stdout, text(&unset.stderr))
    );

    let daemon = CannedDaemon::answering(vec![json(&Answer::success(TokenAnswer {
        access_token: Secret::from("gho_tok3n"),
        token_type: "Bearer".into(),
        expires_at: None,
    }))]);
    let output = tokenctl()
        .env("TOKEND_SOCKET", "")
        .arg("--socket")
        .arg(daemon.socket())
        .args(["token", "github"])
        .output()
        .unwrap();
    daemon.requests();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(output.stdout, b"gho_tok3n\n");
}
