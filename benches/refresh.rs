//! What a blocking refresh costs a caller, beside what it must cost.
//!
//!     cargo bench --bench refresh
//!
//! A token request that finds no usable token waits for a refresh. That
//! wait can be no shorter than the provider's own answer to the refresh
//! plus one store write of the new refresh token (tokend hands out the new
//! access token only once the new refresh token is stored, so a crash
//! cannot lose the session). This benchmark measures the three:
//!
//! - **blocking refresh**: `token` requests over the Unix socket that each
//!   wait for a refresh. Each request names its provider's current access
//!   token as `refused` (as git's credential `erase` does), which makes
//!   tokend refresh before it answers: the same wait as a request after
//!   expiry, without waiting for tokens to expire. Two rounds over every
//!   seeded session: the first refresh after a start is reported apart (in
//!   the Secret Service it also checks the item's descriptive attributes,
//!   once per item and process), the second is the steady state. tokend
//!   replaces a still-valid refused token once per 5 s per session, so the
//!   second round waits that out first;
//! - **provider**: the same refresh-token grant sent straight to the same
//!   emulator by a minimal blocking HTTP/1.1 client on a kept-alive
//!   connection (what tokend's pool does too);
//! - **store write**: saving one session record over an existing one, as a
//!   refresh does: in the encrypted-file store (seal, write, fsync, swap,
//!   fsync the directory) in this process, in a directory on the same file
//!   system, into a new file (a record without a spare: one an older
//!   version saved) and over the spare that save left (every other one,
//!   since a login's save makes the spare: the daemon's steady
//!   state, which the blocking refreshes measured here are); in the Secret
//!   Service (`SetSecret` on the item) in a child.
//!
//! It also times a plain `token` request on a fresh connection right after
//! each refresh (a cached token): what any request costs, refresh or not,
//! so that the refresh's own share shows (blocking minus cached).
//!
//! Both stores a refresh can write to are measured: the encrypted-file store
//! (the system service's) and the Secret Service (the user service's
//! default: a real gnome-keyring on a private bus; skipped with a message
//! where gnome-keyring is missing). The Secret Service writes are timed in a
//! child process (`--secret-service-writes`) whose environment names the
//! private bus, since keyring's store takes the bus from the environment.
//!
//! It prints the medians, the ratios blocking / (provider + store write)
//! and (blocking - cached) / (provider + store write), and the difference
//! blocking - (provider + store write): what tokend adds, in milliseconds.
//! `BENCH_RUST_LOG=debug` runs the daemon at that level and prints its log
//! of one refresh, whose timestamps show where the time went, and the
//! medians of its steps over every refresh (request sent -> answer,
//! answer -> new refresh token stored).
//! Everything runs on 127.0.0.1 and Unix sockets; every loop is bounded.

#[path = "../tests/e2e/support/mod.rs"]
#[allow(unused_imports)]
mod support;

// A directory of its own: a file beside this one would be another bench.
#[path = "refresh/floors.rs"]
mod floors;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, log_number};
use support::file_store::{FileStore, Seeded, granted_records};
use support::keyring::TestKeyring;
use support::provider::Provider;
use tokend::broker::timing::ON_DEMAND_RETRY_SPACING;

/// Sessions, hence blocking refreshes measured, in the encrypted-file store.
const PROVIDERS: usize = 200;

/// The same in the Secret Service (each seeded with `secret-tool`).
const KEYRING_PROVIDERS: usize = 60;

