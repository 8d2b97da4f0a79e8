//! A token endpoint that answers again after an outage: the sessions whose
//! refreshes failed there meanwhile retry at once, spread over a second,
//! instead of each waiting out its own backoff.
//!
//! Backoffs grow with each failure (up to 5 minutes), and callers' token
//! requests during an outage count as failures too, so after a 3-minute
//! outage of 300 sessions half of them still read `expired` a minute
//! after the provider answered again, the last one four minutes after. A
//! session's successful refresh (or a refusal: the provider works through
//! its requests) after failures there is the news; a resume or a network
//! change is handled the same way (`Broker::retry_waiting_refreshes`).
//! Sessions the provider asked to wait (`Retry-After`) keep their spread
//! retries. The refreshes go through the endpoint's permits as any do
//! (`max_concurrent_refreshes`), so the provider that just came back is
//! not met by all of them at once.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::info;

use super::Broker;
use super::WorldChange;
use super::endpoint_limit::EndpointLimit;

/// How widely the retries of an endpoint that answers again are spread.
const RETRY_SPREAD: Duration = Duration::from_secs(1);

/// The endpoints that answered again, for the broker's task to act on.
#[derive(Debug, Default)]
pub(crate) struct EndpointsBack {
    back: Mutex<Vec<Weak<EndpointLimit>>>,
    told: Notify,
}

impl EndpointsBack {
    /// Says that `limit`'s endpoint answered after failures.
    pub(crate) fn announce(&self, limit: &Arc<EndpointLimit>) {
        self.back
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(limit));
        // Kept as a permit when the task is busy: none is lost.
        self.told.notify_one();
    }

    /// The endpoints announced since the last call, once there is one.
    async fn next(&self) -> Vec<Arc<EndpointLimit>> {
        loop {
            let back: Vec<Arc<EndpointLimit>> =
                std::mem::take(&mut *self.back.lock().unwrap_or_else(PoisonError::into_inner))
                    .iter()
                    .filter_map(Weak::upgrade)
                    .collect();
            if !back.is_empty() {
                return back;
            }
            self.told.notified().await;
        }
    }
}

impl Broker {
    /// Starts the task that moves the retries of an endpoint's sessions
    /// when it answers again.
    pub(super) fn spawn_endpoint_recovery(&self) {
        let broker = self.clone();
        self.inner.shared.tasks.spawn(async move {
            let shared = Arc::clone(&broker.inner.shared);
            loop {
                tokio::select! {
                    () = shared.shutdown.cancelled() => return,
                    back = shared.endpoints_back.next() => {
                        for limit in back {
                            broker.retry_when_endpoint_answers(&limit);
                        }
                    }
                }
            }
        });
    }

    /// Moves the retry of each session of `limit`'s endpoint that waits
    /// out a backoff after a passing failure to within [`RETRY_SPREAD`];
    /// says how many, once for the endpoint. Returns how many.
    pub(super) fn retry_when_endpoint_answers(&self, limit: &Arc<EndpointLimit>) -> usize {
        let moved = self.move_retries(RETRY_SPREAD, WorldChange::EndpointAnswers, |session| {
            session.uses_endpoint(limit)
        });
        // The outage's summary, when the endpoint's lines spoke for its
        // sessions: what went to debug level since its last line is said
        // here or nowhere.
        let outage = limit.take_ended_outage();
        if moved == 0 && outage.is_none() {
            return 0;
        }
        let after = outage.map_or_else(String::new, |ended| {
            let folded = ended.folded_words();
            let folded = if folded.is_empty() {
                String::new()
            } else {
                format!("; {folded} since the last `endpoint_failing` line")
            };
            format!(
                " after {} s of failures ({} failure(s) of {} session(s){folded})",
                ended.lasted.as_secs(),
                ended.failures,
                ended.sessions
            )
        });
        let retrying = if moved > 0 {
            format!(": {moved} session(s) whose refreshes failed there retry within a second")
        } else {
            String::new()
        };
        info!(
            event = "endpoint_answers",
            endpoint = limit.endpoint(),
            sessions = moved,
            "{} answers refreshes again{after}{retrying}",
            limit.endpoint()
        );
        moved
    }
}
