//! The broker's request API: [`Broker`], the sessions it owns, and the
//! calls front-ends make (`token`, `login`, `logout`, roles). Each call is
//! checked against the provider's access policy before a session sees it
//! (in `visibility`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::clock::Clock;
use super::endpoint_limit::EndpointLimit;
use super::error::BrokerError;
use super::events::BrokerEvent;
use super::login::LoginWatch;
use super::metrics::Metrics;
use super::policy::{Caller, Role};
use super::record_writes;
use super::scheduler::RefreshScheduler;
use super::session::{AccessToken, Freshness, LogoutOutcome, Session, WorldChange};
use super::shared::Shared;
use super::store_health::StoreHealth;
use super::watched_store;
use crate::config::{DaemonConfig, ProviderConfig};
use crate::provider::{HttpClient, Provider};
use crate::store::Store;

/// The largest `min_valid` accepted: the longest access-token lifetime
/// believed from any provider (400 days). Within it, a `min_valid` longer
/// than the provider's tokens live is `TokenTooShort`, as the contract
/// says (Trakt's tokens live a week, so a day was no ceiling); beyond it
/// no token can ever satisfy it, and it is a mistake (milliseconds taken
/// for seconds), better told as such.
pub const MAX_MIN_VALID: Duration = crate::provider::oauth::MAX_TOKEN_LIFETIME;

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
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) shared: Arc<Shared>,
    pub(super) http: HttpClient,
    pub(super) max_concurrent_refreshes: usize,
    // A std RwLock: read on every request, written only on reload, and
    // never held across an await.
    pub(super) sessions: RwLock<BTreeMap<String, Arc<Session>>>,
    // One limit per token endpoint, shared by the sessions that use it;
    // pruned after each reload to the endpoints sessions still use.
    pub(super) endpoint_limits: std::sync::Mutex<HashMap<String, Arc<EndpointLimit>>>,
    // Whether any session's policy has `allow_units`: asked once per
    // connection, so kept beside the map rather than found by walking it.
    pub(super) unit_grants: AtomicBool,
    // Whether any session's policy grants by group: asked once per socket
    // connection, whose caller's primary group is looked up only then.
    pub(super) group_grants: AtomicBool,
    // How many refused callers were logged lately, per uid (a flood is not).
    pub(super) refusals: super::refusal_log::CallerRefusals,
    // Whether the last reload failed, and what waits for a restart.
    pub(super) config_standing: super::config_standing::ConfigStandingCell,
    // Held for writing through a reload: a caller whose session the reload
    // retired waits here for the provider's new session (`successor`).
    pub(super) reloading: tokio::sync::RwLock<()>,
    // Sessions a reload retired while a stop cut its wait for their
    // refresh short: gone from the map, still to be named at the stop if
    // that refresh does not finish.
    pub(super) retired_unfinished: std::sync::Mutex<Vec<Arc<Session>>>,
}

/// How many times in a row a `token` request follows a provider to the
/// session a reload replaced its session with.
const MAX_SUCCESSIONS: usize = 3;

