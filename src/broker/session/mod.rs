//! One provider's session: its tokens, its state, and its refreshes.
//!
//! All mutable state sits in [`State`] behind a std mutex whose critical
//! sections never await. Work that does (HTTP, the store) runs outside it and
//! comes back to apply its result. Two rules keep that safe:
//!
//! - **Single flight.** At most one refresh per session is in flight; its
//!   result is published on a `watch` channel that every waiting caller
//!   shares. The refresh runs in its own task, so a caller that gives up
//!   cannot cancel it halfway (after the provider rotated the refresh token
//!   but before the new one was saved, which would lose the session).
//! - **Generations.** Login and logout start a new generation. A refresh
//!   that comes back for an older generation is discarded, so a logout is
//!   never undone by an answer that was already on its way.
//!
//! Writes to the store, and the state changes that go with them, are
//! serialised by [`Session::persist`] so that store and memory agree on
//! which refresh token is current. A refresh stores the new record before
//! the new access token is visible and before the old refresh token is
//! forgotten, so a crash leaves the old or the new one in the store; the
//! window in which a crash can lose the session (request sent, answer not
//! yet stored) is logged at debug level (`refresh_sent`, `refresh_answered`,
//! `refresh_saved`). Saving is in `store`; restoring, and waiting for a
//! store that cannot be read yet, in `restore`; the tokens and their record
//! in `tokens`.

mod device_login;
mod refresh;
mod reload;
mod restore;
mod status;
mod store;
mod tokens;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, watch};
use tracing::{debug, info};

use super::clock::unix_secs;
use super::error::BrokerError;
use super::events::BrokerEvent;
use super::login::LoginHandle;
use super::policy::AccessPolicy;
use super::shared::Shared;
use super::timing;
use crate::config::{EndpointSource, ProviderConfig};
use crate::provider::{Provider, TokenGrant};
use restore::PendingRestore;
pub(crate) use restore::{LoadResult, RestoreCause};
pub use store::STORE_TIMEOUT;
pub(crate) use store::{blocking, did_not_complete};
use tokens::Tokens;
pub use tokens::{AccessToken, Freshness, TokenFingerprint};

/// The result every waiter of a refresh shares.
pub(crate) type RefreshResult = Option<Result<(), BrokerError>>;

/// Whether the session can produce tokens.
#[derive(Debug, Clone)]
enum SessionState {
    /// Never logged in, or logged out.
    LoggedOut,
    /// Logged in.
    Active(Tokens),
    /// The provider ended the session; a new login is needed.
    NeedsLogin { reason: String },
}

/// Everything that changes, behind [`Session::state`].
#[derive(Debug)]
pub(crate) struct State {
    phase: SessionState,
    /// Bumped by login and logout; see the module doc.
    generation: u64,
    /// The device login in progress (or just finished).
    pub(crate) login: Option<LoginHandle>,
    /// The refresh in flight, shared by every caller waiting for it.
    refresh: Option<watch::Receiver<RefreshResult>>,
    last_refresh: Option<SystemTime>,
    last_attempt: Option<SystemTime>,
    /// The last failure, cleared by a success.
    last_failure: Option<BrokerError>,
    /// Consecutive failed refresh attempts, for backoff.
    failures: u32,
    /// When the next background refresh is due.
    next_refresh: Option<SystemTime>,
    /// When the current access token stops being fresh: the refresh due
    /// time planned for it, before a store retry or a nudge moved
    /// `next_refresh`. A default `token` request takes the token until then.
    fresh_until: Option<SystemTime>,
    /// The store does not hold the current refresh token (a save failed).
    store_dirty: bool,
    /// The stored session could not be read yet: the session waits for the
    /// store; see [`PendingRestore`].
    pending_restore: Option<PendingRestore>,
    /// When a `token` request last started a refresh: those are spaced, so
    /// a caller asking for more life than tokens have, in a loop, does not
    /// cost a refresh per call.
    last_on_demand_refresh: Option<SystemTime>,
    /// The refresh-token expiry already warned about (once per refresh
    /// token; a new one with another expiry is warned about again).
    expiry_warned: Option<SystemTime>,
}

/// How a `token` request proceeds, decided under the state lock.
enum TokenPlan {
    Ready(AccessToken),
    Wait(watch::Receiver<RefreshResult>),
    Fail(BrokerError),
}

/// One configured provider and its session.
#[derive(Debug)]
pub struct Session {
    /// Provider name.
    pub(crate) name: String,
    /// Its config.
    pub(crate) config: ProviderConfig,
    pub(crate) provider: Provider,
    pub(crate) policy: AccessPolicy,
    /// Which client and endpoint the session belongs to (see [`session_identity`]).
    identity: String,
    /// Bounds concurrent refreshes against this provider's token endpoint.
    refresh_limit: Arc<Semaphore>,
    pub(crate) shared: Arc<Shared>,
    state: Mutex<State>,
    /// Serialises store writes with the state changes that go with them.
    /// Held across the (blocking, off-thread) store call, hence tokio's mutex.
    persist: tokio::sync::Mutex<()>,
}

