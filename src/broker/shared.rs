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
    /// The feeds of the followers that must lose no event (see
    /// [`super::event_feed`]); the broadcast above is for those who only
    /// look for a change.
    pub(crate) feeds: super::event_feed::FeedHub,
    pub(crate) scheduler: RefreshScheduler,
    pub(crate) tasks: TaskTracker,
    pub(crate) shutdown: CancellationToken,
    /// Cancelled when device logins must end: at the start of shutdown
    /// ([`super::Broker::end_logins`]), or with `shutdown` itself. A child
    /// of `shutdown`; each login's own token is a child of this one.
    pub(crate) logins: CancellationToken,
    /// Cancelled when no refresh may be sent any more, background or a
    /// request's: at the start of a stop
    /// ([`super::Broker::end_refreshes`]), or with `shutdown`
    /// itself. A child of `shutdown`.
    pub(crate) background: CancellationToken,
    pub(crate) owner_uid: u32,
    /// The order of each record's store writes.
    pub(crate) record_writes: RecordWrites,
    /// How long before a refresh token expires the daemon warns (zero: never).
    pub(crate) refresh_token_warning: Duration,
    /// Counters for `tokenctl metrics`.
    pub(crate) metrics: Arc<super::metrics::Metrics>,
    /// The last of the world's changes that may end a wait (the network
    /// came back, the machine resumed), sent at each: a device login whose
    /// polls failed watches it, to poll again at its interval rather than
    /// at the end of a backoff of up to a minute (see `device_login`).
    pub(crate) world_changes: tokio::sync::watch::Sender<Option<super::WorldChange>>,
    /// Set while the machine prepares to sleep: background refreshes do
    /// not start (see `super::sleep`).
    pub(crate) sleep_hold: std::sync::atomic::AtomicBool,
    /// The sessions whose scheduler wake-ups came while held for a sleep:
    /// woken at the hold's end (their wake-up was taken from the queue:
    /// dropped, a warning, an expiry or a save's retry was never seen, nor
    /// the refresh planned after it). Its lock also orders a wake-up
    /// against the hold's end.
    pub(crate) held_wakes: std::sync::Mutex<Vec<std::sync::Arc<str>>>,
    /// The network may have gone since the last sleep began (see
    /// `super::sleep`).
    pub(crate) network_left: std::sync::atomic::AtomicBool,
    /// Told when a session's record turned out unreadable for its own sake:
    /// the task that reads such records again when the store announces a
    /// change (see `super::record_reread`) opens the store's feed.
    pub(crate) unreadable_found: tokio::sync::Notify,
    /// Token endpoints that answer again after an outage (see
    /// `super::endpoint_recovery`).
    pub(crate) endpoints_back: super::endpoint_recovery::EndpointsBack,
}

impl Shared {
    pub(crate) fn emit(&self, event: BrokerEvent) {
        self.feeds.send(&event);
        // No subscriber is fine: events are for whoever listens.
        let _ = self.events.send(event);
    }
}
