//! The real `tokenctl` binary against a canned daemon on a real Unix socket.
//!
//! The canned daemon stands in for tokend until the daemon exists: it reads
//! request lines with the shared protocol parser and answers each with lines
//! the test prepared from the shared protocol types. It serves one connection
//! (tokenctl opens exactly one), so joining it after the child exited is the
//! synchronization: no sleeps.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::{self, JoinHandle};

use tempfile::TempDir;
use tokend::protocol::{
    Answer, ErrorCode, LoginEvent, LoginPrompt, PROTOCOL_VERSION, ProviderStatus, Request,
    StatusAnswer, StatusEvent, StoreStatus, TokenAnswer, VersionAnswer, parse_request,
};
use tokend::secret::Secret;

/// A one-connection stand-in for tokend.
struct CannedDaemon {
    dir: TempDir,
    server: JoinHandle<Vec<Request>>,
}

impl CannedDaemon {
    /// Serves `answer(request)` lines for each request on one connection;
    /// `version` requests (which `login` and `status` send first) are
    /// answered with this build's protocol and not recorded.
    fn start(answer: impl Fn(&Request) -> Vec<String> + Send + 'static) -> Self {
        Self::start_with_protocol(PROTOCOL_VERSION, answer)
    }

    /// As [`Self::start`], claiming protocol version `protocol`.
    fn start_with_protocol(
        protocol: u32,
        answer: impl Fn(&Request) -> Vec<String> + Send + 'static,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("tokend.sock")).unwrap();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut requests = Vec::new();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 {
                let request = parse_request(line.as_bytes()).expect("a valid request line");
                if request == Request::Version {
                    let version = Answer::success(VersionAnswer {
                        protocol,
                        daemon_version: "9.9.9".into(),
                    });
                    let _ = writeln!(writer, "{}", serde_json::to_string(&version).unwrap());
                    line.clear();
                    continue;
                }
                for answer in answer(&request) {
                    // A client that left early (`--no-wait`) is not an error.
                    let _ = writeln!(writer, "{answer}");
                }
                requests.push(request);
                line.clear();
            }
            requests
        });
        Self { dir, server }
    }

    /// Answers every request with the same lines.
    fn answering(lines: Vec<String>) -> Self {
        Self::start(move |_| lines.clone())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("tokend.sock")
    }

    /// The requests served, once the client has hung up.
    fn requests(self) -> Vec<Request> {
        // If tokenctl never connected, this connection ends the wait for
        // one (with no requests, failing the test) instead of hanging it.
        let _ = UnixStream::connect(self.socket());
        self.server.join().unwrap()
    }
}

/// `tokenctl` with a clean environment: no daemon of the machine's is used.
fn tokenctl() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokenctl"));
    command
        .env_remove("TOKEND_SOCKET")
        .env_remove("RUNTIME_DIRECTORY")
        .env_remove("XDG_RUNTIME_DIR")
        .env("NO_COLOR", "1");
    command
}