/// What identifies the issuer of a session's tokens: dialect, token endpoint
/// (or issuer), refresh endpoint (when one is set) and client id. A stored
/// session is restored only into a provider with the same identity, and a
/// reload hands the tokens over only then, so pointing a provider at another
/// client or server never sends the old session's refresh token there. A
/// session without a `refresh_endpoint` keeps the identity it had before
/// that key counted, so no stored session is lost to the change.
#[must_use]
pub fn session_identity(config: &ProviderConfig) -> String {
    let (endpoint, refresh) = match &config.endpoints {
        EndpointSource::Fixed { token, refresh, .. } => (token.as_str(), refresh.as_ref()),
        EndpointSource::Discover { issuer } => (issuer.as_str(), None),
    };
    let mut identity = format!("{}|{}|{}", config.dialect, endpoint, config.client_id);
    if let Some(refresh) = refresh {
        identity.push_str("|refresh=");
        identity.push_str(refresh.as_str());
    }
    identity
}

impl Session {
    pub(crate) fn new(
        config: ProviderConfig,
        provider: Provider,
        refresh_limit: Arc<Semaphore>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            name: config.name.clone(),
            identity: session_identity(&config),
            policy: AccessPolicy::new(shared.owner_uid, &config),
            config,
            provider,
            refresh_limit,
            shared,
            state: Mutex::new(State {
                phase: SessionState::LoggedOut,
                generation: 0,
                login: None,
                refresh: None,
                last_refresh: None,
                last_attempt: None,
                last_failure: None,
                failures: 0,
                next_refresh: None,
                fresh_until: None,
                store_dirty: false,
                pending_restore: None,
                last_on_demand_refresh: None,
                expiry_warned: None,
            }),
            persist: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // State updates are single assignments; a panic elsewhere cannot
        // leave one half-done, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> SystemTime {
        self.shared.clock.now()
    }

    fn changed(&self) {
        self.shared.emit(BrokerEvent::StateChanged {
            provider: self.name.clone(),
        });
    }

    // ----- token -------------------------------------------------------

    /// A token as fresh as `want` asks, refreshed first if needed.
    pub(crate) async fn token(
        self: &Arc<Self>,
        want: Freshness,
    ) -> Result<AccessToken, BrokerError> {
        // A store that was locked or missing may work now: try it (spaced)
        // before telling the caller there is no session.
        self.restore_on_demand().await;
        let rx = match self.plan_token(want) {
            TokenPlan::Ready(token) => return Ok(token),
            TokenPlan::Fail(e) => return Err(e),
            TokenPlan::Wait(rx) => rx,
        };
        let refreshed = wait_for_refresh(rx, &self.shared).await;
        // One refresh per request at most: if the fresh token is still too
        // short-lived, a second refresh would not help.
        let state = self.state();
        let now = self.now();
        let SessionState::Active(Tokens {
            access: Some(token),
            ..
        }) = &state.phase
        else {
            refreshed?;
            return Err(self.login_required(&state));
        };
        match want {
            // The refresh failed, but the token still works: hand it out.
            Freshness::Default | Freshness::Replacing(_)
                if token.valid_for(now, Duration::ZERO) =>
            {
                Ok(token.clone())
            }
            Freshness::Default | Freshness::Replacing(_) => Err(refreshed
                .err()
                .unwrap_or_else(|| self.login_required(&state))),
            Freshness::AtLeast(min_valid) => {
                refreshed?;
                if token.valid_for(now, min_valid) {
                    Ok(token.clone())
                } else {
                    Err(self.too_short(token, min_valid))
                }
            }
        }
    }

    fn too_short(&self, token: &AccessToken, min_valid: Duration) -> BrokerError {
        let left = token
            .expires_at
            .and_then(|at| at.duration_since(self.now()).ok())
            .unwrap_or_default();
        BrokerError::TokenTooShort {
            provider: self.name.clone(),
            lifetime_secs: left.as_secs(),
            min_valid_secs: min_valid.as_secs(),
        }
    }

