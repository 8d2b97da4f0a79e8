//! Client tests over a real socket pair: the "daemon" end is written to
//! before the client reads, so no thread or sleep is needed to order them.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::*;
use crate::protocol::{ErrorCode, LoginEvent, LoginPrompt};

fn pair() -> (Client, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    (Client::from_stream(ours).unwrap(), theirs)
}

fn request_line(daemon: &UnixStream) -> String {
    let mut line = String::new();
    BufReader::new(daemon).read_line(&mut line).unwrap();
    line
}

#[test]
fn token_request_and_answer() {
    let (mut client, mut daemon) = pair();
    daemon
        .write_all(b"{\"ok\":true,\"access_token\":\"tok-1\",\"token_type\":\"Bearer\",\"expires_at\":1790000000}\n")
        .unwrap();
    let answer = client.token("github", Some(120)).unwrap();
    assert_eq!(answer.access_token.expose(), "tok-1");
    assert_eq!(answer.expires_at, Some(1_790_000_000));
    assert_eq!(
        request_line(&daemon),
        "{\"op\":\"token\",\"provider\":\"github\",\"min_valid\":120}\n"
    );
}

#[test]
fn daemon_errors_keep_code_and_message() {
    let (mut client, mut daemon) = pair();
    daemon
        .write_all(b"{\"ok\":false,\"error\":{\"code\":\"login_required\",\"message\":\"provider `gh`: login required - run `tokenctl login gh`\"}}\n")
        .unwrap();
    let error = client.token("gh", None).unwrap_err();
    let ClientError::Daemon(body) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(body.code, ErrorCode::LoginRequired);
    assert_eq!(
        error.to_string(),
        "provider `gh`: login required - run `tokenctl login gh`"
    );
}

#[test]
fn several_requests_share_a_connection() {
    let (mut client, mut daemon) = pair();
    daemon
        .write_all(b"{\"ok\":true,\"protocol\":1,\"daemon_version\":\"0.1.0\"}\n{\"ok\":true,\"providers\":[]}\n{\"ok\":true,\"provider\":\"gh\"}\n")
        .unwrap();
    assert_eq!(client.version().unwrap().protocol, 1);
    assert!(client.status(None).unwrap().is_empty());
    assert_eq!(client.logout("gh").unwrap().provider, "gh");
}

#[test]
fn bad_answers_never_echo_values() {
    let (mut client, mut daemon) = pair();
    // A token in the right place but a wrongly typed field beside it.
    daemon
        .write_all(b"{\"ok\":true,\"access_token\":\"s3cret\",\"token_type\":\"Bearer\",\"expires_at\":\"s3cret\"}\nnot json\n")
        .unwrap();
    let error = client.token("gh", None).unwrap_err();
    assert!(matches!(error, ClientError::BadAnswer { .. }), "{error:?}");
    assert!(!error.to_string().contains("s3cret"), "{error}");
    assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
    let error = client.version().unwrap_err();
    assert!(matches!(error, ClientError::BadAnswer { .. }), "{error:?}");
}

#[test]
fn a_closed_connection_is_named() {
    let (mut client, daemon) = pair();
    drop(daemon);
    assert!(matches!(
        client.status(None).unwrap_err(),
        ClientError::Closed
    ));
}

/// A daemon that goes away with the request unread (a crash) resets the
/// connection rather than closing it: named as closed all the same.
#[test]
fn a_connection_reset_is_named_as_closed() {
    let (mut client, daemon) = pair();
    let closer = std::thread::spawn(move || {
        // Waits for the request, leaves it unread and closes: the kernel
        // then resets the client's end.
        let mut byte = [0u8; 1];
        rustix::net::recv(&daemon, &mut byte, rustix::net::RecvFlags::PEEK).unwrap();
        drop(daemon);
    });
    let error = client.status(None).unwrap_err();
    closer.join().unwrap();
    assert!(matches!(error, ClientError::Closed), "{error:?}");
}

