//! `tokenctl status`: text, JSON, the store's state, and old daemons.

use super::*;

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
        git_auth: None,
    }
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
        config: None,
    });
    let daemon = CannedDaemon::answering(vec![done]);
    let output = run_with_socket(&daemon.socket(), &["status", "gh"]);
    daemon.requests();
    assert_eq!(output.status.code(), Some(7), "{output:?}");
    assert!(text(&output.stderr).contains("no provider named `gh`"));
}

/// Every field of a status is there for a provider that has none of the
/// optional ones (no `hosts`, no refresh-token expiry): `[]` and `null`,
/// as the real daemon sends it (streamed and in the protocol-1 line) and
/// as `tokenctl --json status` prints it, so `jq '.[].hosts[]'` works.
#[test]
fn unset_fields_are_present_empty_from_the_real_daemon() {
    use crate::support::daemon::{Daemon, stdout};
    use crate::support::provider::Provider;

    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("plain"));
    let has_every_key = |status: &serde_json::Value, whence: &str| {
        assert_eq!(status["name"], "plain", "{whence}: {status}");
        assert_eq!(status["hosts"], serde_json::json!([]), "{whence}: {status}");
        for key in ["login_needed_by", "expires_at", "last_error"] {
            assert!(
                status.get(key).is_some_and(serde_json::Value::is_null),
                "{whence}: `{key}` missing or set: {status}"
            );
        }
    };

    let out = daemon.tokenctl(&["--json", "status"]);
    assert!(out.status.success(), "{out:?}");
    let printed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    has_every_key(&printed[0], "tokenctl --json status");

    let stream = UnixStream::connect(&daemon.socket).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut read = || {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        serde_json::from_str::<serde_json::Value>(&line).unwrap()
    };
    writeln!(writer, r#"{{"op":"status","stream":true}}"#).unwrap();
    has_every_key(&read(), "the streamed status");
    let done = read();
    assert_eq!(done["event"], "done", "the stream's last line: {done}");
    writeln!(writer, r#"{{"op":"status"}}"#).unwrap();
    has_every_key(&read()["providers"][0], "the protocol-1 status line");
}