    fn plan_token(self: &Arc<Self>, want: Freshness) -> TokenPlan {
        let mut state = self.state();
        let now = self.now();
        let SessionState::Active(tokens) = &state.phase else {
            // The session may be in a store that cannot be read yet: say
            // that rather than "log in", which would start a new session.
            if state.pending_restore.is_some() {
                return TokenPlan::Fail(self.waiting_error());
            }
            return TokenPlan::Fail(self.login_required(&state));
        };
        let usable = tokens
            .access
            .as_ref()
            .filter(|t| t.valid_for(now, Duration::ZERO));
        let fresh_enough = |token: &&AccessToken| match want {
            Freshness::AtLeast(min_valid) => token.valid_for(now, min_valid),
            Freshness::Default => state.fresh_until.is_none_or(|until| now < until),
            Freshness::Replacing(refused) => TokenFingerprint::of(token.secret.expose()) != refused,
        };
        if let Some(token) = usable.filter(fresh_enough) {
            return TokenPlan::Ready(token.clone());
        }
        // A default request takes a still-valid token whenever a refresh
        // cannot be had now, rather than an error.
        let fallback = |failure: BrokerError| match (want, usable) {
            (Freshness::Default | Freshness::Replacing(_), Some(token)) => {
                TokenPlan::Ready(token.clone())
            }
            _ => TokenPlan::Fail(failure),
        };
        if tokens.refresh.is_none() {
            return fallback(BrokerError::LoginRequired {
                provider: self.name.clone(),
                reason: Some(
                    "the access token expired and the provider issued no refresh token".into(),
                ),
            });
        }
        if let Some(rx) = &state.refresh {
            return TokenPlan::Wait(rx.clone());
        }
        let recently_failed = state.failures > 0
            && state
                .last_attempt
                .is_some_and(|at| now < at + timing::ON_DEMAND_RETRY_SPACING);
        if let (true, Some(failure)) = (recently_failed, &state.last_failure) {
            return fallback(failure.clone());
        }
        // A token that still works but has less life than asked for: a
        // refresh may bring a longer-lived one, but not every call (the
        // provider's lifetimes rarely change between two requests).
        if let Some(token) = usable
            && state
                .last_on_demand_refresh
                .is_some_and(|at| now < at + timing::ON_DEMAND_RETRY_SPACING)
        {
            let min_valid = match want {
                Freshness::AtLeast(min_valid) => min_valid,
                Freshness::Default | Freshness::Replacing(_) => Duration::ZERO,
            };
            return fallback(self.too_short(token, min_valid));
        }
        state.last_on_demand_refresh = Some(now);
        debug!(provider = %self.name, event = "refresh_on_demand", "a token request starts a refresh");
        TokenPlan::Wait(self.start_refresh(&mut state))
    }

    fn login_required(&self, state: &State) -> BrokerError {
        let reason = match (
            &state.phase,
            state.login.as_ref().and_then(LoginHandle::pending_code),
        ) {
            (_, Some(code)) => Some(format!("a login is pending: enter code {code}")),
            (SessionState::NeedsLogin { reason }, None) => Some(reason.clone()),
            _ => None,
        };
        BrokerError::LoginRequired {
            provider: self.name.clone(),
            reason,
        }
    }

    // ----- login and logout ----------------------------------------------

    /// Installs the tokens of a successful device login.
    pub(crate) async fn accept_login(&self, grant: TokenGrant, sent_at: SystemTime) {
        let _persist = self.persist.lock().await;
        let tokens = Tokens::from_grant(grant, sent_at, None);
        let saved = self.save(&tokens).await;
        let now = self.now();
        let expires_at = tokens
            .access
            .as_ref()
            .and_then(|a| a.expires_at)
            .map(unix_secs);
        {
            let mut state = self.state();
            state.generation += 1;
            // The new session replaces any stored one still waiting to be read.
            state.pending_restore = None;
            state.store_dirty = saved.is_err();
            state.last_failure = saved.err();
            state.phase = SessionState::Active(tokens.clone());
            state.last_refresh = Some(now);
            state.failures = 0;
            self.schedule_next(&mut state, &tokens, now);
        }
        info!(provider = %self.name, event = "logged_in", expires_at, "device login succeeded");
        self.shared.emit(BrokerEvent::TokenRefreshed {
            provider: self.name.clone(),
            expires_at,
        });
        self.changed();
    }

    /// Forgets the session: memory first, then the store.
    pub(crate) async fn logout(&self) -> Result<(), BrokerError> {
        let login = self.state().login.take();
        if let Some(login) = login {
            login.cancel();
        }
        let _persist = self.persist.lock().await;
        {
            let mut state = self.state();
            state.generation += 1;
            state.phase = SessionState::LoggedOut;
            state.failures = 0;
            state.last_failure = None;
            state.next_refresh = None;
            state.store_dirty = false;
            state.pending_restore = None;
        }
        self.shared.scheduler.schedule(&self.name, None);
        let result = self.delete_stored().await;
        info!(provider = %self.name, event = "logged_out", "session forgotten");
        self.changed();
        result
    }
}

/// Waits for a refresh's shared result.
async fn wait_for_refresh(
    mut rx: watch::Receiver<RefreshResult>,
    shared: &Shared,
) -> Result<(), BrokerError> {
    let result = tokio::select! {
        r = rx.wait_for(Option::is_some) => r.map(|v| v.clone()),
        () = shared.shutdown.cancelled() => return Err(BrokerError::ShuttingDown),
    };
    match result {
        Ok(Some(outcome)) => outcome,
        // The task ended without a word: only on a runtime shutdown.
        _ => Err(BrokerError::ShuttingDown),
    }
}
