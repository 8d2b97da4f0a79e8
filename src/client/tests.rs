//! Client tests over a real socket pair: the "daemon" end is written to
//! before the client reads, so no thread or sleep is needed to order them.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::*;
use crate::protocol::{ErrorCode, LoginEvent, LoginPrompt};

mod connect;
mod streams;

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

fn provider_line(name: &str) -> String {
    format!(r#"{{"event":"provider","name":"{name}","dialect":"rfc8628","state":"active"}}"#)
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

/// The config's warning of an `http_timeout` tokenctl gives up before
/// names tokenctl's default wait, which the core may not import.
#[test]
fn the_configs_tokenctl_wait_is_tokenctls_default_timeout() {
    assert_eq!(crate::config::TOKENCTL_WAIT, super::DEFAULT_TIMEOUT);
}
