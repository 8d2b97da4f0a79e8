//! One provider's session: the driver of its state machine.
//!
//! Every rule of the session (single flight, generations, store first,
//! backoff, restore) is in [`machine`], a pure state machine: events in,
//! effects out. This module and its siblings carry the effects out: the
//! HTTP refresh (`refresh`), the store (`store`, `restore`), the
//! scheduler's wake-ups and the events to subscribers (`effects`), the
//! device login (`device_login`); and feed their outcomes back in.
//!
//! The machine sits behind a std mutex whose critical sections never
//! await. Work that does (HTTP, the store) runs outside it. A refresh runs
//! in its own task, so a caller that gives up cannot cancel it halfway
//! (after the provider rotated the refresh token but before the new one
//! was saved, which would lose the session); its result is published on a
//! `watch` channel that every waiting caller shares. Store writes, and the
//! machine events that lead to and follow them, are serialised by
//! [`Session::persist`] so that store and memory agree on which refresh
//! token is current. The window in which a crash can lose the session
//! (request sent, answer not yet stored) is logged at debug level
//! (`refresh_sent`, `refresh_answered`, `refresh_saved`).

mod device_login;
mod effects;
mod failure_lines;
mod login_outcome;
mod login_poll;
mod login_prompt;
mod login_refresh;
mod machine;
mod refresh;
mod reload;
mod restore;
mod status;
mod store;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use tokio::sync::watch;

use super::endpoint_limit::EndpointLimit;
use super::error::BrokerError;
use super::login::LoginHandle;
use super::policy::AccessPolicy;
use super::shared::Shared;
use super::timing;
use crate::config::{EndpointSource, ProviderConfig};
use crate::provider::Provider;
pub use machine::{AccessToken, Freshness, TokenFingerprint, WorldChange};
use machine::{Context, Event, Reply, SessionMachine};
pub(crate) use machine::{LoadResult, RestoreCause};
pub(crate) use reload::Retirement;
pub(crate) use store::{blocking, counted, did_not_complete};

/// What a logout found to forget.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogoutOutcome {
    /// Whether the session had tokens (or a record the store may still
    /// hold): false for a provider never logged in, or logged out already.
    pub had_tokens: bool,
    /// Whether a device login that waited for the person was cancelled.
    pub cancelled_login: bool,
}

impl LogoutOutcome {
    /// Both logouts' findings, when a reload's successor was logged out
    /// too.
    #[must_use]
    pub fn and(self, other: Self) -> Self {
        Self {
            had_tokens: self.had_tokens || other.had_tokens,
            cancelled_login: self.cancelled_login || other.cancelled_login,
        }
    }
}

/// The result every waiter of a refresh shares.
pub(crate) type RefreshResult = Option<Result<(), BrokerError>>;

/// What changes, behind [`Session::state`]: the machine, and the handles
/// on the work it started that only the driver can hold.
#[derive(Debug)]
pub(crate) struct State {
    machine: SessionMachine,
    /// The device login in progress (or just finished).
    pub(crate) login: Option<LoginHandle>,
    /// When the last logins started, to pace new ones.
    login_starts: crate::broker::login_pace::LoginStarts,
    /// The last refresh started, shared by every caller waiting for it.
    flight: Option<watch::Receiver<RefreshResult>>,
}

/// A session's config and access policy: replaced together when a reload
/// changes only keys the session does not depend on
/// ([`ProviderConfig::same_session_keys`]).
#[derive(Debug)]
struct Table {
    config: Arc<ProviderConfig>,
    policy: Arc<AccessPolicy>,
}

/// One configured provider and its session.
#[derive(Debug)]
pub struct Session {
    /// Provider name.
    pub(crate) name: String,
    /// Its config and the access policy built from it ([`Self::config`]).
    table: RwLock<Table>,
    pub(crate) provider: Provider,
    /// Which client and endpoint the session belongs to (see [`session_identity`]).
    identity: String,
    /// Bounds concurrent refreshes against this provider's token endpoint,
    /// and holds them, the polls of its logins and their requests for a
    /// code while the provider asked to be left alone.
    endpoint_limit: Arc<EndpointLimit>,
    pub(crate) shared: Arc<Shared>,
    state: Mutex<State>,
    /// Serialises store writes with the machine events that go with them.
    /// Held across the (blocking, off-thread) store call, hence tokio's mutex.
    persist: tokio::sync::Mutex<()>,
    /// Cancelled when a reload retires the session: a refresh still
    /// waiting for its endpoint's permit gives up rather than hold the
    /// reload (see [`Self::retire`]).
    retiring: tokio_util::sync::CancellationToken,
}

