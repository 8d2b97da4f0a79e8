//! The session's device login (RFC 8628): asking for a code, showing it,
//! polling until the person approves, and installing the tokens.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::Session;
use crate::broker::error::BrokerError;
use crate::broker::events::BrokerEvent;
use crate::broker::login::{LoginCancel, LoginHandle, LoginProgress, LoginWatch, PendingPrompt};
use crate::provider::{FailureClass, ProviderError, TokenGrant};

impl Session {
    /// Joins the running login, or starts one.
    /// `Ok(None)` when a reload retired this session: its tokens would go to
    /// a session dropped once the reload is over (checked under the lock
    /// `retire` takes the login with, so none starts after it).
    ///
    /// # Errors
    /// [`BrokerError::LoginsTooFrequent`]: a new login would ask the
    /// provider for a code too soon after the last ones (see `login_pace`).
    /// [`BrokerError::ProviderUnavailable`]: the provider asked this
    /// client (`Retry-After`) not to ask for codes yet.
    pub(crate) fn join_or_start_login(self: &Arc<Self>) -> Result<Option<LoginWatch>, BrokerError> {
        let mut state = self.state();
        if state.machine.is_retired() {
            return Ok(None);
        }
        let clock = Arc::clone(&self.shared.clock);
        if let Some(login) = state.login.as_ref().filter(|l| !l.is_finished()) {
            return Ok(Some(login.watch(&self.name, clock)));
        }
        // A rate limit on codes (a 429 or 503 with `Retry-After` to this
        // client, another account's login maybe): not asked again before
        // it is over, and not counted as a start, as nothing was sent.
        if let Some(failure) = self
            .endpoint_limit
            .asked_to_wait_for_codes(clock.now(), &self.config().client_id)
        {
            debug!(provider = %self.name, "a new login not started: the provider asked to wait before the next request for a code");
            return Err(self.provider_failure(failure));
        }
        if let Err(wait) = state.login_starts.start(clock.since_boot()) {
            debug!(provider = %self.name, "a new login refused: {} started in the last minute", crate::broker::login_pace::MAX_STARTS);
            return Err(BrokerError::LoginsTooFrequent {
                provider: self.name.clone(),
                started: crate::broker::login_pace::MAX_STARTS,
                // Rounded up: "in 0 s" would be refused again.
                wait_secs: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
            });
        }
        let cancel = LoginCancel::new(self.shared.logins.child_token());
        let (login, tx) = LoginHandle::starting(cancel.clone());
        let watch = login.watch(&self.name, clock);
        state.login = Some(login);
        drop(state);
        // Pending from now (its code may take the provider up to
        // `http_timeout`): `PropertiesChanged` says so on D-Bus.
        self.shared.emit(BrokerEvent::StateChanged {
            provider: self.name.clone(),
        });
        let session = Arc::clone(self);
        self.shared.tasks.spawn(async move {
            session.run_login(tx, cancel).await;
        });
        Ok(Some(watch))
    }

    /// Installs the tokens of a successful device login, settled (see
    /// `run_login`): stored first.
    async fn accept_login(self: &Arc<Self>, grant: TokenGrant, sent_since_boot: Duration) {
        let mut grant = grant;
        if grant.scope.is_none() {
            // RFC 6749 §5.1: a grant without `scope` has the scope asked
            // for (none, when none was). Kept as the tokens' own, so that a
            // reload that changes the config's `scopes` does not make
            // `status` show scopes these tokens never had.
            grant.scope = Some(self.config().scopes.join(" "));
        }
        let _persist = self.persist.lock().await;
        // Dated on the clock as it is set now; a step taken in after this
        // moves the tokens when they are installed (`machine::clock_step`).
        let sent_at = self.shared.clock.wall_at(sent_since_boot);
        self.dispatch(super::machine::Event::LoginGranted { grant, sent_at })
            .await;
    }

    async fn run_login(
        self: Arc<Self>,
        progress: watch::Sender<LoginProgress>,
        cancel: LoginCancel,
    ) {
        // Only the wait for the person is cut short (see `device_login`):
        // tokens that have arrived are installed and saved whatever happens
        // meanwhile (a logout then runs after the save; shutdown waits for
        // it).
        let granted = self.device_login(&progress, &cancel).await;
        // A cancel between the provider's answer and here wins: the person
        // was told the login is cancelled, and the session stays as it was.
        // Settled, the tokens are installed whatever comes: a logout that
        // finds the login settled waits for its end (`Session::logout`).
        let granted = match granted {
            Ok(_) if !cancel.settle() => Err(self.login_cancelled(&cancel)),
            other => other,
        };
        let result = match granted {
            Ok((grant, sent_since_boot)) => {
                // No code to enter any more: status says the tokens are
                // being saved, and token requests wait for them.
                progress.send_replace(LoginProgress::Approved);
                debug!(provider = %self.name, event = "login_approved", "the login was approved: its tokens are being saved");
                self.accept_login(grant, sent_since_boot).await;
                Ok(())
            }
            Err(e) => Err(e),
        };
        match &result {
            Ok(()) => {
                info!(provider = %self.name, event = "login_finished", "device login finished: its tokens are in place");
            }
            Err(e) => {
                warn!(provider = %self.name, event = "login_failed", "{e}");
                // `tokenctl status` says how a login nobody waited for
                // ended; not one a logout or a new login cancelled, nor
                // one cut short by the daemon's stop.
                if cancel.reason().is_none() && !self.shared.logins.is_cancelled() {
                    self.dispatch_now(super::machine::Event::LoginFailed(e.clone()));
                }
            }
        }
        let outcome = result.as_ref().err().map(BrokerError::kind);
        self.shared.metrics.login_finished(&self.name, outcome);
        self.shared.emit(BrokerEvent::LoginFinished {
            provider: self.name.clone(),
            ok: result.is_ok(),
            message: result
                .as_ref()
                .err()
                .map_or_else(|| "logged in".to_owned(), ToString::to_string),
            policy: self.policy(),
        });
        progress.send_replace(LoginProgress::Finished(result));
        self.shared.emit(BrokerEvent::StateChanged {
            provider: self.name.clone(),
        });
    }

