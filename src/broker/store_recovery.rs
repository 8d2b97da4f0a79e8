//! The one retry loop of an unavailable store.
//!
//! It sleeps on the store's health while the store works (no timer at all).
//! Once the store is unavailable it probes it with backoff
//! ([`StoreHealth::retry_delay`](super::store_health::StoreHealth)), woken
//! early when a `token` request found the store working, when a `token`
//! request met a session whose tokens are not saved, when someone asks
//! for the status (which waits for that probe, briefly: a person who just
//! unlocked the keyring sees it at once), and when the store announces a
//! change that may end the outage (the Secret Service's: a keyring
//! unlocked, a keyring daemon on the bus; the encrypted file store's: its
//! directories made, moved or given another owner or mode; at most once a
//! second), and when a store call that had timed out is answered after all
//! (a keyring that hung runs again), so that
//! rotated tokens are saved as soon as the keyring is unlocked, not minutes
//! later. A probe asks what
//! failed: the list of records (which a locked keyring refuses: listing
//! asks it to unlock the items), and, when sessions could not save, their
//! saves (a full disk lists but does not write). When the probe
//! passes, the store is available again (one log line), the waiting
//! sessions are restored in batches as at start, and the sessions whose
//! save failed are saved.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt as _, StreamExt as _};
use tracing::{debug, info};

use super::api::Broker;
use super::error::BrokerError;
use super::policy::Caller;
use super::session::counted;
use super::session::{RestoreCause, Session};
use super::store_health::ProbeCause;
use crate::store::{ChangeFeed, StoreError};

/// How long a `status` request waits for the probe it asked for (and the
/// restore of the sessions that waited, when the store works). A store
/// that works answers a probe in milliseconds; one that hangs (or shows
/// an unlock prompt) must not hold the status for long: credential helpers
/// ask for it before each `git fetch` or `docker pull`. After the wait the
/// status shows the store as it stands.
const STATUS_PROBE_WAIT: Duration = Duration::from_secs(1);

impl Broker {
    /// Before a `status` answer during a store outage: asks the retry loop
    /// to probe the store now and waits for it (at most
    /// `STATUS_PROBE_WAIT`, 1 s), so that the answer shows a store that works
    /// again (a keyring just unlocked) rather than the outage of the last
    /// probe, minutes ago. Only for a caller who may see a provider (one
    /// who may see none is told nothing of the store, and must not make
    /// the keyring prompt), and at most once per spacing for the whole
    /// daemon, as the `token` requests' own tries.
    pub async fn recheck_store(&self, caller: &Caller) {
        let health = &self.inner.shared.store_health;
        if health.is_available() || !self.sees_a_provider(caller) {
            return;
        }
        if let Some(mut probed) = health.probe_on_demand(self.inner.shared.clock.now()) {
            // A timeout or a closed channel (a stop) both mean: answer now.
            let _ = tokio::time::timeout(STATUS_PROBE_WAIT, probed.changed()).await;
        }
    }

    /// Starts the store's retry loop (see the module documentation).
    pub(super) fn spawn_store_watch(&self) {
        let broker = self.clone();
        self.inner.shared.tasks.spawn(async move {
            let shutdown = broker.inner.shared.shutdown.clone();
            tokio::select! {
                () = broker.watch_store() => {}
                () = shutdown.cancelled() => {}
            }
        });
    }

