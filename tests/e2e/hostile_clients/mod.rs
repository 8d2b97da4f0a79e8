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

mod stalls;
mod uid_caps;

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
    // The limit is said.
    assert!(
        lines[0].contains("within 300 ms of its first byte"),
        "{lines:?}"
    );
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