fn run_with_socket(socket: &Path, args: &[&str]) -> Output {
    tokenctl()
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

fn error_line(code: ErrorCode, message: &str) -> String {
    json(&Answer::<TokenAnswer>::failure(code, message))
}

fn prompt_event(complete: Option<&str>) -> LoginEvent {
    LoginEvent::Prompt {
        provider: "github".into(),
        prompt: LoginPrompt {
            user_code: "WDJB-MJHT".into(),
            verification_uri: "https://example.test/device".into(),
            verification_uri_complete: complete.map(Into::into),
            expires_in: 900,
            message: None,
        },
    }
}

fn done_event(error: Option<(ErrorCode, &str)>) -> LoginEvent {
    LoginEvent::Done {
        provider: "github".into(),
        ok: error.is_none(),
        error: error.map(|(code, message)| tokend::protocol::ErrorBody {
            code,
            message: message.into(),
        }),
    }
}

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
    assert!(stderr.contains("systemctl --user start tokend"), "{stderr}");
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

#[test]
fn default_socket_is_in_the_runtime_directory() {
    let daemon = CannedDaemon::answering(status_stream(&[]));
    let output = tokenctl()
        .env("RUNTIME_DIRECTORY", daemon.dir.path())
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(output.stdout, b"[]\n");
    daemon.requests();
}

#[test]
fn login_json_relays_prompt_then_done() {
    let prompt = json(&prompt_event(Some(
        "https://example.test/device?code=WDJB-MJHT",
    )));
    let done = json(&done_event(None));
    let daemon = CannedDaemon::answering(vec![prompt.clone(), done.clone()]);
    let output = run_with_socket(&daemon.socket(), &["--json", "login", "github"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(text(&output.stdout), format!("{prompt}\n{done}\n"));
    assert!(
        prompt.starts_with(r#"{"event":"prompt","provider":"github","user_code":"WDJB-MJHT","#)
    );
    assert_eq!(
        daemon.requests(),
        [Request::Login {
            provider: "github".into()
        }]
    );
}

#[test]
fn login_shows_code_and_link_and_succeeds() {
    let daemon = CannedDaemon::answering(vec![
        json(&prompt_event(Some(
            "https://example.test/device?code=WDJB-MJHT",
        ))),
        json(&done_event(None)),
    ]);
    let output = run_with_socket(&daemon.socket(), &["login", "github"]);
    daemon.requests();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(stdout.contains("WDJB-MJHT"), "{stdout}");
    assert!(stdout.contains("https://example.test/device\n"), "{stdout}");
    assert!(
        stdout.contains("https://example.test/device?code=WDJB-MJHT"),
        "{stdout}"
    );
    assert!(stdout.contains("Waiting for approval"), "{stdout}");
    assert!(stdout.ends_with("Logged in to github.\n"), "{stdout}");
    // Not a terminal: no QR code, no redraws, no escapes.
    assert!(!stdout.contains('█') && !stdout.contains('\r') && !stdout.contains('\x1b'));
}

#[test]
fn denied_login_is_exit_8() {
    let reason =
        "provider `github`: the login was denied — run `tokenctl login github` to try again";
    let daemon = CannedDaemon::answering(vec![
        json(&prompt_event(None)),
        json(&done_event(Some((ErrorCode::LoginFailed, reason)))),
    ]);
    let output = run_with_socket(&daemon.socket(), &["login", "github"]);
    daemon.requests();
    assert_eq!(output.status.code(), Some(8), "{output:?}");
    assert!(text(&output.stdout).contains("WDJB-MJHT"));
    assert_eq!(text(&output.stderr), format!("tokenctl: {reason}\n"));
}

#[test]
fn login_of_an_unknown_provider_is_exit_7() {
    let daemon = CannedDaemon::answering(vec![json(&done_event(Some((
        ErrorCode::UnknownProvider,
        "no provider `github` in the config",
    ))))]);
    let output = run_with_socket(&daemon.socket(), &["login", "github"]);
    daemon.requests();
    assert_eq!(output.status.code(), Some(7), "{output:?}");
}

#[test]
fn login_no_wait_returns_after_the_prompt() {
    // The done line would fail the login: --no-wait must not wait for it.
    let daemon = CannedDaemon::answering(vec![
        json(&prompt_event(None)),
        json(&done_event(Some((ErrorCode::LoginFailed, "expired")))),
    ]);
    let output = run_with_socket(&daemon.socket(), &["login", "--no-wait", "github"]);
    daemon.requests();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(stdout.contains("WDJB-MJHT") && stdout.contains("tokenctl status github"));
}

fn github_status() -> ProviderStatus {
    ProviderStatus {
        name: "github".into(),
        dialect: "rfc8628".into(),
        state: "active".into(),
        expires_at: Some(1_790_000_000),
        last_refresh: None,
        next_refresh: None,
        last_error: Some("HTTP 503".into()),
        scopes: vec!["repo".into()],
        login: None,
        saved: true,
        hosts: Vec::new(),
        username: None,
        login_needed_by: None,
    }
}

/// The lines of a streamed `status` answer holding `providers`.
fn status_stream(providers: &[ProviderStatus]) -> Vec<String> {
    status_stream_with_store(providers, None)
}

/// The same, with the store's state in the `done` line.
fn status_stream_with_store(
    providers: &[ProviderStatus],
    store: Option<StoreStatus>,
) -> Vec<String> {
    let mut lines: Vec<String> = providers
        .iter()
        .map(|p| json(&StatusEvent::Provider(Box::new(p.clone()))))
        .collect();
    lines.push(json(&StatusEvent::Done {
        ok: true,
        count: providers.len() as u64,
        error: None,
        store,
    }));
    lines
}

/// The store's state comes once in the stream; tokenctl prints it once,
/// under the table, or on stderr beside the JSON array.
#[test]
fn an_unavailable_store_is_one_line_of_status() {
    let providers: Vec<ProviderStatus> = ["a", "b", "c"]
        .iter()
        .map(|name| ProviderStatus {
            name: (*name).into(),
            state: "logged_out".into(),
            expires_at: None,
            last_error: None,
            ..github_status()
        })
        .collect();
    let store = StoreStatus {
        state: "unavailable".into(),
        name: "Secret Service".into(),
        reason: Some("Secret Service is locked: store locked: unlock your keyring".into()),
        since: Some(1_790_000_000),
    };
    let daemon = CannedDaemon::answering(status_stream_with_store(&providers, Some(store.clone())));
    let output = run_with_socket(&daemon.socket(), &["status"]);
    daemon.requests();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("unlock your keyring"))
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0].starts_with("store: unavailable since 2026-09-21 ")
            && lines[0].ends_with(
                ": Secret Service is locked: store locked: unlock your keyring (retrying)"
            ),
        "{stdout}"
    );

    let daemon = CannedDaemon::answering(status_stream_with_store(&providers, Some(store)));
    let output = run_with_socket(&daemon.socket(), &["--json", "status"]);
    daemon.requests();
    let printed: Vec<ProviderStatus> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, providers);
    assert!(
        text(&output.stderr).starts_with("store: unavailable since "),
        "{output:?}"
    );
}

