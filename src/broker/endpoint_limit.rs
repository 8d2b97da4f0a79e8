//! What the sessions of one token endpoint share: how many refreshes may
//! be out at once, and the wait the provider asked for.
//!
//! A provider that answers a refresh `429` or `503` with `Retry-After`
//! asks its client to leave the endpoint alone that long, and rate limits
//! are per client or per address, not per login. So the wait binds every
//! session of the endpoint, not only the one that was told: until it is
//! over, their refreshes are not sent, and each fails as the told one did
//! (its `Retry-After` shortened to what is left), which plans its retry
//! past the wait, spread over a tenth of it
//! (see `SessionState::refresh_failed`). Without it, after a resume or
//! at a storm every other session of a shared issuer sent its own request
//! into the limit, and each was told again.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::provider::ProviderError;

/// The refresh limit and the provider's asked wait of one token endpoint.
#[derive(Debug)]
pub(crate) struct EndpointLimit {
    /// Bounds concurrent refreshes (`max_concurrent_refreshes`).
    permits: Semaphore,
    /// Until when the provider asked to be left alone, and the answer that
    /// asked it.
    asked_wait: Mutex<Option<(SystemTime, ProviderError)>>,
}

impl EndpointLimit {
    /// A limit of `concurrent` refreshes at once, and no wait.
    pub(crate) fn new(concurrent: usize) -> Self {
        Self {
            permits: Semaphore::new(concurrent),
            asked_wait: Mutex::new(None),
        }
    }

    /// Waits for a refresh's turn. The semaphore is never closed, so a
    /// permit always comes (`None` only if it were).
    pub(crate) async fn acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.permits.acquire().await.ok()
    }

    /// The failure a refresh meets without being sent, at `now`, while the
    /// provider's asked wait lasts: the answer that asked it, asking for
    /// what is left of the wait.
    pub(crate) fn asked_to_wait(&self, now: SystemTime) -> Option<ProviderError> {
        let asked = self
            .asked_wait
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (until, answer) = asked.as_ref()?;
        let left = until
            .duration_since(now)
            .ok()
            .filter(|left| !left.is_zero())?;
        Some(
            answer
                .clone()
                .with_retry_after(left.max(Duration::from_secs(1))),
        )
    }

    /// Moves the end of the asked wait with the wall clock, set by `step`.
    pub(crate) fn clock_stepped(&self, step: crate::broker::clock::ClockStep) {
        let mut asked = self
            .asked_wait
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((until, _)) = asked.as_mut() {
            *until = step.shift(*until);
        }
    }

    /// Notes `answer`, a refresh's failure at `now`: when it asks for a
    /// wait (`Retry-After`), every refresh of the endpoint waits it out.
    /// A shorter wait asked later does not shorten a longer one.
    pub(crate) fn note_failure(&self, now: SystemTime, answer: &ProviderError) {
        let Some(wait) = answer.retry_after() else {
            return;
        };
        let until = now + wait;
        let mut asked = self
            .asked_wait
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if asked.as_ref().is_none_or(|(longest, _)| until > *longest) {
            *asked = Some((until, answer.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(wait: Option<u64>) -> ProviderError {
        ProviderError::Unavailable {
            endpoint: "http://127.0.0.1:1/token".into(),
            status: 429,
            detail: None,
            retry_after: wait.map(Duration::from_secs),
        }
    }

    #[test]
    fn an_asked_wait_binds_the_endpoint_until_it_is_over() {
        let limit = EndpointLimit::new(4);
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(limit.asked_to_wait(start).is_none());
        // A failure that asks nothing holds nothing.
        limit.note_failure(start, &limited(None));
        assert!(limit.asked_to_wait(start).is_none());

        limit.note_failure(start, &limited(Some(600)));
        let later = start + Duration::from_secs(100);
        let held = limit.asked_to_wait(later).expect("held");
        assert_eq!(held.retry_after(), Some(Duration::from_secs(500)));
        assert!(held.to_string().contains("HTTP 429"), "{held}");
        // A shorter wait asked meanwhile does not shorten it.
        limit.note_failure(later, &limited(Some(10)));
        assert_eq!(
            limit.asked_to_wait(later).unwrap().retry_after(),
            Some(Duration::from_secs(500))
        );
        assert!(
            limit
                .asked_to_wait(start + Duration::from_secs(600))
                .is_none()
        );
    }
}