#[test]
fn a_silent_daemon_times_out() {
    let (mut client, _daemon) = pair();
    client.set_timeout(Duration::from_millis(10));
    assert!(matches!(
        client.version().unwrap_err(),
        ClientError::Timeout { .. }
    ));
}

#[test]
fn answer_lines_are_bounded() {
    let (mut client, mut daemon) = pair();
    // More than a socket buffer holds: written from a thread that stops
    // when the client hangs up.
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..(MAX_ANSWER_LINE / chunk.len() + 2) {
            if daemon.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let error = client.version().unwrap_err();
    assert!(error.to_string().contains("longer than"), "{error}");
    drop(client);
    writer.join().unwrap();
}

#[test]
fn connect_errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokend.sock");
    let Err(error) = Client::connect(&path) else {
        panic!("connected to nothing")
    };
    let text = error.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    // A path of the caller's own (see below for the default places).
    assert!(text.contains("no tokend listens there"), "{text}");
}

fn prompt_line() -> String {
    serde_json::to_string(&LoginEvent::Prompt {
        provider: "gh".into(),
        prompt: LoginPrompt {
            user_code: "ABCD-EFGH".into(),
            verification_uri: "https://example.test/device".into(),
            verification_uri_complete: None,
            expires_in: 900,
            message: None,
        },
    })
    .unwrap()
}

#[test]
fn login_streams_events_until_done() {
    let (mut client, mut daemon) = pair();
    let done = r#"{"event":"done","provider":"gh","ok":true,"error":null}"#;
    writeln!(daemon, "{}\n{done}", prompt_line()).unwrap();
    let updates: Vec<_> = client
        .login("gh")
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(matches!(
        &updates[..],
        [
            LoginUpdate::Event(LoginEvent::Prompt { .. }),
            LoginUpdate::Event(LoginEvent::Done { ok: true, .. })
        ]
    ));
    assert_eq!(
        request_line(&daemon),
        "{\"op\":\"login\",\"provider\":\"gh\"}\n"
    );
}

#[test]
fn login_ticks_while_nothing_arrives() {
    let (mut client, mut daemon) = pair();
    let mut stream = client
        .login("gh")
        .unwrap()
        .with_tick(Duration::from_millis(5));
    // Nothing has been written, so the first update can only be a tick.
    assert_eq!(stream.next().unwrap().unwrap(), LoginUpdate::Tick);
    writeln!(daemon, "{}", prompt_line()).unwrap();
    let next = stream.find(|u| !matches!(u, Ok(LoginUpdate::Tick)));
    assert!(matches!(
        next,
        Some(Ok(LoginUpdate::Event(LoginEvent::Prompt { .. })))
    ));
}

#[test]
fn login_rejected_with_a_plain_error_line() {
    let (mut client, mut daemon) = pair();
    daemon
        .write_all(b"{\"ok\":false,\"error\":{\"code\":\"shutting_down\",\"message\":\"tokend is stopping\"}}\n")
        .unwrap();
    let mut stream = client.login("gh").unwrap();
    let first = stream.next().unwrap().unwrap_err();
    assert!(
        matches!(&first, ClientError::Daemon(b) if b.code == ErrorCode::ShuttingDown),
        "{first:?}"
    );
    assert!(stream.next().is_none());
}

