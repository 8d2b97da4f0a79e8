//! A `login` stream's client that goes away lets go of its connection,
//! whatever it did before it went: ended its writing side first
//! (`shutdown(SHUT_WR)`, as `socat` and `nc -N` do once their input ends)
//! or sent bytes behind its request. Such connections were kept until
//! the device code expired (about 10 minutes): 64 of them used up a uid's
//! connections, 512 the daemon's.
//!
//! Each test opens more connections one after the other than the daemon
//! serves at once ([`MAX_CONNECTIONS`]), each a client that reads its
//! prompt and goes a little later (as `socat -t 0.2` does: [`WINDOW`]
//! clients later, so that the daemon has long read the end of its input
//! or the bytes behind the request). A connection kept would leave the
//! last ones waiting in the kernel's queue, their prompts never coming
//! (the read's guard then fails the test). Meanwhile a client that ended
//! its writing side and stays still gets its whole stream.

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

use tokend::ipc::socket::MAX_CONNECTIONS;

use super::login_stream::{connect, next_line};
use super::one_provider;

const LOGIN: &[u8] = b"{\"op\":\"login\",\"provider\":\"demo\"}\n";

/// How many clients that go are open at once: each closes once this many
/// more have come.
const WINDOW: usize = 32;

/// How a client that goes ends its part before it closes.
#[derive(Clone, Copy)]
enum Before {
    /// `shutdown(SHUT_WR)` after the request.
    HalfClosing,
    /// Another request sent behind the login in the same write.
    SendingMore,
    /// Both: another request behind it, then `shutdown(SHUT_WR)`.
    SendingMoreAndHalfClosing,
}

/// A client that sends a login request, ends its part as `before` says
/// and reads its prompt; it closes the connection when dropped.
fn comes(socket: &std::path::Path, before: Before) -> BufReader<UnixStream> {
    let mut stream = connect(socket);
    match before {
        Before::HalfClosing => stream.write_all(LOGIN).unwrap(),
        Before::SendingMore | Before::SendingMoreAndHalfClosing => {
            let mut request = LOGIN.to_vec();
            request.extend_from_slice(b"{\"op\":\"status\"}\n");
            stream.write_all(&request).unwrap();
        }
    }
    if matches!(
        before,
        Before::HalfClosing | Before::SendingMoreAndHalfClosing
    ) {
        stream.shutdown(Shutdown::Write).unwrap();
    }
    let mut reader = BufReader::new(stream);
    let prompt = next_line(&mut reader);
    assert_eq!(prompt["event"], "prompt", "{prompt}");
    reader
}

/// A client that ended its writing side after its login request and
/// stays to read: its prompt now, its `done` line once approved.
fn stays(socket: &std::path::Path) -> (BufReader<UnixStream>, String) {
    let mut stream = connect(socket);
    stream.write_all(LOGIN).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reader = BufReader::new(stream);
    let prompt = next_line(&mut reader);
    assert_eq!(prompt["event"], "prompt", "{prompt}");
    let code = prompt["user_code"]
        .as_str()
        .expect("a user code")
        .to_owned();
    (reader, code)
}

/// Clients of `kinds`, in turn, come and go more times than the daemon
/// has connections, beside one that stays; the one that stays gets its
/// `done` line, and the daemon still answers.
fn clients_come_and_go(kinds: &[Before]) {
    let (provider, daemon) = one_provider();
    let (mut staying, code) = stays(&daemon.socket);
    let mut open = VecDeque::new();
    for i in 0..MAX_CONNECTIONS + 6 {
        open.push_back(comes(&daemon.socket, kinds[i % kinds.len()]));
        if open.len() > WINDOW {
            drop(open.pop_front());
        }
    }
    drop(open);
    provider.approve(&code).unwrap();
    let done = next_line(&mut staying);
    assert_eq!(
        (&done["event"], &done["ok"]),
        (&"done".into(), &true.into()),
        "{done}"
    );
    let mut asking = super::Connection::open(&daemon);
    let status = asking.ask(r#"{"op":"status"}"#);
    assert_eq!(status["ok"], true, "{status}");
}

#[test]
fn clients_that_end_their_writing_then_go_let_go_of_their_connections() {
    clients_come_and_go(&[Before::HalfClosing]);
}

#[test]
fn clients_that_send_more_behind_a_login_then_go_let_go_of_their_connections() {
    clients_come_and_go(&[Before::SendingMore, Before::SendingMoreAndHalfClosing]);
}
