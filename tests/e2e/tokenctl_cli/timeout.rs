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
