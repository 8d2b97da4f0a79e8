//! Benchmark of the Unix socket `token` op on a cached token, beside a floor.
//!
//!     cargo bench --bench socket
//!
//! The floor is the least any server could do: a blocking server in C, in a
//! process of its own as tokend is (`benches/socket_floor.c`, built here with
//! `cc`), with a thread per connection that answers every line with a fixed
//! token line. Both are measured in the same run by the same client code, so
//! the ratios are what to read: absolute times on a shared 2-core machine
//! are noisy.
//!
//! Until 2026-12-04 the floor was the same server as threads of this
//! benchmark's own process, which spares it the switch of address space a
//! daemon pays each time it wakes a client (measured: a percent or two of
//! the 16-client throughput, less than runs differ by). It is still
//! measured at 16 clients and printed beside the other, so that figures
//! from before stay comparable.
//!
//! Reported: p50/p99 latency of one client; throughput with 1, 16 and 64
//! concurrent clients (the median of rounds taken in turn); and the whole-process time of `tokenctl token NAME`
//! beside `/bin/true` and beside a minimal one-shot client of the floor.
//! Everything runs on 127.0.0.1 and Unix sockets only, in bounded loops.

#[path = "../tests/e2e/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::daemon::{Daemon, DaemonOptions, login};
use support::provider::Provider;

const REQUEST: &[u8] = b"{\"op\":\"token\",\"provider\":\"demo\"}\n";
const LATENCY_SAMPLES: usize = 20_000;
const THROUGHPUT_REQUESTS: usize = 40_000;
/// Throughput rounds per server, taken in turn (tokend, floor, tokend, …)
/// so that a burst of load from elsewhere on a shared machine hits both;
/// the median round is reported.
const THROUGHPUT_ROUNDS: usize = 7;
const PROCESS_RUNS: usize = 300;

fn main() {
    // `--oneshot SOCKET`: the minimal client, for the process-time baseline.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--oneshot") {
        oneshot(Path::new(&args[i + 1]));
        return;
    }
    // cargo bench passes `--bench`; anything else is ignored.
    let provider = Provider::rfc8628();
    // The daemon logs at its default level (info), as in production: the
    // test harness's debug logging would cost a log line per request.
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            env: vec![("RUST_LOG".into(), "info".into())],
            ..DaemonOptions::default()
        },
    );
    let token = login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let floor_dir = tempfile::tempdir().unwrap();
    let floor = floor_dir.path().join("floor.sock");
    let _floor_server = CFloor::start(floor_dir.path(), &floor, &token);
    let in_process_floor = floor_dir.path().join("in-process-floor.sock");
    start_in_process_floor(&in_process_floor, &token);

    println!(
        "tokend socket benchmark (cached token; {} cores)\n",
        available_cores()
    );
    let tokend_latency = latency(&daemon.socket);
    let floor_latency = latency(&floor);
    println!(
        "latency, 1 client, {LATENCY_SAMPLES} requests   tokend          floor           ratio"
    );
    println!(
        "  p50                                    {:>9.1} µs    {:>9.1} µs    {:.2}",
        tokend_latency.0,
        floor_latency.0,
        tokend_latency.0 / floor_latency.0
    );
    println!(
        "  p99                                    {:>9.1} µs    {:>9.1} µs    {:.2}",
        tokend_latency.1,
        floor_latency.1,
        tokend_latency.1 / floor_latency.1
    );
    println!(
        "\nthroughput, median of {THROUGHPUT_ROUNDS} rounds of {THROUGHPUT_REQUESTS} requests\n                                        tokend          floor           ratio"
    );
    for clients in [1, 16, 64] {
        let mut t = Vec::with_capacity(THROUGHPUT_ROUNDS);
        let mut f = Vec::with_capacity(THROUGHPUT_ROUNDS);
        let mut in_process = Vec::new();
        for _ in 0..THROUGHPUT_ROUNDS {
            t.push(throughput(&daemon.socket, clients));
            f.push(throughput(&floor, clients));
            // The earlier floor, at the target's client count, in the same
            // turns: comparable with the figures measured before 2026-12-04.
            if clients == 16 {
                in_process.push(throughput(&in_process_floor, clients));
            }
        }
        let (t, f) = (median(t), median(f));
        println!(
            "  {clients:>2} clients                             {t:>9.0} /s     {f:>9.0} /s     {:.2}",
            t / f
        );
        if !in_process.is_empty() {
            let in_process = median(in_process);
            println!(
                "  {:<39}{t:>9.0} /s     {in_process:>9.0} /s     {:.2}",
                "16 clients, floor in this process",
                t / in_process
            );
        }
    }

    let tokenctl = env!("CARGO_BIN_EXE_tokenctl");
    let socket = daemon.socket.to_str().unwrap().to_owned();
    let me = std::env::current_exe().unwrap();
    let floor_arg = floor.to_str().unwrap().to_owned();
    let runs = [
        ("/bin/true", process_time(Path::new("/bin/true"), &[])),
        (
            "one-shot client of the floor",
            process_time(&me, &["--oneshot", &floor_arg]),
        ),
        (
            "tokenctl token demo",
            process_time(Path::new(tokenctl), &["--socket", &socket, "token", "demo"]),
        ),
    ];
    println!("\nwhole process, median of {PROCESS_RUNS} runs");
    for (name, median) in &runs {
        println!("  {name:<38} {:>9.2} ms", median.as_secs_f64() * 1e3);
    }
    println!(
        "  tokenctl / one-shot client             {:>9.2}",
        runs[2].1.as_secs_f64() / runs[1].1.as_secs_f64()
    );
    provider.assert_no_violations();
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// The line every floor answers with: a token answer of tokend's shape.
fn floor_answer(token: &str) -> String {
    format!(
        "{{\"ok\":true,\"access_token\":\"{token}\",\"token_type\":\"Bearer\",\"expires_at\":1790000000}}\n"
    )
}

