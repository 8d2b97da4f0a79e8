//! The store's health: one state for the whole daemon, not one per session.
//!
//! When the store cannot be used — no Secret Service on the bus, a locked
//! keyring, a state directory that is not a directory, a full or read-only
//! disk — every session meets the same problem. So the broker keeps one
//! [`StoreHealth`]: `Available`, or `Unavailable` with the reason and since
//! when. Every store call goes through a `WatchedStore`, which turns the
//! first store-wide failure into the transition (one log line,
//! `event="store_unavailable"`); one retry loop (`store_recovery`) then
//! probes the store with backoff ([`STORE_RETRY_BASE`] doubling to
//! [`STORE_RETRY_CAP`]) and, when it works again, says so once
//! (`event="store_available"`) and restores every waiting session in
//! batches. Sessions waiting for their record have no timer of their own:
//! they are simply not scheduled until the recovery reaches them.
//!
//! A damaged record or one sealed with another key ([`StoreError::Corrupt`],
//! [`StoreError::WrongKey`]) is that record's problem, not the store's: the
//! session keeps it as its own last error (see [`StoreError::is_store_wide`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tracing::{debug, info, warn};

use super::clock::Clock;
use super::report::{StoreOutage, StoreReport};
use super::timing;
use crate::store::StoreError;

/// The backoff's base: the first probe after the store failed comes 15 to
/// 30 s later. Not sooner, because a probe of a missing Secret Service
/// costs a new bus connection (about 20 wake-ups), and an outage must not
/// cost more than 20 wake-ups in any 10 s; a keyring unlocked a moment
/// later is still noticed at once: the Secret Service announces it
/// ([`Store::change_feed`](crate::store::Store::change_feed)), and a `token` request for a waiting session
/// probes too (at most once per 5 s).
pub const STORE_RETRY_BASE: Duration = Duration::from_secs(30);

/// The longest wait between probes of a store that stays down: a store
/// that comes back is noticed within minutes (and at once by a `token`
/// request for a waiting session), and an idle daemon wakes rarely.
pub const STORE_RETRY_CAP: Duration = Duration::from_secs(300);

/// Why the retry loop probed the store: said when the probe finds it
/// working, so that an operator can tell how an outage was noticed (and why
/// it took as long as it did).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeCause {
    /// The backoff's schedule.
    Schedule,
    /// A request: a `token` request, or a status, during the outage.
    Request,
    /// The store announced a change (a keyring unlocked, a keyring daemon
    /// on the bus): [`Store::change_feed`](crate::store::Store::change_feed).
    StoreChange,
    /// A store call that had timed out was answered after all: a keyring
    /// that hung answers again (nothing else says so).
    LateAnswer,
}

impl ProbeCause {
    /// The value of the log line's `noticed` field.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "retry",
            Self::Request => "request",
            Self::StoreChange => "store_change",
            Self::LateAnswer => "late_answer",
        }
    }

    /// How it was noticed, for the log line's message.
    fn describe(self) -> &'static str {
        match self {
            Self::Schedule => "at a scheduled retry",
            Self::Request => "when a request tried it",
            Self::StoreChange => "when the store announced a change",
            Self::LateAnswer => "when a store call that had timed out was answered",
        }
    }
}

/// Whether the store can be used, as far as the broker knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreState {
    /// The last store call that could tell worked (or none has failed yet).
    Available,
    /// A store-wide failure; the retry loop probes until it ends.
    Unavailable {
        /// The latest store-wide failure (never a secret in it).
        error: StoreError,
        /// When the store became unavailable.
        since: SystemTime,
    },
}

impl StoreState {
    /// Whether the store can be used.
    #[must_use]
    pub fn is_available(&self) -> bool {
        matches!(self, Self::Available)
    }
}

