//! The broker: the one owner of every session, and the only API the
//! front-ends call.
//!
//! [`Broker`] answers `token`, `login`, `logout` and `status` for a
//! [`Caller`], checks the caller against the provider's [`AccessPolicy`]
//! first, and publishes [`BrokerEvent`]s for front-ends that signal changes
//! (D-Bus). It owns the [`RefreshScheduler`] task that keeps tokens fresh,
//! and the store's one [`StoreHealth`] with its retry loop. Front-ends hold
//! no state and make no decisions of their own.

pub mod clock;
mod error;
mod login;
pub mod metrics;
mod metrics_report;
pub mod policy;
mod record_writes;
mod reload;
mod restore;
pub mod scheduler;
mod session;
mod status;
pub mod store_health;
mod store_recovery;
pub mod timing;
pub mod wall_timer;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{Semaphore, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

pub use clock::{Clock, SystemClock};
pub use error::BrokerError;
pub use login::{LoginProgress, LoginWatch, PendingPrompt};
pub use metrics::Metrics;
pub use metrics_report::escape_label_value;
pub use policy::{AccessPolicy, Caller, Role, describe_roles};
pub use scheduler::RefreshScheduler;
pub(crate) use session::blocking as store_call;
pub use session::{
    AccessToken, Freshness, STORE_TIMEOUT, Session, TokenFingerprint, session_identity,
};
pub use status::StatusPages;
pub use store_health::{StoreHealth, StoreState};

use crate::config::{Config, ProviderConfig};
use crate::protocol::LoginPrompt;
use crate::provider::{HttpClient, Provider, dialect_for};
use crate::store::Store;

/// What a [`BrokerEvent::Attention`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKind {
    /// The provider ended the session: `tokenctl login NAME` again.
    LoginRequired,
    /// A refresh failed; it is retried with backoff.
    RefreshFailed,
    /// The refresh token itself expires soon: log in again before then.
    RefreshTokenExpiring,
}

impl AttentionKind {
    /// The event's name for hooks (`EVENT=`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::LoginRequired => "login_required",
            Self::RefreshFailed => "refresh_failed",
            Self::RefreshTokenExpiring => "refresh_token_expiring",
        }
    }
}

/// The largest `min_valid` accepted: a day. Asking for more is a mistake
/// (seconds taken for milliseconds), better told than silently refused.
pub const MAX_MIN_VALID: Duration = Duration::from_secs(24 * 3600);

/// Something that happened, for front-ends that publish changes.
/// Never carries a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerEvent {
    /// A device login has a code to show.
    LoginPrompt {
        /// Provider name.
        provider: String,
        /// The prompt.
        prompt: LoginPrompt,
    },
    /// A device login ended.
    LoginFinished {
        /// Provider name.
        provider: String,
        /// Whether tokens were obtained.
        ok: bool,
        /// What happened, for a person.
        message: String,
    },
    /// New tokens arrived (login or refresh).
    TokenRefreshed {
        /// Provider name.
        provider: String,
        /// New expiry (Unix seconds), when known.
        expires_at: Option<i64>,
    },
    /// A session needs a person: it must log in again, or its refresh
    /// failed (for hooks and desktop notifications).
    Attention {
        /// Provider name.
        provider: String,
        /// What happened.
        kind: AttentionKind,
        /// Why, for a person (never a secret).
        reason: String,
    },
    /// Something in the provider's status changed.
    StateChanged {
        /// Provider name.
        provider: String,
    },
    /// A config reload added, removed or rebuilt providers.
    ProvidersChanged {
        /// New providers.
        added: Vec<String>,
        /// Providers gone from the config.
        removed: Vec<String>,
        /// Providers whose config changed.
        changed: Vec<String>,
        /// The access rules of the removed and changed providers as they
        /// were before, so that a front-end can tell the peers who could
        /// see them, and no one else.
        previous_policies: Vec<(String, AccessPolicy)>,
    },
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// New providers.
    pub added: Vec<String>,
    /// Providers gone from the config.
    pub removed: Vec<String>,
    /// Providers whose config changed.
    pub changed: Vec<String>,
}