/// What one store's run measured (medians).
struct Figures {
    store: &'static str,
    /// Sessions refreshed (one timed refresh each).
    sessions: usize,
    /// `token` requests that wait for a refresh, and cached ones.
    timings: Timings,
    /// One save of a session record in the store (the encrypted file
    /// store's into a new file, as before it kept spares).
    write: Duration,
    /// The encrypted file store's save over its spare (every save after a
    /// session's first in a process); `None` for the Secret Service.
    write_over_spare: Option<Duration>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--secret-service-writes") {
        floors::secret_service_writes();
        return;
    }
    let provider = Provider::rfc8628();
    println!("tokend blocking-refresh benchmark\n");
    let mut runs = vec![file_store_run(&provider)];
    let bus = PrivateBus::start();
    if let Some(keyring) = TestKeyring::start_or_skip(&bus, "refresh benchmark (secret-service)") {
        runs.push(secret_service_run(&provider, &bus, &keyring));
    }
    let direct = median(floors::provider_refreshes(&provider));

    println!("  median                           encrypted file   Secret Service");
    let row = |what: &str, f: &dyn Fn(&Figures) -> String| {
        let cells: Vec<String> = runs.iter().map(f).collect();
        println!(
            "  {what:<32} {:>14} {:>16}",
            cells[0],
            cells.get(1).map_or("-", String::as_str)
        );
    };
    row("first refresh after a start", &|r| {
        format!("{:.2} ms", ms(r.timings.first))
    });
    row("blocking refresh (socket token)", &|r| {
        format!("{:.2} ms", ms(r.timings.blocking))
    });
    row("cached token, same request", &|r| {
        format!("{:.2} ms", ms(r.timings.cached))
    });
    row("provider's refresh (direct)", &|_| {
        format!("{:.2} ms", ms(direct))
    });
    row("one store write", &|r| format!("{:.2} ms", ms(r.write)));
    row("provider + store write", &|r| {
        format!("{:.2} ms", ms(direct + r.write))
    });
    row("blocking / (provider + write)", &|r| {
        format!(
            "{:.2}",
            r.timings.blocking.as_secs_f64() / (direct + r.write).as_secs_f64()
        )
    });
    row("blocking - (provider + write)", &|r| {
        // What tokend adds to the two costs it cannot avoid: the socket
        // request, its HTTP client beyond a bare one, the hand-offs between
        // the event loop and the blocking pool. Signed: it may be negative.
        format!(
            "{:+.2} ms",
            (r.timings.blocking.as_secs_f64() - (direct + r.write).as_secs_f64()) * 1e3
        )
    });
    row("store write over the spare", &|r| {
        r.write_over_spare
            .map_or("-".into(), |w| format!("{:.2} ms", ms(w)))
    });
    row("blocking / (provider + that)", &|r| {
        r.write_over_spare.map_or("-".into(), |w| {
            format!(
                "{:.2}",
                r.timings.blocking.as_secs_f64() / (direct + w).as_secs_f64()
            )
        })
    });
    row("(blocking - cached) / same", &|r| {
        format!(
            "{:.2}",
            r.timings
                .blocking
                .saturating_sub(r.timings.cached)
                .as_secs_f64()
                / (direct + r.write).as_secs_f64()
        )
    });
    println!("\n  target: blocking <= provider + one store write (ratio <= 1.0)");
    let counts: Vec<String> = runs
        .iter()
        .map(|r| format!("{} in the {}", r.sessions, r.store))
        .collect();
    println!("  sessions, one timed refresh each: {}", counts.join(", "));
    provider.assert_no_violations();
}

/// Medians, over every refresh in a debug `log`, of the daemon's steps:
/// request sent to the provider -> answer read, and answer -> new refresh
/// token stored (its `refresh_sent`, `refresh_answered` and
/// `refresh_saved` lines' `at_unix_us`).
fn print_timeline(log: &str) {
    let micros = |us: u128| Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX));
    let event = |line: &str, name: &str| line.contains(&format!("event=\"{name}\""));
    // Per provider: the time of its last step, to pair each with the next.
    let mut sent = std::collections::HashMap::new();
    let mut answered = std::collections::HashMap::new();
    let (mut to_answer, mut to_save) = (Vec::new(), Vec::new());
    for line in log.lines() {
        let Some(provider) = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("provider="))
        else {
            continue;
        };
        let Some(time) = log_number(line, "at_unix_us") else {
            continue;
        };
        if event(line, "refresh_sent") {
            sent.insert(provider, time);
        } else if event(line, "refresh_answered") {
            if let Some(start) = sent.remove(provider) {
                to_answer.push(micros(time.saturating_sub(start)));
            }
            answered.insert(provider, time);
        } else if event(line, "refresh_saved")
            && let Some(start) = answered.remove(provider)
        {
            to_save.push(micros(time.saturating_sub(start)));
        }
    }
    if to_answer.is_empty() || to_save.is_empty() {
        return;
    }
    println!(
        "  over {} refreshes, medians: request sent -> answer {:.0} µs, answer -> stored {:.0} µs",
        to_answer.len(),
        ms(median(to_answer)) * 1e3,
        ms(median(to_save)) * 1e3
    );
}

/// The encrypted-file store: sessions sealed here, writes timed in this process.
fn file_store_run(provider: &Provider) -> Figures {
    let store = FileStore::new();
    let providers = configs(provider, "p", PROVIDERS);
    let seeded = store.seed(provider, &providers, |_| Duration::from_secs(4 * 3600));
    let mut options = store.options();
    options.env.push(log_level());
    let daemon = Daemon::start_with(&providers, options);
    let timings = blocking_and_cached(&daemon, &seeded);
    if std::env::var_os("BENCH_RUST_LOG").is_some() {
        // With BENCH_RUST_LOG=debug: one refresh's steps, timestamped
        // (refresh_sent, refresh_answered, refresh_saved, handed out).
        let log = daemon.log();
        println!("  the daemon's log of one refresh (encrypted file):");
        for line in log.lines().filter(|l| l.contains("p100")) {
            println!("  {line}");
        }
        print_timeline(&log);
        println!();
    }
    let (new_file, over_spare) = floors::file_store_writes(provider, &providers);
    Figures {
        store: "encrypted file",
        sessions: seeded.len(),
        timings,
        write: median(new_file),
        write_over_spare: Some(median(over_spare)),
    }
}

