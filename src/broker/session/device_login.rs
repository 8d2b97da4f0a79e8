//! The session's device login (RFC 8628): asking for a code, showing it,
//! polling until the person approves, and installing the tokens.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::Session;
use super::login_outcome::{LostAnswer, code_died, decided_against, refused};
use crate::broker::WorldChange;
use crate::broker::error::BrokerError;
use crate::broker::events::BrokerEvent;
use crate::broker::login::{
    DEFAULT_POLL_INTERVAL, LAST_POLL_MARGIN, LoginCancel, LoginHandle, LoginProgress, LoginWatch,
    MAX_POLL_BACKOFF, POLL_PAST_EXPIRY, PendingPrompt, SLOW_DOWN_STEP,
};
use crate::provider::{FailureClass, PollOutcome, ProviderError, TokenGrant};
use crate::secret::Secret;

impl Session {
    /// Joins the running login, or starts one.
    /// `Ok(None)` when a reload retired this session: its tokens would go to
    /// a session dropped once the reload is over (checked under the lock
    /// `retire` takes the login with, so none starts after it).
    ///
    /// # Errors
    /// [`BrokerError::LoginsTooFrequent`]: a new login would ask the
    /// provider for a code too soon after the last ones (see `login_pace`).
    pub(crate) fn join_or_start_login(self: &Arc<Self>) -> Result<Option<LoginWatch>, BrokerError> {
        let mut state = self.state();
        if state.machine.is_retired() {
            return Ok(None);
        }
        let clock = Arc::clone(&self.shared.clock);
        if let Some(login) = state.login.as_ref().filter(|l| !l.is_finished()) {
            return Ok(Some(login.watch(&self.name, clock)));
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

    /// Installs the tokens of a successful device login, stored first,
    /// unless `cancel` (a logout, a reload) came before they were settled.
    ///
    /// # Errors
    /// The login was cancelled before its tokens were settled.
    async fn accept_login(
        self: &Arc<Self>,
        grant: TokenGrant,
        sent_since_boot: Duration,
        cancel: &LoginCancel,
        progress: &watch::Sender<LoginProgress>,
    ) -> Result<(), BrokerError> {
        let mut grant = grant;
        if grant.scope.is_none() {
            // RFC 6749 §5.1: a grant without `scope` has the scope asked
            // for (none, when none was). Kept as the tokens' own, so that a
            // reload that changes the config's `scopes` does not make
            // `status` show scopes these tokens never had.
            grant.scope = Some(self.config().scopes.join(" "));
        }
        // Settled under the persist lock: a logout that cancels the login
        // first wins (the person was told it is cancelled, and the session
        // stays as it was); one that comes after finds it settled and waits
        // for this lock, so it runs after the install. Settled before the
        // lock, a logout could take the lock in between, and the install
        // then undid the logout the person was told was done.
        let _persist = self.persist.lock().await;
        if !cancel.settle() {
            return Err(self.login_failed(format!(
                "was cancelled ({})",
                cancel.reason().unwrap_or("logout")
            )));
        }
        // No code to enter any more: status says the tokens are being
        // saved, and token requests wait for them.
        progress.send_replace(LoginProgress::Approved);
        // Dated on the clock as it is set now, under the persist lock: a
        // clock set from here on is taken in after the install (see
        // `clock_stepped`), one set before it is in this date.
        let sent_at = self.shared.clock.wall_at(sent_since_boot);
        self.dispatch(super::machine::Event::LoginGranted { grant, sent_at })
            .await;
        Ok(())
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
        let result = match granted {
            Ok((grant, sent_since_boot)) => {
                self.accept_login(grant, sent_since_boot, &cancel, &progress)
                    .await
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

    /// One poll, sent with `left` of the code's life, waited for at most
    /// [`POLL_PAST_EXPIRY`] past the code's death: a provider that does not answer must not
    /// hold the login's end for `http_timeout` (which may be minutes), as
    /// `tokenctl login` waits only a minute past the expiry for it.
    async fn poll_before(&self, device_code: &Secret, left: Duration) -> PollOutcome {
        let within = left + POLL_PAST_EXPIRY;
        tokio::time::timeout(within, self.provider.poll(device_code))
            .await
            .unwrap_or_else(|_| PollOutcome::Expired {
                message: format!(
                    "the last poll had no answer {} s after the code expired",
                    POLL_PAST_EXPIRY.as_secs()
                ),
            })
    }

    pub(super) fn login_failed(&self, reason: impl Into<String>) -> BrokerError {
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

    /// Asks for a code, shows it and polls until the person approves:
    /// the grant, and when its request was sent.
    /// Why `cancel` stopped the login: the daemon's stop, or a cancel.
    fn stopped_by(&self, cancel: &LoginCancel) -> BrokerError {
        if self.shared.logins.is_cancelled() {
            BrokerError::ShuttingDown
        } else {
            self.login_failed(format!(
                "was cancelled ({})",
                cancel.reason().unwrap_or("logout")
            ))
        }
    }

    /// The device login up to its tokens. `cancel` cuts short the request
    /// for a code and each wait between polls; a poll under way only when
    /// the login is withdrawn (a logout, a reload): at the daemon's stop
    /// its answer is waited for, within the stop's grace, since it may
    /// carry the tokens the person approved (the code spent on them).
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

    /// Polls the token endpoint until the person decides or the code dies
    /// (RFC 8628 §3.4, §3.5): the grant, and when its request was sent.
    async fn poll_until_decided(
        &self,
        device_code: &Secret,
        first_interval: Option<Duration>,
        dies_at: Duration,
        cancel: &LoginCancel,
        progress: &watch::Sender<LoginProgress>,
    ) -> Result<(TokenGrant, Duration), BrokerError> {
        let clock = Arc::clone(&self.shared.clock);
        let mut interval = first_interval.unwrap_or(DEFAULT_POLL_INTERVAL);
        let mut network_failures = 0u32;
        // Why the last poll failed, if it did: a code that dies while the
        // provider's answers cannot be read did not simply go unapproved.
        let mut last_failure: Option<String> = None;
        // A poll answer that may have carried the tokens and was lost (see
        // `login_outcome`): however the login ends after it, it is named.
        let mut lost: Option<LostAnswer> = None;
        // The wait a failed poll's `Retry-After` asked for, for the next one.
        let mut asked_wait: Option<Duration> = None;
        let mut world = self.shared.world_changes.subscribe();
        // Whether the last poll failed to reach the provider (or met a
        // captive portal's page): a network change may have ended that.
        let mut unreachable = false;
        loop {
            let left = dies_at.saturating_sub(clock.since_boot());
            let asked = asked_wait.take().unwrap_or_default();
            // No poll may happen before the wait is up; when that is after
            // the code's death, nothing is left to do but wait it out.
            let wait = next_poll_wait(interval, network_failures, asked, left);
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(self.stopped_by(cancel)),
                () = wait_before_poll(
                    &mut world,
                    wait.min(left),
                    interval.max(asked),
                    network_failures > 0,
                    unreachable,
                ) => {}
            }
            let left = dies_at.saturating_sub(clock.since_boot());
            if left.is_zero() {
                return Err(self.login_failed(code_died(last_failure.as_deref(), lost.as_ref())));
            }
            let sent_since_boot = clock.since_boot();
            let outcome = tokio::select! {
                biased;
                () = cancel.withdrawn() => return Err(self.stopped_by(cancel)),
                outcome = self.poll_before(device_code, left) => outcome,
            };
            match outcome {
                PollOutcome::Pending => {
                    network_failures = 0;
                    last_failure = None;
                    lost = None;
                }
                PollOutcome::PendingUnclear(answer) => {
                    // Polled on at the interval, as pending; said as the
                    // trouble of the polls, and named if the code expires.
                    network_failures = 0;
                    lost = None;
                    last_failure = Some(answer.to_string());
                }
                PollOutcome::SlowDown {
                    interval: asked,
                    retry_after,
                } => {
                    network_failures = 0;
                    last_failure = None;
                    lost = None;
                    // RFC 8628 adds 5 s; GitHub sends the new interval. Take
                    // whichever is slower, so neither reading is violated.
                    interval = (interval + SLOW_DOWN_STEP).max(asked.unwrap_or_default());
                    // A rate limiter's `Retry-After` holds the next poll
                    // back that long, once (as after a failed poll).
                    asked_wait = retry_after;
                    info!(provider = %self.name, event = "slow_down", interval = interval.as_secs(), "provider asked to poll slower");
                }
                // Dated on the wall clock when installed (`accept_login`).
                PollOutcome::Granted(grant) => return Ok((grant, sent_since_boot)),
                outcome @ (PollOutcome::Denied { .. } | PollOutcome::Expired { .. }) => {
                    return Err(self.login_failed(decided_against(outcome, lost.as_ref())));
                }
                PollOutcome::Misdirected(failure) => {
                    return Err(self.login_failed(format!("failed: {failure}")));
                }
                // A usable refresh token came: it finishes the login.
                PollOutcome::GrantUnusable(failure) if failure.kept_refresh_token().is_some() => {
                    return self.finish_login_by_refresh(failure).await;
                }
                PollOutcome::GrantUnusable(failure) => {
                    network_failures += 1;
                    unreachable = false;
                    warn!(provider = %self.name, event = "poll_failed", "polling failed, will retry: a success answer cannot be used: {failure}");
                    lost = Some(LostAnswer::Unusable(failure.to_string()));
                    last_failure = Some(failure.to_string());
                }
                PollOutcome::Failed(failure) if failure.class() == FailureClass::Transient => {
                    network_failures += 1;
                    unreachable = matches!(
                        failure,
                        ProviderError::Unreachable { .. }
                            | ProviderError::Unanswered { .. }
                            | ProviderError::CutOff { .. }
                            | ProviderError::Malformed { .. }
                    );
                    asked_wait = failure.retry_after();
                    if failure.is_unanswered() {
                        lost = Some(LostAnswer::Unanswered(failure.to_string()));
                    }
                    warn!(provider = %self.name, event = "poll_failed", "polling failed, will retry: {failure}");
                    last_failure = Some(failure.to_string());
                }
                PollOutcome::Failed(failure) => {
                    return Err(self.login_failed(refused(&failure, lost.as_ref())));
                }
            }
            if publish_poll_trouble(progress, last_failure.as_ref()) {
                // `status` shows it (the last error of a pending login).
                self.shared.emit(BrokerEvent::StateChanged {
                    provider: self.name.clone(),
                });
            }
        }
    }
}

/// Waits `wait` before the next poll. While failed polls stretch it
/// (`failing`), a change of the world cuts it to `floor` (the interval,
/// and any wait the provider asked for): the machine resumed, or the
/// network changed after a poll that could not reach the provider
/// (`unreachable`; a provider that answered 5xx is not helped by it, and a
/// busy host announces links all the time). The person who approved is
/// not kept at the screen by a backoff of up to a minute. A change while
/// the polls are answered is no news to a later failure's wait.
async fn wait_before_poll(
    world: &mut watch::Receiver<Option<WorldChange>>,
    wait: Duration,
    floor: Duration,
    failing: bool,
    unreachable: bool,
) {
    let from = tokio::time::Instant::now();
    let floor = from + floor.min(wait);
    let mut until = from + wait;
    if !failing {
        world.borrow_and_update();
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(until) => return,
            Ok(()) = world.changed(), if failing && until > floor => {
                let change = *world.borrow_and_update();
                if change.is_some_and(|c| c == WorldChange::Resumed || unreachable) {
                    until = floor;
                }
            }
        }
    }
}

/// Shows on the prompt why polls fail (or that they answer again), for
/// the callers following the login; they are woken only by a change.
/// Whether it changed.
fn publish_poll_trouble(progress: &watch::Sender<LoginProgress>, trouble: Option<&String>) -> bool {
    progress.send_if_modified(|progress| match progress {
        LoginProgress::Prompt(prompt) if prompt.poll_trouble.as_ref() != trouble => {
            prompt.poll_trouble = trouble.cloned();
            true
        }
        _ => false,
    })
}

/// How long to wait before the next poll, `left` before the code expires:
/// the interval, stretched by network trouble (doubled per failed poll,
/// RFC 8628 §3.5, up to [`MAX_POLL_BACKOFF`]) but never below the interval
/// nor below what the provider `asked` (`Retry-After`). A stretched wait
/// that would outlast the code is cut short, so that one more poll goes
/// out [`LAST_POLL_MARGIN`] before it expires (the person may have
/// approved meanwhile), where the interval allows: also past what the
/// provider `asked`, as one poll cannot hurt a rate limit, and waiting a
/// `Retry-After` longer than the code's life sent none at all and called
/// an approved login "expired before it was approved".
fn next_poll_wait(
    interval: Duration,
    network_failures: u32,
    asked: Duration,
    left: Duration,
) -> Duration {
    let wait = (interval * 2u32.pow(network_failures.min(6)))
        .min(interval.max(MAX_POLL_BACKOFF))
        .max(asked);
    let last_chance = left.saturating_sub(LAST_POLL_MARGIN);
    if wait > last_chance && last_chance >= interval {
        last_chance
    } else {
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn waits_stretch_with_failures_and_never_skip_the_last_poll() {
        // The interval, then doubled per failure, up to the cap.
        assert_eq!(next_poll_wait(s(5), 0, s(0), s(600)), s(5));
        assert_eq!(next_poll_wait(s(5), 2, s(0), s(600)), s(20));
        assert_eq!(next_poll_wait(s(5), 9, s(0), s(600)), MAX_POLL_BACKOFF);
        // What the provider asked for, if longer.
        assert_eq!(next_poll_wait(s(5), 0, s(30), s(600)), s(30));
        // A stretched wait that would outlast the code: one more poll
        // before it expires...
        assert_eq!(next_poll_wait(s(1), 2, s(0), s(4)), s(2));
        // ... also past a wait the provider asked for that would outlast
        // the code (a `Retry-After` of two minutes, 37 s left)...
        assert_eq!(next_poll_wait(s(1), 0, s(10), s(8)), s(6));
        assert_eq!(next_poll_wait(s(1), 0, s(120), s(37)), s(35));
        // ... unless the interval does not allow one: the code is then
        // waited out.
        assert_eq!(next_poll_wait(s(5), 2, s(0), s(6)), s(20));
    }
}
