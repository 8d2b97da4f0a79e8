//! Reaching the daemon: what a client says of a path with no daemon, or
//! something that is no socket, or a socket it may not use or whose path
//! is too long, of a daemon that takes no connections, and of one that
//! refuses this one before reading it.

use std::io::Write;

use super::*;
use crate::protocol::ErrorCode;

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
    // A group no process of this test is in, and an owner that is not
    // this process (the owner's class would apply, not the group's).
    let owner = Some(rustix::fs::Uid::from_raw(4_000_124));
    if rustix::fs::chown(&socket, owner, Some(rustix::fs::Gid::from_raw(4_000_123))).is_err() {
        eprintln!("SKIPPED a_socket_of_a_group_this_process_is_not_in_is_named: needs root");
        return;
    }
    let error = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    let text = super::error::connect_advice(&socket, &error);
    assert!(text.contains("is for group `4000123`"), "{text}");
    assert!(text.contains("log in again"), "{text}");
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
