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
//! which refresh token is current.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, watch};

mod persist;
mod refresh;

pub use persist::STORE_TIMEOUT;
pub(crate) use persist::blocking;

use super::clock::{from_unix_secs, unix_secs};
use super::error::BrokerError;
use super::login::LoginHandle;
use super::policy::AccessPolicy;
use super::timing;
use super::{BrokerEvent, Shared};
use crate::config::{EndpointSource, ProviderConfig};
use crate::protocol::{ProviderStatus, TokenAnswer};
use crate::provider::{Expiry, Provider, TokenGrant};
use crate::secret::Secret;
use crate::store::{STORED_SESSION_VERSION, StoredSession};

/// The result every waiter of a refresh shares.
pub(crate) type RefreshResult = Option<Result<(), BrokerError>>;

/// An access token with what a caller needs to use it.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The token.
    pub secret: Secret,
    /// `Bearer`, usually.
    pub token_type: String,
    /// Expiry; `None` when the provider did not say.
    pub expires_at: Option<SystemTime>,
}

impl AccessToken {
    /// Whether the token has at least `min_valid` of life left at `now`.
    #[must_use]
    pub fn valid_for(&self, now: SystemTime, min_valid: Duration) -> bool {
        self.expires_at.is_none_or(|at| at >= now + min_valid)
    }

    /// The protocol answer carrying this token.
    #[must_use]
    pub fn to_answer(&self) -> TokenAnswer {
        TokenAnswer {
            access_token: self.secret.clone(),
            token_type: self.token_type.clone(),
            expires_at: self.expires_at.map(unix_secs),
        }
    }
}

/// The tokens of an established session.
#[derive(Debug, Clone)]
struct Tokens {
    access: Option<AccessToken>,
    refresh: Option<Secret>,
    scope: Option<String>,
    /// When the current refresh token was obtained.
    obtained_at: SystemTime,
}

impl Tokens {
    /// Tokens from a grant whose request was sent at `sent_at`. A refresh
    /// answer without a refresh token keeps the previous one (RFC 6749 §6).
    fn from_grant(grant: TokenGrant, sent_at: SystemTime, previous: Option<&Tokens>) -> Self {
        let expires_at = match grant.expiry {
            // Counted from when the request left, not when the answer came:
            // errs on the side of refreshing early.
            Expiry::In(lifetime) => Some(sent_at + lifetime),
            Expiry::At(at) => Some(at),
            Expiry::Unknown => None,
        };
        let rotated = grant.refresh_token.is_some();
        Self {
            access: Some(AccessToken {
                secret: grant.access_token,
                token_type: grant.token_type,
                expires_at,
            }),
            refresh: grant
                .refresh_token
                .or_else(|| previous.and_then(|p| p.refresh.clone())),
            scope: grant
                .scope
                .or_else(|| previous.and_then(|p| p.scope.clone())),
            obtained_at: match previous {
                Some(p) if !rotated => p.obtained_at,
                _ => sent_at,
            },
        }
    }

    fn to_record(&self, identity: &str) -> Option<StoredSession> {
        let refresh = self.refresh.clone()?;
        Some(StoredSession {
            version: STORED_SESSION_VERSION,
            identity: identity.to_owned(),
            refresh_token: refresh,
            obtained_at: unix_secs(self.obtained_at),
            scope: self.scope.clone(),
            access_token: self.access.as_ref().map(|a| a.secret.clone()),
            token_type: self.access.as_ref().map(|a| a.token_type.clone()),
            expires_at: self
                .access
                .as_ref()
                .and_then(|a| a.expires_at)
                .map(unix_secs),
        })
    }

    fn from_record(record: StoredSession) -> Self {
        let access = match (record.access_token, record.expires_at) {
            (Some(secret), Some(expires_at)) => Some(AccessToken {
                secret,
                token_type: record.token_type.unwrap_or_else(|| "Bearer".into()),
                expires_at: Some(from_unix_secs(expires_at)),
            }),
            // An access token of unknown expiry is not restored: it may have
            // died while the daemon was down, and a refresh tells.
            _ => None,
        };
        Self {
            access,
            refresh: Some(record.refresh_token),
            scope: record.scope,
            obtained_at: from_unix_secs(record.obtained_at),
        }
    }
}

