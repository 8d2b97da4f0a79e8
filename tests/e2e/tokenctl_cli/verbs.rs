//! The other verbs (`logout`, `metrics`), usage errors, and a daemon of
//! another protocol version.

use super::*;

#[test]
fn logout_confirms() {
    let answer = json(&Answer::success(tokend::protocol::LogoutAnswer {
        provider: "github".into(),
        had_tokens: true,
        cancelled_login: false,
    }));
    let daemon = CannedDaemon::answering(vec![answer.clone()]);
    let output = run_with_socket(&daemon.socket(), &["logout", "github", "--json"]);
    daemon.requests();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        text(&output.stdout),
        "{\"ok\":true,\"provider\":\"github\",\"had_tokens\":true,\"cancelled_login\":false}\n"
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
        err.contains(&format!("warning: tokend 9.9.9 speaks protocol {newer}"))
            && err.contains("after an upgrade, restart tokend"),
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
        text(&out.stderr).contains("metrics need protocol 3: upgrade tokend, or restart it if it was just upgraded (`systemctl --user restart tokend`"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(old.requests(), []);
}

/// `version` against a daemon of another protocol (one not restarted
/// since an upgrade): exit 1 with `--json` too, the object naming both
/// protocols (with `--json` it exited 0, and a script reading the status
/// saw no problem).
#[test]
fn version_of_another_protocol_exits_1_with_or_without_json() {
    let old = CannedDaemon::start_with_protocol(PROTOCOL_VERSION - 1, |_| Vec::new());
    let out = run_with_socket(&old.socket(), &["version"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("speak different protocol versions"),
        "{}",
        text(&out.stderr)
    );
    let old = CannedDaemon::start_with_protocol(PROTOCOL_VERSION - 1, |_| Vec::new());
    let out = run_with_socket(&old.socket(), &["--json", "version"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let versions: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one object");
    assert_eq!(versions["protocol"], PROTOCOL_VERSION, "{versions}");
    assert_eq!(
        versions["daemon_protocol"],
        PROTOCOL_VERSION - 1,
        "{versions}"
    );
    assert_eq!(versions["daemon_version"], "9.9.9", "{versions}");
    // A daemon newer than this tokenctl (an old copy on PATH, in a
    // container) differs as much: 1, with or without --json.
    for json in [false, true] {
        let newer = CannedDaemon::start_with_protocol(PROTOCOL_VERSION + 1, |_| Vec::new());
        let args: &[&str] = if json {
            &["--json", "version"]
        } else {
            &["version"]
        };
        let out = run_with_socket(&newer.socket(), args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "json {json}: {}",
            text(&out.stderr)
        );
    }
    // The same protocol: 0.
    let same = CannedDaemon::start(|_| Vec::new());
    let out = run_with_socket(&same.socket(), &["--json", "version"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Help and version that stdout cannot take (a full disk) are an error,
/// exit 1, said on stderr, for both binaries: clap's own exit said nothing
/// and exited 0, the text lost. Where it can, they are printed, exit 0.
#[test]
fn help_and_version_that_cannot_be_written_fail() {
    for (program, args) in [
        (env!("CARGO_BIN_EXE_tokenctl"), &["--help"][..]),
        (env!("CARGO_BIN_EXE_tokenctl"), &["--version"][..]),
        (env!("CARGO_BIN_EXE_tokenctl"), &["help", "token"][..]),
        (env!("CARGO_BIN_EXE_tokend"), &["--help"][..]),
        (env!("CARGO_BIN_EXE_tokend"), &["--version"][..]),
    ] {
        let name = std::path::Path::new(program)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let out = std::process::Command::new(program)
            .args(args)
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name} {args:?}: {out:?}");
        assert_eq!(
            text(&out.stderr),
            format!("{name}: cannot write the output: No space left on device (os error 28)\n"),
            "{name} {args:?}"
        );
        let out = std::process::Command::new(program)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{name} {args:?}: {out:?}");
        assert!(!out.stdout.is_empty(), "{name} {args:?}");
    }
}

/// Help and version for a reader that went away (`tokenctl --help | true`)
/// end as every verb does for one: exit 1, nothing said. They said
/// "cannot write the output: Broken pipe (os error 32)", the one place
/// that did. Both binaries: they share the code.
#[test]
fn help_and_version_for_a_reader_that_went_away_say_nothing() {
    for (program, args) in [
        (env!("CARGO_BIN_EXE_tokenctl"), &["--help"][..]),
        (env!("CARGO_BIN_EXE_tokenctl"), &["--version"][..]),
        (env!("CARGO_BIN_EXE_tokenctl"), &["help", "status"][..]),
        (env!("CARGO_BIN_EXE_tokend"), &["--help"][..]),
    ] {
        // A pipe whose reader is gone: the first write fails (EPIPE).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(program)
            .args(args)
            .stdout(writer)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{program} {args:?}: {out:?}");
        assert_eq!(text(&out.stderr), "", "{program} {args:?}");
    }
}