/// A periodic proof of life from the broker's scheduler task.
pub struct Heartbeat {
    /// At most this long between beats.
    pub interval: Duration,
    /// Called on each beat.
    pub beat: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeat")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// What every session shares.
#[derive(Debug)]
pub struct Shared {
    /// The store, watched: its store-wide failures reach `store_health`.
    pub(crate) store: Arc<dyn Store>,
    /// Whether the store can be used: one state for every session.
    pub(crate) store_health: Arc<StoreHealth>,
    pub(crate) clock: Arc<dyn Clock>,
    events: broadcast::Sender<BrokerEvent>,
    pub(crate) scheduler: RefreshScheduler,
    pub(crate) tasks: TaskTracker,
    pub(crate) shutdown: CancellationToken,
    pub(crate) owner_uid: u32,
    /// The order of each record's store writes.
    pub(crate) record_writes: record_writes::RecordWrites,
    /// How long before a refresh token expires the daemon warns (zero: never).
    pub(crate) refresh_token_warning: Duration,
    /// Counters for `tokenctl metrics`.
    pub(crate) metrics: Arc<Metrics>,
}

impl Shared {
    pub(crate) fn emit(&self, event: BrokerEvent) {
        // No subscriber is fine: events are for whoever listens.
        let _ = self.events.send(event);
    }
}

/// How a broker is built: everything it needs, handed in.
#[derive(Debug)]
pub struct BrokerParts {
    /// Where sessions persist.
    pub store: Arc<dyn Store>,
    /// Wall-clock time.
    pub clock: Arc<dyn Clock>,
    /// The HTTP client for providers.
    pub http: HttpClient,
    /// The uid the daemon runs as (always allowed).
    pub owner_uid: u32,
}

/// The broker core. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    http: HttpClient,
    max_concurrent_refreshes: usize,
    // A std RwLock: read on every request, written only on reload, and
    // never held across an await.
    sessions: RwLock<BTreeMap<String, Arc<Session>>>,
    // One semaphore per token endpoint, shared by the sessions that use it.
    endpoint_limits: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
    // Whether any session's policy has `allow_units`: asked once per
    // connection, so kept beside the map rather than found by walking it.
    unit_grants: std::sync::atomic::AtomicBool,
}

