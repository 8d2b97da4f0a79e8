//! A `login` stream over a raw connection, as a script would read it: a
//! client that ends its writing side after the request (`nc -N`, a
//! here-document), or sends its next request behind it, still gets the
//! whole stream, and a request sent behind it is answered after it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use tokend::ipc::socket::MAX_CONNECTIONS;

use super::{one_provider, support};

pub(super) fn next_line(reader: &mut BufReader<UnixStream>) -> serde_json::Value {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .expect("a line before the read timeout");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

/// Reads the prompt, approves its code at `provider`, and reads the
/// `done` line, which must say the login succeeded.
fn prompt_approved_done(
    reader: &mut BufReader<UnixStream>,
    provider: &support::provider::Provider,
) {
    let prompt = next_line(reader);
    assert_eq!(prompt["event"], "prompt", "{prompt}");
    provider
        .approve(prompt["user_code"].as_str().expect("a user code"))
        .unwrap();
    let done = next_line(reader);
    assert_eq!(
        (&done["event"], &done["ok"]),
        (&"done".into(), &true.into()),
        "{done}"
    );
}

pub(super) fn connect(socket: &std::path::Path) -> UnixStream {
    let stream = UnixStream::connect(socket).unwrap();
    // A guard against hanging forever, not a measure of speed.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
}

#[test]
fn a_login_stream_reaches_a_client_that_ended_its_writing() {
    let (provider, daemon) = one_provider();
    let mut stream = connect(&daemon.socket);
    stream
        .write_all(b"{\"op\":\"login\",\"provider\":\"demo\"}\n")
        .unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reader = BufReader::new(stream);
    prompt_approved_done(&mut reader, &provider);
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "the connection ends after the stream");
}

#[test]
fn a_request_sent_behind_a_login_is_answered_after_its_stream() {
    let (provider, daemon) = one_provider();
    let mut stream = connect(&daemon.socket);
    stream
        .write_all(b"{\"op\":\"login\",\"provider\":\"demo\"}\n{\"op\":\"version\"}\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    prompt_approved_done(&mut reader, &provider);
    let version = next_line(&mut reader);
    assert_eq!(version["ok"], true, "{version}");
    assert_eq!(
        version["protocol"],
        tokend::protocol::PROTOCOL_VERSION,
        "{version}"
    );
}

/// A client that closes its connection while it waits (Ctrl-C) lets go of
/// it: the login goes on, the connection does not, so clients that come
/// and go do not use up the daemon's connections ([`MAX_CONNECTIONS`]
/// served at once; the next would wait in the backlog, unanswered).
#[test]
fn a_client_that_closes_while_waiting_lets_go_of_its_connection() {
    let (_provider, daemon) = one_provider();
    for _ in 0..MAX_CONNECTIONS + 6 {
        let mut stream = connect(&daemon.socket);
        stream
            .write_all(b"{\"op\":\"login\",\"provider\":\"demo\"}\n")
            .unwrap();
        let mut reader = BufReader::new(stream);
        assert_eq!(next_line(&mut reader)["event"], "prompt");
    }
    let mut stream = connect(&daemon.socket);
    stream.write_all(b"{\"op\":\"status\"}\n").unwrap();
    let status = next_line(&mut BufReader::new(stream));
    assert_eq!(status["ok"], true, "{status}");
}
