//! A misbehaving local client cannot hurt the others.
//!
//! The bounds that take waiting to see (a request never finished, answers
//! never read, an idle connection) are tested in-process on the library's
//! [`socket::serve_with`] with short [`Limits`], so nothing waits out the
//! daemon's 10 s. The ones that need no waiting (thousands of connections,
//! a tight loop of token requests) run against the real `tokend`.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use support::daemon::{Daemon, login, stderr, stdout, token};
use support::other_uid::OtherUser;
use support::provider::Provider;
use tokend::broker::{Broker, BrokerParts, SystemClock};
use tokend::config::Environment;
use tokend::ipc::socket::{self, Limits, MAX_CONNECTIONS};
use tokend::provider::HttpClient;
use tokend::store::MemoryStore;
use tokend_emulator::Rfc8628Options;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The socket front-end of a broker with no providers, in this process.
struct Server {
    socket: PathBuf,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves a provider-less broker on a fresh socket within `limits`.
fn serve(limits: Limits) -> Server {
    serve_on(limits, 0o600)
}

/// [`serve`] with the socket at `mode`, its directory open to every uid
/// when the mode lets others in.
fn serve_on(limits: Limits, mode: u32) -> Server {
    serve_providers(limits, mode, "")
}

/// [`serve_on`] with `providers` (`[providers.NAME]` tables) configured.
fn serve_providers(limits: Limits, mode: u32, providers: &str) -> Server {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    if mode & 0o007 != 0 {
        for open in [dir.path().to_owned(), dir.path().join("run")] {
            std::fs::create_dir_all(&open).unwrap();
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let socket = dir.path().join("run/tokend.sock");
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\nsocket = \"{}\"\nbus = \"none\"\nstore = \"memory\"\n[providers]\n{providers}",
            socket.display()
        ),
    )
    .unwrap();
    let config = tokend::config::load(&path, &Environment::from_process()).unwrap();
    let broker = Broker::new(
        &config.daemon,
        config.providers.clone(),
        BrokerParts {
            store: Arc::new(MemoryStore::new()),
            clock: Arc::new(SystemClock),
            http: HttpClient::new(Duration::from_secs(5)).unwrap(),
            owner_uid: rustix::process::geteuid().as_raw(),
        },
    );
    let listener = socket::bind(&socket, mode, None).unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(socket::serve_with(
        listener,
        broker,
        stop.clone(),
        TaskTracker::new(),
        limits,
    ));
    Server {
        socket,
        stop,
        _dir: dir,
    }
}

/// Short bounds, so that the tests see them act.
fn short() -> Limits {
    Limits {
        max_connections: 8,
        max_connections_per_uid: 4,
        idle_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_millis(300),
    }
}

/// One request, one answer, on a new connection.
async fn ask(server: &Server, request: &str) -> serde_json::Value {
    let stream = UnixStream::connect(&server.socket).await.unwrap();
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{request}\n").as_bytes())
        .await
        .unwrap();
    let mut line = String::new();
    tokio::io::BufReader::new(read)
        .read_line(&mut line)
        .await
        .unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

/// Reads the rest of a connection: its lines until the server closes it.
async fn lines_until_closed(stream: UnixStream) -> Vec<String> {
    let mut lines = tokio::io::BufReader::new(stream).lines();
    let mut all = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        all.push(line);
    }
    all
}

#[tokio::test]
async fn a_half_written_request_times_out_and_others_are_served() {
    let server = serve(short());
    let mut slow = UnixStream::connect(&server.socket).await.unwrap();
    slow.write_all(b"{\"op\":\"ver").await.unwrap();
    // Others are answered while the half line waits.
    for _ in 0..20 {
        assert_eq!(ask(&server, r#"{"op":"version"}"#).await["ok"], true);
    }
    // The half line gets an error answer and the connection is closed.
    let lines = lines_until_closed(slow).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("not completed in time"), "{lines:?}");
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let server = serve(short());
    let idle = UnixStream::connect(&server.socket).await.unwrap();
    assert!(lines_until_closed(idle).await.is_empty());
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_off_and_others_are_served() {
    never_reads_its_answers_to(r#"{"op":"status"}"#, 0).await;
}

/// As above with `token` requests on a connection that has moved to a
/// thread of its own (its blocking writes time out the same way).
#[tokio::test]
async fn a_token_client_that_never_reads_is_cut_off_and_others_are_served() {
    never_reads_its_answers_to(r#"{"op":"token","provider":"demo"}"#, 3).await;
}

/// A client that asks `request` `read_first` times reading the answers,
/// then sends it again and again and never reads.
async fn never_reads_its_answers_to(request: &str, read_first: usize) {
    let server = serve(short());
    let greedy = UnixStream::connect(&server.socket).await.unwrap();
    let (read, mut write) = greedy.into_split();
    let mut read = tokio::io::BufReader::new(read);
    for _ in 0..read_first {
        write
            .write_all(format!("{request}\n").as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        read.read_line(&mut line).await.unwrap();
        assert!(line.starts_with('{'), "{line}");
    }
    let _unread = read;
    // Far more answers than the socket buffers hold, never read: the
    // server's writes block, time out, and the connection is dropped, which
    // ends this writer with an error before it has written everything.
    let requests = format!("{request}\n").repeat(1_000);
    let writer = tokio::spawn(async move {
        for _ in 0..1_000 {
            write.write_all(requests.as_bytes()).await?;
        }
        Ok::<(), std::io::Error>(())
    });
    for _ in 0..20 {
        assert_eq!(ask(&server, r#"{"op":"version"}"#).await["ok"], true);
    }
    let outcome = writer.await.unwrap();
    assert!(
        outcome.is_err(),
        "the server kept reading from a client that never read its answers"
    );
    assert_eq!(ask(&server, r#"{"op":"status"}"#).await["ok"], true);
}

/// `count` provider tables (`p0000`...), never asked of their provider.
fn many_providers(count: usize) -> String {
    use std::fmt::Write as _;
    let mut providers = String::new();
    for i in 0..count {
        let _ = write!(
            providers,
            "[providers.p{i:04}]\ndevice_authorization_endpoint = \"https://idp.example/device\"\n\
             token_endpoint = \"https://idp.example/token\"\nclient_id = \"x\"\n"
        );
    }
    providers
}

/// Asks `server` for a streamed status on a new connection and reads its
/// first line: the lines to come, and the writing half (kept open).
async fn begin_status_stream(
    server: &Server,
) -> (
    tokio::io::Lines<tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>>,
    tokio::net::unix::OwnedWriteHalf,
) {
    let stream = UnixStream::connect(&server.socket).await.unwrap();
    let (read, mut write) = stream.into_split();
    write
        .write_all(b"{\"op\":\"status\",\"stream\":true}\n")
        .await
        .unwrap();
    let mut lines = tokio::io::BufReader::new(read).lines();
    assert!(lines.next_line().await.unwrap().is_some());
    (lines, write)
}

/// A client that pauses in the middle of a streamed `status` longer than
/// the write timeout (`tokenctl status | less` on its first screen) gets
/// the rest when it reads on, within the idle timeout: it was cut off
/// after the write timeout (10 s), and tokenctl printed part of the list
/// and said the daemon had stopped or crashed.
#[tokio::test]
async fn a_status_stream_waits_for_a_reader_that_pauses() {
    const PROVIDERS: usize = 2_000;
    let providers = many_providers(PROVIDERS);
    let server = serve_providers(
        Limits {
            idle_timeout: Duration::from_secs(30),
            ..short()
        },
        0o600,
        &providers,
    );
    let (mut lines, _write) = begin_status_stream(&server).await;
    // The pause is the scenario: longer than the write timeout (300 ms),
    // the statuses (about 300 KB) more than the socket buffers hold.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut rest = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let done = line.contains("\"done\"");
        rest.push(line);
        if done {
            break;
        }
    }
    assert_eq!(rest.len(), PROVIDERS, "{:?}", rest.last());
    assert!(
        rest.last()
            .unwrap()
            .contains(&format!("\"count\":{PROVIDERS}")),
        "{:?}",
        rest.last()
    );
}

/// A stop is not held by a client that stalls: one that began a request
/// line and did not finish it is told `shutting_down` at once (it waited
/// out the request timeout), and one that does not read its answer (a
/// streamed status) is let go within a second (it waited out the write
/// timeout). Both timeouts here are an hour: the bounds on the reads
/// below are only there so that a failure ends.
#[tokio::test]
async fn clients_that_stall_do_not_hold_a_stop() {
    let providers = many_providers(2_000);
    let hour = Duration::from_secs(3_600);
    let server = serve_providers(
        Limits {
            idle_timeout: hour,
            request_timeout: hour,
            write_timeout: hour,
            ..short()
        },
        0o600,
        &providers,
    );
    let mut half_written = UnixStream::connect(&server.socket).await.unwrap();
    half_written.write_all(b"{\"op\":\"sta").await.unwrap();
    // The stream has begun; the rest fills the socket's buffers.
    let (mut lines, _write) = begin_status_stream(&server).await;
    // Both connections are served (the request's first bytes read) before
    // the stop: a version request on a third comes after them.
    assert_eq!(ask(&server, r#"{"op":"version"}"#).await["ok"], true);
    server.stop.cancel();
    let bound = Duration::from_secs(60);
    let told = tokio::time::timeout(bound, lines_until_closed(half_written))
        .await
        .expect("the half-written request was not answered at the stop");
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("\"code\":\"shutting_down\""), "{told:?}");
    // The other client goes on not reading (the scenario, not a wait for
    // an event): past the second a write is given at a stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rest = tokio::time::timeout(bound, async {
        let mut count = 0;
        while let Ok(Some(_)) = lines.next_line().await {
            count += 1;
        }
        count
    })
    .await
    .expect("the client that did not read was not let go at the stop");
    assert!(rest < 2_000, "the whole stream was written: {rest}");
}

#[tokio::test]
async fn connections_beyond_the_bound_wait_and_are_served_when_slots_free() {
    let server = serve(Limits {
        idle_timeout: Duration::from_secs(60),
        ..short()
    });
    // Every slot taken by a client that says nothing.
    let mut squatters = Vec::new();
    for _ in 0..200 {
        squatters.push(UnixStream::connect(&server.socket).await.unwrap());
    }
    // A real client connects (the kernel queues it) and asks.
    let stream = UnixStream::connect(&server.socket).await.unwrap();
    let (read, mut write) = stream.into_split();
    write.write_all(b"{\"op\":\"version\"}\n").await.unwrap();
    let waiting = tokio::spawn(async move {
        let mut line = String::new();
        tokio::io::BufReader::new(read)
            .read_line(&mut line)
            .await
            .unwrap();
        line
    });
    // The squatters leave; the queued client is served.
    drop(squatters);
    let line = waiting.await.unwrap();
    assert!(line.contains("\"ok\":true"), "{line}");
}

/// The real daemon: more connections than it serves at once are held in
/// the kernel's queue, not as tasks or descriptors of the daemon; when they
/// go, everyone is served.
#[test]
fn thousands_of_connections_cost_the_daemon_bounded_descriptors() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    let hoard: Vec<StdUnixStream> = (0..1_200)
        .map(|_| StdUnixStream::connect(&daemon.socket).expect("connect"))
        .collect();
    // A request on one of the first connections is served: they were accepted.
    let mut first = hoard[0].try_clone().unwrap();
    first.write_all(b"{\"op\":\"version\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(&hoard[0]).read_line(&mut line).unwrap();
    assert!(line.contains("\"ok\":true"), "{line}");
    let descriptors = std::fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
        .unwrap()
        .count();
    assert!(
        descriptors <= MAX_CONNECTIONS + 64,
        "{descriptors} descriptors open for {} connections",
        hoard.len()
    );
    drop(first);
    drop(hoard);
    let out = daemon.tokenctl(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A caller asking in a tight loop is served from memory: no refresh per
/// call, and asking for more life than any token has costs one refresh at
/// most per spacing, not one per call.
#[test]
fn a_tight_loop_of_token_requests_is_served_from_cache() {
    let provider = Provider::start(Rfc8628Options {
        interval: Duration::from_secs(1),
        ..Rfc8628Options::default()
    });
    let daemon = Daemon::start(&provider.config("demo"));
    let first = login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let stream = StdUnixStream::connect(&daemon.socket).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut ask = |request: &[u8]| {
        writer.write_all(request).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        serde_json::from_str::<serde_json::Value>(&line).unwrap()
    };
    for _ in 0..5_000 {
        let answer = ask(b"{\"op\":\"token\",\"provider\":\"demo\"}\n");
        assert_eq!(answer["access_token"], first.as_str(), "{answer}");
    }
    assert_eq!(provider.refresh_count(), 0);
    // More life than the provider ever gives (its tokens live an hour).
    for _ in 0..500 {
        let answer = ask(b"{\"op\":\"token\",\"provider\":\"demo\",\"min_valid\":9000}\n");
        assert_eq!(answer["ok"], false, "{answer}");
    }
    // One refresh may be tried (the provider might now give more); a loop
    // of 500 requests is over long before the spacing allows another one.
    assert!(
        provider.refresh_count() <= 2,
        "{} refreshes for 500 requests",
        provider.refresh_count()
    );
    let current = token(&daemon, "demo", &[]);
    assert!(provider.is_valid_access_token(&current));
    let status = stdout(&daemon.tokenctl(&["--json", "status", "demo"]));
    assert!(status.contains("\"active\""), "{status}");
}

/// A second uid holding its share of connections is told so on the next
/// one, while the daemon's own uid is still served; once it closes some,
/// it is served again. The uid may use a provider: its connections count
/// against it alone, not against the pool of callers with no role.
#[tokio::test]
async fn one_uid_cannot_take_every_connection() {
    let Some(other) = OtherUser::nobody_or_skip("one_uid_cannot_take_every_connection") else {
        return;
    };
    let server = serve_providers(
        Limits {
            max_connections: 64,
            idle_timeout: Duration::from_secs(60),
            ..short()
        },
        0o666,
        &format!(
            "[providers.shared]\ndevice_authorization_endpoint = \"https://idp.example/device\"\n\
             token_endpoint = \"https://idp.example/token\"\nclient_id = \"x\"\nallow_users = [{}]\n",
            other.uid
        ),
    );
    // As nobody: hold 4 (the cap), then one more, then close them all
    // and ask again on a new connection.
    let script = r#"
import socket, sys
path = sys.argv[1]
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s
def answer(s):
    s.sendall(b'{"op":"version"}\n')
    return s.makefile().readline().strip()
held = [connect() for _ in range(4)]
print(answer(held[0]))
extra = connect()
print(extra.makefile().readline().strip())
# tokenctl, which asks `version` first, is told of the cap too.
import subprocess
run = subprocess.run([sys.argv[2], '--socket', path, 'status'], capture_output=True, text=True)
print(run.returncode, run.stderr.strip().replace(chr(10), ' '))
for s in held + [extra]:
    s.close()
print(answer(connect()))
"#;
    let mut command = tokio::process::Command::new("/usr/bin/python3");
    command
        .args(["-c", script])
        .arg(&server.socket)
        .arg(other.binary("tokenctl"))
        .uid(other.uid)
        .gid(other.gid);
    let run = command.output();
    // Meanwhile the daemon's own uid is not counted against anyone.
    let (output, own) = tokio::join!(run, async {
        let mut answers = Vec::new();
        for _ in 0..8 {
            answers.push(ask(&server, r#"{"op":"version"}"#).await["ok"].clone());
        }
        answers
    });
    let output = output.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].contains("\"ok\":true"), "{stdout}");
    let capped = format!("uid {} holds 4 connections already", other.uid);
    assert!(
        lines[1].contains("\"ok\":false") && lines[1].contains(&capped),
        "the fifth connection of one uid was not refused: {stdout}"
    );
    // Not "did it stop or crash?" with exit 3 (tokend not reachable),
    // which took the cap's answer to `version` for a daemon too old to
    // know it and sent `status` on the closed connection.
    assert!(
        lines[2].contains(&capped) && !lines[2].starts_with("3 "),
        "tokenctl over the cap: {stdout}"
    );
    assert!(
        lines[3].contains("\"ok\":true"),
        "not served after closing: {stdout}"
    );
    assert!(own.iter().all(|ok| ok == true), "{own:?}");
}

/// Callers that may see no provider share one cap, whatever their uids: a
/// person with many uids (a user namespace's subordinate uids, each a uid
/// of its own to `SO_PEERCRED`) could hold the per-uid cap once per uid,
/// and so every connection the daemon serves. Another uid with no role is
/// refused while the first holds the cap; the daemon's own uid is served.
#[tokio::test]
async fn callers_with_no_role_share_one_cap_whatever_their_uids() {
    let Some(first) =
        OtherUser::nobody_or_skip("callers_with_no_role_share_one_cap_whatever_their_uids")
    else {
        return;
    };
    let server = serve_on(
        Limits {
            max_connections: 64,
            idle_timeout: Duration::from_secs(60),
            ..short()
        },
        0o666,
    );
    // The first uid holds the cap until told to let go.
    let holder = r#"
import socket, sys
path = sys.argv[1]
held = []
for _ in range(4):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    held.append(s)
held[0].sendall(b'{"op":"version"}\n')
print(held[0].makefile().readline().strip(), flush=True)
sys.stdin.readline()
"#;
    // A refused connection may be answered and closed before the request
    // is written: the answer is read all the same.
    let asker = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
try:
    s.sendall(b'{"op":"version"}\n')
except BrokenPipeError:
    pass
print(s.makefile().readline().strip())
"#;
    let mut holding = tokio::process::Command::new("/usr/bin/python3")
        .args(["-c", holder])
        .arg(&server.socket)
        .uid(first.uid)
        .gid(first.gid)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = tokio::io::BufReader::new(holding.stdout.take().unwrap()).lines();
    let line = said.next_line().await.unwrap().unwrap();
    assert!(line.contains("\"ok\":true"), "{line}");

    // Another uid, no role either: refused, the shared cap named.
    let second_uid = 61_235;
    let ask_as_second = || {
        tokio::process::Command::new("/usr/bin/python3")
            .args(["-c", asker])
            .arg(&server.socket)
            .uid(second_uid)
            .gid(second_uid)
            .output()
    };
    let output = ask_as_second().await.unwrap();
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(
        answer.contains("\"ok\":false")
            && answer.contains("callers that may see no provider hold 4 connections already"),
        "{answer}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(ask(&server, r#"{"op":"version"}"#).await["ok"], true);

    // Let go: the second uid is served.
    holding
        .stdin
        .take()
        .unwrap()
        .write_all(b"go\n")
        .await
        .unwrap();
    assert!(holding.wait().await.unwrap().success());
    let output = ask_as_second().await.unwrap();
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(answer.contains("\"ok\":true"), "{answer}");
}