impl Broker {
    /// A broker for the providers of `config`. Call [`Self::start`] next.
    #[must_use]
    pub fn new(config: &Config, parts: BrokerParts) -> Self {
        let (events, _) = broadcast::channel(1024);
        let metrics = Arc::new(Metrics::default());
        let store_health = Arc::new(StoreHealth::new(
            parts.store.name(),
            Arc::clone(&parts.clock),
        ));
        let shared = Arc::new(Shared {
            store: Arc::new(store_health::WatchedStore::new(
                parts.store,
                Arc::clone(&store_health),
                Arc::clone(&metrics),
            )),
            store_health,
            clock: parts.clock,
            events,
            scheduler: RefreshScheduler::new(),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            owner_uid: parts.owner_uid,
            record_writes: record_writes::RecordWrites::default(),
            refresh_token_warning: config.daemon.refresh_token_warning,
            metrics,
        });
        let broker = Self {
            inner: Arc::new(Inner {
                shared,
                http: parts.http,
                max_concurrent_refreshes: config.daemon.max_concurrent_refreshes,
                sessions: RwLock::new(BTreeMap::new()),
                endpoint_limits: std::sync::Mutex::new(HashMap::new()),
                unit_grants: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        let sessions = config
            .providers
            .iter()
            .map(|p| (p.name.clone(), broker.build_session(p)))
            .collect();
        broker.set_sessions(sessions);
        broker
    }

    /// Replaces the sessions (at start and on reload).
    fn set_sessions(&self, sessions: BTreeMap<String, Arc<Session>>) {
        let unit_grants = sessions.values().any(|s| s.policy.grants_units());
        *self
            .inner
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner) = sessions;
        self.inner
            .unit_grants
            .store(unit_grants, std::sync::atomic::Ordering::Relaxed);
    }

    fn build_session(&self, config: &ProviderConfig) -> Arc<Session> {
        let provider = Provider::new(
            dialect_for(config),
            config.endpoints.clone(),
            self.inner.http.clone(),
        );
        let limit = Arc::clone(
            self.inner
                .endpoint_limits
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(provider.token_endpoint_hint())
                .or_insert_with(|| Arc::new(Semaphore::new(self.inner.max_concurrent_refreshes))),
        );
        Arc::new(Session::new(
            config.clone(),
            provider,
            limit,
            Arc::clone(&self.inner.shared),
        ))
    }

    /// Restores stored sessions and starts the refresh scheduler.
    ///
    /// With a `heartbeat`, the scheduler task wakes at least every
    /// `interval`, checks that every session's state can be locked, and
    /// calls `beat`: a watchdog fed from here stops being fed when the core
    /// is stuck, not merely when a timer runs.
    pub async fn start(&self, heartbeat: Option<Heartbeat>) {
        let providers = self.restore_all().await;
        self.spawn_store_watch();
        let broker = self.clone();
        self.inner.shared.tasks.spawn(async move {
            let shared = Arc::clone(&broker.inner.shared);
            let max_sleep = heartbeat
                .as_ref()
                .map_or(scheduler::LONGEST_SLEEP, |h| h.interval);
            let mut last_beat: Option<tokio::time::Instant> = None;
            shared
                .scheduler
                .run(shared.clock.as_ref(), &shared.shutdown, max_sleep, |due| {
                    for name in due {
                        if let Some(session) = broker.session(&name) {
                            session.refresh_if_due();
                        }
                    }
                    if let Some(h) = &heartbeat
                        && last_beat.is_none_or(|at| at.elapsed() >= h.interval)
                    {
                        broker.sessions().iter().for_each(|s| s.probe());
                        (h.beat)();
                        last_beat = Some(tokio::time::Instant::now());
                    }
                })
                .await;
        });
        info!(providers, "broker started");
    }

    /// Stops the scheduler and logins, and waits (at most `grace`) for
    /// refreshes in flight to finish and save what they got.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        let shared = &self.inner.shared;
        shared.shutdown.cancel();
        shared.tasks.close();
        tokio::time::timeout(grace, shared.tasks.wait())
            .await
            .is_ok()
    }

    /// A token has been cancelled when shutdown begins.
    #[must_use]
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shared.shutdown.clone()
    }

