//! tokend at scale: 10,000 providers against one emulator.
//!
//!     cargo bench --bench scale                  # every part
//!     cargo bench --bench scale -- ready idle    # some parts
//!
//! Parts (each prints its figures):
//! - `ready`: exec to `READY=1` (the median of five starts) and RSS with
//!   10,000 providers configured and 10 / 1,000 / 10,000 of them logged in;
//!   `bus = "none"`.
//! - `idle`: voluntary context switches of the whole process over 90 s,
//!   10,000 sessions whose tokens are valid for hours.
//! - `storm`: 10,000 access tokens that all expire within the same minute:
//!   peak concurrent refreshes seen by the provider, and the earliest and
//!   latest refresh relative to each token's expiry.
//! - `dbus`: exec to `READY=1` (the median of five starts) and RSS with the
//!   10,000 providers exported on a private bus.
//! - `store_down`: 10,000 providers, `store = "secret-service"` on a private
//!   bus where no Secret Service runs: voluntary context switches over
//!   10 s of idle (twice: from 2 s after `READY=1`, before the store's retry
//!   loop's first probe, and from 60 s, between probes), and the log lines
//!   of the first minute. Alone: `cargo bench --bench scale -- store_down`.
//!
//! Sessions are not logged in one device login at a time: the emulator
//! grants them directly ([`tokend_emulator::Emulator::grant_session`]) and
//! the benchmark seals them into an encrypted-file store, which the daemon
//! restores at start, as after a reboot. Everything runs on 127.0.0.1 and
//! Unix sockets; every wait is bounded.

#[path = "../tests/e2e/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions};
use support::file_store::FileStore;
use support::process::status_number;
use support::provider::Provider;
use tokend_emulator::Rfc8628Options;

const PROVIDERS: usize = 10_000;

fn main() {
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    println!(
        "tokend scale benchmark: {PROVIDERS} providers, one emulator, {} cores\n",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    let provider = Provider::start(Rfc8628Options::default());
    if wants("ready") {
        ready(&provider);
    }
    if wants("idle") {
        idle(&provider);
    }
    if wants("storm") {
        storm(&provider);
    }
    if wants("dbus") {
        dbus(&provider);
    }
    if wants("store_down") {
        store_down(&provider);
    }
}

/// `[providers.pNNNNN]` tables for `count` providers, all on `provider`.
fn providers_toml(provider: &Provider, count: usize) -> String {
    let mut text = String::with_capacity(count * 200);
    for i in 0..count {
        text.push_str(&provider.config(&name(i)));
    }
    text
}

fn name(i: usize) -> String {
    format!("p{i:05}")
}

/// Options for a daemon at info level (as in production) on `store`.
fn options(store: Option<&FileStore>) -> DaemonOptions {
    let mut options = store.map_or_else(DaemonOptions::default, FileStore::options);
    options.env.push(("RUST_LOG".into(), "info".into()));
    options
}

/// Seeds `count` sessions (providers `p00000..`) whose access tokens live
/// `lifetime(i)`; returns each one's access token expiry, by refresh token.
fn seed(
    provider: &Provider,
    store: &FileStore,
    count: usize,
    lifetime: impl Fn(usize) -> Duration,
) -> HashMap<String, SystemTime> {
    let started = Instant::now();
    let seeded = store.seed(provider, &providers_toml(provider, count), lifetime);
    eprintln!("  (seeded {count} sessions in {:.1?})", started.elapsed());
    seeded
        .into_iter()
        .map(|s| (s.refresh_token, s.expires_at))
        .collect()
}

/// A number of `/proc/PID/status`, in its unit (kB for memory).
fn status_field(pid: u32, field: &str) -> u64 {
    status_number(&Path::new("/proc").join(pid.to_string()), field)
}

/// Voluntary context switches of every thread of `pid`, and the thread count.
fn voluntary_switches(pid: u32) -> (u64, usize) {
    let tasks = Path::new("/proc").join(pid.to_string()).join("task");
    let mut total = 0;
    let mut threads = 0;
    for entry in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
        total += status_number(&entry.path(), "voluntary_ctxt_switches");
        threads += 1;
    }
    (total, threads)
}

fn mib(kib: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let kib = kib as f64;
    kib / 1024.0
}

/// Lets the daemon settle after READY (blocking-pool threads finish the
/// restore's last calls), so RSS is the steady one.
const SETTLE: Duration = Duration::from_secs(2);

/// Daemons started one after another for each `READY` figure, whose
/// median is reported: one start on a shared 2-core machine swings by a
/// third.
const READY_STARTS: usize = 5;

/// Starts `READY_STARTS` daemons with `providers` and `options()`, one
/// after another; the last one (still running) and the median time to
/// `READY=1`.
fn start_for_ready(providers: &str, options: impl Fn() -> DaemonOptions) -> (Daemon, Duration) {
    let mut times = Vec::with_capacity(READY_STARTS);
    let mut daemon = None;
    for _ in 0..READY_STARTS {
        drop(daemon.take());
        let started = Daemon::start_with(providers, options());
        times.push(started.ready_after);
        daemon = Some(started);
    }
    times.sort_unstable();
    (daemon.expect("one start at least"), times[times.len() / 2])
}

