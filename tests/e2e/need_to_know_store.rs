//! Need to know of the store's state on the system bus: when the store
//! goes down and comes back, the broker object's `PropertiesChanged`
//! (`StoreState`, `StoreError`, `StoreUnavailableSince`) reaches a local
//! user who may see a provider, and never one who may see none (who reads
//! those properties empty, see `need_to_know`).

use crate::dist_dbus::{policy_for_this_user, system_like_bus};
use crate::need_to_know::{PeerScript, READY_TIMEOUT, STRANGER, lines_of};
use crate::support;

use std::io::Write as _;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::daemon::{Daemon, login, token};
use support::file_store::FileStore;
use support::other_uid::{NOBODY, can_switch_uid};
use support::provider::Provider;
use tokend::client::Client;

/// How long a signal may take to reach a peer.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(30);

/// A peer printing every signal it receives until told to stop (see
/// `bus_peer.py listen-until-told`).
struct Listener {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Listener {
    fn start(script: &PeerScript, uid: u32, address: &str) -> Self {
        let mut child = script
            .command(uid, uid, address)
            .arg("listen-until-told")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stdout.take().unwrap());
        let ready = lines.recv_timeout(READY_TIMEOUT);
        assert_eq!(ready.as_deref(), Ok("ready"), "the peer did not start");
        Self { child, lines }
    }

    /// Waits for a signal line holding every one of `needles`.
    fn wait_for(&self, needles: &[&str]) -> String {
        loop {
            match self.lines.recv_timeout(SIGNAL_TIMEOUT) {
                Ok(line) if needles.iter().all(|n| line.contains(n)) => return line,
                Ok(_) => {}
                Err(e) => panic!("no signal with {needles:?}: {e}"),
            }
        }
    }

    /// Every signal it received up to now: those tokend sent it before
    /// the answer to its last call.
    fn finish(mut self) -> Vec<String> {
        writeln!(self.child.stdin.take().unwrap(), "stop").unwrap();
        let status = self.child.wait().unwrap();
        let lines: Vec<String> = self.lines.try_iter().collect();
        assert!(status.success(), "the peer was not stopped: {lines:#?}");
        lines
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_stores_state_is_signalled_only_to_users_who_may_see_a_provider() {
    if !can_switch_uid() {
        eprintln!("SKIPPED the_stores_state_is_signalled_only_to_users...: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (bus, _bus_config) = system_like_bus(&policy_for_this_user(dir.path()));
    let provider = Provider::rfc8628();
    let config = format!(
        "{}{}",
        provider.config("secret"),
        provider.config_with("shared", &format!("allow_users = [{NOBODY}]")),
    );
    let store = FileStore::new();
    let mut options = store.options();
    options.bus = "system";
    options
        .env
        .push(("DBUS_SYSTEM_BUS_ADDRESS".into(), bus.address().into()));
    let daemon = Daemon::start_with(&config, options);
    login(&daemon, "shared", |code| {
        provider.approve(code).unwrap();
    });

    let script = PeerScript::new();
    let nobody = Listener::start(&script, NOBODY, bus.address());
    let stranger = Listener::start(&script, STRANGER, bus.address());
    let changed = "\"signal\": \"PropertiesChanged\", \"path\": \"/org/tokend/Broker1\"";

    // The records' directory replaced by a file: a refresh cannot be saved.
    let records = store.sessions_dir();
    let away = records.with_extension("away");
    std::fs::rename(&records, &away).unwrap();
    std::fs::write(&records, b"not a directory").unwrap();
    let stale = token(&daemon, "shared", &[]);
    let mut client = Client::connect(&daemon.socket).expect("connect");
    client
        .token_replacing("shared", &stale)
        .expect("a new token, from memory");
    let down = nobody.wait_for(&[changed, "'unavailable'"]);
    assert!(down.contains("not a directory"), "{down}");

    // Back: the status has the store probed at once.
    std::fs::remove_file(&records).unwrap();
    std::fs::rename(&away, &records).unwrap();
    assert!(daemon.tokenctl(&["status"]).status.success());
    nobody.wait_for(&[changed, "'available'"]);

    // Both changes were signalled (one after the other, by one task) before
    // the stranger's last call was answered: it received neither.
    let seen_by_stranger = stranger.finish().join("\n");
    assert!(
        !seen_by_stranger.contains("Store") && !seen_by_stranger.contains("PropertiesChanged"),
        "{seen_by_stranger}"
    );
    drop(nobody);
}