    /// The counters front-ends add their requests to.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.inner.shared.metrics
    }

    /// Subscribes to events.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<BrokerEvent> {
        self.inner.shared.events.subscribe()
    }

    fn session_map(&self) -> BTreeMap<String, Arc<Session>> {
        self.inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every session, in name order. Cheaper than [`Self::session_map`]:
    /// no name is copied.
    fn sessions(&self) -> Vec<Arc<Session>> {
        self.inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    fn session(&self, name: &str) -> Option<Arc<Session>> {
        self.inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The session `name`, if `caller` has at least the role `needed` on it.
    ///
    /// A caller with no role gets the answer for a provider that does not
    /// exist: it learns nothing about the provider, not even its name. A
    /// caller who may use it but asks to manage it is told it may not.
    fn authorized(
        &self,
        caller: &Caller,
        name: &str,
        needed: Role,
    ) -> Result<Arc<Session>, BrokerError> {
        if name.is_empty() || name.len() > 256 {
            return Err(BrokerError::InvalidArgument {
                message: format!("provider name must be 1 to 256 bytes, got {}", name.len()),
            });
        }
        let found = self.session(name);
        let role = found
            .as_ref()
            .map_or(Role::None, |session| session.policy.role(caller));
        match found {
            Some(session) if role >= needed => Ok(session),
            Some(_) if role >= Role::Use => {
                tracing::warn!(provider = %name, event = "access_denied", uid = caller.uid, pid = caller.pid, "refused a caller: it may use the provider, not manage it");
                Err(BrokerError::AccessDenied {
                    provider: name.to_owned(),
                    uid: caller.uid,
                })
            }
            found => {
                if found.is_some() {
                    // The refusal is the administrator's to see, not the caller's.
                    tracing::warn!(provider = %name, event = "access_denied", uid = caller.uid, pid = caller.pid, "refused a caller with no role on the provider");
                }
                let (known, unlisted) = self.some_names(caller, error::KNOWN_LISTED);
                Err(BrokerError::UnknownProvider {
                    provider: name.to_owned(),
                    known,
                    unlisted,
                })
            }
        }
    }

    /// The world changed in a way that may end a wait (the network came
    /// back, the machine resumed): sessions whose refresh failed for a
    /// transient reason, or is overdue, try again within `spread`, each at
    /// a random moment of it so they do not all go at once. Returns how
    /// many sessions were moved.
    #[must_use = "the count is for the log line"]
    pub fn retry_waiting_refreshes(&self, spread: Duration) -> usize {
        let now = self.inner.shared.clock.now();
        self.sessions()
            .iter()
            .filter(|session| session.retry_at(now + spread.mul_f64(fastrand::f64())))
            .count()
    }

    /// The first `limit` names of the providers `caller` may use, and how
    /// many more there are; no other name is copied.
    fn some_names(&self, caller: &Caller, limit: usize) -> (Vec<String>, usize) {
        let sessions = self
            .inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut visible = sessions.values().filter(|s| s.policy.allows(caller));
        let names = visible
            .by_ref()
            .take(limit)
            .map(|s| s.name.clone())
            .collect();
        (names, visible.count())
    }

    /// Names of the providers `caller` may use.
    #[must_use]
    pub fn provider_names(&self, caller: &Caller) -> Vec<String> {
        self.sessions()
            .iter()
            .filter(|s| s.policy.allows(caller))
            .map(|s| s.name.clone())
            .collect()
    }

    /// An access token of `provider` as fresh as `want` asks (a
    /// [`Freshness`], or a `Duration` of life it must have left), refreshed
    /// first when needed.
    ///
    /// # Errors
    /// Unknown provider, access denied, login required, provider unavailable, ...
    pub async fn token(
        &self,
        caller: &Caller,
        provider: &str,
        want: impl Into<Freshness>,
    ) -> Result<AccessToken, BrokerError> {
        let want = want.into();
        if let Freshness::AtLeast(min_valid) = want
            && min_valid > MAX_MIN_VALID
        {
            return Err(BrokerError::InvalidArgument {
                message: format!(
                    "min_valid of {} s is more than the maximum of {} s",
                    min_valid.as_secs(),
                    MAX_MIN_VALID.as_secs()
                ),
            });
        }
        let session = self.authorized(caller, provider, Role::Use)?;
        if self.inner.shared.shutdown.is_cancelled() {
            return Err(BrokerError::ShuttingDown);
        }
        session.token(want).await
    }

    /// Starts (or joins) the device login of `provider`.
    ///
    /// # Errors
    /// Unknown provider or access denied.
    pub fn login(&self, caller: &Caller, provider: &str) -> Result<LoginWatch, BrokerError> {
        let session = self.authorized(caller, provider, Role::Manage)?;
        if self.inner.shared.shutdown.is_cancelled() {
            return Err(BrokerError::ShuttingDown);
        }
        Ok(session.join_or_start_login())
    }

    /// Forgets the session of `provider`, in memory and in the store.
    ///
    /// # Errors
    /// Unknown provider, access denied, or the store could not delete the
    /// record (the session is gone from memory regardless).
    pub async fn logout(&self, caller: &Caller, provider: &str) -> Result<(), BrokerError> {
        self.authorized(caller, provider, Role::Manage)?
            .logout()
            .await
    }

    /// Whether any provider grants use by systemd unit (`allow_units`): only
    /// then do front-ends read their callers' units.
    #[must_use]
    pub fn grants_units(&self) -> bool {
        self.inner
            .unit_grants
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What `caller` may do with `provider`: [`Role::None`] also when there
    /// is no such provider, so that the two cannot be told apart.
    #[must_use]
    pub fn role(&self, caller: &Caller, provider: &str) -> Role {
        self.session(provider)
            .map_or(Role::None, |session| session.policy.role(caller))
    }

    /// The access rule of `provider`, for a front-end that must still
    /// address the right peers after the provider is gone (a reload
    /// removed it).
    #[must_use]
    pub fn policy(&self, provider: &str) -> Option<AccessPolicy> {
        self.session(provider).map(|session| session.policy.clone())
    }
}