/// The Secret Service: sessions stored with `secret-tool`, writes timed in a
/// child process on the same private bus.
fn secret_service_run(provider: &Provider, bus: &PrivateBus, keyring: &TestKeyring) -> Figures {
    let providers = configs(provider, "k", KEYRING_PROVIDERS);
    let seeded = keyring.seed(provider, &providers, Duration::from_secs(4 * 3600));
    let daemon = Daemon::start_with(
        &providers,
        DaemonOptions {
            store: "secret-service",
            env: vec![
                ("DBUS_SESSION_BUS_ADDRESS".into(), bus.address().into()),
                log_level(),
            ],
            ..DaemonOptions::default()
        },
    );
    let timings = blocking_and_cached(&daemon, &seeded);
    drop(daemon);
    // Records of other names, so the daemon's items are left alone.
    let records = granted_records(provider, &configs(provider, "w", KEYRING_PROVIDERS), |_| {
        Duration::from_secs(4 * 3600)
    });
    Figures {
        store: "Secret Service",
        sessions: seeded.len(),
        timings,
        write: floors::secret_service_write_median(bus, &records),
        write_over_spare: None,
    }
}

/// `count` provider tables named PREFIX000.. pointing at `provider`.
fn configs(provider: &Provider, prefix: &str, count: usize) -> String {
    (0..count)
        .map(|i| provider.config(&format!("{prefix}{i:03}")))
        .collect()
}

/// The daemon's log level: info, as in production (debug logging costs
/// lines per refresh), unless `BENCH_RUST_LOG` says otherwise.
fn log_level() -> (String, String) {
    (
        "RUST_LOG".into(),
        std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "info".into()),
    )
}

/// Times, per seeded session, two `token` requests that each wait for a
/// refresh (each refuses the session's current token), then a plain one
/// answered from the cache. The first refresh after a start is timed apart:
/// it also checks the item's descriptive attributes in the Secret Service
/// (once per item and process), so the second is the steady state. tokend
/// replaces a refused token that is still valid once per
/// `ON_DEMAND_RETRY_SPACING` per session, so the second round waits that out.
fn blocking_and_cached(daemon: &Daemon, seeded: &[Seeded]) -> Timings {
    let mut first = Vec::with_capacity(seeded.len());
    let mut tokens = Vec::with_capacity(seeded.len());
    for session in seeded {
        let (elapsed, token) = refresh_refusing(daemon, &session.name, &session.access_token);
        first.push(elapsed);
        tokens.push(token);
    }
    // A replacement refused again within a minute of the refusal that
    // brought it waits that minute (`refused_again_spacing`).
    std::thread::sleep(
        tokend::broker::timing::refused_again_spacing(1).max(ON_DEMAND_RETRY_SPACING)
            + Duration::from_millis(200),
    );
    let mut blocking = Vec::with_capacity(seeded.len());
    let mut cached = Vec::with_capacity(seeded.len());
    for (session, token) in seeded.iter().zip(&tokens) {
        let (elapsed, token) = refresh_refusing(daemon, &session.name, token);
        blocking.push(elapsed);
        let plain = serde_json::json!({"op": "token", "provider": session.name});
        let started = Instant::now();
        let again = ask(daemon, &plain.to_string());
        cached.push(started.elapsed());
        assert_eq!(
            again["access_token"].as_str(),
            Some(token.as_str()),
            "{}: the cached request did not get the refreshed token",
            session.name
        );
    }
    Timings {
        first: median(first),
        blocking: median(blocking),
        cached: median(cached),
    }
}

/// The medians [`blocking_and_cached`] measured.
struct Timings {
    first: Duration,
    blocking: Duration,
    cached: Duration,
}

/// A `token` request for `provider` refusing `current`, timed; the new token.
fn refresh_refusing(daemon: &Daemon, provider: &str, current: &str) -> (Duration, String) {
    let request = serde_json::json!({"op": "token", "provider": provider, "refused": current});
    let started = Instant::now();
    let answer = ask(daemon, &request.to_string());
    let elapsed = started.elapsed();
    let token = answer["access_token"].as_str().unwrap_or_else(|| {
        panic!("{provider}: no token, the answer was {}", answer["error"]);
    });
    assert_ne!(
        token, current,
        "{provider}: the refused token came back: no refresh was measured"
    );
    (elapsed, token.to_owned())
}

/// One request line to the daemon's socket; its answer.
fn ask(daemon: &Daemon, line: &str) -> serde_json::Value {
    let mut stream = UnixStream::connect(&daemon.socket).expect("connect to tokend");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).expect("a JSON answer")
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
