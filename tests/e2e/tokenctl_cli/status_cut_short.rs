//! `tokenctl status` whose answer is cut short (tokend stopped mid-stream):
//! no JSON reader takes what came for the whole list, and stderr says after
//! how many providers it ended and why.

use std::io::Read as _;
use std::time::{Duration, Instant};

use super::*;

/// The words after which the JSON printed is left open.
const LEFT_OPEN: &str = "; the JSON array on stdout is left unclosed: it is not the whole list";

fn named(name: &str) -> ProviderStatus {
    ProviderStatus {
        name: name.into(),
        dialect: "rfc8628".into(),
        state: "logged_out".into(),
        expires_at: None,
        last_refresh: None,
        next_refresh: None,
        last_error: None,
        scopes: Vec::new(),
        login: None,
        saved: true,
        hosts: Vec::new(),
        username: None,
        login_needed_by: None,
        git_auth: None,
    }
}

/// A stand-in for tokend that answers `version`, then streams `providers`
/// for the `status` request and hangs up without the `done` line, as a
/// tokend that stops mid-answer does.
fn hanging_up_after(providers: Vec<ProviderStatus>) -> (TempDir, JoinHandle<()>) {
    let dir = tempfile::tempdir().unwrap();
    let listener = UnixListener::bind(dir.path().join("tokend.sock")).unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut request = || {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            parse_request(line.as_bytes()).expect("a request")
        };
        assert_eq!(request(), Request::Version);
        let version = Answer::success(VersionAnswer {
            protocol: PROTOCOL_VERSION,
            daemon_version: "9.9.9".into(),
        });
        writeln!(writer, "{}", json(&version)).unwrap();
        assert!(matches!(request(), Request::Status { stream: true, .. }));
        for p in providers {
            writeln!(writer, "{}", json(&StatusEvent::Provider(Box::new(p)))).unwrap();
        }
    });
    (dir, server)
}

/// The providers that came, read back from an array left open; fails
/// unless the output is exactly that: no JSON document, the array whole
/// up to its closing bracket.
fn read_back_unclosed(stdout: &[u8]) -> Vec<ProviderStatus> {
    // Not the document itself in the message: it may be 700 KB.
    let parsed = serde_json::from_slice::<serde_json::Value>(stdout).map(|_| "a JSON document");
    assert!(
        parsed.as_ref().is_err_and(serde_json::Error::is_eof),
        "stdout ({} bytes) is {parsed:?}",
        stdout.len()
    );
    let text = text(stdout);
    assert!(
        text.starts_with('[') && text.ends_with("}\n"),
        "{text:.200}"
    );
    serde_json::from_str(&format!("{}]", text.trim_end())).expect("an array but for its end")
}

/// A stream that ends without its `done` line: the JSON array is left
/// open (it was closed, so `tokenctl --json status | jq` read a partial
/// list as the whole one), and stderr says after how many providers it
/// was cut short and why (it said tokend closed the connection "before
/// answering"). Exit 3, as before. The table ends where it is, the same
/// said.
#[test]
fn a_stream_cut_short_leaves_the_json_array_open() {
    let providers = vec![named("a"), named("b"), named("c")];
    let (dir, server) = hanging_up_after(providers.clone());
    let out = run_with_socket(&dir.path().join("tokend.sock"), &["--json", "status"]);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(read_back_unclosed(&out.stdout), providers);
    assert_eq!(
        text(&out.stderr),
        format!(
            "tokenctl: tokend's answer was cut short after 3 providers: tokend closed the \
             connection (did it stop or crash?){LEFT_OPEN}\n"
        )
    );

    let (dir, server) = hanging_up_after(providers);
    let out = run_with_socket(&dir.path().join("tokend.sock"), &["status"]);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(text(&out.stdout).lines().count(), 4, "{out:?}");
    assert_eq!(
        text(&out.stderr),
        "tokenctl: tokend's answer was cut short after 3 providers: tokend closed the \
         connection (did it stop or crash?)\n"
    );
}

/// The audit's case with the real binaries: 3,000 providers, `tokenctl
/// --json status` whose reader has not read yet, tokend killed mid-stream.
/// What tokenctl printed is the providers that came, in order, in an
/// array left open; stderr says how many.
#[test]
fn tokend_killed_mid_stream_leaves_the_json_array_open() {
    use crate::support::daemon::Daemon;
    use crate::support::provider::Provider;

    const PROVIDERS: usize = 3_000;
    let provider = Provider::rfc8628();
    let names: Vec<String> = (0..PROVIDERS).map(|i| format!("p{i:04}")).collect();
    let config: String = names.iter().map(|n| provider.config(n)).collect();
    let mut daemon = Daemon::start(&config);

    let (mut stdout, writer) = std::io::pipe().unwrap();
    let mut child = {
        let mut command = tokenctl();
        command
            .arg("--socket")
            .arg(&daemon.socket)
            .args(["--json", "status"])
            .stdout(writer)
            .stderr(std::process::Stdio::piped());
        command.spawn().unwrap()
        // The command, and this process's copy of the pipe's writing
        // end, go here: the reader sees the end when tokenctl exits.
    };
    // Once the pipe is full, tokenctl waits to write and tokend to send:
    // the answer (about 700 KB) cannot all have gone into the pipe (64 KiB)
    // and the socket's buffers.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rustix::io::ioctl_fionread(&stdout).unwrap() < 60_000 {
        assert!(Instant::now() < deadline, "tokenctl printed too little");
        thread::sleep(Duration::from_millis(20));
    }
    daemon.kill();
    let mut printed = Vec::new();
    stdout.read_to_end(&mut printed).unwrap();
    let mut said = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{said}");

    let came = read_back_unclosed(&printed);
    assert!(!came.is_empty() && came.len() < PROVIDERS, "{}", came.len());
    let shown: Vec<&str> = came.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(shown, names[..came.len()]);
    assert_eq!(
        said,
        format!(
            "tokenctl: tokend's answer was cut short after {} providers: tokend closed the \
             connection (did it stop or crash?){LEFT_OPEN}\n",
            came.len()
        )
    );
}