fn ready(provider: &Provider) {
    println!(
        "start-up and memory (bus = \"none\", info logging; READY: median of {READY_STARTS} starts)"
    );
    println!("  providers   sessions   store            READY after   RSS (idle)   RSS anon");
    let small = FileStore::new();
    seed(provider, &small, 10, |_| Duration::from_secs(4 * 3600));
    let (daemon, ready) = start_for_ready(&providers_toml(provider, 10), || options(Some(&small)));
    report_ready(10, "10", "encrypted-file", &daemon, ready);
    drop(daemon);
    let providers = providers_toml(provider, PROVIDERS);
    let (empty, ready) = start_for_ready(&providers, || options(None));
    report_ready(PROVIDERS, "0", "memory", &empty, ready);
    drop(empty);
    for count in [10, 1_000, PROVIDERS] {
        let store = FileStore::new();
        seed(provider, &store, count, |_| Duration::from_secs(4 * 3600));
        // As after a reboot, the records are on disk, not being written
        // back while the daemon starts.
        rustix::fs::sync();
        let (daemon, ready) = start_for_ready(&providers, || options(Some(&store)));
        report_ready(
            PROVIDERS,
            &count.to_string(),
            "encrypted-file",
            &daemon,
            ready,
        );
    }
    println!();
}

fn report_ready(providers: usize, sessions: &str, store: &str, daemon: &Daemon, ready: Duration) {
    std::thread::sleep(SETTLE);
    let pid = daemon.pid();
    println!(
        "  {providers:>9}   {sessions:>8}   {store:<15}  {:>8.1} ms   {:>7.1} MiB   {:>5.1} MiB",
        ready.as_secs_f64() * 1000.0,
        mib(status_field(pid, "VmRSS")),
        mib(status_field(pid, "RssAnon")),
    );
}

/// How long the idle measurement lasts: longer than a minute, so that a
/// periodic wake-up (say, to look at the wall clock) could not hide in it.
const IDLE_WINDOW: Duration = Duration::from_secs(90);

fn idle(provider: &Provider) {
    let store = FileStore::new();
    seed(provider, &store, PROVIDERS, |_| {
        Duration::from_secs(4 * 3600)
    });
    let daemon = Daemon::start_with(&providers_toml(provider, PROVIDERS), options(Some(&store)));
    std::thread::sleep(SETTLE);
    let pid = daemon.pid();
    let (before, threads_before) = voluntary_switches(pid);
    // The measurement is the waiting: nothing else may wake the daemon.
    std::thread::sleep(IDLE_WINDOW);
    let (after, threads_after) = voluntary_switches(pid);
    println!(
        "idle ({PROVIDERS} sessions valid for hours, no watchdog)\n  voluntary context switches in {} s: {} (threads: {threads_before} -> {threads_after}); RSS {:.1} MiB\n",
        IDLE_WINDOW.as_secs(),
        after.saturating_sub(before),
        mib(status_field(pid, "VmRSS")),
    );
}

/// Access tokens expire between this long after seeding and a minute later.
const STORM_FIRST_EXPIRY: Duration = Duration::from_secs(120);
/// How long the emulator takes to answer each refresh in the storm part.
const STORM_PROVIDER_DELAY: Duration = Duration::from_millis(50);
/// How long the storm part waits for every refresh at most.
const STORM_DEADLINE: Duration = Duration::from_secs(600);

