//! The D-Bus front-end through real clients: a private `dbus-daemon` per
//! test, the real `tokend` on it, and `busctl`, `gdbus` and a Python
//! (jeepney) client as separate processes.

use crate::support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, login};
use support::provider::{Provider, fast};
use tokend_emulator::{Endpoint, Fault, Rfc8628Options};

/// How long a test waits for a D-Bus signal before failing.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(30);

struct Setup {
    provider: Provider,
    daemon: Daemon,
    bus: PrivateBus,
}

fn start(options: Rfc8628Options, providers: &[&str]) -> Setup {
    start_on(PrivateBus::start(), options, providers)
}

fn start_on(bus: PrivateBus, options: Rfc8628Options, providers: &[&str]) -> Setup {
    let daemon = DaemonOptions::on_session_bus(&bus);
    start_with(bus, options, providers, daemon)
}

/// [`start_on`] with the daemon's options (a store other than memory).
fn start_with(
    bus: PrivateBus,
    options: Rfc8628Options,
    providers: &[&str],
    daemon: DaemonOptions,
) -> Setup {
    let provider = Provider::start(options);
    // `sync` is never logged in: starting its login is the barrier that
    // proves a signal monitor is listening (see `Setup::monitor`).
    let config: String = providers
        .iter()
        .chain(&["sync"])
        .map(|name| provider.config(name))
        .collect();
    let daemon = Daemon::start_with(&config, daemon);
    Setup {
        provider,
        daemon,
        bus,
    }
}

impl Setup {
    /// `busctl call` on the broker object.
    fn busctl(&self, args: &[&str]) -> Output {
        let mut call = vec![
            "call",
            "org.tokend.Broker1",
            "/org/tokend/Broker1",
            "org.tokend.Broker1",
        ];
        call.extend_from_slice(args);
        self.busctl_any(&call)
    }

    /// `busctl ARGS` on the daemon's bus (any verb, object, interface).
    fn busctl_any(&self, args: &[&str]) -> Output {
        self.bus
            .command("busctl")
            .arg(format!("--address={}", self.bus.address()))
            .args(args)
            .output()
            .expect("run busctl")
    }

    /// `gdbus call` of `method` (with its interface) on `path`.
    fn gdbus(&self, path: &str, method: &str, args: &[&str]) -> Output {
        self.bus
            .command("gdbus")
            .args([
                "call",
                "--address",
                self.bus.address(),
                "--dest",
                "org.tokend.Broker1",
            ])
            .args(["--object-path", path, "--method", method])
            .args(args)
            .output()
            .expect("run gdbus")
    }

    /// Starts `gdbus monitor` on the daemon and waits until it watches.
    fn monitor(&self) -> Monitor {
        let mut child = self
            .bus
            .command("gdbus")
            .args([
                "monitor",
                "--address",
                self.bus.address(),
                "--dest",
                "org.tokend.Broker1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run gdbus monitor");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut monitor = Monitor { child, lines };
        monitor.wait_for("is owned by");
        // gdbus subscribes to the owner's signals only after it printed
        // that line, at a moment it does not print: a signal caused and
        // seen proves the subscription. One caused before it is missed,
        // so the login is ended and started again until its prompt is
        // seen (a few times at most; tokend starts at most 6 new logins of
        // a provider a minute).
        for _ in 0..6 {
            let out = self.busctl(&["Login", "s", "sync"]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            if monitor
                .wait_for_within(
                    "org.tokend.Broker1.LoginPrompt ('sync'",
                    Duration::from_secs(2),
                )
                .is_some()
            {
                return monitor;
            }
            let out = self.busctl(&["Logout", "s", "sync"]);
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        panic!("gdbus monitor saw no LoginPrompt in 6 logins");
    }
}

/// Lines printed by `gdbus monitor`.
struct Monitor {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Monitor {
    /// The next line with `needle`, if one comes within `within`.
    fn wait_for_within(&mut self, needle: &str, within: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    fn wait_for(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(SIGNAL_TIMEOUT) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no D-Bus line with {needle:?}: {e}"),
            }
        }
    }
}

impl Monitor {
    /// Waits until a line with each needle has been seen, in any order;
    /// returns the lines in the order of `needles`.
    fn wait_for_all(&mut self, needles: &[&str]) -> Vec<String> {
        let mut found: Vec<Option<String>> = vec![None; needles.len()];
        while found.iter().any(Option::is_none) {
            match self.lines.recv_timeout(SIGNAL_TIMEOUT) {
                Ok(line) => {
                    for (needle, slot) in needles.iter().zip(found.iter_mut()) {
                        if slot.is_none() && line.contains(needle) {
                            *slot = Some(line.clone());
                        }
                    }
                }
                Err(e) => panic!("no D-Bus lines with all of {needles:?} (found {found:?}): {e}"),
            }
        }
        found.into_iter().map(Option::unwrap_or_default).collect()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(output: &[u8]) -> String {
    String::from_utf8_lossy(output).into_owned()
}

/// busctl prints `ssu "CODE" "URI" "URI?user_code=CODE" 600`.
fn busctl_strings(out: &Output) -> Vec<String> {
    assert!(out.status.success(), "busctl failed: {}", text(&out.stderr));
    text(&out.stdout)
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

mod burst;
mod caller_gone;
mod calls;
mod objects;
mod signals;
