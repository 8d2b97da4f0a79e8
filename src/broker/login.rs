//! The device login (RFC 8628): one at a time per provider, joined by
//! every caller who asks while it runs.
//!
//! The login runs in its own task and publishes its progress on a `watch`
//! channel: `Starting`, then `Prompt` (the code to show), then `Finished`.
//! A caller that disconnects does not stop it; another caller can join it
//! and see the same prompt. Logout and shutdown cancel it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::BrokerEvent;
use super::clock::Clock;
use super::error::BrokerError;
use super::session::Session;
use crate::protocol::LoginPrompt;
use crate::provider::{FailureClass, PollOutcome, ProviderError, url_rule};

/// Poll interval when the provider does not give one (RFC 8628 §3.2).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// What `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// Cap on the extra wait after network failures while polling.
const MAX_POLL_BACKOFF: Duration = Duration::from_secs(60);

/// A prompt waiting for the person, with its absolute expiry.
#[derive(Debug, Clone)]
pub struct PendingPrompt {
    /// The code to enter.
    pub user_code: String,
    /// Where to enter it.
    pub verification_uri: String,
    /// A page that carries the code already.
    pub verification_uri_complete: Option<String>,
    /// The provider's instruction sentence, if any.
    pub message: Option<String>,
    /// When the code expires.
    pub expires_at: SystemTime,
}

impl PendingPrompt {
    /// The protocol form, with the time left as of `now`.
    #[must_use]
    pub fn to_prompt(&self, now: SystemTime) -> LoginPrompt {
        LoginPrompt {
            user_code: self.user_code.clone(),
            verification_uri: self.verification_uri.clone(),
            verification_uri_complete: self.verification_uri_complete.clone(),
            expires_in: self
                .expires_at
                .duration_since(now)
                .unwrap_or_default()
                .as_secs(),
            message: self.message.clone(),
        }
    }
}

/// Where a device login is.
#[derive(Debug, Clone)]
pub enum LoginProgress {
    /// Asking the provider for a device code.
    Starting,
    /// Waiting for the person.
    Prompt(PendingPrompt),
    /// Over: tokens obtained, or why not.
    Finished(Result<(), BrokerError>),
}

/// The session's handle on its current (or last) login.
#[derive(Debug)]
pub(crate) struct LoginHandle {
    progress: watch::Receiver<LoginProgress>,
    cancel: CancellationToken,
}

impl LoginHandle {
    fn is_finished(&self) -> bool {
        matches!(*self.progress.borrow(), LoginProgress::Finished(_))
    }

    /// The user code, while the login waits for the person.
    pub(crate) fn pending_code(&self) -> Option<String> {
        match &*self.progress.borrow() {
            LoginProgress::Prompt(p) => Some(p.user_code.clone()),
            _ => None,
        }
    }

    /// The prompt for `status`, while the login waits for the person.
    pub(crate) fn prompt_for_status(&self, now: SystemTime) -> Option<LoginPrompt> {
        match &*self.progress.borrow() {
            LoginProgress::Prompt(p) => Some(p.to_prompt(now)),
            _ => None,
        }
    }

    /// Stops the login.
    pub(crate) fn cancel(&self) {
        self.cancel.cancel();
    }
}

/// A caller's view of a login: wait for its prompt, then for its outcome.
#[derive(Debug)]
pub struct LoginWatch {
    provider: String,
    progress: watch::Receiver<LoginProgress>,
    clock: Arc<dyn Clock>,
}

impl LoginWatch {
    /// The provider logging in.
    #[must_use]
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Waits for the prompt to show the person.
    ///
    /// # Errors
    /// The login ended before a prompt existed (provider unreachable, bad
    /// client id, ...), or, when joining late, has already ended.
    pub async fn prompt(&mut self) -> Result<LoginPrompt, BrokerError> {
        let progress = self
            .progress
            .wait_for(|p| !matches!(p, LoginProgress::Starting))
            .await
            .map(|p| p.clone())
            .map_err(|_| BrokerError::ShuttingDown)?;
        match progress {
            LoginProgress::Prompt(p) => Ok(p.to_prompt(self.clock.now())),
            LoginProgress::Finished(Err(e)) => Err(e),
            LoginProgress::Finished(Ok(())) | LoginProgress::Starting => {
                Err(BrokerError::LoginFailed {
                    provider: self.provider.clone(),
                    reason: "finished before its prompt could be shown".into(),
                })
            }
        }
    }

    /// Waits for the login to end.
    ///
    /// # Errors
    /// Why the login did not produce tokens.
    pub async fn outcome(&mut self) -> Result<(), BrokerError> {
        let progress = self
            .progress
            .wait_for(|p| matches!(p, LoginProgress::Finished(_)))
            .await
            .map(|p| p.clone())
            .map_err(|_| BrokerError::ShuttingDown)?;
        match progress {
            LoginProgress::Finished(result) => result,
            _ => Err(BrokerError::ShuttingDown),
        }
    }
}

impl Session {
    /// Joins the running login, or starts one.
    pub(crate) fn join_or_start_login(self: &Arc<Self>) -> LoginWatch {
        let mut state = self.state();
        let progress = if let Some(login) = state.login.as_ref().filter(|l| !l.is_finished()) {
            login.progress.clone()
        } else {
            let (tx, rx) = watch::channel(LoginProgress::Starting);
            let cancel = self.shared.shutdown.child_token();
            state.login = Some(LoginHandle {
                progress: rx.clone(),
                cancel: cancel.clone(),
            });
            let session = Arc::clone(self);
            self.shared.tasks.spawn(async move {
                session.run_login(tx, cancel).await;
            });
            rx
        };
        LoginWatch {
            provider: self.name.clone(),
            progress,
            clock: Arc::clone(&self.shared.clock),
        }
    }

