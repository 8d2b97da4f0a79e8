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
//!   expiry, without waiting for tokens to expire. One request per provider
//!   (`PROVIDERS` sessions seeded in the encrypted-file store), since
//!   tokend spaces on-demand refreshes of one session;
//! - **provider**: the same refresh-token grant sent straight to the same
//!   emulator by a minimal blocking HTTP/1.1 client on a kept-alive
//!   connection (what tokend's pool does too);
//! - **store write**: saving one session record in the encrypted-file store
//!   (seal, write, fsync, rename), in this process, in a directory on the
//!   same file system.
//!
//! It prints the medians and the ratio blocking / (provider + store write).
//! `BENCH_RUST_LOG=debug` runs the daemon at that level and prints its log
//! of one refresh, whose timestamps show where the time went.
//! Everything runs on 127.0.0.1 and Unix sockets; every loop is bounded.

#[path = "../tests/e2e/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use support::daemon::Daemon;
use support::file_store::{FileStore, granted_records};
use support::provider::Provider;
use tokend::store::{EncryptedFileStore, Store, StoreKey};

/// Sessions, hence blocking refreshes measured.
const PROVIDERS: usize = 200;

fn main() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let providers: String = (0..PROVIDERS)
        .map(|i| provider.config(&format!("p{i:03}")))
        .collect();
    let seeded = store.seed(&provider, &providers, |_| Duration::from_secs(4 * 3600));
    let mut options = store.options();
    // Info level, as in production: debug logging costs lines per refresh.
    options.env.push((
        "RUST_LOG".into(),
        std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "info".into()),
    ));
    let daemon = Daemon::start_with(&providers, options);

    println!("tokend blocking-refresh benchmark ({PROVIDERS} refreshes each)\n");
    let mut blocking = Vec::with_capacity(PROVIDERS);
    for session in &seeded {
        let request = serde_json::json!({
            "op": "token",
            "provider": session.name,
            "refused": session.access_token,
        });
        let started = Instant::now();
        let answer = ask(&daemon, &request.to_string());
        blocking.push(started.elapsed());
        let token = answer["access_token"].as_str().unwrap_or_else(|| {
            panic!(
                "{}: no token, the answer was {}",
                session.name, answer["error"]
            );
        });
        assert_ne!(
            token, session.access_token,
            "{}: the refused token came back: no refresh was measured",
            session.name
        );
    }

    let direct = provider_refreshes(&provider);
    let writes = store_writes(&provider, &providers);

    let (blocking, direct, writes) = (median(blocking), median(direct), median(writes));
    let floor = direct + writes;
    println!("  median                                   time");
    println!(
        "  blocking refresh (socket token)   {:>9.2} ms",
        ms(blocking)
    );
    println!("  provider's refresh (direct)       {:>9.2} ms", ms(direct));
    println!("  store write (encrypted file)      {:>9.2} ms", ms(writes));
    println!("  provider + store write            {:>9.2} ms", ms(floor));
    println!(
        "\n  blocking / (provider + store write)  {:.2}   (target <= 1.0)",
        blocking.as_secs_f64() / floor.as_secs_f64()
    );
    provider.assert_no_violations();
    if std::env::var_os("BENCH_RUST_LOG").is_some() {
        // With BENCH_RUST_LOG=debug: one refresh's steps, timestamped
        // (refresh_sent, refresh_answered, refresh_saved, handed out).
        println!("\n  the daemon's log of one of them:");
        for line in daemon.log().lines().filter(|l| l.contains("p100")) {
            println!("  {line}");
        }
    }
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

/// Times `PROVIDERS` refresh-token grants sent straight to the emulator on
/// one kept-alive connection, each with a session of its own (granted by
/// the emulator, as the seeded ones were).
fn provider_refreshes(provider: &Provider) -> Vec<Duration> {
    let url = provider.token_endpoint();
    let address = format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port().expect("a port")
    );
    let mut stream = TcpStream::connect(&address).expect("connect to the emulator");
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut times = Vec::with_capacity(PROVIDERS);
    for _ in 0..PROVIDERS {
        let granted = provider.grant_session("tokend-test", Duration::from_secs(4 * 3600));
        let refresh_token = granted.refresh_token.expect("a refresh token");
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", &refresh_token)
            .append_pair("client_id", "tokend-test")
            .finish();
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {address}\r\nAccept: application/json\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            url.path(),
            body.len()
        );
        let started = Instant::now();
        stream.write_all(request.as_bytes()).unwrap();
        let answer = read_response(&mut reader);
        times.push(started.elapsed());
        assert!(
            answer.contains("access_token"),
            "the emulator did not refresh: {answer}"
        );
    }
    times
}

/// Reads one HTTP/1.1 response with a `Content-Length`; returns its body.
fn read_response(reader: &mut BufReader<TcpStream>) -> String {
    let mut length = 0;
    for _ in 0..100 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().expect("a length");
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    String::from_utf8_lossy(&body).into_owned()
}

/// Times `PROVIDERS` saves of a session record in a fresh encrypted-file
/// store, as the daemon saves them.
fn store_writes(provider: &Provider, providers: &str) -> Vec<Duration> {
    let files = FileStore::new();
    let key = StoreKey::read_file(&files.key_path()).expect("the store key");
    let store = EncryptedFileStore::new(&files.state_dir(), key);
    granted_records(provider, providers, |_| Duration::from_secs(4 * 3600))
        .into_iter()
        .map(|(seeded, record)| {
            let started = Instant::now();
            store.save(&seeded.name, &record).expect("save a record");
            started.elapsed()
        })
        .collect()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
