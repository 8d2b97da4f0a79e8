//! The polls of a device login (RFC 8628 §3.4, §3.5): how long to wait
//! between them, what each answer means for the login, and how a stop or
//! a cancel cuts them short.

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
    DEFAULT_POLL_INTERVAL, LAST_POLL_MARGIN, LoginCancel, LoginProgress, MAX_POLL_BACKOFF,
    POLL_AT_STOP, POLL_PAST_EXPIRY, SLOW_DOWN_STEP,
};
use crate::provider::{FailureClass, PollOutcome, ProviderError, TokenGrant};
use crate::secret::Secret;

impl Session {
    /// Polls the token endpoint until the person decides or the code dies
    /// (RFC 8628 §3.4, §3.5): the grant, and when its request was sent.
    pub(super) async fn poll_until_decided(
        &self,
        device_code: &Secret,
        first_interval: Option<Duration>,
        dies_at: Duration,
        cancel: &LoginCancel,
        progress: &watch::Sender<LoginProgress>,
    ) -> Result<(TokenGrant, Duration), BrokerError> {
        let clock = Arc::clone(&self.shared.clock);
        let mut pace = PollPace::new(first_interval.unwrap_or(DEFAULT_POLL_INTERVAL));
        // Why the last poll failed, if it did: a code that dies while the
        // provider's answers cannot be read did not simply go unapproved.
        let mut last_failure: Option<String> = None;
        // A poll answer that may have carried the tokens and was lost (see
        // `login_outcome`): however the login ends after it, it is named.
        let mut lost: Option<LostAnswer> = None;
        let mut world = self.shared.world_changes.subscribe();
        loop {
            let left = dies_at.saturating_sub(clock.since_boot());
            let asked = pace.asked_wait.take().unwrap_or_default();
            // No poll may happen before the wait is up; when that is after
            // the code's death, nothing is left to do but wait it out.
            let wait = next_poll_wait(pace.interval, pace.network_failures, asked, left);
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(self.stopped_by(cancel)),
                () = wait_before_poll(
                    &mut world,
                    wait.min(left),
                    pace.interval.max(asked),
                    pace.network_failures > 0,
                    pace.unreachable,
                ) => {}
            }
            let left = dies_at.saturating_sub(clock.since_boot());
            if left.is_zero() {
                return Err(self.login_failed(code_died(last_failure.as_deref(), lost.as_ref())));
            }
            // The provider asked this client to leave the token endpoint
            // alone (a refresh's or another login's `Retry-After`), since
            // this wait began maybe: not polled before it is over, but for
            // the last poll before the code dies.
            if let Some(held) = self
                .endpoint_limit
                .asked_to_wait(self.shared.clock.now(), &self.config().client_id)
                .filter(|_| left > LAST_POLL_MARGIN + HELD_POLL_SLACK)
            {
                debug!(provider = %self.name, "poll not sent: the token endpoint asked to wait");
                pace.asked_wait = held.retry_after();
                last_failure = Some(format!("not polled yet: {held}"));
                self.show_poll_trouble(progress, last_failure.as_ref());
                continue;
            }
            let sent_since_boot = clock.since_boot();
            match self.poll_unless_cut(device_code, left, cancel).await? {
                PollOutcome::Pending => {
                    pace.network_failures = 0;
                    last_failure = None;
                    lost = None;
                }
                PollOutcome::PendingUnclear(answer) => {
                    // Polled on at the interval, as pending; said as the
                    // trouble of the polls, and named if the code expires.
                    pace.network_failures = 0;
                    lost = None;
                    last_failure = Some(answer.to_string());
                }
                PollOutcome::SlowDown {
                    interval: asked,
                    retry_after,
                } => {
                    last_failure = None;
                    lost = None;
                    pace.slow_down(asked, retry_after);
                    info!(provider = %self.name, event = "slow_down", interval = pace.interval.as_secs(), "provider asked to poll slower");
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
                    pace.failed(None);
                    warn!(provider = %self.name, event = "poll_failed", "polling failed, will retry: a success answer cannot be used: {failure}");
                    lost = Some(LostAnswer::Unusable(failure.to_string()));
                    last_failure = Some(failure.to_string());
                }
                PollOutcome::Failed(failure) if failure.class() == FailureClass::Transient => {
                    // Its `Retry-After` holds the refreshes and the other
                    // logins of this client too.
                    self.endpoint_limit.note_failure(
                        self.shared.clock.now(),
                        &self.config().client_id,
                        &failure,
                    );
                    if failure.is_too_many_requests() {
                        // A bare 429 ("too many requests", no OAuth
                        // `slow_down` in its body) says what `slow_down`
                        // says: polled slower for good, not backed off
                        // and then at the old pace again, which met the
                        // limit again.
                        last_failure = None;
                        pace.slow_down(None, failure.retry_after());
                        info!(provider = %self.name, event = "slow_down", interval = pace.interval.as_secs(), "provider answered a poll 429 (too many requests): polling slower");
                    } else {
                        pace.failed(Some(&failure));
                        if failure.is_unanswered() {
                            lost = Some(LostAnswer::Unanswered(failure.to_string()));
                        }
                        warn!(provider = %self.name, event = "poll_failed", "polling failed, will retry: {failure}");
                        last_failure = Some(failure.to_string());
                    }
                }
                PollOutcome::Failed(failure) => {
                    return Err(self.login_failed(refused(&failure, lost.as_ref())));
                }
            }
            self.show_poll_trouble(progress, last_failure.as_ref());
        }
    }

    /// Shows on the prompt why polls fail (or that they are answered
    /// again), and in `status` (the last error of a pending login).
    fn show_poll_trouble(&self, progress: &watch::Sender<LoginProgress>, trouble: Option<&String>) {
        if publish_poll_trouble(progress, trouble) {
            self.shared.emit(BrokerEvent::StateChanged {
                provider: self.name.clone(),
            });
        }
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

    /// One poll ([`Self::poll_before`]), cut short as `cancel` says (see
    /// [`LoginCancel::poll_cut`]).
    async fn poll_unless_cut(
        &self,
        device_code: &Secret,
        left: Duration,
        cancel: &LoginCancel,
    ) -> Result<PollOutcome, BrokerError> {
        tokio::select! {
            biased;
            at_stop = cancel.poll_cut() => {
                if at_stop {
                    self.poll_cut_at_stop();
                }
                Err(self.stopped_by(cancel))
            }
            outcome = self.poll_before(device_code, left) => Ok(outcome),
        }
    }

    /// Says that the stop cut a login's poll short: its answer, which may
    /// have brought the tokens of a login the person approved, will not
    /// be read.
    fn poll_cut_at_stop(&self) {
        warn!(
            provider = %self.name,
            event = "unfinished_at_stop",
            "the provider had not answered a login's poll {} s after tokend began to stop: if the person had approved the code, the provider may have spent it on tokens no one will save; run `tokenctl login {}` again",
            POLL_AT_STOP.as_secs(),
            self.name
        );
    }
}