    async fn watch_store(&self) {
        let health = Arc::clone(&self.inner.shared.store_health);
        let mut state = health.subscribe();
        let mut attempt = 0;
        let mut recovered_at: Option<Instant> = None;
        loop {
            // While the store works: no timer, only the channel.
            if state.wait_for(|s| !s.is_available()).await.is_err() {
                return;
            }
            // A store that fails again soon after it came back (it lists
            // but cannot write, say) keeps its backoff rather than start
            // over at a second: at most one round of log lines per cap.
            if recovered_at.is_none_or(|at| at.elapsed() >= health.retry_cap()) {
                attempt = 0;
            }
            // The store's notices for this outage (dropped with it: a
            // store that works has no feed open).
            let mut changes = ChangeWatch::default();
            // A late answer of the last outage's is no news of this one.
            let _ = health.late_answer().now_or_never();
            let (listed, cause) = 'probing: loop {
                attempt += 1;
                let due = tokio::time::Instant::now() + health.retry_delay(attempt);
                loop {
                    changes.open(self);
                    let cause = tokio::select! {
                        () = tokio::time::sleep_until(due) => ProbeCause::Schedule,
                        () = health.nudged() => ProbeCause::Request,
                        () = changes.next() => ProbeCause::StoreChange,
                        () = health.late_answer() => ProbeCause::LateAnswer,
                    };
                    match self.probe_store().await {
                        Ok(probed) => break 'probing (probed, cause),
                        Err(e) => {
                            // Already reported by the store, unless a call timed out.
                            health.failed(&e);
                            health.probed();
                        }
                    }
                    if cause == ProbeCause::Schedule {
                        break;
                    }
                    // An early probe failed: the schedule stands (requests
                    // and notices neither hasten nor put off the backoff).
                }
            };
            drop(changes);
            recovered_at = Some(Instant::now());
            if health.recovered(cause).is_some() {
                self.recover_sessions(&listed.0, listed.1).await;
            }
            // Counted once the sessions are back: a status that waited
            // for this probe shows them restored, not only the store.
            health.probed();
        }
    }

    /// Whether the store works: it lists its records and, when sessions
    /// could not save, saves them, those whose saves failed least first,
    /// until one fails store-wide. Returns the names listed, and how many
    /// sessions it saved (said with the recovery's own saves).
    ///
    /// Every unsaved session, not the first: a full disk rewrites a record
    /// in place (over its spare) but cannot make a new one, and a probe
    /// that passed on the first save made the store available, then
    /// unavailable again at the next save, at every probe (a log line, an
    /// `on_event` run and D-Bus signals each time). Least-failed first: a
    /// save the store still takes is made even while another's cannot be,
    /// so its rotated refresh token does not wait in memory.
    ///
    /// A save that fails for its own record's sake (a record the store
    /// cannot replace: two keyring items matching it, a directory where its
    /// file goes) says nothing of the store, which the listing showed
    /// working: the next unsaved session is tried instead. Taken for the
    /// store's failure, it kept every later outage going until a restart,
    /// with that provider's name as the reason shown to every caller.
    async fn probe_store(&self) -> Result<(Vec<String>, usize), StoreError> {
        let store = Arc::clone(&self.inner.shared.store);
        let metrics = Arc::clone(&self.inner.shared.metrics);
        let health = Arc::clone(&self.inner.shared.store_health);
        let listed = counted(Arc::clone(&metrics), Arc::clone(&health), move || {
            store.list()
        })
        .await?;
        let store = Arc::clone(&self.inner.shared.store);
        counted(metrics, health, move || store.check_writable()).await?;
        self.save_lost_records_again().await;
        let mut unsaved: Vec<(u32, Arc<Session>)> = self
            .sessions()
            .into_iter()
            .filter(|s| s.is_store_dirty())
            .map(|s| (s.save_failures(), s))
            .collect();
        unsaved.sort_by_key(|(failures, _)| *failures);
        let mut saved = 0;
        for (_, session) in unsaved {
            match session.save_if_dirty().await {
                Ok(done) => saved += usize::from(done),
                Err(BrokerError::Store { source, .. }) if !source.is_store_wide() => {}
                Err(BrokerError::Store { source, .. }) => return Err(source),
                Err(other) => {
                    return Err(StoreError::Failed {
                        store: self.inner.shared.store.name(),
                        reason: other.to_string(),
                    });
                }
            }
        }
        Ok((listed, saved))
    }

    /// When the store lost its records ([`Store::take_lost_records`]: the
    /// records' directory removed under the daemon), marks every session
    /// that holds tokens unsaved, so that the probe, or the stop, writes
    /// them again: each was saved, and is now in memory only.
    ///
    /// [`Store::take_lost_records`]: crate::store::Store::take_lost_records
    pub(super) async fn save_lost_records_again(&self) {
        if !self.inner.shared.store.take_lost_records() {
            return;
        }
        for session in self.sessions() {
            session.record_lost().await;
        }
    }

    /// The store works again: restores the sessions that waited for it
    /// (those it has a record of, in batches), and saves the sessions whose
    /// save failed. Stops when the store fails again; what is left waits
    /// for the next recovery. The records that could not be read for their
    /// own sake are read again too (their cause may have been mended during
    /// the outage, unseen), whether listed or not: one no longer there
    /// reads as none.
    async fn recover_sessions(&self, listed: &[String], probe_saved: usize) {
        let health = &self.inner.shared.store_health;
        let listed: HashSet<&str> = listed.iter().map(String::as_str).collect();
        let sessions = self.sessions();
        let mut stored: Vec<Arc<Session>> = Vec::new();
        for session in &sessions {
            let unreadable = session.is_unreadable();
            if !unreadable && !session.waits_for_store() {
                continue;
            }
            if unreadable || listed.contains(session.name.as_str()) {
                stored.push(Arc::clone(session));
            } else {
                session.no_stored_record().await;
            }
        }
        let restored = self.restore_records(&stored, RestoreCause::Recovery).await;
        let mut saved = probe_saved;
        for session in &sessions {
            if !health.is_available() {
                break;
            }
            // One at a time: thousands of saves at once would only queue
            // on the blocking pool (and a keyring serialises them anyway).
            if let Ok(true) = session.save_if_dirty().await {
                saved += 1;
            }
        }
        let waiting = sessions.iter().filter(|s| s.waits_for_store()).count();
        info!(
            restored,
            saved,
            waiting,
            store = self.inner.shared.store.name(),
            "after the store came back: restored {restored} stored session(s), saved {saved}{}",
            if waiting == 0 {
                String::new()
            } else {
                format!("; {waiting} still wait for the store")
            }
        );
    }
}