/// What identifies the issuer of a session's tokens: dialect, token endpoint
/// (or issuer), refresh endpoint (when one is set) and client id. A stored
/// session is restored only into a provider with the same identity, and a
/// reload hands the tokens over only then, so pointing a provider at another
/// client or server never sends the old session's refresh token there. A
/// session without a `refresh_endpoint` keeps the identity it had before
/// that key counted, so no stored session is lost to the change. An
/// issuer counts without a trailing `/` (its discovery document is the
/// same either way: adding one logged the session out).
#[must_use]
pub fn session_identity(config: &ProviderConfig) -> String {
    let (endpoint, refresh) = match &config.endpoints {
        EndpointSource::Fixed { token, refresh, .. } => (token.as_str(), refresh.as_ref()),
        EndpointSource::Discover { issuer } => (issuer.as_str().trim_end_matches('/'), None),
    };
    let mut identity = format!("{}|{}|{}", config.dialect, endpoint, config.client_id);
    if let Some(refresh) = refresh {
        identity.push_str("|refresh=");
        identity.push_str(refresh.as_str());
    }
    identity
}

/// The identity a session of `config` had before the refresh endpoint
/// counted (2026-12-02), when that endpoint is the one the dialect finds
/// beside the token endpoint rather than one the config names: records
/// written then, by Trakt sessions, are still this provider's and are
/// restored (and saved again under [`session_identity`]). For an issuer,
/// the identity with its trailing `/` (2026-12-07: an issuer without a
/// path, or written with one, counted with it). `None` for every other
/// provider, whose identity did not change.
#[must_use]
pub fn older_session_identity(config: &ProviderConfig) -> Option<String> {
    if let EndpointSource::Discover { issuer } = &config.endpoints {
        return Some(format!(
            "{}|{}/|{}",
            config.dialect,
            issuer.as_str().trim_end_matches('/'),
            config.client_id
        ));
    }
    let EndpointSource::Fixed {
        token,
        refresh: Some(refresh),
        ..
    } = &config.endpoints
    else {
        return None;
    };
    let paths = config.dialect.fixed_paths.as_ref()?;
    (crate::config::derived_refresh_endpoint(token, paths).as_ref() == Some(refresh))
        .then(|| format!("{}|{}|{}", config.dialect, token, config.client_id))
}

