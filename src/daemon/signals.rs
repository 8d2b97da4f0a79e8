//! The signals the daemon heeds: SIGTERM and SIGINT stop it, SIGHUP reloads.

use anyhow::Context;

/// What a signal asks of the daemon.
pub(super) enum Signal {
    /// SIGHUP.
    Reload,
    /// SIGTERM or SIGINT.
    Stop,
}

/// SIGTERM/SIGINT (stop) and SIGHUP (reload).
pub(super) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
        })
    }

    pub(super) async fn next(&mut self) -> Option<Signal> {
        tokio::select! {
            s = self.term.recv() => s.map(|()| Signal::Stop),
            s = self.int.recv() => s.map(|()| Signal::Stop),
            s = self.hup.recv() => s.map(|()| Signal::Reload),
        }
    }
}
