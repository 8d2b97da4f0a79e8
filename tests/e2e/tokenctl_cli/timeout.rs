//! `--timeout` at the top of its range: a wait too long for the clock is
//! no deadline, not a panic (the audit saw `overflow when adding duration
//! to instant` and exit 101).

use super::*;

/// What the canned daemon answers each verb with.
fn answer(request: &Request) -> Vec<String> {
    match request {
        Request::Token { .. } => vec![json(&Answer::success(TokenAnswer {
            access_token: Secret::from("gho_tok3n"),
            token_type: "Bearer".into(),
            expires_at: None,
        }))],
        Request::Status { .. } => status_stream(&[]),
        Request::Login { .. } => vec![
            json(&LoginEvent::Prompt {
                provider: "github".into(),
                prompt: LoginPrompt {
                    user_code: "WDJB-MJHT".into(),
                    verification_uri: "https://example.test/device".into(),
                    verification_uri_complete: None,
                    expires_in: 900,
                    message: None,
                },
            }),
            json(&LoginEvent::Done {
                provider: "github".into(),
                ok: true,
                error: None,
                unsaved: None,
            }),
        ],
        other => panic!("unexpected request {other:?}"),
    }
}

/// The largest values clap accepts work with every verb that waits for
/// tokend, with the outcome a short timeout would have had.
#[test]
fn the_largest_timeouts_wait_without_panicking() {
    let cases: [(&[&str], &str); 4] = [
        (&["token", "github"], "gho_tok3n\n"),
        (&["status"], "No providers"),
        (&["version"], "tokend 9.9.9 (protocol "),
        (&["--json", "login", "github"], r#"{"event":"done""#),
    ];
    for timeout in ["9223372036854775807", "18446744073709551615"] {
        for (args, expected) in cases {
            // One daemon per run: it serves one connection.
            let daemon = CannedDaemon::start(answer);
            let output = tokenctl()
                .arg("--socket")
                .arg(daemon.socket())
                .args(["--timeout", timeout])
                .args(args)
                .output()
                .unwrap();
            daemon.requests();
            let stderr = text(&output.stderr);
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
            assert_eq!(output.status.code(), Some(0), "{args:?}: {output:?}");
            assert!(
                text(&output.stdout).contains(expected),
                "{timeout} {args:?}: {output:?}"
            );
        }
    }
}

/// A daemon that answers `version` only after `--timeout`: the verb fails
/// with the timeout, once. Before, the version's timeout was swallowed and
/// the verb's own request sent on the same connection, which then read the
/// late version answer as its own ("an answer tokenctl cannot read ...;
/// are both the same version?") after waiting a second `--timeout`.
#[test]
fn a_late_version_answer_is_a_timeout_not_a_misread_answer() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tokend.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut lines = Vec::new();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        lines.push(line.clone());
        // A daemon that stalls for longer than the client waits.
        thread::sleep(std::time::Duration::from_secs(3));
        let version = Answer::success(VersionAnswer {
            protocol: PROTOCOL_VERSION,
            daemon_version: "9.9.9".into(),
        });
        let _ = writeln!(writer, "{}", serde_json::to_string(&version).unwrap());
        // Whatever else the client sends before it hangs up.
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(n) if n > 0 => lines.push(line.clone()),
                _ => return lines,
            }
        }
    });
    let output = run_with_socket(&socket, &["--timeout", "2", "status"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not answer within 2 s"), "{stderr}");
    assert!(!stderr.contains("cannot read"), "{stderr}");
    let requests = server.join().unwrap();
    assert_eq!(
        requests.len(),
        1,
        "a request after the timeout: {requests:?}"
    );
}
