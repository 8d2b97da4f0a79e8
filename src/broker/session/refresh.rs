//! Running a refresh the machine started: in its own task, bounded per
//! token endpoint, its answer fed back to the machine under the persist
//! lock and its outcome published to every waiting caller.
//!
//! A refresh the provider has not answered within `http_timeout` is not
//! given up: its callers are told so (`Event::RefreshOverdue`), and its
//! answer is listened for on the same connection up to
//! [`timing::LATE_ANSWER_WAIT`], the refresh staying in flight so that no
//! other is sent with the same refresh token. A provider that hangs acts
//! on the requests it holds once it recovers, rotating the refresh tokens
//! they carry: closed at `http_timeout`, those answers were lost, each
//! session's retry presented its spent token, and the provider revoked
//! the login (52 of 300 sessions after a five-minute hang). A reload that
//! retires the session stops the listening (its successor refreshes), and
//! so does the end of the listening's bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::debug;

use super::machine::{Event, Reply};
use super::store::unix_micros_now;
use super::{RefreshResult, Session, WorldChange};
use crate::broker::endpoint_limit::EndpointLimit;
use crate::broker::error::BrokerError;
use crate::broker::timing;
use crate::provider::ProviderError;
use crate::secret::Secret;

/// How long a refresh listening for its late answer listens on after the
/// world changed (an answer already in the connection's buffer is read in
/// far less), and the spread of the retries that follow.
const WORLD_CHANGE_GRACE: Duration = Duration::from_secs(1);

impl Session {
    /// Starts the refresh task for generation `generation`; returns the
    /// channel its outcome is published on. Called under the state lock.
    /// `access_token` is the one the session holds, taken out of the
    /// provider's words in a failure answer (see `Effect::StartRefresh`).
    pub(super) fn spawn_refresh(
        self: &Arc<Self>,
        refresh_token: Secret,
        access_token: Option<Secret>,
        generation: u64,
    ) -> watch::Receiver<RefreshResult> {
        let (tx, rx) = watch::channel(None);
        let session = Arc::clone(self);
        self.shared.tasks.spawn(async move {
            let result = session
                .run_refresh(&refresh_token, access_token.as_ref(), generation, &tx)
                .await;
            let _ = tx.send(Some(result));
        });
        rx
    }

    /// The refresh of `generation` had no answer in time (`unanswered`):
    /// the machine says so, and the callers waiting for it are told now,
    /// while its answer is listened for.
    fn refresh_overdue(
        self: &Arc<Self>,
        generation: u64,
        unanswered: ProviderError,
        flight: &watch::Sender<RefreshResult>,
    ) {
        self.dispatch_now(Event::RefreshOverdue {
            generation,
            failure: unanswered.clone(),
        });
        flight.send_replace(Some(Err(BrokerError::ProviderUnavailable {
            provider: self.name.clone(),
            source: unanswered,
        })));
    }

    /// Ends a refresh that was not sent with `event` (held, or abandoned),
    /// serialised with the session's store writes as an answer's is.
    async fn refresh_not_sent(
        self: &Arc<Self>,
        event: Event,
    ) -> Result<(), crate::broker::error::BrokerError> {
        let _persist = self.persist.lock().await;
        match self.dispatch_timed(event, None, None).await {
            Some(Reply::Done(result)) => result,
            _ => Ok(()),
        }
    }