    async fn run_login(
        self: Arc<Self>,
        progress: watch::Sender<LoginProgress>,
        cancel: CancellationToken,
    ) {
        let result = tokio::select! {
            r = self.device_login(&progress) => r,
            () = cancel.cancelled() => Err(if self.shared.shutdown.is_cancelled() {
                BrokerError::ShuttingDown
            } else {
                self.login_failed("was cancelled (logout)")
            }),
        };
        match &result {
            Ok(()) => {
                info!(provider = %self.name, event = "login_finished", "device login succeeded");
            }
            Err(e) => warn!(provider = %self.name, event = "login_failed", "{e}"),
        }
        let outcome = result.as_ref().err().map(BrokerError::code);
        self.shared.metrics.login_finished(&self.name, outcome);
        self.shared.emit(BrokerEvent::LoginFinished {
            provider: self.name.clone(),
            ok: result.is_ok(),
            message: result
                .as_ref()
                .err()
                .map_or_else(|| "logged in".to_owned(), ToString::to_string),
        });
        progress.send_replace(LoginProgress::Finished(result));
        self.shared.emit(BrokerEvent::StateChanged {
            provider: self.name.clone(),
        });
    }

    fn login_failed(&self, reason: impl Into<String>) -> BrokerError {
        BrokerError::LoginFailed {
            provider: self.name.clone(),
            reason: reason.into(),
        }
    }

    fn provider_failure(&self, failure: ProviderError) -> BrokerError {
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

    async fn device_login(
        &self,
        progress: &watch::Sender<LoginProgress>,
    ) -> Result<(), BrokerError> {
        let clock = Arc::clone(&self.shared.clock);
        let authorization = self
            .provider
            .start_device_authorization()
            .await
            .map_err(|e| self.provider_failure(e))?;
        let deadline = clock.now() + authorization.expires_in;
        let verification_uri = authorization
            .verification_uri
            .clone()
            .or_else(|| self.config.verification_uri.as_ref().map(ToString::to_string))
            .ok_or_else(|| {
                self.login_failed(
                    "cannot be shown: the provider sent no verification URL; set `verification_uri` in the provider's config",
                )
            })?;
        // Shown to a person, signalled and drawn as a QR code: the provider's
        // URLs must pass the transport rule and hide nothing.
        for (field, url) in [
            ("verification_uri", Some(&verification_uri)),
            (
                "verification_uri_complete",
                authorization.verification_uri_complete.as_ref(),
            ),
        ] {
            if let Some(Err(problem)) = url.map(|u| url_rule::check_shown_url(u)) {
                return Err(
                    self.login_failed(format!("refused the provider's `{field}`: {problem}"))
                );
            }
        }
        let prompt = PendingPrompt {
            user_code: authorization.user_code.clone(),
            verification_uri,
            verification_uri_complete: authorization.verification_uri_complete.clone(),
            message: authorization.message.clone(),
            expires_at: deadline,
        };
        info!(provider = %self.name, event = "login_started", expires_in = authorization.expires_in.as_secs(), "device login waiting for approval");
        self.shared.emit(BrokerEvent::LoginPrompt {
            provider: self.name.clone(),
            prompt: prompt.to_prompt(clock.now()),
        });
        progress.send_replace(LoginProgress::Prompt(prompt));
        self.shared.emit(BrokerEvent::StateChanged {
            provider: self.name.clone(),
        });

        let mut interval = authorization.interval.unwrap_or(DEFAULT_POLL_INTERVAL);
        let mut network_failures = 0u32;
        loop {
            // Network trouble stretches the wait (RFC 8628 §3.5); it never
            // shrinks below the interval the provider asked for.
            let wait =
                (interval * 2u32.pow(network_failures.min(6))).min(interval.max(MAX_POLL_BACKOFF));
            let now = clock.now();
            if now + wait > deadline {
                // No poll may happen before the interval is up, and after it
                // the code is dead: nothing left to do but wait it out.
                tokio::time::sleep(deadline.duration_since(now).unwrap_or_default()).await;
                return Err(self.login_failed("expired before it was approved"));
            }
            tokio::time::sleep(wait).await;
            if clock.now() >= deadline {
                return Err(self.login_failed("expired before it was approved"));
            }
            let sent_at = clock.now();
            match self.provider.poll(&authorization.device_code).await {
                PollOutcome::Pending => network_failures = 0,
                PollOutcome::SlowDown { interval: asked } => {
                    network_failures = 0;
                    // RFC 8628 adds 5 s; GitHub sends the new interval. Take
                    // whichever is slower, so neither reading is violated.
                    interval = (interval + SLOW_DOWN_STEP).max(asked.unwrap_or_default());
                    info!(provider = %self.name, event = "slow_down", interval = interval.as_secs(), "provider asked to poll slower");
                }
                PollOutcome::Granted(grant) => {
                    self.accept_login(grant, sent_at).await;
                    return Ok(());
                }
                PollOutcome::Denied { message } => {
                    return Err(self.login_failed(format!("was denied ({message})")));
                }
                PollOutcome::Expired { message } => {
                    return Err(
                        self.login_failed(format!("expired before it was approved ({message})"))
                    );
                }
                PollOutcome::Failed(failure) if failure.class() == FailureClass::Transient => {
                    network_failures += 1;
                    warn!(provider = %self.name, event = "poll_failed", "polling failed, will retry: {failure}");
                }
                PollOutcome::Failed(failure) => {
                    return Err(self.login_failed(format!("failed: {failure}")));
                }
            }
        }
    }
}