/// Whether the session can produce tokens.
#[derive(Debug, Clone)]
enum Grant {
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
    grant: Grant,
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
    /// The store does not hold the current refresh token (a save failed).
    store_dirty: bool,
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
/// (or issuer) and client id. A stored session is restored only into a
/// provider with the same identity, so pointing a provider at another client
/// or server never hands it the old session's refresh token.
#[must_use]
pub fn session_identity(config: &ProviderConfig) -> String {
    let endpoint = match &config.endpoints {
        EndpointSource::Fixed { token, .. } => token.as_str(),
        EndpointSource::Discover { issuer } => issuer.as_str(),
    };
    format!("{}|{}|{}", config.dialect, endpoint, config.client_id)
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
                grant: Grant::LoggedOut,
                generation: 0,
                login: None,
                refresh: None,
                last_refresh: None,
                last_attempt: None,
                last_failure: None,
                failures: 0,
                next_refresh: None,
                store_dirty: false,
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

    /// A token with at least `min_valid` of life, refreshed first if needed.
    pub(crate) async fn token(
        self: &Arc<Self>,
        min_valid: Duration,
    ) -> Result<AccessToken, BrokerError> {
        let rx = match self.plan_token(min_valid) {
            TokenPlan::Ready(token) => return Ok(token),
            TokenPlan::Fail(e) => return Err(e),
            TokenPlan::Wait(rx) => rx,
        };
        wait_for_refresh(rx, &self.shared).await?;
        // One refresh per request at most: if the fresh token is still too
        // short-lived, a second refresh would not help.
        let state = self.state();
        match &state.grant {
            Grant::Active(Tokens {
                access: Some(token),
                ..
            }) => {
                if token.valid_for(self.now(), min_valid) {
                    Ok(token.clone())
                } else {
                    let left = token
                        .expires_at
                        .and_then(|at| at.duration_since(self.now()).ok())
                        .unwrap_or_default();
                    Err(BrokerError::TokenTooShort {
                        provider: self.name.clone(),
                        lifetime_secs: left.as_secs(),
                        min_valid_secs: min_valid.as_secs(),
                    })
                }
            }
            _ => Err(self.login_required(&state)),
        }
    }

    fn plan_token(self: &Arc<Self>, min_valid: Duration) -> TokenPlan {
        let mut state = self.state();
        let now = self.now();
        let Grant::Active(tokens) = &state.grant else {
            return TokenPlan::Fail(self.login_required(&state));
        };
        if let Some(token) = tokens
            .access
            .as_ref()
            .filter(|t| t.valid_for(now, min_valid))
        {
            return TokenPlan::Ready(token.clone());
        }
        if tokens.refresh.is_none() {
            return TokenPlan::Fail(BrokerError::LoginRequired {
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
            return TokenPlan::Fail(failure.clone());
        }
        TokenPlan::Wait(self.start_refresh(&mut state))
    }

    fn login_required(&self, state: &State) -> BrokerError {
        let reason = match (
            &state.grant,
            state.login.as_ref().and_then(LoginHandle::pending_code),
        ) {
            (_, Some(code)) => Some(format!("a login is pending: enter code {code}")),
            (Grant::NeedsLogin { reason }, None) => Some(reason.clone()),
            _ => None,
        };
        BrokerError::LoginRequired {
            provider: self.name.clone(),
            reason,
        }
    }

    // ----- status ------------------------------------------------------

    /// The session as `tokenctl status` shows it.
    pub(crate) fn status(&self) -> ProviderStatus {
        let state = self.state();
        let now = self.now();
        let pending = state.login.as_ref().and_then(|l| l.prompt_for_status(now));
        let (name, expires_at, scopes) = match &state.grant {
            Grant::LoggedOut => ("logged_out", None, self.config.scopes.clone()),
            Grant::NeedsLogin { .. } => ("login_required", None, self.config.scopes.clone()),
            Grant::Active(tokens) => {
                let valid = tokens
                    .access
                    .as_ref()
                    .is_some_and(|a| a.valid_for(now, Duration::ZERO));
                let state_name = if valid || (tokens.refresh.is_some() && state.failures == 0) {
                    "active"
                } else {
                    "expired"
                };
                let scopes = tokens.scope.as_deref().map_or_else(
                    || self.config.scopes.clone(),
                    |s| s.split_whitespace().map(str::to_owned).collect(),
                );
                (
                    state_name,
                    tokens.access.as_ref().and_then(|a| a.expires_at),
                    scopes,
                )
            }
        };
        ProviderStatus {
            name: self.name.clone(),
            dialect: self.config.dialect.name().to_owned(),
            state: if pending.is_some() {
                "login_pending"
            } else {
                name
            }
            .to_owned(),
            expires_at: expires_at.map(unix_secs),
            last_refresh: state.last_refresh.map(unix_secs),
            next_refresh: state.next_refresh.map(unix_secs),
            last_error: state.last_failure.as_ref().map(ToString::to_string),
            scopes,
            login: pending,
        }
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