    async fn run_refresh(
        self: &Arc<Self>,
        refresh_token: &Secret,
        access_token: Option<&Secret>,
        generation: u64,
        flight: &watch::Sender<RefreshResult>,
    ) -> Result<(), crate::broker::error::BrokerError> {
        // A world change that ended the listening for a late answer: the
        // retry comes at once (spread over a second), as after a failure
        // to reach the provider.
        let listening_ended_by;
        let (sent_since_boot, answer, prepared) = {
            // The permit bounds requests per token endpoint; it is released
            // as soon as the provider has answered.
            // A reload that retires the session meanwhile ends the wait:
            // behind a provider that hangs, each permit is held up to
            // `http_timeout`, and the reload waited for every refresh
            // queued behind them (minutes, with the added and rebuilt
            // providers unusable meanwhile).
            // A stop ends the wait too: no refresh is sent once it has
            // begun, a request's neither (`background` is cancelled at its
            // start): behind a slow endpoint's permits, one a request asked
            // for was sent seconds into the stop, answered after the
            // grace, and its rotated refresh token lost with the session.
            // The request is told tokend is stopping. And behind a provider
            // that hangs, a refresh is not sent at all
            // (`EndpointLimit::acquire_unless_stalled`).
            let in_time = self.provider.http_timeout();
            let permit = tokio::select! {
                biased;
                () = self.retiring.cancelled() => {
                    debug!(provider = %self.name, "refresh not sent: a reload retired the session");
                    return self.refresh_not_sent(Event::RefreshAbandoned { generation }).await;
                }
                () = self.shared.background.cancelled() => {
                    debug!(provider = %self.name, "refresh not sent: tokend is stopping");
                    return self.refresh_not_sent(Event::RefreshAbandoned { generation }).await;
                }
                permit = self.endpoint_limit.acquire_unless_stalled(in_time) => match permit {
                    Ok(permit) => permit,
                    Err(failure) => {
                        debug!(provider = %self.name, "refresh not sent: its token endpoint has answered none of the refreshes out");
                        return self
                            .refresh_not_sent(Event::RefreshHeld { generation, failure })
                            .await;
                    }
                },
            };
            let sent_at = self.shared.clock.now();
            let sent_since_boot = self.shared.clock.since_boot();
            // The provider asked (another session of its endpoint, maybe)
            // to be left alone: not sent.
            if let Some(failure) = self
                .endpoint_limit
                .asked_to_wait(sent_at, &self.config().client_id)
            {
                drop(permit);
                debug!(provider = %self.name, "refresh not sent: its token endpoint asked to wait");
                return self
                    .refresh_not_sent(Event::RefreshHeld {
                        generation,
                        failure,
                    })
                    .await;
            }
            // The save's first half, while the provider answers (after the
            // permit, so that a storm's waiting refreshes prepare nothing).
            let prepared = self.prepare_save();
            // From here until "refresh_saved" a crash may lose the session:
            // the provider may rotate the refresh token before we store the
            // new one. These debug lines let tests measure that window.
            debug!(provider = %self.name, event = "refresh_sent", at_unix_us = %unix_micros_now(), "refresh request sent");
            let (answer, world_changed) = self
                .listen_for_refresh(refresh_token, generation, flight)
                .await;
            listening_ended_by = world_changed;
            let answer = answer
                // A failure answer that echoes the access token the session
                // holds (`token … is not a refresh token`) would show it in
                // the log and in status.
                .map_err(|e| match access_token {
                    Some(access) => e.without_secrets(&[access.expose()]),
                    None => e,
                });
            // A success, or a refusal: the provider works through its
            // requests. Not a 503 or 429 (shedding load is what a provider
            // that holds requests does), nor a garbled answer.
            let answered = match &answer {
                Ok(_) => true,
                Err(failure) => failure.class() != crate::provider::FailureClass::Transient,
            };
            if answered {
                // The endpoint answers again after an outage: the sessions
                // whose refreshes failed meanwhile need not wait out their
                // backoffs (`Broker::retry_when_endpoint_answers`).
                if self.endpoint_limit.note_answer() {
                    self.shared.endpoints_back.announce(&self.endpoint_limit);
                }
            } else {
                self.endpoint_limit.note_trouble();
            }
            if let Err(failure) = &answer {
                self.endpoint_limit.note_failure(
                    self.shared.clock.now(),
                    &self.config().client_id,
                    failure,
                );
            }
            (sent_since_boot, answer, prepared)
        };
        let answered = Instant::now();
        debug!(provider = %self.name, event = "refresh_answered", at_unix_us = %unix_micros_now(), ok = answer.is_ok(), "refresh answer received");
        let _persist = self.persist.lock().await;
        // Lifetimes count from the send, dated on the clock as it is set
        // now (it may have been set meanwhile: see `ClockWatch`); a step
        // taken in after this moves the tokens when they are installed
        // (`machine::clock_step`).
        let sent_at = self.shared.clock.wall_at(sent_since_boot);
        let event = Event::RefreshAnswered {
            generation,
            sent_at,
            answer,
        };
        let result = match self.dispatch_timed(event, Some(answered), prepared).await {
            Some(Reply::Done(result)) => result,
            _ => Ok(()),
        };
        if let Some(change) = listening_ended_by {
            let at = self.shared.clock.now() + WORLD_CHANGE_GRACE.mul_f64(fastrand::f64());
            self.retry_at(at, change);
        }
        result
    }

