//! Connections served on threads of their own
//! (`src/ipc/socket/threaded.rs`): a connection moves there at its second
//! `token` request; these tests check that it does, that everything asked
//! on it is answered as on the event loop, and that the bounds hold.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;

use super::{Connection, logged_in, shared_with_nobody};
use crate::support::daemon::{Daemon, stderr, stdout};
use crate::support::other_uid::OtherUser;
use crate::support::provider::Provider;
use tokend::protocol::MAX_REQUEST_LINE;

const TOKEN_REQUEST: &str = "{\"op\":\"token\",\"provider\":\"demo\"}";

/// A connection that has asked for `token` twice, so that it has moved to
/// a thread of its own (when one is free).
fn busy_connection(daemon: &Daemon, token: &str) -> Connection {
    let mut conn = Connection::open(daemon);
    for _ in 0..2 {
        assert_eq!(conn.ask(TOKEN_REQUEST)["access_token"], token);
    }
    conn
}

/// The daemon's threads, from /proc.
fn threads_of(daemon: &Daemon) -> usize {
    std::fs::read_dir(format!("/proc/{}/task", daemon.pid()))
        .unwrap()
        .count()
}

/// A connection that asks for tokens again and again gets a thread of its
/// own (up to the bound); one that asks once does not (the hand-off would
/// cost a client that connects per request more than it saves). Eight
/// connections that have asked once add no thread; once
/// each has asked three times, the daemon runs one for each beside its
/// event loop.
#[test]
fn connections_asking_for_tokens_again_and_again_get_threads_of_their_own() {
    let (_provider, daemon, token) = logged_in();
    let before = threads_of(&daemon);
    let mut conns: Vec<_> = (0..8).map(|_| Connection::open(&daemon)).collect();
    for conn in &mut conns {
        assert_eq!(conn.ask(TOKEN_REQUEST)["access_token"], token.as_str());
    }
    let after_one = threads_of(&daemon);
    // None moved (a few spare threads for whatever else may start one).
    assert!(after_one < before + 3, "{before} threads, then {after_one}");
    for _ in 0..2 {
        for conn in &mut conns {
            assert_eq!(conn.ask(TOKEN_REQUEST)["access_token"], token.as_str());
        }
    }
    let after_three = threads_of(&daemon);
    // The blocking pool's idle threads (from start-up) count among them.
    assert!(after_three > 8, "{before} threads, then {after_three}");
}

/// A thread answers token requests and hands anything else to the event
/// loop with the bytes it has read: every request on the connection is
/// answered, in order, whether it came alone or several in one write.
#[test]
fn other_requests_after_tokens_are_answered_in_order_on_the_same_connection() {
    let (provider, daemon, token) = logged_in();
    let mut conn = busy_connection(&daemon, &token);
    assert_eq!(conn.ask(TOKEN_REQUEST)["access_token"], token.as_str());
    assert_eq!(conn.ask("{\"op\":\"version\"}")["ok"], true);
    assert_eq!(conn.ask(TOKEN_REQUEST)["access_token"], token.as_str());
    let status = conn.ask("{\"op\":\"status\",\"provider\":\"demo\"}");
    assert_eq!(status["providers"][0]["name"], "demo", "{status}");

    // Pipelined, on a connection a thread serves: a token request, a bad
    // line, a version request and two more token requests in one write.
    let mut conn = busy_connection(&daemon, &token);
    conn.send(
        format!(
            "{TOKEN_REQUEST}\nnot json\n{{\"op\":\"version\"}}\n{TOKEN_REQUEST}\n{TOKEN_REQUEST}\n"
        )
        .as_bytes(),
    );
    assert_eq!(conn.answer()["access_token"], token.as_str());
    assert_eq!(conn.answer()["error"]["code"], "bad_request");
    assert!(conn.answer()["protocol"].is_number());
    assert_eq!(conn.answer()["access_token"], token.as_str());
    assert_eq!(conn.answer()["access_token"], token.as_str());
    assert_eq!(provider.refresh_count(), 0);
}

/// A token request that needs a refresh (its token `refused`, as git's
/// `erase` does) on a connection a thread serves waits for the refresh the
/// event loop runs, and gets the new token; neither token reaches the log
/// (the daemon logs at debug level here).
#[test]
fn a_refresh_asked_on_a_threaded_connection_is_waited_for() {
    let (provider, daemon, token) = logged_in();
    let mut conn = busy_connection(&daemon, &token);
    let answer = conn.ask(&format!(
        "{{\"op\":\"token\",\"provider\":\"demo\",\"refused\":\"{token}\"}}"
    ));
    let fresh = answer["access_token"].as_str().expect("a token").to_owned();
    assert_ne!(fresh, token, "{answer}");
    assert_eq!(provider.refresh_count(), 1);
    assert_eq!(conn.ask(TOKEN_REQUEST)["access_token"], fresh.as_str());
    let log = daemon.log();
    assert!(
        !log.contains(&token) && !log.contains(&fresh),
        "a token is in the log"
    );
}

