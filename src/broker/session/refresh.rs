//! Running a refresh the machine started: in its own task, bounded per
//! token endpoint, its answer fed back to the machine under the persist
//! lock and its outcome published to every waiting caller.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tracing::debug;

use super::machine::{Event, Reply};
use super::store::unix_micros_now;
use super::{RefreshResult, Session};
use crate::secret::Secret;

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
                .run_refresh(&refresh_token, access_token.as_ref(), generation)
                .await;
            let _ = tx.send(Some(result));
        });
        rx
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
    ) -> Result<(), crate::broker::error::BrokerError> {
        let (sent_since_boot, answer, prepared) = {
            // The permit bounds requests per token endpoint; it is released
            // as soon as the provider has answered.
            // A reload that retires the session meanwhile ends the wait:
            // behind a provider that hangs, each permit is held up to
            // `http_timeout`, and the reload waited for every refresh
            // queued behind them (minutes, with the added and rebuilt
            // providers unusable meanwhile).
            let permit = tokio::select! {
                biased;
                () = self.retiring.cancelled() => {
                    debug!(provider = %self.name, "refresh not sent: a reload retired the session");
                    return self.refresh_not_sent(Event::RefreshAbandoned { generation }).await;
                }
                permit = self.refresh_limit.acquire() => permit,
            };
            let sent_at = self.shared.clock.now();
            let sent_since_boot = self.shared.clock.since_boot();
            // The provider asked (another session of its endpoint, maybe)
            // to be left alone: not sent.
            if let Some(failure) = self
                .refresh_limit
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
            let answer = self
                .shared
                .metrics
                .refresh(&self.name, self.provider.refresh(refresh_token))
                .await
                // A failure answer that echoes the access token the session
                // holds (`token … is not a refresh token`) would show it in
                // the log and in status.
                .map_err(|e| match access_token {
                    Some(access) => e.without_secrets(&[access.expose()]),
                    None => e,
                });
            if let Err(failure) = &answer {
                self.refresh_limit.note_failure(
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
        match self.dispatch_timed(event, Some(answered), prepared).await {
            Some(Reply::Done(result)) => result,
            _ => Ok(()),
        }
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