impl Session {
    pub(crate) fn new(
        config: ProviderConfig,
        provider: Provider,
        endpoint_limit: Arc<EndpointLimit>,
        shared: Arc<Shared>,
    ) -> Self {
        let identity = session_identity(&config);
        let machine = SessionMachine::new(
            config.name.clone(),
            identity.clone(),
            shared.refresh_token_warning,
        )
        .with_older_identity(older_session_identity(&config));
        Self {
            name: config.name.clone(),
            identity,
            table: RwLock::new(Table {
                policy: Arc::new(AccessPolicy::new(shared.owner_uid, &config)),
                config: Arc::new(config),
            }),
            provider,
            endpoint_limit,
            shared,
            state: Mutex::new(State {
                machine,
                login: None,
                login_starts: crate::broker::login_pace::LoginStarts::default(),
                flight: None,
            }),
            persist: tokio::sync::Mutex::new(()),
            retiring: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// The provider's table as last applied. The keys that shape the
    /// session's requests are those it was built with; a reload that
    /// changes one of them builds a new session instead.
    pub(crate) fn config(&self) -> Arc<ProviderConfig> {
        Arc::clone(&self.table().config)
    }

    /// Who may use and manage the provider.
    pub(crate) fn policy(&self) -> Arc<AccessPolicy> {
        Arc::clone(&self.table().policy)
    }

    fn table(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        // Written only by a whole assignment: a poisoned lock is consistent.
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // The machine changes only inside `handle`, which does not panic
        // halfway through a change; a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The facts of the moment, for the machine.
    fn context(&self, state: &State) -> Context {
        Context {
            now: self.shared.clock.now(),
            jitter: fastrand::f64(),
            store_available: self.shared.store_health.is_available(),
            login_code: state.login.as_ref().and_then(LoginHandle::pending_code),
        }
    }

    // ----- token -------------------------------------------------------

    /// A token as fresh as `want` asks, refreshed first if needed.
    pub(crate) async fn token(
        self: &Arc<Self>,
        want: Freshness,
    ) -> Result<AccessToken, BrokerError> {
        let answer = self.token_once(want).await;
        // (A store error too: a login over a record that could not be
        // read is answered so until its tokens are installed.)
        if !matches!(
            answer,
            Err(BrokerError::LoginRequired { .. } | BrokerError::Store { .. })
        ) {
            return answer;
        }
        // An approved login whose tokens are being saved: they are this
        // request's answer (waited for as long as the store takes). Looked
        // at only here, off the path of a session that has tokens.
        let installing = self
            .state()
            .login
            .as_ref()
            .and_then(LoginHandle::installing_tokens);
        let Some(mut progress) = installing else {
            return answer;
        };
        let _ = progress
            .wait_for(|p| matches!(p, crate::broker::login::LoginProgress::Finished(_)))
            .await;
        self.token_once(want).await
    }

    /// One try of [`Self::token`].
    async fn token_once(self: &Arc<Self>, want: Freshness) -> Result<AccessToken, BrokerError> {
        // A store that was locked or missing may work now: try it (spaced)
        // before telling the caller there is no session.
        self.restore_on_demand().await;
        let reply = match self.request_token(want) {
            (Some(Reply::JoinRefresh), flight) => {
                // The refresh runs in its own task: a caller that gives up
                // here leaves it to finish and save what it gets.
                let outcome = match flight {
                    Some(rx) if want == Freshness::Default => {
                        match self.wait_or_keep_token(rx).await {
                            Ok(token) => return Ok(token),
                            Err(outcome) => outcome,
                        }
                    }
                    Some(rx) => wait_for_refresh(rx, &self.shared).await,
                    None => Ok(()),
                };
                self.dispatch_now(Event::RefreshAwaited { want, outcome })
            }
            (other, _) => other,
        };
        match reply {
            Some(Reply::Token(token)) => Ok(token),
            Some(Reply::WaitingForStore) => Err(self.waiting_error()),
            Some(Reply::Failed(e) | Reply::Done(Err(e))) => Err(e),
            _ => Err(BrokerError::login_required(&self.name, None)),
        }
    }

    /// A default request's wait for a refresh: up to
    /// [`timing::DEFAULT_REQUEST_REFRESH_WAIT`], then the token the session
    /// holds if it is still valid (`Ok`: a provider that is slow to answer
    /// does not hold up a caller that has a token that works); otherwise
    /// the refresh's outcome, however long it takes (`Err`, to be answered
    /// as any refresh's).
    async fn wait_or_keep_token(
        self: &Arc<Self>,
        rx: watch::Receiver<RefreshResult>,
    ) -> Result<AccessToken, Result<(), BrokerError>> {
        let bounded = tokio::time::timeout(
            timing::DEFAULT_REQUEST_REFRESH_WAIT,
            wait_for_refresh(rx.clone(), &self.shared),
        );
        if let Ok(outcome) = bounded.await {
            return Err(outcome);
        }
        // Asked as if the refresh had ended: a default request takes a
        // token that is still valid, and only that.
        let still = self.dispatch_now(Event::RefreshAwaited {
            want: Freshness::Default,
            outcome: Ok(()),
        });
        match still {
            Some(Reply::Token(token)) => Ok(token),
            _ => Err(wait_for_refresh(rx, &self.shared).await),
        }
    }

    // ----- login and logout ----------------------------------------------

    /// Cancels the login that waits for the person, if one does; the
    /// session is left as it is. Returns whether one was cancelled: not
    /// one whose tokens have arrived (they are being installed).
    pub(crate) fn cancel_login(&self) -> bool {
        let mut state = self.state();
        let Some(login) = state.login.as_ref().filter(|login| !login.is_finished()) else {
            return false;
        };
        if !login.cancel("asked to cancel it") {
            return false;
        }
        state.login = None;
        true
    }

    /// Forgets the session: memory first, then the store. Says what there
    /// was to forget, so that the person is not told tokens are gone when
    /// there were none.
    pub(crate) async fn logout(self: &Arc<Self>) -> Result<LogoutOutcome, BrokerError> {
        let login = self.state().login.take();
        let mut cancelled_login = false;
        if let Some(login) = login.filter(|login| !login.is_finished()) {
            // One whose tokens arrived is not cancelled: installed first,
            // then logged out.
            cancelled_login = login.cancel_or_await_install("logout").await;
        }
        let _persist = self.persist.lock().await;
        let had_tokens = self.state().machine.holds_tokens();
        let outcome = LogoutOutcome {
            had_tokens,
            cancelled_login,
        };
        match self.dispatch(Event::LogoutRequested).await {
            Some(Reply::Done(result)) => result.map(|()| outcome),
            _ => Ok(outcome),
        }
    }
}

/// Waits for the end of the refresh task behind `rx`: its last outcome,
/// not the one its callers are told while its late answer is listened for
/// (see `session::refresh`); or for a stop.
async fn wait_for_refresh_end(mut rx: watch::Receiver<RefreshResult>, shared: &Shared) {
    loop {
        tokio::select! {
            // An error: the task is over (its sender dropped).
            changed = rx.changed() => if changed.is_err() { return },
            () = shared.shutdown.cancelled() => return,
        }
    }
}

/// Waits for a refresh's shared result (or the word said while its late
/// answer is listened for), or for a stop.
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

#[cfg(test)]
mod tests;