/// A token request in pieces, or longer than a thread reads at a time
/// (padding allowed by JSON), is answered all the same on a connection a
/// thread serves.
#[test]
fn token_requests_in_pieces_or_long_are_answered() {
    let (_provider, daemon, token) = logged_in();
    let mut conn = busy_connection(&daemon, &token);
    let (first, second) = TOKEN_REQUEST.split_at(10);
    conn.send(first.as_bytes());
    conn.writer.flush().unwrap();
    conn.send(format!("{second}\n").as_bytes());
    assert_eq!(conn.answer()["access_token"], token.as_str());
    assert_eq!(conn.ask(TOKEN_REQUEST)["access_token"], token.as_str());

    let padded = format!(
        "{{\"op\":\"token\",{}\"provider\":\"demo\"}}",
        " ".repeat(6000)
    );
    assert!(padded.len() < MAX_REQUEST_LINE);
    let mut conn = busy_connection(&daemon, &token);
    assert_eq!(conn.ask(&padded)["access_token"], token.as_str());
    assert_eq!(conn.ask(TOKEN_REQUEST)["access_token"], token.as_str());
}

/// More connections than may have threads: the rest are served by the
/// event loop, and every one gets its tokens.
#[test]
fn connections_beyond_the_threads_are_served_by_the_event_loop() {
    let (_provider, daemon, token) = logged_in();
    let count = tokend::ipc::socket::MAX_THREADED_CONNECTIONS + 16;
    let mut conns: Vec<_> = (0..count).map(|_| Connection::open(&daemon)).collect();
    for round in 0..4 {
        for conn in &mut conns {
            conn.send(format!("{TOKEN_REQUEST}\n").as_bytes());
        }
        for (i, conn) in conns.iter_mut().enumerate() {
            let answer = conn.answer();
            assert_eq!(
                answer["access_token"],
                token.as_str(),
                "round {round}, connection {i}: {answer}"
            );
        }
    }
}

/// A daemon told to stop while clients hold connections (idle on the event
/// loop, or moved to threads) ends cleanly, and each client reads the end
/// of its stream.
#[test]
fn the_daemon_stops_cleanly_with_threaded_connections_open() {
    let (_provider, mut daemon, token) = logged_in();
    let idle: Vec<_> = (0..3).map(|_| Connection::open(&daemon)).collect();
    let mut answered: Vec<_> = (0..3).map(|_| Connection::open(&daemon)).collect();
    for conn in &mut answered {
        for _ in 0..3 {
            assert_eq!(conn.ask(TOKEN_REQUEST)["access_token"], token.as_str());
        }
    }
    let status = daemon.stop();
    assert!(status.success(), "{status:?}");
    for mut conn in idle.into_iter().chain(answered) {
        let mut rest = String::new();
        conn.reader.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "");
    }
}

/// Another uid on one connection, which moves to a thread of its own
/// after its second `token`: the same rule as on the event loop
/// (`another_uid_sees_and_does_only_what_its_role_allows`) for every
/// request there. Needs root (to run python3 as nobody).
#[test]
fn another_uid_on_a_threaded_connection_gets_only_what_its_role_allows() {
    let Some(nobody) = OtherUser::nobody_or_skip(
        "another_uid_on_a_threaded_connection_gets_only_what_its_role_allows",
    ) else {
        return;
    };
    let provider = Provider::rfc8628();
    let daemon = shared_with_nobody(&provider);
    let answers = tokens_on_one_connection(
        &nobody,
        &daemon.socket,
        &[
            "shared", "shared", "shared", "shared", "mine", "mine", "mine",
        ],
    );
    assert_eq!(answers.len(), 7, "{answers:?}");
    for answer in &answers[..4] {
        let token = answer["access_token"].as_str().expect("a token");
        assert!(provider.is_valid_access_token(token), "{answer}");
    }
    for answer in &answers[4..] {
        assert_eq!(answer["error"]["code"], "unknown_provider", "{answer}");
        assert!(answer.get("access_token").is_none(), "{answer}");
    }
}

/// The answers to `token` requests for `names`, asked in turn on one
/// connection by a process running as `user` (python3).
fn tokens_on_one_connection(
    user: &OtherUser,
    socket: &std::path::Path,
    names: &[&str],
) -> Vec<serde_json::Value> {
    let script = r#"
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
answers = s.makefile()
for name in sys.argv[2:]:
    s.sendall(json.dumps({"op": "token", "provider": name}).encode() + b"\n")
    print(answers.readline().strip())
"#;
    let run = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(socket)
        .args(names)
        .uid(user.uid)
        .gid(user.gid)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    stdout(&run)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
