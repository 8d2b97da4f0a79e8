//! The signals the daemon heeds: SIGTERM and SIGINT stop it, SIGHUP reloads.
//!
//! They are held back (blocked) from `main`'s first step until the
//! handlers are in place ([`hold_signals`], [`Signals::new`]): the config
//! is read before the async runtime exists, and with 10,000 providers that
//! took 200 ms, during which a SIGHUP (`systemctl reload` right after a
//! start, a config tool's) killed the daemon with no line in the log, and
//! systemd counts a death by SIGHUP as a clean exit, so that
//! `Restart=on-failure` did not start it again. A signal held back is
//! pending, not lost: it is handled as soon as the handlers are in place.

use anyhow::Context;
use nix::sys::signal::{SigSet, Signal as Kind};

/// What a signal asks of the daemon.
pub(super) enum Signal {
    /// SIGHUP.
    Reload,
    /// SIGTERM or SIGINT.
    Stop,
}

/// The signals [`Signals`] handles, held back by [`hold_signals`] until
/// then.
fn heeded() -> SigSet {
    let mut set = SigSet::empty();
    for kind in [Kind::SIGHUP, Kind::SIGTERM, Kind::SIGINT] {
        set.add(kind);
    }
    set
}

/// SIGHUP, SIGTERM and SIGINT held back from the process's first step
/// until the daemon's handlers are in place (in [`run`](super::run)), or
/// until [`Self::release`] gives them their default action again, for a
/// command that is not the daemon.
///
/// Not released on drop: a process that drops it unreleased is exiting
/// (a config it could not use), and a stop or reload pending then has
/// nothing left to act on; its default action would only replace the exit
/// status that says why (2, which the units do not restart).
#[must_use = "the signals stay held back until released or handled"]
pub struct HeldSignals(());

/// Holds SIGHUP, SIGTERM and SIGINT back: called first thing in `main`,
/// while the process has one thread (threads started later inherit the
/// mask; the one that handles the signals releases them, in
/// [`run`](super::run)). A child the daemon runs starts with no signal
/// held back: the standard library clears the mask before `exec`.
pub fn hold_signals() -> HeldSignals {
    // Cannot fail with a valid set; if it did, the signals would keep
    // their default action until the handlers are in place, as before.
    let _ = heeded().thread_block();
    HeldSignals(())
}

impl HeldSignals {
    /// Lets the held signals through with their default action (`tokend
    /// --check`, `--prune`: a Ctrl-C ends them); one that came meanwhile
    /// acts now.
    pub fn release(self) {
        let _ = heeded().thread_unblock();
    }
}

/// SIGTERM/SIGINT (stop) and SIGHUP (reload).
pub(super) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Handles the signals `held` holds back, then lets them through: one
    /// that came since the process started is delivered now, to these
    /// handlers, and read by the first [`Self::next`].
    pub(super) fn new(held: HeldSignals) -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let signals = Self {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
        };
        held.release();
        Ok(signals)
    }

    pub(super) async fn next(&mut self) -> Option<Signal> {
        tokio::select! {
            s = self.term.recv() => s.map(|()| Signal::Stop),
            s = self.int.recv() => s.map(|()| Signal::Stop),
            s = self.hup.recv() => s.map(|()| Signal::Reload),
        }
    }
}