    pub(super) fn login_failed(&self, reason: impl Into<String>) -> BrokerError {
        BrokerError::LoginFailed {
            provider: self.name.clone(),
            reason: reason.into(),
        }
    }

    pub(super) fn provider_failure(&self, failure: ProviderError) -> BrokerError {
        match failure.class() {
            FailureClass::Transient => BrokerError::ProviderUnavailable {
                provider: self.name.clone(),
                source: failure,
            },
            _ => BrokerError::ProviderRejected {
                provider: self.name.clone(),
                source: failure,
            },
        }
    }

    /// Why `cancel` stopped the login: the daemon's stop, or a cancel.
    pub(super) fn stopped_by(&self, cancel: &LoginCancel) -> BrokerError {
        if self.shared.logins.is_cancelled() {
            BrokerError::ShuttingDown
        } else {
            self.login_cancelled(cancel)
        }
    }

    /// What a login `cancel` stopped (a logout, a reload, `--cancel`)
    /// ends with.
    fn login_cancelled(&self, cancel: &LoginCancel) -> BrokerError {
        self.login_failed(format!(
            "was cancelled ({})",
            cancel.reason().unwrap_or("logout")
        ))
    }

    /// Asks for a code, shows it and polls until the person approves
    /// (see `login_poll`): the grant, and when its request was sent (time
    /// since boot). `cancel` cuts short the request
    /// for a code and each wait between polls; a poll under way at once
    /// only when the login is withdrawn (a logout, a reload): at the
    /// daemon's stop its answer is waited for a few seconds
    /// ([`LoginCancel::poll_cut`]), since it may carry the tokens the
    /// person approved (the code spent on them).
    async fn device_login(
        self: &Arc<Self>,
        progress: &watch::Sender<LoginProgress>,
        cancel: &LoginCancel,
    ) -> Result<(TokenGrant, Duration), BrokerError> {
        // A login started as logins end must not reach the provider.
        if cancel.is_cancelled() {
            return Err(self.stopped_by(cancel));
        }
        let clock = Arc::clone(&self.shared.clock);
        let asked = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(self.stopped_by(cancel)),
            asked = self.provider.start_device_authorization() => asked,
        };
        if let Err(failure) = &asked {
            self.endpoint_limit
                .note_code_failure(clock.now(), &self.config().client_id, failure);
        }
        let authorization = asked.map_err(|e| match &e {
            // The endpoint in the config is wrong: no retry mends that
            // (a redirected poll ends the login the same way).
            ProviderError::Malformed { problem, .. }
                if problem.starts_with(crate::provider::oauth::UNEXPECTED_REDIRECT) =>
            {
                self.login_failed(format!("failed: {e}"))
            }
            // A discovery document refused or unusable (a typo in the
            // issuer: 404) is the config's to mend, as the endpoint's
            // own refusal is, not "unavailable for now": a script
            // retrying it would retry for ever. (At a refresh it
            // stays a passing failure: the session is kept.)
            ProviderError::Discovery { .. } => BrokerError::ProviderRejected {
                provider: self.name.clone(),
                source: e,
            },
            _ => self.provider_failure(e),
        })?;
        // Kept on the clock that ignores the wall clock being set (see
        // `Clock::since_boot`): a kiosk without a battery-backed clock
        // whose time NTP steps forward mid-login must not end a code the
        // provider still honours, nor tell a late joiner it is dead.
        let dies_at = clock.since_boot() + authorization.expires_in;
        let (verification_uri, verification_uri_complete) = self.shown_urls(&authorization)?;
        // The provider's message quotes its pages: where one was refused,
        // showing the message would bring it back beside the one shown.
        let refused_a_page = authorization
            .verification_uri
            .as_ref()
            .is_some_and(|sent| *sent != verification_uri)
            || (authorization.verification_uri_complete.is_some()
                && verification_uri_complete.is_none());
        let prompt = PendingPrompt {
            user_code: authorization.user_code.clone(),
            verification_uri,
            verification_uri_complete,
            message: authorization.message.clone().filter(|_| !refused_a_page),
            dies_at,
            poll_trouble: None,
        };
        info!(provider = %self.name, event = "login_started", expires_in = authorization.expires_in.as_secs(), "device login waiting for approval");
        self.shared.emit(BrokerEvent::LoginPrompt {
            provider: self.name.clone(),
            prompt: prompt.to_prompt(clock.since_boot()),
        });
        progress.send_replace(LoginProgress::Prompt(prompt));
        self.shared.emit(BrokerEvent::StateChanged {
            provider: self.name.clone(),
        });

        self.poll_until_decided(
            &authorization.device_code,
            authorization.interval,
            dies_at,
            cancel,
            progress,
        )
        .await
    }
}
