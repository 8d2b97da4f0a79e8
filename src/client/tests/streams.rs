//! The answers that come as a stream of lines: a login's events (and its
//! ticks while none come), `status`'s providers one by one, and how each
//! stream ends.

use std::io::Write;
use std::time::Duration;

use super::*;
use crate::protocol::{ErrorCode, LoginEvent};

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

/// A stream that ends without its `done` line once providers came (tokend
/// stopped mid-answer) says it was cut short, and after how many: it read
/// "tokend closed the connection before answering", though 1,012 of 3,000
/// had come, and those could pass for the whole list. Before any provider
/// it is said as before.
#[test]
fn a_status_stream_closed_midway_is_cut_short_after_what_came() {
    let (mut client, mut daemon) = pair();
    writeln!(daemon, "{}\n{}", provider_line("a"), provider_line("b")).unwrap();
    let stream = client.status_stream(None).unwrap();
    drop(daemon);
    let results: Vec<_> = stream.collect();
    assert_eq!(results.len(), 3, "{results:?}");
    let error = results[2].as_ref().unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::StatusCutShort { received: 2, paused: None, cause }
                if matches!(**cause, ClientError::Closed)
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "tokend's answer was cut short after 2 providers: tokend closed the connection (did it \
         stop or crash?)"
    );

    let (mut client, daemon) = pair();
    let stream = client.status_stream(None).unwrap();
    drop(daemon);
    let results: Vec<_> = stream.collect();
    assert!(
        matches!(&results[..], [Err(ClientError::Closed)]),
        "{results:?}"
    );
}

/// A connection closed after the caller left the stream unread as long as
/// tokend waits for a paused reader (`tokenctl status | less`, the pager
/// left waiting) names that as the likely reason and the limit, not a
/// daemon that stopped or crashed. A shorter pause, or another ending, is
/// not said to be the reason.
#[test]
fn a_status_stream_closed_after_a_long_pause_names_the_pause() {
    let limit = Duration::from_millis(30);
    let (mut client, mut daemon) = pair();
    writeln!(daemon, "{}\n{}", provider_line("a"), provider_line("b")).unwrap();
    let mut stream = client.status_stream(None).unwrap().with_pause_limit(limit);
    drop(daemon);
    assert!(stream.next().unwrap().is_ok());
    // The caller's output waits for its reader.
    std::thread::sleep(limit + Duration::from_millis(10));
    assert!(stream.next().unwrap().is_ok());
    let error = stream.next().unwrap().unwrap_err();
    assert!(
        matches!(&error, ClientError::StatusCutShort { received: 2, paused: Some(p), .. } if *p >= limit),
        "{error:?}"
    );
    let said = error.to_string();
    assert!(
        said.starts_with("tokend's answer was cut short after 2 providers: tokend closed the connection after its answer went unread for "),
        "{said}"
    );
    assert!(
        said.contains("(tokenctl's output was not read), as it does when a status stream's reader pauses for 300 s"),
        "{said}"
    );
    assert!(!said.contains("crash"), "{said}");

    // The same pause, but the daemon said why it ended: its words.
    let (mut client, mut daemon) = pair();
    let refused = r#"{"event":"done","ok":false,"error":{"code":"internal","message":"it broke"}}"#;
    writeln!(daemon, "{}\n{refused}", provider_line("a")).unwrap();
    let mut stream = client.status_stream(None).unwrap().with_pause_limit(limit);
    assert!(stream.next().unwrap().is_ok());
    std::thread::sleep(limit + Duration::from_millis(10));
    let error = stream.next().unwrap().unwrap_err();
    assert!(
        matches!(&error, ClientError::StatusCutShort { received: 1, paused: None, cause }
            if matches!(**cause, ClientError::Daemon(_))),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "tokend's answer was cut short after 1 provider: it broke"
    );
}

/// The pause named is the daemon's own: a streamed status's page waits
/// for its reader as long as a connection may be idle.
#[test]
fn the_pause_named_is_the_daemons_limit() {
    assert_eq!(
        crate::protocol::STATUS_STREAM_PAUSE_LIMIT,
        crate::ipc::socket::IDLE_TIMEOUT
    );
}