fn storm(provider: &Provider) {
    let store = FileStore::new();
    // Spread evenly over one minute.
    let spread =
        |i: usize| STORM_FIRST_EXPIRY + Duration::from_millis(60_000 * i as u64 / PROVIDERS as u64);
    let expiries = seed(provider, &store, PROVIDERS, spread);
    // Each refresh takes the provider a while, as a real one does, so that
    // requests overlap and the bound has something to bound.
    provider.inject(
        tokend_emulator::Endpoint::Token,
        tokend_emulator::Fault::Delay(STORM_PROVIDER_DELAY),
        PROVIDERS,
    );
    let refreshes_before = provider.refresh_count();
    let daemon = Daemon::start_with(&providers_toml(provider, PROVIDERS), options(Some(&store)));
    let limit = 8;
    let deadline = Instant::now() + STORM_DEADLINE;
    // Bounded wait on a counter the emulator keeps; reading it costs a lock.
    while provider.refresh_count() < refreshes_before + PROVIDERS {
        assert!(
            Instant::now() < deadline,
            "only {} of {PROVIDERS} refreshed within {STORM_DEADLINE:?}",
            provider.refresh_count() - refreshes_before
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut margins = Vec::new();
    let mut late = 0;
    let mut first_at: Option<SystemTime> = None;
    let mut last_at: Option<SystemTime> = None;
    for request in provider.requests().iter().filter(|r| r.is_refresh()) {
        let Some(expiry) = request.field("refresh_token").and_then(|t| expiries.get(t)) else {
            continue;
        };
        first_at = Some(first_at.map_or(request.at_system, |f| f.min(request.at_system)));
        last_at = Some(last_at.map_or(request.at_system, |l| l.max(request.at_system)));
        match expiry.duration_since(request.at_system) {
            Ok(margin) => margins.push(margin),
            Err(_) => late += 1,
        }
        assert_eq!(request.outcome, "refreshed", "{request}");
    }
    margins.sort();
    let span = last_at
        .zip(first_at)
        .and_then(|(l, f)| l.duration_since(f).ok())
        .unwrap_or_default();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "refresh storm ({PROVIDERS} tokens expiring within one minute, {:?} to {:?} after start; provider answers in {:?}; max_concurrent_refreshes = {limit})",
        STORM_FIRST_EXPIRY,
        STORM_FIRST_EXPIRY + Duration::from_secs(60),
        STORM_PROVIDER_DELAY
    );
    let _ = writeln!(
        text,
        "  refreshed: {} of {PROVIDERS}, after expiry: {late}",
        margins.len()
    );
    let _ = writeln!(
        text,
        "  peak concurrent requests at the token endpoint: {}",
        provider.max_concurrent_token_requests()
    );
    if let (Some(least), Some(most)) = (margins.first(), margins.last()) {
        let median = margins[margins.len() / 2];
        let _ = writeln!(
            text,
            "  refresh before expiry: least {:.1} s, median {:.1} s, most {:.1} s",
            least.as_secs_f64(),
            median.as_secs_f64(),
            most.as_secs_f64()
        );
    }
    let _ = writeln!(
        text,
        "  first to last refresh request: {:.1} s; RSS after: {:.1} MiB",
        span.as_secs_f64(),
        mib(status_field(daemon.pid(), "VmRSS"))
    );
    println!("{text}");
    assert_eq!(late, 0, "a token was refreshed after it expired");
}

fn dbus(provider: &Provider) {
    let bus = PrivateBus::start();
    let on_bus = || {
        let mut options = options(None);
        options.bus = "session";
        options
            .env
            .push(("DBUS_SESSION_BUS_ADDRESS".into(), bus.address().to_owned()));
        options
    };
    let (daemon, ready) = start_for_ready(&providers_toml(provider, PROVIDERS), on_bus);
    println!(
        "D-Bus ({PROVIDERS} provider objects on a private bus; READY: median of {READY_STARTS} starts)"
    );
    println!("  providers   sessions   store            READY after   RSS (idle)   RSS anon");
    report_ready(PROVIDERS, "0", "memory", &daemon, ready);
}

/// How long the `store_down` part counts wake-ups, each time.
const STORE_DOWN_WINDOW: Duration = Duration::from_secs(10);
/// How long it counts log lines.
const STORE_DOWN_LOG_WINDOW: Duration = Duration::from_secs(60);

fn store_down(provider: &Provider) {
    // A session bus on which nobody owns org.freedesktop.secrets.
    let bus = PrivateBus::start();
    let mut options = options(None);
    options.store = "secret-service";
    options
        .env
        .push(("DBUS_SESSION_BUS_ADDRESS".into(), bus.address().to_owned()));
    let daemon = Daemon::start_with(&providers_toml(provider, PROVIDERS), options);
    let started = Instant::now();
    let pid = daemon.pid();
    let mut text = format!(
        "store down ({PROVIDERS} providers, store = \"secret-service\", no Secret Service on the bus; info logging)\n"
    );
    for from in [SETTLE, STORE_DOWN_LOG_WINDOW] {
        std::thread::sleep(from.saturating_sub(started.elapsed()));
        let (before, _) = voluntary_switches(pid);
        std::thread::sleep(STORE_DOWN_WINDOW);
        let (after, threads) = voluntary_switches(pid);
        let _ = writeln!(
            text,
            "  voluntary context switches in {} s from {} s after READY: {} (threads: {threads})",
            STORE_DOWN_WINDOW.as_secs(),
            from.as_secs(),
            after.saturating_sub(before)
        );
        if from == SETTLE {
            // The log lines of the first minute, counted after it.
            std::thread::sleep(STORE_DOWN_LOG_WINDOW.saturating_sub(started.elapsed()));
            let log = daemon.log();
            let unavailable = log.matches("event=\"store_unavailable\"").count();
            let _ = writeln!(
                text,
                "  log lines in the first minute: {} (store_unavailable: {unavailable})",
                log.lines().count()
            );
        }
    }
    let _ = writeln!(text, "  RSS {:.1} MiB", mib(status_field(pid, "VmRSS")));
    println!("{text}");
}