/// The floor: `benches/socket_floor.c`, compiled into `dir` and run as a
/// child listening on `path`; killed when dropped (and by the kernel if this
/// process dies first).
struct CFloor(Child);

impl CFloor {
    fn start(dir: &Path, path: &Path, token: &str) -> Self {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/socket_floor.c");
        let program = dir.join("socket_floor");
        let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let built = Command::new(&compiler)
            .args(["-O2", "-pthread", "-o"])
            .arg(&program)
            .arg(&source)
            .status()
            .unwrap_or_else(|e| panic!("cannot run the C compiler `{compiler}`: {e}"));
        assert!(
            built.success(),
            "{compiler} could not build {}",
            source.display()
        );
        let mut child = Command::new(&program)
            .arg(path)
            .arg(floor_answer(token))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the C floor");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().expect("its stdout"))
            .read_line(&mut ready)
            .expect("the C floor's first line");
        assert_eq!(ready.trim(), "ready", "the C floor did not start");
        Self(child)
    }
}

impl Drop for CFloor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The earlier floor: the same server as threads of this process.
fn start_in_process_floor(path: &Path, token: &str) {
    let listener = UnixListener::bind(path).unwrap();
    let answer = floor_answer(token);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if writer.write_all(answer.as_bytes()).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
}

/// One client's request/answer round trips.
struct Client {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    line: String,
}

impl Client {
    fn connect(path: &Path) -> Self {
        let stream = UnixStream::connect(path).unwrap();
        Self {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
            line: String::new(),
        }
    }

    fn round_trip(&mut self) {
        self.writer.write_all(REQUEST).unwrap();
        self.line.clear();
        self.reader.read_line(&mut self.line).unwrap();
        assert!(self.line.starts_with("{\"ok\":true"), "{}", self.line);
    }
}

/// p50 and p99 latency in microseconds.
fn latency(path: &Path) -> (f64, f64) {
    let mut client = Client::connect(path);
    for _ in 0..1000 {
        client.round_trip();
    }
    let mut samples: Vec<Duration> = (0..LATENCY_SAMPLES)
        .map(|_| {
            let start = Instant::now();
            client.round_trip();
            start.elapsed()
        })
        .collect();
    samples.sort_unstable();
    let pick = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((samples.len() - 1) as f64 * q) as usize;
        samples[index].as_secs_f64() * 1e6
    };
    (pick(0.50), pick(0.99))
}

/// Requests per second with `clients` connections working at once.
fn throughput(path: &Path, clients: usize) -> f64 {
    let per_client = THROUGHPUT_REQUESTS / clients;
    let path: PathBuf = path.to_owned();
    let mut connected: Vec<Client> = (0..clients).map(|_| Client::connect(&path)).collect();
    for client in &mut connected {
        client.round_trip();
    }
    let start = Instant::now();
    let threads: Vec<_> = connected
        .into_iter()
        .map(|mut client| {
            std::thread::spawn(move || {
                for _ in 0..per_client {
                    client.round_trip();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    #[allow(clippy::cast_precision_loss)]
    let total = (per_client * clients) as f64;
    total / start.elapsed().as_secs_f64()
}

/// The median of `values` (not empty).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Median wall time of running `program args` to completion.
fn process_time(program: &Path, args: &[&str]) -> Duration {
    let mut times: Vec<Duration> = (0..PROCESS_RUNS)
        .map(|_| {
            let start = Instant::now();
            let out = Command::new(program).args(args).output().unwrap();
            let elapsed = start.elapsed();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            elapsed
        })
        .collect();
    times.sort_unstable();
    times[times.len() / 2]
}

/// The minimal one-shot client: connect, ask, print the token line.
fn oneshot(path: &Path) {
    let mut client = Client::connect(path);
    client.round_trip();
    print!("{}", client.line);
}