    /// The provider's answer to the refresh of `generation`, listened for
    /// past `http_timeout` up to [`timing::LATE_ANSWER_WAIT`] (see the
    /// module doc). Listening ends sooner when a reload retires the session
    /// (not the wait in time); when the provider answers other refreshes of
    /// the endpoint and not this one within `http_timeout` more: it works,
    /// and this request is most likely lost (a proxy or a balancer that
    /// dropped it), and waiting on would leave the session without a
    /// refresh for minutes; and a second after the world changed (the
    /// network came back, the machine resumed: the connection most likely
    /// died with the old network, and an answer already in its buffer is
    /// read within the second), which is returned beside the answer so
    /// that the retry comes at once, as for any refresh that failed to
    /// reach its provider.
    async fn listen_for_refresh(
        self: &Arc<Self>,
        refresh_token: &Secret,
        generation: u64,
        flight: &watch::Sender<RefreshResult>,
    ) -> (
        Result<crate::provider::TokenGrant, ProviderError>,
        Option<WorldChange>,
    ) {
        let (overdue_tx, mut overdue_rx) = watch::channel(None::<ProviderError>);
        let listening = self.provider.refresh_listening(
            refresh_token,
            Some((timing::LATE_ANSWER_WAIT, |unanswered: ProviderError| {
                overdue_tx.send_replace(Some(unanswered.clone()));
                self.refresh_overdue(generation, unanswered, flight);
            })),
        );
        let in_time = self.provider.http_timeout();
        // From the send on: what happens before the answer is overdue
        // counts too.
        let mut answers = self.endpoint_limit.answers();
        answers.borrow_and_update();
        let mut world = self.shared.world_changes.subscribe();
        world.borrow_and_update();
        let listening_ends = async {
            let said = overdue_rx
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|said| said.clone());
            let others_answered = async {
                if answers.changed().await.is_ok() {
                    tokio::time::sleep(in_time).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            // Only a resume: a network change (any address or route added
            // on the host) says nothing of this connection, and a path
            // that died is found by TCP keepalive (`HttpClient`).
            let resumed = async {
                loop {
                    if world.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    if *world.borrow_and_update() == Some(WorldChange::Resumed) {
                        break;
                    }
                }
                tokio::time::sleep(WORLD_CHANGE_GRACE).await;
            };
            // A logout or a new login: the answer would change nothing,
            // and the endpoint's permit is for the others.
            let generation_over = async {
                while self.state().machine.generation() == generation {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            };
            let mut change = None;
            tokio::select! {
                () = self.retiring.cancelled() => {
                    debug!(provider = %self.name, "a reload retired the session: its refresh's late answer is no longer listened for");
                }
                () = others_answered => {
                    debug!(provider = %self.name, "the token endpoint answers other refreshes and not this one: taken as lost");
                }
                () = resumed => {
                    debug!(provider = %self.name, "the machine resumed: the late answer of the refresh is no longer listened for");
                    change = Some(WorldChange::Resumed);
                }
                () = generation_over => {
                    debug!(provider = %self.name, "a logout or a login: the late answer of the refresh is no longer listened for");
                }
            }
            (said, change)
        };
        let mut change = None;
        let heard = async {
            tokio::select! {
                answer = listening => answer,
                (said, ended_by) = listening_ends => {
                    change = ended_by;
                let unanswered = match said {
                    Some(ProviderError::Unanswered { endpoint, waited_secs, .. }) => {
                        ProviderError::Unanswered { endpoint, waited_secs, listening: false }
                    }
                    said => said.unwrap_or_else(|| ProviderError::Unanswered {
                        endpoint: self.provider.token_endpoint_hint(),
                        waited_secs: self.provider.http_timeout().as_secs(),
                        listening: false,
                    }),
                };
                    Err(unanswered)
                }
            }
        };
        // Counted whichever way it ended.
        let answer = self.shared.metrics.refresh(&self.name, heard).await;
        (answer, change)
    }

    /// Moves the session's times with the wall clock, which was set by
    /// `step` (see `machine::clock_step`); tokens a write is about to
    /// install move when they are installed.
    pub(crate) fn clock_stepped(self: &Arc<Self>, step: crate::broker::clock::ClockStep) {
        self.dispatch_now(Event::ClockStepped(step));
    }

    /// Starts a background refresh if one is due and none is in flight
    /// (the scheduler's wake-up).
    pub(crate) fn refresh_if_due(self: &Arc<Self>) {
        self.dispatch_now(Event::RefreshDue);
    }

    /// Whether this session refreshes at `limit`'s endpoint.
    pub(crate) fn uses_endpoint(&self, limit: &Arc<EndpointLimit>) -> bool {
        Arc::ptr_eq(&self.endpoint_limit, limit)
    }

    /// Moves a background refresh that waits out a backoff after a
    /// transient failure (no route, provider down), or one that came due,
    /// to `at`: the world changed (the network came back, the machine
    /// resumed), so the wait is likely over. Returns whether it moved.
    pub(crate) fn retry_at(
        self: &Arc<Self>,
        at: std::time::SystemTime,
        change: super::WorldChange,
    ) -> bool {
        matches!(
            self.dispatch_now(Event::RetryAt { at, change }),
            Some(Reply::Changed(true))
        )
    }
}
