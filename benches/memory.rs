//! tokend's idle memory beside a floor.
//!
//!     cargo bench --bench memory
//!
//! Prints the size of the `tokend` and `tokenctl` binaries and the resident
//! memory (RSS, and its anonymous and file-backed parts, from
//! `/proc/PID/status`) of:
//! - the floor: a minimal tokio program (current-thread runtime) that only
//!   listens on a Unix socket; this benchmark binary runs itself as that
//!   program (`--floor SOCKET`), so it is built with the same profile;
//! - `tokend` idle with 2 logged-in sessions, `store = "memory"`;
//! - the same with `store = "secret-service"` (gnome-keyring on a private
//!   bus; skipped with a message where gnome-keyring is missing);
//! - `tokend` (memory store) idle again after a burst of 16 busy clients,
//!   once the threads that served them have exited: what a burst leaves.
//!
//! Each figure is the median of 3 daemons, read after they have settled.
//! Everything runs on 127.0.0.1 and Unix sockets; every wait is bounded.

#[path = "../tests/e2e/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, login};
use support::keyring::TestKeyring;
use support::process::status_number;
use support::provider::Provider;

/// Runs per figure; the median is reported.
const RUNS: usize = 3;
/// Lets a process settle (the blocking pool's threads finish their last
/// calls) before its memory is read.
const SETTLE: Duration = Duration::from_secs(2);
/// The target for idle RSS with two sessions: 5 MB (decimal, as
/// the issue writes it), which is 4.77 MiB.
const TARGET_KIB: u64 = 5_000_000 / 1024;

/// Resident memory of one process, in KiB.
#[derive(Clone, Copy)]
struct Resident {
    total: u64,
    anon: u64,
    file: u64,
}

impl Resident {
    fn of(pid: u32) -> Self {
        let dir = Path::new("/proc").join(pid.to_string());
        Self {
            total: status_number(&dir, "VmRSS"),
            anon: status_number(&dir, "RssAnon"),
            file: status_number(&dir, "RssFile"),
        }
    }

    /// The run with the median total of `runs`.
    fn median(mut runs: Vec<Self>) -> Self {
        runs.sort_by_key(|r| r.total);
        runs[runs.len() / 2]
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, socket] = args.as_slice()
        && flag == "--floor"
    {
        floor(Path::new(socket));
        return;
    }
    println!("tokend memory benchmark (median of {RUNS} runs each)\n");
    for name in ["tokend", "tokenctl"] {
        let path = binary(name);
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        println!("  {name:<10} binary {:>6.2} MiB", mib(size / 1024));
    }
    println!();
    println!("  process                                       RSS       anon     file    vs floor");
    let floor = Resident::median((0..RUNS).map(|_| measure_floor()).collect());
    report("floor: tokio, one Unix listener", floor, floor);
    let provider = Provider::rfc8628();
    let memory = Resident::median(
        (0..RUNS)
            .map(|_| idle_with_two_sessions(&provider, DaemonOptions::default()))
            .collect(),
    );
    report("tokend, 2 sessions, store = memory", memory, floor);
    let after_burst = Resident::median(
        (0..RUNS)
            .map(|_| idle_after_busy_clients(&provider))
            .collect(),
    );
    report("  the same after 16 busy clients", after_burst, floor);
    let bus = PrivateBus::start();
    if let Some(_keyring) = TestKeyring::start_or_skip(&bus, "memory benchmark (secret-service)") {
        let keyring = Resident::median(
            (0..RUNS)
                .map(|_| {
                    idle_with_two_sessions(
                        &provider,
                        DaemonOptions {
                            store: "secret-service",
                            env: vec![("DBUS_SESSION_BUS_ADDRESS".into(), bus.address().into())],
                            ..DaemonOptions::default()
                        },
                    )
                })
                .collect(),
        );
        report("tokend, 2 sessions, store = secret-service", keyring, floor);
    }
    println!(
        "\n  target: idle RSS <= 5 MB ({:.2} MiB) with 2 sessions",
        mib(TARGET_KIB)
    );
}

fn report(what: &str, resident: Resident, floor: Resident) {
    #[allow(clippy::cast_precision_loss)]
    let ratio = resident.total as f64 / floor.total as f64;
    println!(
        "  {what:<44} {:>5.2} MiB {:>5.2} {:>8.2}    {ratio:.2}x",
        mib(resident.total),
        mib(resident.anon),
        mib(resident.file)
    );
}

/// The path cargo built `name` at (this benchmark's own profile).
fn binary(name: &str) -> PathBuf {
    match name {
        "tokend" => PathBuf::from(env!("CARGO_BIN_EXE_tokend")),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_tokenctl")),
    }
}

/// A fresh daemon with two providers logged in, left idle; its memory.
fn idle_with_two_sessions(provider: &Provider, options: DaemonOptions) -> Resident {
    let config = format!("{}{}", provider.config("one"), provider.config("two"));
    let daemon = Daemon::start_with(&config, options);
    for name in ["one", "two"] {
        login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        });
    }
    std::thread::sleep(SETTLE);
    Resident::of(daemon.pid())
}

/// Clients at once in [`idle_after_busy_clients`], and the `token`
/// requests each sends on its one connection.
const BUSY_CLIENTS: usize = 16;
const BUSY_REQUESTS: usize = 2_000;

/// A fresh daemon with two sessions after [`BUSY_CLIENTS`] clients each
/// asked for tokens [`BUSY_REQUESTS`] times on one connection (so that each
/// had a thread of its own), idle again once those threads have exited
/// (tokio lets a blocking thread go after 10 idle seconds); its memory.
fn idle_after_busy_clients(provider: &Provider) -> Resident {
    use std::io::{BufRead, BufReader, Write};
    let config = format!("{}{}", provider.config("one"), provider.config("two"));
    let daemon = Daemon::start_with(&config, DaemonOptions::default());
    for name in ["one", "two"] {
        login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        });
    }
    let clients: Vec<_> = (0..BUSY_CLIENTS)
        .map(|_| {
            let socket = daemon.socket.clone();
            std::thread::spawn(move || {
                let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                for _ in 0..BUSY_REQUESTS {
                    stream
                        .write_all(b"{\"op\":\"token\",\"provider\":\"one\"}\n")
                        .unwrap();
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    assert!(line.starts_with("{\"ok\":true"), "{line}");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    // No event tells when a thread has exited: look, a bounded number of
    // times, until the event loop's thread is the only one left.
    let dir = Path::new("/proc").join(daemon.pid().to_string());
    for _ in 0..150 {
        if status_number(&dir, "Threads") == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(status_number(&dir, "Threads"), 1, "the threads stayed");
    std::thread::sleep(SETTLE);
    Resident::of(daemon.pid())
}

/// Runs this binary as the floor program and reads its memory once it
/// listens.
fn measure_floor() -> Resident {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("floor.sock");
    let mut child = FloorProcess(
        Command::new(std::env::current_exe().unwrap())
            .arg("--floor")
            .arg(&socket)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "the floor program did not listen"
        );
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the floor program exited"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(SETTLE);
    Resident::of(child.0.id())
}

struct FloorProcess(Child);

impl Drop for FloorProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The floor: a current-thread tokio runtime accepting on a Unix socket and
/// echoing lines, nothing else.
fn floor(socket: &Path) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::UnixListener::bind(socket).unwrap();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if write.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}

fn mib(kib: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let kib = kib as f64;
    kib / 1024.0
}