/// The pace of a login's polls: the interval, stretched by failures, and
/// what the provider asked.
struct PollPace {
    interval: Duration,
    /// Polls failed in a row (their waits double, RFC 8628 §3.5).
    network_failures: u32,
    /// The wait a poll's `Retry-After` asked for, for the next one.
    asked_wait: Option<Duration>,
    /// Whether the last poll failed to reach the provider (or met a
    /// captive portal's page): a network change may have ended that.
    unreachable: bool,
}

impl PollPace {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            network_failures: 0,
            asked_wait: None,
            unreachable: false,
        }
    }

    /// Told to poll slower (`slow_down`, a 429), maybe to `asked`: RFC
    /// 8628 adds 5 s; GitHub sends the new interval. Whichever is slower,
    /// so that neither reading is violated. A rate limiter's
    /// `Retry-After` holds the next poll back that long, once.
    fn slow_down(&mut self, asked: Option<Duration>, retry_after: Option<Duration>) {
        self.network_failures = 0;
        self.interval = (self.interval + SLOW_DOWN_STEP).max(asked.unwrap_or_default());
        self.asked_wait = retry_after;
    }

    /// A poll failed: by `failure`, or (`None`) with an answer that
    /// reached the provider but cannot be used.
    fn failed(&mut self, failure: Option<&ProviderError>) {
        self.network_failures += 1;
        self.unreachable = matches!(
            failure,
            Some(
                ProviderError::Unreachable { .. }
                    | ProviderError::Unanswered { .. }
                    | ProviderError::CutOff { .. }
                    | ProviderError::Malformed { .. }
            )
        );
        self.asked_wait = failure.and_then(ProviderError::retry_after);
    }
}

/// How much more than [`LAST_POLL_MARGIN`] a code must have left for a
/// poll to be held back by a wait the provider asked for: the wait for the
/// last poll ends that margin before the code dies, give or take the
/// timer's lateness, and that poll goes out whatever was asked.
const HELD_POLL_SLACK: Duration = Duration::from_secs(1);

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