impl Broker {
    /// A broker for `providers`, run as `daemon` says. Call [`Self::start`]
    /// next. Each session keeps its provider's config, moved here rather
    /// than copied: with 10,000 providers the copies and then the
    /// originals' drop cost a start about 10 ms (measured), and its peak
    /// memory a second set of configs.
    #[must_use]
    pub fn new(daemon: &DaemonConfig, providers: Vec<ProviderConfig>, parts: BrokerParts) -> Self {
        let (events, _) = broadcast::channel(1024);
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::default());
        let store_health = Arc::new(
            StoreHealth::new(parts.store.name(), Arc::clone(&parts.clock))
                .with_call_timeout(daemon.store_timeout),
        );
        let shared = Arc::new(Shared {
            store: Arc::new(watched_store::WatchedStore::new(
                parts.store,
                Arc::clone(&store_health),
                Arc::clone(&metrics),
            )),
            store_health,
            clock: parts.clock,
            events,
            feeds: super::event_feed::FeedHub::default(),
            scheduler: RefreshScheduler::new(),
            tasks: TaskTracker::new(),
            logins: shutdown.child_token(),
            background: shutdown.child_token(),
            shutdown,
            owner_uid: parts.owner_uid,
            record_writes: record_writes::RecordWrites::default(),
            refresh_token_warning: daemon.refresh_token_warning,
            metrics,
            world_changes: tokio::sync::watch::Sender::new(None),
            sleep_hold: AtomicBool::new(false),
            held_wakes: std::sync::Mutex::new(Vec::new()),
            network_left: AtomicBool::new(false),
            unreadable_found: tokio::sync::Notify::new(),
            endpoints_back: super::endpoint_recovery::EndpointsBack::default(),
        });
        let broker = Self {
            inner: Arc::new(Inner {
                shared,
                http: parts.http,
                max_concurrent_refreshes: daemon.max_concurrent_refreshes,
                sessions: RwLock::new(BTreeMap::new()),
                endpoint_limits: std::sync::Mutex::new(HashMap::new()),
                unit_grants: AtomicBool::new(false),
                group_grants: AtomicBool::new(false),
                refusals: super::refusal_log::CallerRefusals::default(),
                config_standing: super::config_standing::ConfigStandingCell::default(),
                reloading: tokio::sync::RwLock::new(()),
                retired_unfinished: std::sync::Mutex::new(Vec::new()),
            }),
        };
        let sessions = providers
            .into_iter()
            .map(|p| (p.name.clone(), broker.build_session(p)))
            .collect();
        broker.set_sessions(sessions);
        broker
    }

    /// Replaces the sessions (at start and on reload).
    pub(super) fn set_sessions(&self, sessions: BTreeMap<String, Arc<Session>>) {
        let unit_grants = sessions.values().any(|s| s.policy().grants_units());
        let group_grants = sessions.values().any(|s| s.policy().grants_groups());
        *self
            .inner
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner) = sessions;
        self.inner.unit_grants.store(unit_grants, Ordering::Relaxed);
        self.inner
            .group_grants
            .store(group_grants, Ordering::Relaxed);
    }

    /// The counters front-ends add their requests to.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.inner.shared.metrics
    }

    /// Whether any provider grants use by systemd unit (`allow_units`): only
    /// then do front-ends read their callers' units.
    #[must_use]
    pub fn grants_units(&self) -> bool {
        self.inner.unit_grants.load(Ordering::Relaxed)
    }

    /// Whether any provider grants by group (`allow_groups`,
    /// `manage_groups`): only then do callers' primary groups matter.
    #[must_use]
    pub fn grants_groups(&self) -> bool {
        self.inner.group_grants.load(Ordering::Relaxed)
    }

    pub(super) fn build_session(&self, config: ProviderConfig) -> Arc<Session> {
        let provider = Provider::new(
            config.build_dialect(),
            config.endpoints.clone(),
            self.inner.http.clone(),
        )
        .with_client_secret(config.client_secret.clone());
        let limit = Arc::clone(
            self.inner
                .endpoint_limits
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(provider.token_endpoint_hint())
                .or_insert_with_key(|endpoint| {
                    Arc::new(EndpointLimit::new(
                        endpoint,
                        self.inner.max_concurrent_refreshes,
                    ))
                }),
        );
        Arc::new(Session::new(
            config,
            provider,
            limit,
            Arc::clone(&self.inner.shared),
        ))
    }

    /// Drops the refresh limit of every token endpoint no session uses any
    /// more (after a reload: a generated config would otherwise leave one
    /// per endpoint it ever named).
    pub(super) fn prune_endpoint_limits(&self) {
        let mut limits = self
            .inner
            .endpoint_limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Every session holds its endpoint's semaphore for as long as it
        // lives (`Session::endpoint_limit`), and a refresh borrows its permit
        // from the session its task holds; clones are made only in
        // `build_session`, under this lock. So a semaphore whose only holder
        // is this map has no session, current or retired but still running,
        // and no refresh in flight: the endpoints of the new config and
        // those of a retired session still refreshing stay, and share their
        // bound with a new session of the same endpoint.
        limits.retain(|_, limit| Arc::strong_count(limit) > 1);
        // The table would otherwise stay as large as its largest config.
        limits.shrink_to_fit();
    }

    /// A token has been cancelled when shutdown begins.
    #[must_use]
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shared.shutdown.clone()
    }

    /// Subscribes to events, for a follower that only looks for a change:
    /// one that falls 1,024 events behind loses the oldest.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<BrokerEvent> {
        self.inner.shared.events.subscribe()
    }

    /// Follows every event from now on, losing none: a follower behind a
    /// burst gets the latest of each kind for each provider (see
    /// [`super::EventFeed`]).
    #[must_use]
    pub fn follow(&self) -> super::EventFeed {
        self.inner.shared.feeds.follow()
    }

    pub(super) fn session_map(&self) -> BTreeMap<String, Arc<Session>> {
        self.inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every session, in name order. Cheaper than [`Self::session_map`]:
    /// no name is copied.
    pub(super) fn sessions(&self) -> Vec<Arc<Session>> {
        self.inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    pub(super) fn session(&self, name: &str) -> Option<Arc<Session>> {
        self.inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The world changed in a way that may end a wait (the network came
    /// back, the machine resumed): sessions whose refresh failed for a
    /// transient reason that `change` may have ended, or is overdue, try
    /// again within `spread`, each at a random moment of it so they do not
    /// all go at once. Device logins whose polls failed poll again at their
    /// interval. Returns how many sessions were moved.
    #[must_use = "the count is for the log line"]
    pub fn retry_waiting_refreshes(&self, spread: Duration, change: WorldChange) -> usize {
        self.inner
            .shared
            .world_changes
            .send_modify(|last| *last = Some(change));
        self.move_retries(spread, change, |_| true)
    }

    /// Moves the retries `change` may bring forward of the sessions `of`
    /// picks to within `spread`, each at a random moment of it (see
    /// `SessionMachine::retry_at`); how many moved.
    pub(super) fn move_retries(
        &self,
        spread: Duration,
        change: WorldChange,
        of: impl Fn(&Session) -> bool,
    ) -> usize {
        let now = self.inner.shared.clock.now();
        self.sessions()
            .iter()
            .filter(|session| of(session))
            .filter(|session| session.retry_at(now + spread.mul_f64(fastrand::f64()), change))
            .count()
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
        let session = self
            .authorized_once_known(caller, provider, Role::Use)
            .await?;
        self.token_from(session, caller, provider, want).await
    }

    /// [`Self::token`] from `session`, the one `provider` had when the
    /// caller was authorized; from the provider's new session instead when
    /// a reload replaced that one meanwhile (it no longer refreshes: see
    /// `Session::retire`), authorized again under the new config.
    pub(super) async fn token_from(
        &self,
        mut session: Arc<Session>,
        caller: &Caller,
        provider: &str,
        want: Freshness,
    ) -> Result<AccessToken, BrokerError> {
        // A reload right after a reload could retire the new session too;
        // a few in a row are plenty.
        for _ in 0..MAX_SUCCESSIONS {
            if self.inner.shared.shutdown.is_cancelled() {
                return Err(BrokerError::ShuttingDown);
            }
            let result = session.token(want).await;
            if result.is_ok() || !session.is_retired() {
                return result.map_err(|e| match e {
                    // A pending login's code is for those who may log in:
                    // whoever approves it binds the provider to their own
                    // account.
                    BrokerError::LoginRequired { .. }
                        if session.policy().role(caller) < Role::Manage =>
                    {
                        e.for_caller_without_login()
                    }
                    e => e,
                });
            }
            session = self
                .successor_of_retired(caller, provider, Role::Use)
                .await?;
        }
        Err(BrokerError::ShuttingDown)
    }

    /// Starts (or joins) the device login of `provider`.
    ///
    /// # Errors
    /// Unknown provider or access denied.
    pub async fn login(&self, caller: &Caller, provider: &str) -> Result<LoginWatch, BrokerError> {
        let session = self
            .authorized_once_known(caller, provider, Role::Manage)
            .await?;
        self.login_on(session, caller, provider).await
    }

    /// [`Self::login`] on `session`, the one `provider` had when the caller
    /// was authorized; on the provider's new session instead when a reload
    /// retired that one (a login during a reload that waits for a refresh
    /// in flight): its tokens went to the retired session, dropped once the
    /// reload was over, so the person was told "logged in" and the provider
    /// stayed logged out.
    pub(super) async fn login_on(
        &self,
        mut session: Arc<Session>,
        caller: &Caller,
        provider: &str,
    ) -> Result<LoginWatch, BrokerError> {
        for _ in 0..MAX_SUCCESSIONS {
            if self.inner.shared.logins.is_cancelled() {
                return Err(BrokerError::ShuttingDown);
            }
            if let Some(watch) = session.join_or_start_login()? {
                return Ok(watch);
            }
            session = self
                .successor_of_retired(caller, provider, Role::Manage)
                .await?;
        }
        Err(BrokerError::ShuttingDown)
    }

    /// Forgets the session of `provider`, in memory and in the store.
    ///
    /// # Errors
    /// Unknown provider, access denied, or the store could not delete the
    /// record (the session is gone from memory regardless).
    pub async fn logout(
        &self,
        caller: &Caller,
        provider: &str,
    ) -> Result<LogoutOutcome, BrokerError> {
        let session = self
            .authorized_once_known(caller, provider, Role::Manage)
            .await?;
        self.logout_from(session, caller, provider).await
    }

    /// [`Self::logout`] of `session`, the one `provider` had when the
    /// caller was authorized, and of its successor if a reload replaced it
    /// meanwhile.
    pub(super) async fn logout_from(
        &self,
        session: Arc<Session>,
        caller: &Caller,
        provider: &str,
    ) -> Result<LogoutOutcome, BrokerError> {
        let result = session.logout().await;
        if session.is_retired() {
            // A reload replaced the session, and may have handed its tokens
            // to the new one before this logout: log that one out too. A
            // reload that removed the provider has no new one: this
            // logout is all there is (said as "no such provider", a logout
            // that was done read as one that was not).
            let successor = match self.successor(caller, provider, Role::Manage).await {
                Ok(successor) => successor,
                Err(BrokerError::UnknownProvider { .. }) => return result,
                Err(e) => return Err(e),
            };
            let successor = successor.logout().await?;
            return Ok(result.unwrap_or_default().and(successor));
        }
        result
    }

    /// Cancels the device login of `provider` that waits for the person,
    /// and nothing else: its session, an active one too, stays as it is
    /// (a logout would end it as well). Returns whether one was waiting.
    ///
    /// # Errors
    /// Unknown provider or access denied (the role a login needs).
    pub fn cancel_login(&self, caller: &Caller, provider: &str) -> Result<bool, BrokerError> {
        let session = self.authorized(caller, provider, Role::Manage)?;
        Ok(session.cancel_login())
    }
}
