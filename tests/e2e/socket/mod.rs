//! The Unix socket front-end under good and bad input: the real daemon,
//! raw protocol lines, and the real `tokenctl`.

use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;

use support::daemon::{Daemon, DaemonOptions, login, stderr};
use support::other_uid::{NOBODY, OtherUser};
use support::provider::Provider;
use tokend::protocol::MAX_REQUEST_LINE;

mod denied;
mod full;
mod group;
mod login_hang_up;
mod login_stream;
mod nulls;
mod refusals;
mod roles;
mod threads;

/// A raw protocol connection.
struct Connection {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// How long a test waits for an answer: a daemon that stops answering (a
/// deadlock) fails the test, not hangs the suite.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

impl Connection {
    fn open(daemon: &Daemon) -> Self {
        let stream = UnixStream::connect(&daemon.socket).expect("connect");
        stream
            .set_read_timeout(Some(ANSWER_WITHIN))
            .expect("a read timeout");
        Self {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    fn answer(&mut self) -> serde_json::Value {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("no answer within {ANSWER_WITHIN:?}: {e}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    fn ask(&mut self, request: &str) -> serde_json::Value {
        self.send(format!("{request}\n").as_bytes());
        self.answer()
    }
}

fn one_provider() -> (Provider, Daemon) {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    (provider, daemon)
}

/// [`one_provider`], logged in: its access token.
fn logged_in() -> (Provider, Daemon, String) {
    let (provider, daemon) = one_provider();
    let token = login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    (provider, daemon, token)
}

#[test]
fn the_socket_is_private() {
    let (_provider, daemon) = one_provider();
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir = daemon.socket.parent().unwrap();
    assert_eq!(
        std::fs::metadata(dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn bad_lines_get_error_answers_and_the_connection_survives() {
    let (_provider, daemon) = one_provider();
    let mut conn = Connection::open(&daemon);
    let cases: &[(&[u8], &str)] = &[
        (b"this is not json\n", "bad_request"),
        (b"{\"op\":\"tokn\",\"provider\":\"demo\"}\n", "bad_request"),
        (b"{\"op\":\"token\"}\n", "bad_request"),
        (
            b"{\"op\":\"token\",\"provider\":\"demo\",\"min_valid\":-1}\n",
            "bad_request",
        ),
        (
            b"{\"op\":\"token\",\"provider\":\"demo\",\"min_valid\":99999999}\n",
            "bad_request",
        ),
        (b"\xff\xfe\xfd\n", "bad_request"),
        (b"\n", "bad_request"),
        (b"{\"op\":\"token\",\"provider\":\"\"}\n", "bad_request"),
        (
            b"{\"op\":\"token\",\"provider\":\"nope\"}\n",
            "unknown_provider",
        ),
        (
            b"{\"op\":\"token\",\"provider\":\"demo\"}\n",
            "login_required",
        ),
    ];
    for (line, code) in cases {
        conn.send(line);
        let answer = conn.answer();
        assert_eq!(answer["ok"], false, "{answer}");
        assert_eq!(
            answer["error"]["code"],
            *code,
            "{:?}: {answer}",
            String::from_utf8_lossy(line)
        );
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    // A field of the wrong type is named, its value never quoted (it may
    // be a token pasted in the wrong place).
    let answer = conn.ask(r#"{"op":"token","provider":"demo","min_valid":"at_pasted"}"#);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`min_valid` must be a whole number"),
        "{answer}"
    );
    assert!(!message.contains("at_pasted"), "{answer}");
    // An oversized line is refused, and the next request on the same
    // connection is served.
    let mut huge = vec![b'x'; MAX_REQUEST_LINE * 4];
    huge.push(b'\n');
    conn.send(&huge);
    assert_eq!(conn.answer()["error"]["code"], "request_too_large");
    let version = conn.ask("{\"op\":\"version\"}");
    assert_eq!(version["ok"], true);
    assert_eq!(version["protocol"], tokend::protocol::PROTOCOL_VERSION);
    // The daemon is still fine for everyone else.
    assert!(daemon.tokenctl(&["status"]).status.success());
}

#[test]
fn many_requests_per_connection_and_many_connections() {
    let (provider, daemon, token) = logged_in();
    let mut conns: Vec<_> = (0..200).map(|_| Connection::open(&daemon)).collect();
    for round in 0..5 {
        for conn in &mut conns {
            conn.send(b"{\"op\":\"token\",\"provider\":\"demo\"}\n");
        }
        for conn in &mut conns {
            let answer = conn.answer();
            assert_eq!(
                answer["access_token"],
                token.as_str(),
                "round {round}: {answer}"
            );
        }
    }
    // Served from memory: no request reached the provider for these.
    assert_eq!(provider.refresh_count(), 0);
}

#[test]
fn a_client_that_vanishes_mid_request_hurts_nobody() {
    let (_provider, daemon) = one_provider();
    for _ in 0..20 {
        let mut stream = UnixStream::connect(&daemon.socket).unwrap();
        stream.write_all(b"{\"op\":\"sta").unwrap();
        drop(stream);
    }
    let mut conn = Connection::open(&daemon);
    assert_eq!(conn.ask("{\"op\":\"status\"}")["ok"], true);
}

/// A line with no end (bytes and no newline, for as long as the client
/// likes) is refused once a megabyte has come, and the connection closed:
/// it was read and thrown away until the request timeout, a core busy.
#[test]
fn a_line_without_end_is_refused_and_its_connection_closed() {
    let (_provider, daemon) = one_provider();
    let mut conn = Connection::open(&daemon);
    let mut writer = conn.writer.try_clone().unwrap();
    // Eight megabytes, written from a thread: the daemon stops reading
    // after one, and the rest fails to go (a reset), as it should.
    let endless = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        (0..128).all(|_| writer.write_all(&chunk).is_ok())
    });
    let answer = conn.answer();
    assert_eq!(answer["error"]["code"], "request_too_large", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("the connection is closed"), "{answer}");
    let mut rest = Vec::new();
    let closed = conn.reader.read_to_end(&mut rest);
    assert!(
        matches!(closed, Ok(0))
            || closed.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the connection stayed open"
    );
    assert!(!endless.join().unwrap(), "all eight megabytes were read");
}

#[test]
fn a_request_without_newline_before_eof_is_answered() {
    let (_provider, daemon) = one_provider();
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    stream.write_all(b"{\"op\":\"version\"}").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let protocol = format!("\"protocol\":{}", tokend::protocol::PROTOCOL_VERSION);
    assert!(answer.contains(&protocol), "{answer}");
}

/// A daemon whose socket nobody's group may open, with three providers:
/// `mine` (no role for nobody), `shared` (`allow_users`) and `delegated`
/// (`manage_users`); `mine` and `shared` logged in.
fn shared_with_nobody(provider: &Provider) -> Daemon {
    let providers = format!(
        "{}{}{}",
        provider.config("mine"),
        provider.config_with("shared", &format!("allow_users = [{NOBODY}]")),
        provider.config_with("delegated", &format!("manage_users = [{NOBODY}]"))
    );
    let options = DaemonOptions {
        // The group may connect; the core decides per provider.
        daemon_keys: socket_shared_with_nobody(),
        ..DaemonOptions::default()
    };
    let daemon = Daemon::start_with(&providers, options);
    // Let the other user traverse the test's directories.
    for dir in [daemon.dir.path(), daemon.socket.parent().unwrap()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for name in ["mine", "shared"] {
        login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        });
    }
    daemon
}

/// The `[daemon]` keys that let the primary group of `nobody` connect to
/// the socket (the core then decides per provider).
pub(crate) fn socket_shared_with_nobody() -> String {
    format!(
        "socket_mode = \"0660\"\nsocket_group = \"{}\"\n",
        group_name(NOBODY)
    )
}

pub(crate) fn group_name(gid: u32) -> String {
    std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<_> = l.split(':').collect();
            (f.get(2) == Some(&gid.to_string().as_str())).then(|| f[0].to_owned())
        })
        .expect("a group for the gid")
}

/// `tokenctl` sends nothing to a socket served by a user tokend never runs
/// as (not root, not the caller, not `tokend`): another user who could put
/// a socket at the path would otherwise hand out tokens of their choosing
/// and collect the ones git's `erase` sends as `refused`. Exit status 3,
/// and the fake server reads nothing.
#[test]
fn tokenctl_refuses_a_socket_served_by_another_user() {
    let Some(nobody) =
        OtherUser::nobody_or_skip("tokenctl_refuses_a_socket_served_by_another_user")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    rustix::fs::chown(dir.path(), Some(rustix::fs::Uid::from_raw(NOBODY)), None).unwrap();
    let socket = dir.path().join("tokend.sock");
    let script = r"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(1)
print('ready', flush=True)
# Only against a hang, should tokenctl never connect (it must, to learn who serves).
s.settimeout(30)
c, _ = s.accept()
data = b''
while b'\n' not in data:
    chunk = c.recv(4096)
    if not chunk:
        break
    data += chunk
print('read', len(data), flush=True)
";
    let mut server = nobody
        .command("python3")
        .args(["-c", script])
        .arg(&socket)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokenctl"))
        .arg("--socket")
        .arg(&socket)
        .args(["token", "demo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("it is served by uid 65534"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "read 0",
        "the fake server got a request"
    );
    server.wait().unwrap();
}

/// A user whose `XDG_RUNTIME_DIR` is another user's (left by `su`) is told
/// that, with what to set it to: the refusal read as the daemon's config
/// deciding who may.
#[test]
fn a_runtime_directory_of_another_user_is_named() {
    let Some(nobody) = OtherUser::nobody_or_skip("a_runtime_directory_of_another_user_is_named")
    else {
        return;
    };
    // Root's runtime directory, as root's sessions have it.
    let roots = tempfile::tempdir().unwrap();
    std::fs::set_permissions(roots.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = nobody
        .command("tokenctl")
        .env_clear()
        .env("XDG_RUNTIME_DIR", roots.path())
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "XDG_RUNTIME_DIR ({}) is uid 0's, not this user's (uid {NOBODY}; left by `su`?): \
             unset it, or set it to /run/user/{NOBODY}",
            roots.path().display()
        )),
        "{err}"
    );
}
