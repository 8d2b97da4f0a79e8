//! A keyring that hangs (a real gnome-keyring, stopped with `SIGSTOP`)
//! while many sessions refresh: each refresh's save is a store call on a
//! thread of tokio's blocking pool, and a call that waits on a keyring
//! that never answers keeps its thread. At most `MAX_STORE_CALLS` are made
//! at once, so the daemon's threads stay within that many more than it
//! had, however many sessions save; the others wait for a slot within
//! their own store timeout and fail as timed out. Before, every save made
//! before the first one timed out took a thread and kept it (300 sessions:
//! 7 threads to 209 in 30 s, for the whole hang); the blocking pool's 512
//! are shared with the socket's threaded connections and HTTP name
//! lookups. When the keyring runs again every session is saved.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, stderr, stdout, token};
use support::keyring::TestKeyring;
use support::process::{signal, status_field};
use support::provider::{Provider, fast};
use tokend::broker::MAX_STORE_CALLS;

/// Sessions refreshed at once while the keyring hangs: several times
/// `MAX_STORE_CALLS`.
const SESSIONS: usize = 40;

/// The daemon's `store_timeout`: every refresh below is made well within
/// it, before the first save times out and the store counts as down
/// (after which no save is tried).
const STORE_TIMEOUT: Duration = Duration::from_secs(10);

/// Threads the daemon may start meanwhile besides the store calls' (the
/// retry loop's watch of the bus for the keyring's return, a thread the
/// blocking pool starts while another is handing back its slot).
const OTHER_THREADS: u64 = 4;

/// The daemon's thread count (`Threads:` in `/proc/PID/status`).
fn threads(pid: u32) -> u64 {
    status_field(pid, "Threads")
        .and_then(|n| n.parse().ok())
        .expect("the daemon's thread count")
}

#[test]
fn a_keyring_that_hangs_holds_few_threads_however_many_sessions_save() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(&bus, "a_keyring_that_hangs_holds_few_threads")
    else {
        return;
    };
    let provider = Provider::start(fast());
    let providers: String = (0..SESSIONS)
        .map(|i| provider.config(&format!("h{i:02}")))
        .collect();
    // Tokens that live for hours: no refresh comes due on its own.
    let seeded = keyring.seed(&provider, &providers, Duration::from_secs(4 * 3600));
    let mut daemon = Daemon::start_with(
        &providers,
        DaemonOptions {
            daemon_keys: format!("store_timeout = {}", STORE_TIMEOUT.as_secs()),
            ..DaemonOptions::with_keyring_on(&bus)
        },
    );
    let pid = daemon.pid();
    let before = threads(pid);
    signal(keyring.pid(), rustix::process::Signal::STOP);

    // The thread count, read all through the hang.
    let watching = Arc::new(AtomicBool::new(true));
    let sampler = {
        let watching = Arc::clone(&watching);
        std::thread::spawn(move || {
            let mut peak = 0;
            while watching.load(Ordering::SeqCst) {
                peak = peak.max(threads(pid));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };

    // Every session refreshed at once (its token refused where it was
    // used), each on a connection of its own: each refresh saves.
    let refreshes: Vec<_> = seeded
        .iter()
        .map(|session| {
            let socket = daemon.socket.clone();
            let name = session.name.clone();
            let refused = session.access_token.clone();
            std::thread::spawn(move || {
                let mut client = tokend::client::Client::connect(&socket).expect("connect");
                let fresh = client
                    .token_replacing(&name, &refused)
                    .unwrap_or_else(|e| panic!("{name}: no new token: {e:?}"));
                (name, fresh.access_token.expose().to_owned())
            })
        })
        .collect();
    // Each answer comes once its save has failed: every save was made or
    // waited for its slot, and every call made waits on the keyring.
    let fresh: Vec<(String, String)> = refreshes
        .into_iter()
        .map(|refresh| refresh.join().expect("a refresh"))
        .collect();
    for ((name, token), session) in fresh.iter().zip(&seeded) {
        assert_ne!(token, &session.access_token, "{name} was not refreshed");
    }
    let out = daemon.tokenctl(&["status"]);
    assert!(
        stdout(&out).contains(&format!("no answer within {} s", STORE_TIMEOUT.as_secs())),
        "{}",
        stdout(&out)
    );
    let during = threads(pid);
    watching.store(false, Ordering::SeqCst);
    let peak = sampler.join().expect("the sampler").max(during);
    let bound = before + MAX_STORE_CALLS as u64 + OTHER_THREADS;
    assert!(
        peak <= bound,
        "{peak} threads while the keyring hung ({during} at the end), {before} before it \
         hung: more than {bound}, the store calls {MAX_STORE_CALLS} at most"
    );

    // The keyring runs again: the calls that waited are answered, the
    // outage ends, and the tokens memory held are saved.
    signal(keyring.pid(), rustix::process::Signal::CONT);
    daemon.wait_for_log(1, &["event=\"store_available\""]);
    daemon.wait_for_log(1, &["after the store came back"]);
    let out = daemon.tokenctl(&["--json", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("status JSON");
    let sessions = status.as_array().expect("one entry per provider");
    assert_eq!(sessions.len(), SESSIONS, "{status}");
    for session in sessions {
        assert_eq!(session["saved"], true, "{session}");
    }
    // Saved in the keyring: a new daemon serves what the refreshes
    // brought.
    daemon.stop();
    daemon.restart();
    for (name, fresh) in &fresh {
        assert_eq!(&token(&daemon, name, &[]), fresh, "{name}");
    }
}