/// The one health state of the store, shared by every session (see the
/// module documentation).
#[derive(Debug)]
pub struct StoreHealth {
    /// The store's name, for the log lines and the status.
    store: &'static str,
    clock: Arc<dyn Clock>,
    /// The state. A `watch`: the retry loop waits on it without a timer
    /// while the store works, and readers take the latest value.
    state: watch::Sender<StoreState>,
    /// Wakes the retry loop before its backoff ends: a `token` request
    /// just read a waiting session's record, so the store works again.
    nudge: Notify,
    /// Wakes the retry loop when a store call that timed out during an
    /// outage is answered after all (see [`Self::answered_late`]).
    late_answer: Notify,
    /// How many probes the retry loop has finished: a `status` request that
    /// asked for a probe waits (briefly) for the next one.
    probes: watch::Sender<u64>,
    /// When a `token` request last tried the store during an outage: one
    /// attempt per [`timing::ON_DEMAND_RETRY_SPACING`] for the whole daemon,
    /// so scripts asking in a loop neither hammer the store nor pop one
    /// keyring unlock prompt per call. A std Mutex: one read and one write.
    last_on_demand: Mutex<Option<SystemTime>>,
    /// Backoff of the retry loop: [`STORE_RETRY_BASE`], [`STORE_RETRY_CAP`]
    /// (tests shorten them). A std Mutex: read once per probe.
    retry: Mutex<(Duration, Duration)>,
    /// How long one store call may take before the store counts as down
    /// (`[daemon] store_timeout`).
    call_timeout: Duration,
    /// Store calls that timed out and have not returned: each holds a
    /// thread of the blocking pool (see [`Self::may_call`]).
    hung_calls: AtomicUsize,
    /// One permit per store call that may run at once
    /// ([`MAX_STORE_CALLS`], see [`Self::call_slot`]).
    call_slots: Arc<Semaphore>,
}

/// How many timed-out store calls may still be waiting on the store before
/// no more are made. A keyring that never answers (stopped, stuck) holds
/// each call's blocking thread for good: the retry loop's probes and token
/// requests made one more every few minutes, until the blocking pool (512
/// threads) was full, and then every HTTP request, whose name lookups run
/// there, waited too: a keyring outage became a provider outage.
pub const MAX_HUNG_CALLS: usize = 4;

/// How many store calls may run at once, each on a thread of tokio's
/// blocking pool. [`MAX_HUNG_CALLS`] stops new calls only once calls have
/// waited out the store timeout: before that, against a keyring that had
/// just hung, every save of every refresh took a thread of its own and
/// kept it (300 sessions refreshing: 200 threads within 30 s, up to the
/// pool's 512, which the socket's threaded connections and HTTP name
/// lookups share). With this bound a store that hangs holds at most this
/// many threads, however many sessions write meanwhile.
///
/// Why 8: the broker's own calls come a few at a time (the start reads 2
/// batches at once, the retry loop makes one call at a time); a store that
/// answers gains little from more of the sessions' writes at once, since a
/// keyring daemon answers its calls one at a time and the encrypted file
/// store's saves wait for the disk's syncs; 8 hung threads are few beside
/// the pool's 512; and it is more than [`MAX_HUNG_CALLS`], so that once
/// that many calls have timed out the next is refused at once
/// (`StoreHealth::may_call`) rather than made to wait the timeout for a
/// slot. Calls beyond it wait their turn, within their own timeout.
pub const MAX_STORE_CALLS: usize = 8;

const _: () = assert!(MAX_STORE_CALLS > MAX_HUNG_CALLS);

/// The right to run one store call ([`StoreHealth::call_slot`]): held by
/// the call itself, on its blocking thread, and given back when the call
/// returns (not when its caller stops waiting for it).
#[derive(Debug)]
pub(crate) struct CallSlot {
    _permit: OwnedSemaphorePermit,
}

