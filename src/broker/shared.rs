//! What every session of a broker shares: the store and its health, the
//! clock, the scheduler, the event channel and the task tracker.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::clock::Clock;
use super::events::BrokerEvent;
use super::record_writes::RecordWrites;
use super::scheduler::RefreshScheduler;
use super::store_health::StoreHealth;
use crate::store::Store;

/// What every session shares.
#[derive(Debug)]
pub struct Shared {
    /// The store, watched: its store-wide failures reach `store_health`.
    pub(crate) store: Arc<dyn Store>,
    /// Whether the store can be used: one state for every session.
    pub(crate) store_health: Arc<StoreHealth>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) events: broadcast::Sender<BrokerEvent>,
    pub(crate) scheduler: RefreshScheduler,
    /// The broker's own tasks (refreshes, logins, store retries); start
    /// them with [`Self::spawn`].
    pub(crate) tasks: TaskTracker,
    /// The runtime the broker was built on, which runs its tasks (`None`
    /// when it was built outside one: then the caller's).
    pub(crate) runtime: Option<tokio::runtime::Handle>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) owner_uid: u32,
    /// The order of each record's store writes.
    pub(crate) record_writes: RecordWrites,
    /// How long before a refresh token expires the daemon warns (zero: never).
    pub(crate) refresh_token_warning: Duration,
    /// Counters for `tokenctl metrics`.
    pub(crate) metrics: Arc<super::metrics::Metrics>,
}

impl Shared {
    /// Starts one of the broker's own tasks, tracked, on the broker's
    /// runtime: a request served by another event loop (the socket's extra
    /// ones) must not leave a refresh or a login on that loop, which ends
    /// with its connections.
    pub(crate) fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.runtime {
            Some(runtime) => self.tasks.spawn_on(task, runtime),
            None => self.tasks.spawn(task),
        }
    }

    pub(crate) fn emit(&self, event: BrokerEvent) {
        // No subscriber is fine: events are for whoever listens.
        let _ = self.events.send(event);
    }
}