#[test]
fn status_json_and_text() {
    let providers = vec![github_status()];
    let daemon = CannedDaemon::answering(status_stream(&providers));
    let output = run_with_socket(&daemon.socket(), &["status", "--json"]);
    daemon.requests();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let printed: Vec<ProviderStatus> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, providers);

    let daemon = CannedDaemon::answering(status_stream(&providers));
    let output = run_with_socket(&daemon.socket(), &["status"]);
    assert_eq!(
        daemon.requests(),
        [Request::Status {
            provider: None,
            stream: true
        }]
    );
    let stdout = text(&output.stdout);
    assert!(stdout.starts_with("NAME "), "{stdout}");
    assert!(stdout.contains("\ngithub "), "{stdout}");
    assert!(stdout.contains("\n  last error: HTTP 503\n"), "{stdout}");
}

/// A daemon of protocol 1 knows no stream: tokenctl asks it the old way
/// and prints the same.
#[test]
fn status_from_a_protocol_1_daemon_is_read_from_one_line() {
    let providers = vec![github_status()];
    let answer = json(&Answer::success(StatusAnswer {
        providers: providers.clone(),
    }));
    for (args, layout_check) in [
        (&["--json", "status"][..], "[{\"name\":\"github\""),
        (&["status"], "NAME "),
        (&["status", "github"], "github (rfc8628)\n"),
    ] {
        let daemon = CannedDaemon::start_with_protocol(1, {
            let answer = answer.clone();
            move |_| vec![answer.clone()]
        });
        let output = run_with_socket(&daemon.socket(), args);
        let requests = daemon.requests();
        assert_eq!(output.status.code(), Some(0), "{args:?}: {output:?}");
        assert!(
            matches!(&requests[..], [Request::Status { stream: false, .. }]),
            "{requests:?}"
        );
        assert!(text(&output.stdout).starts_with(layout_check), "{output:?}");
    }
}

/// The daemon's error ends a stream with the daemon's words and the exit
/// status of its code.
#[test]
fn status_of_an_unknown_provider_is_exit_7() {
    let done = json(&StatusEvent::Done {
        ok: false,
        count: 0,
        error: Some(tokend::protocol::ErrorBody {
            code: ErrorCode::UnknownProvider,
            message: "no provider named `gh` is configured".into(),
        }),
        store: None,
    });
    let daemon = CannedDaemon::answering(vec![done]);
    let output = run_with_socket(&daemon.socket(), &["status", "gh"]);
    daemon.requests();
    assert_eq!(output.status.code(), Some(7), "{output:?}");
    assert!(text(&output.stderr).contains("no provider named `gh`"));
}

#[test]
fn logout_confirms() {
    let answer = json(&Answer::success(tokend::protocol::LogoutAnswer {
        provider: "github".into(),
    }));
    let daemon = CannedDaemon::answering(vec![answer.clone()]);
    let output = run_with_socket(&daemon.socket(), &["logout", "github", "--json"]);
    daemon.requests();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        text(&output.stdout),
        "{\"ok\":true,\"provider\":\"github\"}\n"
    );

    let daemon = CannedDaemon::answering(vec![answer]);
    let output = run_with_socket(&daemon.socket(), &["logout", "github"]);
    daemon.requests();
    assert!(text(&output.stdout).starts_with("Logged out of github"));
}

#[test]
fn usage_errors_are_exit_2_and_help_lists_exit_codes() {
    let output = tokenctl().args(["token"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = tokenctl().arg("--help").output().unwrap();
    let help = text(&output.stdout);
    assert!(
        help.contains("Exit status:") && help.contains("8  login denied"),
        "{help}"
    );
}

#[test]
fn a_different_daemon_protocol_is_warned_about() {
    let daemon = CannedDaemon::start_with_protocol(PROTOCOL_VERSION + 1, |_| status_stream(&[]));
    let out = tokenctl()
        .arg("--socket")
        .arg(daemon.socket())
        .arg("status")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let newer = PROTOCOL_VERSION + 1;
    assert!(
        err.contains(&format!("warning: tokend 9.9.9 speaks protocol {newer}")),
        "{err}"
    );
    let requests = daemon.requests();
    assert_eq!(
        requests,
        [Request::Status {
            provider: None,
            stream: true
        }]
    );
}

#[test]
fn metrics_prints_the_chunks_joined_and_asks_no_old_daemon() {
    let daemon = CannedDaemon::start(|_| {
        vec![
            r##"{"event":"text","text":"# TYPE a gauge\na 1\n"}"##.into(),
            r##"{"event":"text","text":"# EOF\n"}"##.into(),
            r#"{"event":"done","ok":true}"#.into(),
        ]
    });
    let out = run_with_socket(&daemon.socket(), &["metrics"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "# TYPE a gauge\na 1\n# EOF\n");
    assert_eq!(daemon.requests(), [Request::Metrics]);

    // A daemon of protocol 2 would answer bad_request: not asked at all.
    let old = CannedDaemon::start_with_protocol(2, |_| Vec::new());
    let out = run_with_socket(&old.socket(), &["metrics"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("metrics need protocol 3: upgrade tokend"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(old.requests(), []);
}