impl StoreHealth {
    /// A store named `store` (as [`Store::name`](crate::store::Store::name)), available until a call
    /// fails.
    #[must_use]
    pub fn new(store: &'static str, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            state: watch::Sender::new(StoreState::Available),
            nudge: Notify::new(),
            late_answer: Notify::new(),
            probes: watch::Sender::new(0),
            last_on_demand: Mutex::new(None),
            retry: Mutex::new((STORE_RETRY_BASE, STORE_RETRY_CAP)),
            call_timeout: crate::store::DEFAULT_TIMEOUT,
            hung_calls: AtomicUsize::new(0),
            call_slots: Arc::new(Semaphore::new(MAX_STORE_CALLS)),
        }
    }

    /// Whether a store call may be made: not while [`MAX_HUNG_CALLS`]
    /// earlier ones timed out and still wait on the store (the next would
    /// only wait too). Said as the error to give instead.
    ///
    /// # Errors
    /// The store has that many calls it never answered.
    pub(crate) fn may_call(&self) -> Result<(), StoreError> {
        if self.hung_calls.load(Ordering::Relaxed) < MAX_HUNG_CALLS {
            return Ok(());
        }
        Err(StoreError::Failed {
            store: self.store,
            reason: format!(
                "{MAX_HUNG_CALLS} earlier calls got no answer within {} s and still wait for one: \
                 not asking it again until one returns",
                self.call_timeout.as_secs()
            ),
        })
    }

    /// A slot for one store call ([`MAX_STORE_CALLS`] at once), waited for
    /// at most `within`. The caller moves it into the call's blocking
    /// closure, so that it is given back when the call returns: a call
    /// that timed out and still waits on the store keeps its slot, and a
    /// store that hangs holds at most [`MAX_STORE_CALLS`] threads.
    ///
    /// # Errors
    /// No slot came free within `within`: the calls holding them still
    /// wait on the store. Said as the timeout it is (the caller waited
    /// that long), naming why; no call was made and no thread is held.
    pub(crate) async fn call_slot(&self, within: Duration) -> Result<CallSlot, StoreError> {
        let slots = Arc::clone(&self.call_slots);
        match tokio::time::timeout(within, slots.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(CallSlot { _permit: permit }),
            // The semaphore is never closed; said as a wait that failed.
            Ok(Err(_)) | Err(_) => Err(StoreError::Failed {
                store: "store",
                reason: format!(
                    "no answer within {} s: it waited for one of the {MAX_STORE_CALLS} earlier \
                     calls still waiting on the store (no more are made at once), and was not made",
                    within.as_secs()
                ),
            }),
        }
    }

    /// A slot for one store call if one is free now (a save's preparation,
    /// which is better skipped than waited for).
    pub(crate) fn try_call_slot(&self) -> Option<CallSlot> {
        Arc::clone(&self.call_slots)
            .try_acquire_owned()
            .ok()
            .map(|permit| CallSlot { _permit: permit })
    }

    /// A store call timed out and goes on waiting on the store.
    pub(crate) fn call_hung(&self) {
        self.hung_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// A call that had timed out returned (whatever it said).
    pub(crate) fn hung_call_returned(&self) {
        self.hung_calls.fetch_sub(1, Ordering::Relaxed);
    }

    /// The same, waiting `timeout` for each store call instead of
    /// [`crate::store::DEFAULT_TIMEOUT`].
    #[must_use]
    pub fn with_call_timeout(self, timeout: Duration) -> Self {
        Self {
            call_timeout: timeout,
            ..self
        }
    }

    /// How long one store call may take before the store counts as down.
    #[must_use]
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> StoreState {
        self.state.borrow().clone()
    }

    /// Whether the store can be used now.
    #[must_use]
    pub fn is_available(&self) -> bool {
        self.state.borrow().is_available()
    }

    /// Why the store cannot be used, when it cannot.
    #[must_use]
    pub fn error(&self) -> Option<StoreError> {
        match &*self.state.borrow() {
            StoreState::Available => None,
            StoreState::Unavailable { error, .. } => Some(error.clone()),
        }
    }

    /// The state as `status` reports it, once per answer.
    #[must_use]
    pub fn report(&self) -> StoreReport {
        StoreReport {
            name: self.store,
            outage: match self.state() {
                StoreState::Available => None,
                StoreState::Unavailable { error, since } => Some(StoreOutage {
                    reason: error.to_string(),
                    since,
                }),
            },
        }
    }

    /// Changes to the state, for the retry loop.
    pub(crate) fn subscribe(&self) -> watch::Receiver<StoreState> {
        self.state.subscribe()
    }

    /// A store call failed store-wide: the first such failure makes the
    /// store unavailable, with one log line; later ones only keep the
    /// reason current (a Secret Service that appears locked, say), at
    /// debug level. Returns whether this failure began the outage.
    pub(crate) fn failed(&self, error: &StoreError) -> bool {
        let since = self.clock.now();
        let mut reason_changed = false;
        let mut became_unavailable = false;
        self.state.send_if_modified(|state| match state {
            StoreState::Available => {
                *state = StoreState::Unavailable {
                    error: error.clone(),
                    since,
                };
                became_unavailable = true;
                true
            }
            // Not a transition: the loop already runs. A new reason is
            // told to the watchers (D-Bus signals `StoreError`); the loop
            // only waits for a transition, so it is not woken.
            StoreState::Unavailable { error: current, .. } => {
                if current != error {
                    reason_changed = true;
                    current.clone_from(error);
                }
                reason_changed
            }
        });
        if became_unavailable {
            warn!(
                event = "store_unavailable",
                store = self.store,
                "{error}; sessions not yet read from it wait (tokens in memory are still served, \
                 new ones are saved when it works again); retrying in the background"
            );
        } else if reason_changed {
            debug!(
                store = self.store,
                "the store is still unavailable: {error}"
            );
        }
        became_unavailable
    }

    /// The retry loop found the store working, at a probe made for `cause`:
    /// says so, once. Returns how long it was unavailable (`None` when it
    /// was not).
    pub(crate) fn recovered(&self, cause: ProbeCause) -> Option<Duration> {
        let now = self.clock.now();
        let mut down_since = None;
        self.state.send_if_modified(|state| match state {
            StoreState::Available => false,
            StoreState::Unavailable { since, .. } => {
                down_since = Some(*since);
                *state = StoreState::Available;
                true
            }
        });
        let down_for = now.duration_since(down_since?).unwrap_or_default();
        info!(
            event = "store_available",
            store = self.store,
            down_for_secs = down_for.as_secs(),
            noticed = cause.as_str(),
            "the {} works again (unavailable for {} s, noticed {}); restoring the sessions \
             that waited for it",
            self.store,
            down_for.as_secs(),
            cause.describe()
        );
        Some(down_for)
    }

    /// Asks the retry loop to probe now rather than at the end of its backoff.
    pub(crate) fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// A store call that had timed out was answered (whatever it said):
    /// during an outage, the retry loop probes at once. A keyring that hung
    /// (stopped, or stuck) and runs again sends no signal, but the calls
    /// that waited for it get their answers.
    pub(crate) fn answered_late(&self) {
        if !self.is_available() {
            self.late_answer.notify_one();
        }
    }

    /// Resolves when [`Self::answered_late`] was called during an outage.
    pub(crate) async fn late_answer(&self) {
        self.late_answer.notified().await;
    }

    /// Resolves when [`Self::nudge`] was called.
    pub(crate) async fn nudged(&self) {
        self.nudge.notified().await;
    }

    /// Counts the retry loop's finished probes.
    pub(crate) fn probes(&self) -> watch::Receiver<u64> {
        self.probes.subscribe()
    }

    /// The retry loop finished a probe (whatever it found).
    pub(crate) fn probed(&self) {
        self.probes.send_modify(|count| *count += 1);
    }

    /// Asks the retry loop to probe the store now, on behalf of a request
    /// made during an outage, within the spacing of
    /// [`Self::claim_on_demand`]. Returns what resolves when that probe
    /// (or one already under way) has finished; `None` when the store is
    /// available or a request tried it a moment ago.
    pub(crate) fn probe_on_demand(&self, now: SystemTime) -> Option<watch::Receiver<u64>> {
        if self.is_available() || !self.claim_on_demand(now) {
            return None;
        }
        // Subscribed before the nudge: the next count is a probe that
        // finished after this request asked.
        let probes = self.probes();
        self.nudge();
        Some(probes)
    }

    /// Whether a `token` request may try the store now during an outage
    /// (and if so, counts it as the attempt of this spacing period).
    pub(crate) fn claim_on_demand(&self, now: SystemTime) -> bool {
        let mut last = self
            .last_on_demand
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| timing::within(now, at, timing::ON_DEMAND_RETRY_SPACING)) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// The delay before probe number `attempt` (1 for the first).
    pub(crate) fn retry_delay(&self, attempt: u32) -> Duration {
        let (base, cap) = *self.retry.lock().unwrap_or_else(PoisonError::into_inner);
        timing::backoff(attempt, base, cap, fastrand::f64())
    }

    /// The longest delay between probes.
    pub(crate) fn retry_cap(&self) -> Duration {
        self.retry.lock().unwrap_or_else(PoisonError::into_inner).1
    }

    /// Shortens the retry loop's backoff, for tests that watch it work.
    #[cfg(test)]
    pub(crate) fn set_retry(&self, base: Duration, cap: Duration) {
        *self.retry.lock().unwrap_or_else(PoisonError::into_inner) = (base, cap);
    }
}
