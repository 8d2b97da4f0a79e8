//! What the sessions of one token endpoint share: how many refreshes may
//! be out at once, and the waits the provider asked for.
//!
//! A provider that answers a refresh `429` or `503` with `Retry-After`
//! asks its client to leave the endpoint alone that long, and a rate limit
//! is per client (or per address), not per login. So the wait binds every
//! session of the endpoint with the same `client_id`, not only the one
//! that was told: until it is over, their refreshes are not sent, and
//! each fails as the told one did (its `Retry-After` shortened to what is
//! left), which plans its retry past the wait, spread over a tenth of it
//! (`SessionMachine::refresh_held`). Without it, after a resume or at a
//! storm every other session of a shared issuer sent its own request into
//! the limit, and each was told again. Sessions of another client at the
//! same issuer (another app's registration) are not held. What a held
//! session is told names the endpoint and the status only: the
//! provider's own words went to the session that was told, and may name
//! that session's account.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::provider::ProviderError;

/// A wait the provider asked one client for: until when, and what told it.
#[derive(Debug, Clone)]
struct AskedWait {
    until: SystemTime,
    endpoint: String,
    status: u16,
}

/// The refresh limit and the provider's asked waits of one token endpoint.
#[derive(Debug)]
pub(crate) struct EndpointLimit {
    /// Bounds concurrent refreshes (`max_concurrent_refreshes`).
    permits: Semaphore,
    /// The waits asked, by `client_id`.
    asked_waits: Mutex<HashMap<String, AskedWait>>,
}

impl EndpointLimit {
    /// A limit of `concurrent` refreshes at once, and no wait.
    pub(crate) fn new(concurrent: usize) -> Self {
        Self {
            permits: Semaphore::new(concurrent),
            asked_waits: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a refresh's turn. The semaphore is never closed, so a
    /// permit always comes (`None` only if it were).
    pub(crate) async fn acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.permits.acquire().await.ok()
    }

    /// The failure a refresh of `client_id` meets without being sent, at
    /// `now`, while a wait the provider asked of that client lasts: the
    /// endpoint and status of the answer that asked it, asking for what is
    /// left of the wait.
    pub(crate) fn asked_to_wait(&self, now: SystemTime, client_id: &str) -> Option<ProviderError> {
        let waits = self
            .asked_waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let asked = waits.get(client_id)?;
        let left = asked
            .until
            .duration_since(now)
            .ok()
            .filter(|left| !left.is_zero())?;
        Some(ProviderError::Unavailable {
            endpoint: asked.endpoint.clone(),
            status: asked.status,
            detail: None,
            retry_after: Some(left.max(Duration::from_secs(1))),
        })
    }

    /// Notes `answer`, a refresh's failure for `client_id` at `now`: when
    /// it asks for a wait (`Retry-After`), every refresh of that client at
    /// the endpoint waits it out. A shorter wait asked later does not
    /// shorten a longer one; one that is over is forgotten.
    pub(crate) fn note_failure(&self, now: SystemTime, client_id: &str, answer: &ProviderError) {
        let ProviderError::Unavailable {
            endpoint,
            status,
            retry_after: Some(wait),
            ..
        } = answer
        else {
            return;
        };
        let until = now + *wait;
        let mut waits = self
            .asked_waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        waits.retain(|_, asked| asked.until > now);
        if waits.get(client_id).is_none_or(|asked| until > asked.until) {
            waits.insert(
                client_id.to_owned(),
                AskedWait {
                    until,
                    endpoint: endpoint.clone(),
                    status: *status,
                },
            );
        }
    }

    /// Moves the ends of the asked waits with the wall clock, set by `step`.
    pub(crate) fn clock_stepped(&self, step: crate::broker::clock::ClockStep) {
        let mut waits = self
            .asked_waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for asked in waits.values_mut() {
            asked.until = step.shift(asked.until);
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
            detail: Some("rate limit of account acct-7".into()),
            retry_after: wait.map(Duration::from_secs),
        }
    }

    /// A wait asked for moves with the wall clock when it is set: set an
    /// hour ahead, the wait still has what it had left (not over at once,
    /// the provider asked again at once); set back, not an hour longer.
    #[test]
    fn an_asked_wait_moves_with_the_wall_clock() {
        use crate::broker::clock::ClockStep;
        let limit = EndpointLimit::new(4);
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let hour = Duration::from_secs(3600);
        limit.note_failure(start, "app", &limited(Some(600)));
        limit.clock_stepped(ClockStep::Ahead(hour));
        let held = limit
            .asked_to_wait(start + hour, "app")
            .expect("still held");
        assert_eq!(held.retry_after(), Some(Duration::from_secs(600)));
        limit.clock_stepped(ClockStep::Back(hour));
        assert!(
            limit
                .asked_to_wait(start + Duration::from_secs(600), "app")
                .is_none()
        );
    }

    #[test]
    fn an_asked_wait_binds_the_clients_refreshes_until_it_is_over() {
        let limit = EndpointLimit::new(4);
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(limit.asked_to_wait(start, "app").is_none());
        // A failure that asks nothing holds nothing.
        limit.note_failure(start, "app", &limited(None));
        assert!(limit.asked_to_wait(start, "app").is_none());

        limit.note_failure(start, "app", &limited(Some(600)));
        let later = start + Duration::from_secs(100);
        let held = limit.asked_to_wait(later, "app").expect("held");
        assert_eq!(held.retry_after(), Some(Duration::from_secs(500)));
        // The status, not the provider's words to the session told.
        let said = held.to_string();
        assert!(
            said.contains("HTTP 429") && !said.contains("acct-7"),
            "{said}"
        );
        // Another client at the same issuer is not held.
        assert!(limit.asked_to_wait(later, "other-app").is_none());
        // A shorter wait asked meanwhile does not shorten it.
        limit.note_failure(later, "app", &limited(Some(10)));
        assert_eq!(
            limit.asked_to_wait(later, "app").unwrap().retry_after(),
            Some(Duration::from_secs(500))
        );
        assert!(
            limit
                .asked_to_wait(start + Duration::from_secs(600), "app")
                .is_none()
        );
    }
}