/// No code within the request timeout: tokenctl says the login goes on in
/// tokend and how to join or cancel it (it said only "did not answer",
/// and the login polled on unseen for the code's whole life).
#[test]
fn a_login_whose_code_does_not_come_in_time_says_it_goes_on() {
    let (mut client, _daemon) = pair();
    client.set_timeout(Duration::from_millis(20));
    let mut stream = client
        .login("gh")
        .unwrap()
        .with_tick(Duration::from_millis(5));
    let error = loop {
        match stream.next().unwrap() {
            Ok(LoginUpdate::Tick) => {}
            Ok(other) => panic!("{other:?}"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(error, ClientError::NoLoginCode { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("the login goes on in tokend")
            && message.contains("`tokenctl login gh --cancel` stops it"),
        "{message}"
    );
}

fn provider_line(name: &str) -> String {
    format!(r#"{{"event":"provider","name":"{name}","dialect":"rfc8628","state":"active"}}"#)
}

#[test]
fn status_streams_providers_until_done_then_serves_the_next_request() {
    let (mut client, mut daemon) = pair();
    let done = r#"{"event":"done","ok":true,"count":2}"#;
    let logout = r#"{"ok":true,"provider":"gh"}"#;
    let (a, b) = (provider_line("a"), provider_line("b"));
    writeln!(daemon, "{a}\n{b}\n{done}\n{logout}").unwrap();
    let names: Vec<String> = client
        .status_stream(Some("x"))
        .unwrap()
        .map(|p| p.unwrap().name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        request_line(&daemon),
        "{\"op\":\"status\",\"provider\":\"x\",\"stream\":true}\n"
    );
    // The stream ended at its `done` line: the connection is in step.
    assert_eq!(client.logout("gh").unwrap().provider, "gh");
}

#[test]
fn the_store_state_comes_once_at_the_end_of_the_stream() {
    let (mut client, mut daemon) = pair();
    let done = r#"{"event":"done","ok":true,"count":1,"store":{"state":"unavailable","name":"Secret Service","reason":"Secret Service is locked: store locked: unlock your keyring","since":1790000000}}"#;
    writeln!(daemon, "{}\n{done}", provider_line("a")).unwrap();
    let mut stream = client.status_stream(None).unwrap();
    assert!(stream.store().is_none(), "not before the end");
    assert_eq!(stream.by_ref().filter_map(Result::ok).count(), 1);
    let store = stream.store().expect("the store's state");
    assert!(!store.is_available());
    assert_eq!(store.since, Some(1_790_000_000));
    assert!(
        store
            .reason
            .as_deref()
            .unwrap()
            .contains("unlock your keyring")
    );
}

#[test]
fn status_stream_errors_end_it() {
    let cases = [
        // The daemon's error in the done line, or as a plain error line
        // (a daemon of protocol 1 refusing the `stream` field).
        (
            r#"{"event":"done","ok":false,"error":{"code":"unknown_provider","message":"no provider named `x`"}}"#,
            "no provider named `x`",
        ),
        (
            r#"{"ok":false,"error":{"code":"bad_request","message":"invalid request: unknown field `stream`"}}"#,
            "unknown field `stream`",
        ),
        // A done line whose count disagrees with what came before it.
        (
            r#"{"event":"done","ok":true,"count":5}"#,
            "announced 5 providers but sent 1",
        ),
    ];
    for (last, expected) in cases {
        let (mut client, mut daemon) = pair();
        writeln!(daemon, "{}\n{last}", provider_line("a")).unwrap();
        let results: Vec<_> = client.status_stream(None).unwrap().collect();
        assert_eq!(results.len(), 2, "{last}");
        assert!(results[0].is_ok());
        let error = results[1].as_ref().unwrap_err();
        assert!(error.to_string().contains(expected), "{error}");
    }
}

/// A timeout too long for the clock (`tokenctl --timeout
/// 9223372036854775807`) is no deadline, not an overflow panic: every kind
/// of request is answered, and a login still ticks.
#[test]
fn a_timeout_past_the_clocks_range_waits_as_long_as_it_takes() {
    for timeout in [
        Duration::from_secs(i64::MAX.unsigned_abs()),
        Duration::from_secs(u64::MAX),
        Duration::MAX,
    ] {
        let (mut client, mut daemon) = pair();
        client.set_timeout(timeout);
        let token = r#"{"ok":true,"access_token":"tok-1","token_type":"Bearer","expires_at":null}"#;
        let done = r#"{"event":"done","ok":true,"count":1}"#;
        let login_done = r#"{"event":"done","provider":"gh","ok":true,"error":null}"#;
        writeln!(
            daemon,
            "{token}\n{}\n{done}\n{}\n{login_done}",
            provider_line("a"),
            prompt_line(),
        )
        .unwrap();
        assert_eq!(
            client.token("gh", None).unwrap().access_token.expose(),
            "tok-1"
        );
        let names: Vec<String> = client
            .status_stream(None)
            .unwrap()
            .map(|p| p.unwrap().name)
            .collect();
        assert_eq!(names, ["a"]);
        let updates: Vec<_> = client
            .login("gh")
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(updates.len(), 2, "{updates:?}");

        // Nothing more was written: the login has no deadline to reach, but
        // still wakes its caller every tick.
        let mut stream = client
            .login("gh")
            .unwrap()
            .with_tick(Duration::from_millis(5));
        assert_eq!(stream.next().unwrap().unwrap(), LoginUpdate::Tick);
        assert_eq!(stream.next().unwrap().unwrap(), LoginUpdate::Tick);
    }
}

/// A path that holds a file or a directory, not a socket, is said to be
/// one: "connection refused, is tokend running?" sent people looking for
/// a daemon that was not the problem.
#[test]
fn a_path_that_is_no_socket_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokend.sock");
    std::fs::write(&file, "").unwrap();
    for (path, said) in [
        (&file, "not a socket"),
        (&dir.path().to_owned(), "a directory"),
    ] {
        let error = Client::connect(path).err().expect("no daemon there");
        let text = error.to_string();
        assert!(text.contains(said), "{text}");
        assert!(!text.contains("is tokend running"), "{text}");
    }
}

/// Nothing listening at a path the caller named (not a default place):
/// the advice is about that path, not "pass --socket", which is what the
/// caller did; at a default place it says how to start the daemon.
#[test]
fn no_daemon_at_a_named_path_is_not_told_to_pass_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokend.sock");
    // A socket file with no listener behind it: connection refused.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let text = Client::connect(&path)
        .err()
        .expect("no daemon there")
        .to_string();
    assert!(text.contains("no tokend listens there"), "{text}");
    assert!(!text.contains("pass --socket"), "{text}");
    let error = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    let text = super::error::connect_advice(Path::new(super::SYSTEM_SOCKET_PATH), &error);
    assert!(text.contains("systemctl start tokend"), "{text}");
    let env = Environment::from_process();
    let own = env
        .client_socket_path()
        .unwrap_or_else(|| format!("/run/user/{}/tokend/tokend.sock", env.uid).into());
    let text = super::error::connect_advice(&own, &error);
    assert!(text.contains("is tokend running?"), "{text}");
}

/// A socket this process may not use names the group it is for and what
/// to do (join it and log in again), not only "the daemon's config".
#[test]
fn a_socket_of_a_group_this_process_is_not_in_is_named() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tokend.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660)).unwrap();
    // A group no process of this test is in.
    if rustix::fs::chown(&socket, None, Some(rustix::fs::Gid::from_raw(4_000_123))).is_err() {
        eprintln!("SKIPPED a_socket_of_a_group_this_process_is_not_in_is_named: needs root");
        return;
    }
    let error = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    let text = super::error::connect_advice(&socket, &error);
    assert!(text.contains("is for group `4000123`"), "{text}");
    assert!(text.contains("log in again"), "{text}");
}