/// The store's change notices during one outage ([`Store::change_feed`]),
/// spaced: a notice makes the loop probe at once, but not twice within
/// [`CHANGE_PROBE_SPACING`], whatever sends them.
///
/// [`Store::change_feed`]: crate::store::Store::change_feed
#[derive(Default)]
struct ChangeWatch {
    /// The store making its feed, on the blocking pool. Awaited beside the
    /// schedule and the requests, never before them: a session bus that
    /// accepts the connection and then answers nothing must not hold the
    /// retry loop.
    opening: Option<tokio::task::JoinHandle<Option<ChangeFeed>>>,
    feed: Option<ChangeFeed>,
    /// Whether the store was asked for a feed and had none: not asked again
    /// in this outage (a store with none will not have one later; a Secret
    /// Service store with no session bus either, for the outage).
    none: bool,
    /// Before this, a notice waits (the spacing).
    open_at: Option<tokio::time::Instant>,
}

/// At most one probe per this long for the store's notices.
const CHANGE_PROBE_SPACING: Duration = Duration::from_secs(1);

impl ChangeWatch {
    /// Has the store make its feed, once per outage and feed (on the
    /// blocking pool: the Secret Service's is a new bus connection).
    fn open(&mut self, broker: &Broker) {
        if self.feed.is_some() || self.opening.is_some() || self.none {
            return;
        }
        let store = Arc::clone(&broker.inner.shared.store);
        self.opening = Some(tokio::task::spawn_blocking(move || {
            let feed = store.change_feed();
            if feed.is_some() {
                // Its watches are live from here (tests wait for this line).
                debug!(
                    store = store.name(),
                    "watching the store for a change that may end the outage"
                );
            }
            feed
        }));
    }

    /// Resolves at the next notice, no sooner than the spacing after the
    /// last, with every notice already queued taken with it (the probe that
    /// follows covers them all; one that comes during the probe makes the
    /// next). Never resolves without a feed, or once it has ended.
    /// Cancel-safe: the loop selects on it.
    async fn next(&mut self) {
        if let Some(opening) = self.opening.as_mut() {
            let feed = opening.await.ok().flatten();
            self.opening = None;
            self.none = feed.is_none();
            self.feed = feed;
        }
        let Some(feed) = self.feed.as_mut() else {
            return std::future::pending().await;
        };
        if let Some(at) = self.open_at {
            tokio::time::sleep_until(at).await;
        }
        if feed.next().await.is_none() {
            // The feed's connection is gone: the schedule alone until it
            // is made again (at the next probe).
            self.feed = None;
            return std::future::pending().await;
        }
        while let Some(Some(())) = feed.next().now_or_never() {}
        self.open_at = Some(tokio::time::Instant::now() + CHANGE_PROBE_SPACING);
    }
}
