//! Reading again the records that could not be read for their own sake: a
//! damaged record, one sealed with another key, a record file tokend's
//! user may not read (given to root by a restore from a backup), two
//! keyring items matching it (another program's item with tokend's
//! attributes). Such a session is unreadable, not logged out (see the
//! session machine's `Unreadable`): once the cause is mended (the file
//! given back, the other item deleted), reading the record again brings
//! the session back, with no restart and no new login.
//!
//! Besides the end of an outage (see `store_recovery`), they are read
//! again:
//!
//! - for a `token` request of the session (`Session::restore_on_demand`)
//!   and a `status` request that shows it ([`Broker::reread_records`],
//!   which waits for them at most a second), each session at most once per
//!   5 s ([`timing::ON_DEMAND_RETRY_SPACING`]): a script asking in a loop
//!   does not read the record at every call;
//! - when the store announces a change ([`Store::change_feed`]: the
//!   encrypted file store's inotify watches of its directories, the Secret
//!   Service's signals of its items and collections), at most once a
//!   second, by one task ([`Broker::spawn_reread_watch`]) that keeps the
//!   feed open only while some record is unreadable and the store works
//!   (an outage's retry loop has a feed of its own).
//!
//! Each reading goes through the session's restore, as at start: a record
//! is installed only while the session is still unreadable, so it never
//! overwrites what a login or a logout did meanwhile.
//!
//! [`timing::ON_DEMAND_RETRY_SPACING`]: super::timing::ON_DEMAND_RETRY_SPACING
//! [`Store::change_feed`]: crate::store::Store::change_feed

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt as _, StreamExt as _};
use tracing::debug;

use super::api::Broker;
use super::policy::Caller;
use super::session::{RestoreCause, Session};
use crate::store::ChangeFeed;

/// How long a `status` request waits for the records it reads again: a
/// store that works answers in milliseconds; one that hangs must not hold
/// the status (the reading goes on, and a later status shows it).
const STATUS_REREAD_WAIT: Duration = Duration::from_secs(1);

/// At most one reading per this long for the store's notices (a refresh's
/// save of any session is one).
const CHANGE_REREAD_SPACING: Duration = Duration::from_secs(1);

/// With no feed (the store gives none now, or its feed ended): how long
/// before the store is asked for one again, unless a record is found
/// unreadable sooner. Requests read the records again meanwhile.
const FEED_RETRY: Duration = Duration::from_secs(60);

impl Broker {
    /// Before a `status` answer: reads again the unreadable records of the
    /// sessions `caller` may see (of `provider` alone when named) whose
    /// last reading is at least 5 s old, and waits for them at most a
    /// second, so that the answer shows a session whose cause was just
    /// mended as it is now. Nothing while the store is down (its recovery
    /// reads them), nor for a caller who may see none of them.
    pub async fn reread_records(&self, caller: &Caller, provider: Option<&str>) {
        if !self.inner.shared.store_health.is_available() {
            return;
        }
        let candidates = match provider {
            Some(name) => self.session(name).into_iter().collect(),
            None => self.sessions(),
        };
        // Unreadable first: the cheap test, most sessions fail it.
        let due: Vec<Arc<Session>> = candidates
            .into_iter()
            .filter(|s| s.is_unreadable() && s.policy().allows(caller) && s.claim_reread())
            .collect();
        if due.is_empty() {
            return;
        }
        let broker = self.clone();
        let reading = self.inner.shared.tasks.spawn(async move {
            broker.restore_records(&due, RestoreCause::Request).await;
        });
        // A timeout (a store that hangs) or a stop: answer now.
        let _ = tokio::time::timeout(STATUS_REREAD_WAIT, reading).await;
    }

    /// Starts the task that reads the unreadable records again at the
    /// store's change notices (see the module documentation).
    pub(super) fn spawn_reread_watch(&self) {
        let broker = self.clone();
        self.inner.shared.tasks.spawn(async move {
            let shutdown = broker.inner.shared.shutdown.clone();
            tokio::select! {
                () = broker.watch_unreadable() => {}
                () = shutdown.cancelled() => {}
            }
        });
    }

    async fn watch_unreadable(&self) {
        let found = &self.inner.shared.unreadable_found;
        loop {
            if !self.any_unreadable() {
                // No timer while every record reads: only the notice.
                found.notified().await;
                continue;
            }
            let store = Arc::clone(&self.inner.shared.store);
            let opened = tokio::task::spawn_blocking(move || store.change_feed()).await;
            let Some(feed) = opened.ok().flatten() else {
                tokio::select! {
                    () = found.notified() => {}
                    () = tokio::time::sleep(FEED_RETRY) => {}
                }
                continue;
            };
            if self.reread_at_notices(feed).await {
                // The feed ended: not asked for again at once.
                tokio::select! {
                    () = found.notified() => {}
                    () = tokio::time::sleep(FEED_RETRY) => {}
                }
            }
        }
    }

    /// Reads the unreadable records again at each of `feed`'s notices
    /// (once right away: a cause mended before the watches were made is
    /// not missed), until none is left unreadable (`false`) or the feed
    /// ends (`true`).
    async fn reread_at_notices(&self, mut feed: ChangeFeed) -> bool {
        let mut first = true;
        loop {
            if self.inner.shared.store_health.is_available() {
                let unreadable: Vec<Arc<Session>> = self
                    .sessions()
                    .into_iter()
                    .filter(|s| s.is_unreadable())
                    .collect();
                self.restore_records(&unreadable, RestoreCause::Change)
                    .await;
            }
            if !self.any_unreadable() {
                return false;
            }
            if std::mem::take(&mut first) {
                // The watches are live, and what they did not see was read
                // (tests wait for this line).
                debug!(
                    store = self.inner.shared.store.name(),
                    "watching the store for a change to a stored session that could not be read"
                );
            }
            tokio::time::sleep(CHANGE_REREAD_SPACING).await;
            if feed.next().await.is_none() {
                return true;
            }
            // Every notice queued is covered by the one reading.
            while let Some(Some(())) = feed.next().now_or_never() {}
        }
    }

    fn any_unreadable(&self) -> bool {
        self.sessions().iter().any(|s| s.is_unreadable())
    }
}
