//! The one retry loop of an unavailable store.
//!
//! It sleeps on the store's health while the store works (no timer at all).
//! Once the store is unavailable it probes it with backoff
//! ([`StoreHealth::retry_delay`](super::store_health::StoreHealth)), woken
//! early when a `token` request found the store working. A probe asks what
//! failed: the list of records (which a locked keyring refuses: listing
//! asks it to unlock the items), and, when a session could not save, that
//! session's save (a full disk lists but does not write). When the probe
//! passes, the store is available again (one log line), the waiting
//! sessions are restored in batches as at start, and the sessions whose
//! save failed are saved.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use super::api::Broker;
use super::error::BrokerError;
use super::session::blocking as store_call;
use super::session::{RestoreCause, Session};
use crate::store::StoreError;

impl Broker {
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
            let listed = loop {
                attempt += 1;
                tokio::select! {
                    () = tokio::time::sleep(health.retry_delay(attempt)) => {}
                    () = health.nudged() => {}
                }
                match self.probe_store().await {
                    Ok(listed) => break listed,
                    // Already reported by the store, unless a call timed out.
                    Err(e) => health.failed(&e),
                }
            };
            recovered_at = Some(Instant::now());
            if health.recovered().is_some() {
                self.recover_sessions(&listed).await;
            }
        }
    }

    /// Whether the store works: it lists its records and, when a session
    /// could not save, saves that session. Returns the names listed.
    async fn probe_store(&self) -> Result<Vec<String>, StoreError> {
        let store = Arc::clone(&self.inner.shared.store);
        let listed = store_call(move || store.list()).await?;
        if let Some(session) = self.sessions().iter().find(|s| s.is_store_dirty()) {
            match session.save_if_dirty().await {
                Ok(_) => {}
                Err(BrokerError::Store { source, .. }) => return Err(source),
                Err(other) => {
                    return Err(StoreError::Failed {
                        store: self.inner.shared.store.name(),
                        reason: other.to_string(),
                    });
                }
            }
        }
        Ok(listed)
    }

    /// The store works again: restores the sessions that waited for it
    /// (those it has a record of, in batches), and saves the sessions whose
    /// save failed. Stops when the store fails again; what is left waits
    /// for the next recovery.
    async fn recover_sessions(&self, listed: &[String]) {
        let health = &self.inner.shared.store_health;
        let listed: HashSet<&str> = listed.iter().map(String::as_str).collect();
        let sessions = self.sessions();
        let mut stored: Vec<Arc<Session>> = Vec::new();
        for session in sessions.iter().filter(|s| s.waits_for_store()) {
            if listed.contains(session.name.as_str()) {
                stored.push(Arc::clone(session));
            } else {
                session.no_stored_record().await;
            }
        }
        let restored = self.restore_records(&stored, RestoreCause::Recovery).await;
        let mut saved = 0;
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