/// The slow-token notice: said once, naming the provider, only when the
/// answer has not come within its delay; the wait goes on after it.
#[test]
fn a_slow_token_is_noticed_once_and_still_waited_for() {
    use std::sync::Mutex;
    static NOTICES: Mutex<Vec<(String, Duration, Duration)>> = Mutex::new(Vec::new());
    fn notice(request: SlowRequest<'_>, waited: Duration, gives_up_after: Duration) {
        let SlowRequest::Token(provider) = request else {
            panic!("{request:?}");
        };
        NOTICES
            .lock()
            .unwrap()
            .push((provider.to_owned(), waited, gives_up_after));
    }
    let answer = b"{\"ok\":true,\"access_token\":\"tok-1\",\"token_type\":\"Bearer\"}\n";

    // Answered at once: no notice.
    let (mut client, mut daemon) = pair();
    client.notice_slow_answers(Duration::from_secs(30), notice);
    daemon.write_all(answer).unwrap();
    assert_eq!(
        client.token("gh", None).unwrap().access_token.expose(),
        "tok-1"
    );
    assert!(NOTICES.lock().unwrap().is_empty());

    // Answered only once the notice was said: one notice, then the token.
    let (mut client, mut daemon) = pair();
    client.set_timeout(Duration::from_secs(30));
    client.notice_slow_answers(Duration::from_millis(10), notice);
    let late = std::thread::spawn(move || {
        request_line(&daemon);
        for _ in 0..30_000 {
            if !NOTICES.lock().unwrap().is_empty() {
                daemon.write_all(answer).unwrap();
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("no notice within 30 s");
    });
    assert_eq!(
        client.token("gh", None).unwrap().access_token.expose(),
        "tok-1"
    );
    late.join().unwrap();
    assert_eq!(
        *NOTICES.lock().unwrap(),
        [(
            "gh".to_owned(),
            Duration::from_millis(10),
            Duration::from_secs(30)
        )]
    );

    // A delay not shorter than the timeout: no notice, the timeout as before.
    let (mut client, _daemon) = pair();
    client.set_timeout(Duration::from_millis(20));
    client.notice_slow_answers(Duration::from_millis(20), notice);
    assert!(matches!(
        client.token("gh", None),
        Err(ClientError::Timeout { .. })
    ));
    assert_eq!(NOTICES.lock().unwrap().len(), 1);
}

/// A daemon that is hung (it takes no connections) and whose queue of
/// connections is full: a connect gives up after its time, saying so,
/// rather than waiting for ever (std's connect has no timeout).
#[test]
fn a_connect_to_a_daemon_that_takes_none_gives_up() {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hung.sock");
    let address = SocketAddrUnix::new(&path).unwrap();
    let listener = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    rustix::net::bind(&listener, &address).unwrap();
    rustix::net::listen(&listener, 0).unwrap();
    // Fill the queue: non-blocking connects until one finds no room.
    let mut queued = Vec::new();
    for _ in 0..64 {
        let socket = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        if rustix::net::connect(&socket, &address).is_err() {
            break;
        }
        queued.push(socket);
    }
    let error = super::connect_within(&path, std::time::Duration::from_millis(200)).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
    let said = ClientError::Connect {
        path: path.clone(),
        source: error,
    }
    .to_string();
    assert!(
        said.contains("does not take connections: is it hung?"),
        "{said}"
    );
}

/// A connection the daemon refuses (over the caller's cap) is answered with
/// one error line and closed, often before the client writes: the write
/// fails, and the client reports the daemon's error, not a daemon that
/// stopped or crashed.
#[test]
fn a_refusal_sent_before_the_request_is_reported_as_such() {
    let (mut client, mut daemon) = pair();
    daemon
        .write_all(b"{\"ok\":false,\"error\":{\"code\":\"bad_request\",\"message\":\"uid 1000 holds 64 connections already; close some first\"}}\n")
        .unwrap();
    drop(daemon);
    let error = client.token("gh", None).unwrap_err();
    assert!(
        matches!(&error, ClientError::Daemon(body) if body.code == ErrorCode::BadRequest),
        "{error:?}"
    );
    assert!(error.to_string().contains("64 connections"), "{error}");
    // A daemon that closed without a word is still said as such.
    let (mut client, daemon) = pair();
    drop(daemon);
    let error = client.token("gh", None).unwrap_err();
    assert!(matches!(error, ClientError::Closed), "{error:?}");
}

/// A socket path longer than a Unix socket's address holds is said as
/// such (it read "is tokend running?", which no daemon could answer).
#[test]
fn a_socket_path_too_long_is_named_as_such() {
    let path = std::path::PathBuf::from(format!("/tmp/{}/s.sock", "x".repeat(120)));
    let Err(error) = Client::connect(&path) else {
        panic!("connected to {}", path.display());
    };
    let said = error.to_string();
    assert!(
        said.contains("longer than a Unix socket's address holds"),
        "{said}"
    );
}
