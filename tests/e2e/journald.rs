//! Logging to the journal. Under systemd (`JOURNAL_STREAM` names stderr)
//! tokend speaks journald's native protocol with structured fields, so that
//! `journalctl -u tokend PROVIDER=demo EVENT=logged_in` finds its lines.
//!
//! journald's socket path is fixed (`/run/systemd/journal/socket`), so the
//! daemon runs in a private mount namespace (`unshare --mount`, which needs
//! root) whose `/run` is a directory of the test's, holding the test's own
//! datagram socket at that path. The test reads what the daemon sent, one
//! entry per datagram, as journald would.

use crate::support;

use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use support::daemon::{Daemon, DaemonOptions, login};
use support::provider::Provider;

/// Entries read at most before giving up on the one awaited.
const MAX_ENTRIES: usize = 2_000;

/// One journal entry: its fields, and the datagram as sent.
struct Entry {
    fields: HashMap<String, String>,
    raw: Vec<u8>,
}

/// Parses journald's native protocol: `KEY=value\n` per field, or, for a
/// value that may hold a newline, `KEY\n`, its length as 64-bit little
/// endian, the bytes, and `\n`.
fn parse_entry(raw: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let line = &rest[..end];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            fields.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            rest = rest.get(end + 1..).unwrap_or_default();
        } else {
            let after = &rest[end + 1..];
            let len = usize::try_from(u64::from_le_bytes(after[..8].try_into().unwrap())).unwrap();
            fields.insert(
                String::from_utf8_lossy(line).into_owned(),
                String::from_utf8_lossy(&after[8..8 + len]).into_owned(),
            );
            rest = after.get(8 + len + 1..).unwrap_or_default();
        }
    }
    fields
}

/// Whether this process may make a private mount namespace.
fn private_mounts_available() -> bool {
    rustix::process::geteuid().is_root()
        && Command::new("unshare")
            .args(["--mount", "true"])
            .status()
            .is_ok_and(|s| s.success())
}

/// Reads journal datagrams on a thread of their own and passes each entry
/// on, up to [`MAX_ENTRIES`]; the thread ends when the socket stays quiet
/// for its read timeout or the receiver is gone.
fn spawn_journal_reader(journal: UnixDatagram) -> mpsc::Receiver<Entry> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 1 << 16];
        for _ in 0..MAX_ENTRIES {
            let Ok(n) = journal.recv(&mut buffer) else {
                return;
            };
            if n == 0 {
                // The empty probe the journald layer sends when it starts.
                continue;
            }
            let raw = buffer[..n].to_vec();
            let entry = Entry {
                fields: parse_entry(&raw),
                raw,
            };
            if sender.send(entry).is_err() {
                return;
            }
        }
    });
    receiver
}

#[test]
fn under_systemd_logs_go_to_the_journal_with_provider_and_event_fields() {
    if !private_mounts_available() {
        eprintln!("skipped: needs root and `unshare --mount` to give the daemon a private /run");
        return;
    }
    let run = tempfile::tempdir().unwrap();
    let journal_dir = run.path().join("systemd/journal");
    std::fs::create_dir_all(&journal_dir).unwrap();
    let journal = UnixDatagram::bind(journal_dir.join("socket")).unwrap();
    journal
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // Drain the socket while the daemon runs, as journald does: a datagram
    // socket's queue is short (`net.unix.max_dgram_qlen`, 10 on some
    // machines), and a daemon whose journal is full waits on it.
    let entries_read = spawn_journal_reader(journal);

    let provider = Provider::rfc8628();
    let options = DaemonOptions {
        wrapper: crate::support::mount_namespace::wrapper(&[(run.path(), "/run")]),
        journal_stream: true,
        ..DaemonOptions::default()
    };
    let daemon = Daemon::start_with(&provider.config("demo"), options);
    let token = login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });

    // Entries arrive in the order they were logged; read up to the login's.
    let mut entries = Vec::new();
    let logged_in = loop {
        let entry = entries_read
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| {
                panic!(
                    "no logged_in entry among {} entries read ({e}); stderr:\n{}",
                    entries.len(),
                    daemon.log()
                )
            });
        let done = entry.fields.get("EVENT").is_some_and(|e| e == "logged_in");
        entries.push(entry);
        if done {
            break entries.last().unwrap().fields.clone();
        }
    };
    assert_eq!(logged_in["PROVIDER"], "demo", "{logged_in:?}");
    assert_eq!(logged_in["MESSAGE"], "device login succeeded");
    assert_eq!(
        logged_in["PRIORITY"], "6",
        "info is syslog's informational (6)"
    );
    assert_eq!(logged_in["SYSLOG_IDENTIFIER"], "tokend");
    // The login's start was logged before, with its own event name.
    assert!(
        entries.iter().any(
            |e| e.fields.get("EVENT").map(String::as_str) == Some("login_started")
                && e.fields.get("PROVIDER").map(String::as_str) == Some("demo")
        ),
        "no login_started entry"
    );

    // The journal replaced stderr: no text log lines there.
    let stderr = daemon.log();
    assert!(!stderr.contains("device login succeeded"), "{stderr}");

    // No token or secret in any entry: none the daemon sent, none the
    // provider issued (the refresh token of the login too, never sent back).
    let mut secrets = provider.secrets_sent();
    secrets.extend(provider.issued_tokens());
    secrets.push(token);
    for entry in &entries {
        for secret in &secrets {
            assert!(
                !entry
                    .raw
                    .windows(secret.len())
                    .any(|w| w == secret.as_bytes()),
                "a secret reached the journal: {:?}",
                entry.fields.get("MESSAGE")
            );
        }
    }
}
