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
//!
//! Device-code polls go to the same endpoint with the same client: a wait
//! asked of a refresh holds the polls of that client's logins (but for
//! the last poll before a code dies), and a wait asked of a poll holds
//! the refreshes. A wait asked at the device authorization endpoint (a
//! rate limit on asking for codes) holds the next requests for a code of
//! that client, which fail at once with what is left of it; it does not
//! hold refreshes, which a login being refused must not cost.
//!
//! A provider that hangs holds every permit: each refresh out listens for
//! its late answer (`session::refresh`). Once none of them has been
//! answered (no permit given back) for `http_timeout`, the refreshes
//! waiting for a permit are not sent and fail at once
//! ([`ProviderError::Stalled`]), each retried after its backoff. Until
//! then they wait: a busy endpoint gives permits back all the time, and a
//! queue of hundreds of sessions (a start with expired tokens) drains.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, SemaphorePermit};

use super::outage_log::{OutageLog, Summary, Verdict};
// tokio's, which a test can pause and advance.
use tokio::time::Instant;

use crate::provider::ProviderError;

/// Which of the provider's endpoints asked a client to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum WaitAt {
    /// The token endpoint (refreshes and polls).
    Token,
    /// The device authorization endpoint (requests for a code).
    DeviceAuthorization,
}

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
    /// The endpoint (or the issuer it is discovered from), for errors.
    endpoint: String,
    /// Bounds concurrent refreshes (`max_concurrent_refreshes`).
    permits: Semaphore,
    /// How many permits there are.
    concurrent: usize,
    /// What [`Self::progress`] counts from.
    since: Instant,
    /// Milliseconds from `since` to the last time a permit was taken or
    /// given back: the endpoint's last sign of life.
    progress: AtomicU64,
    /// How many refreshes the endpoint has answered (any HTTP answer):
    /// a refresh listening for its late answer learns from it that the
    /// provider answers again (see [`Self::answers`]).
    answered: tokio::sync::watch::Sender<u64>,
    /// Whether a refresh failed here for a passing reason (the provider
    /// unreachable, unavailable, hanging) since the last answer: the next
    /// answer says the endpoint is back (see [`Self::note_answer`]).
    troubled: AtomicBool,
    /// The waits asked, by endpoint and `client_id`.
    asked_waits: Mutex<HashMap<(WaitAt, String), AskedWait>>,
    /// What the log says of an outage here (see [`OutageLog`]).
    outage_log: Mutex<OutageLog>,
    /// The summary of the outage the last answer ended, for the line that
    /// says the endpoint answers again.
    ended_outage: Mutex<Option<Summary>>,
}

/// `mutex`'s value: a panic elsewhere while it was held leaves plain data.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A refresh's turn at its endpoint; given back when dropped.
pub(crate) struct EndpointPermit<'a> {
    _permit: SemaphorePermit<'a>,
    limit: &'a EndpointLimit,
}

impl Drop for EndpointPermit<'_> {
    fn drop(&mut self) {
        self.limit.note_progress();
    }
}

impl EndpointLimit {
    /// A limit of `concurrent` refreshes at once to `endpoint`, and no
    /// wait.
    pub(crate) fn new(endpoint: &str, concurrent: usize) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            permits: Semaphore::new(concurrent),
            concurrent,
            since: Instant::now(),
            progress: AtomicU64::new(0),
            answered: tokio::sync::watch::Sender::new(0),
            troubled: AtomicBool::new(false),
            asked_waits: Mutex::new(HashMap::new()),
            outage_log: Mutex::new(OutageLog::default()),
            ended_outage: Mutex::new(None),
        }
    }

    /// The endpoint (or the issuer it is discovered from), as errors name it.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Notes that the provider answered a refresh (a success, or a
    /// refusal): whether it had failed refreshes for a passing reason
    /// since the last answer, i.e. it answers again after an outage.
    pub(crate) fn note_answer(&self) -> bool {
        self.answered.send_modify(|answered| *answered += 1);
        let ended = lock(&self.outage_log).answered(std::time::Instant::now());
        let had_lines = ended.is_some();
        if had_lines {
            *lock(&self.ended_outage) = ended;
        }
        // An outage whose lines the endpoint said is announced even if
        // another session's answer cleared `troubled` meanwhile: its
        // summary is said with the news.
        self.troubled.swap(false, Ordering::Relaxed) || had_lines
    }

    /// What to do with a session's line about a passing failure here, in
    /// the words `error` (see [`OutageLog::failure`]).
    pub(crate) fn outage_failure_line(&self, session: &str, error: &str) -> Verdict {
        lock(&self.outage_log).failure(std::time::Instant::now(), session, error)
    }

    /// What to do with a session's line that its access token expired
    /// while its refreshes failed (see [`OutageLog::expired`]).
    pub(crate) fn outage_expiry_line(&self, session: &str) -> Verdict {
        lock(&self.outage_log).expired(session)
    }

    /// The summary of the outage the last answer ended, once.
    pub(crate) fn take_ended_outage(&self) -> Option<Summary> {
        lock(&self.ended_outage).take()
    }

    /// Notes that a refresh failed here for a passing reason, or was not
    /// sent behind refreshes that had no answer.
    pub(crate) fn note_trouble(&self) {
        self.troubled.store(true, Ordering::Relaxed);
    }

    /// The count of answers, which changes with each (a refresh that
    /// listens for its late answer and sees another answered knows the
    /// provider works, and that its own request is most likely lost).
    pub(crate) fn answers(&self) -> tokio::sync::watch::Receiver<u64> {
        self.answered.subscribe()
    }

    fn note_progress(&self) {
        let now = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.progress.fetch_max(now, Ordering::Relaxed);
    }

    /// The last time a permit was taken or given back.
    fn last_progress(&self) -> Instant {
        self.since + Duration::from_millis(self.progress.load(Ordering::Relaxed))
    }

    /// Waits for a refresh's turn, unless every permit is held by a
    /// refresh and none has been given back for `stall` (a provider that
    /// hangs): then [`ProviderError::Stalled`], at once if it already is.
    /// The turn keeps its place in the queue while the wait goes on.
    ///
    /// # Errors
    /// The endpoint is stalled.
    pub(crate) async fn acquire_unless_stalled(
        &self,
        stall: Duration,
    ) -> Result<EndpointPermit<'_>, ProviderError> {
        let mut acquire = std::pin::pin!(self.permits.acquire());
        loop {
            let stalled_at = self.last_progress() + stall;
            tokio::select! {
                biased;
                permit = &mut acquire => {
                    // The semaphore is never closed.
                    let permit = permit.expect("the endpoint's semaphore is never closed");
                    self.note_progress();
                    return Ok(EndpointPermit { _permit: permit, limit: self });
                }
                () = tokio::time::sleep_until(stalled_at) => {
                    let quiet = self.last_progress().elapsed();
                    if quiet >= stall {
                        self.note_trouble();
                        return Err(ProviderError::Stalled {
                            endpoint: self.endpoint.clone(),
                            in_flight: self.concurrent - self.permits.available_permits(),
                            waited_secs: quiet.as_secs(),
                        });
                    }
                }
            }
        }
    }

    /// The failure a refresh of `client_id` meets without being sent, at
    /// `now`, while a wait the provider asked of that client lasts: the
    /// endpoint and status of the answer that asked it, asking for what is
    /// left of the wait.
    pub(crate) fn asked_to_wait(&self, now: SystemTime, client_id: &str) -> Option<ProviderError> {
        self.asked_at(WaitAt::Token, now, client_id)
    }

    /// As [`Self::asked_to_wait`], for a request for a device code: a
    /// wait the device authorization endpoint asked of `client_id`.
    pub(crate) fn asked_to_wait_for_codes(
        &self,
        now: SystemTime,
        client_id: &str,
    ) -> Option<ProviderError> {
        self.asked_at(WaitAt::DeviceAuthorization, now, client_id)
    }

    fn asked_at(&self, at: WaitAt, now: SystemTime, client_id: &str) -> Option<ProviderError> {
        let waits = self
            .asked_waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let asked = waits.get(&(at, client_id.to_owned()))?;
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

    /// Notes `answer`, a refresh's or a poll's failure for `client_id` at
    /// `now`: when it asks for a wait (`Retry-After`), every refresh and
    /// poll of that client at the endpoint waits it out. A shorter wait
    /// asked later does not shorten a longer one; one that is over is
    /// forgotten.
    pub(crate) fn note_failure(&self, now: SystemTime, client_id: &str, answer: &ProviderError) {
        self.note_at(WaitAt::Token, now, client_id, answer);
    }

    /// As [`Self::note_failure`], for the failure of a request for a
    /// device code: its wait holds the next requests for a code.
    pub(crate) fn note_code_failure(
        &self,
        now: SystemTime,
        client_id: &str,
        answer: &ProviderError,
    ) {
        self.note_at(WaitAt::DeviceAuthorization, now, client_id, answer);
    }

    fn note_at(&self, at: WaitAt, now: SystemTime, client_id: &str, answer: &ProviderError) {
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
        let key = (at, client_id.to_owned());
        if waits.get(&key).is_none_or(|asked| until > asked.until) {
            waits.insert(
                key,
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
        let limit = EndpointLimit::new("http://127.0.0.1:1/token", 4);
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

    /// Behind an endpoint whose refreshes out are none of them answered
    /// (no permit given back) for `stall`, a refresh is not sent: after
    /// the rest of `stall`, or at once when it is over already. Permits
    /// given back keep a queue waiting however long it is.
    #[tokio::test(start_paused = true)]
    async fn a_refresh_is_not_sent_behind_refreshes_out_and_unanswered() {
        let stall = Duration::from_secs(30);
        let limit = EndpointLimit::new("http://127.0.0.1:1/token", 1);
        let out = limit.acquire_unless_stalled(stall).await.unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        let started = Instant::now();
        let Err(stalled) = limit.acquire_unless_stalled(stall).await else {
            panic!("sent behind a refresh unanswered");
        };
        assert_eq!(started.elapsed(), Duration::from_secs(20));
        assert_eq!(
            stalled.to_string(),
            "not sent to http://127.0.0.1:1/token: the 1 refreshes already sent there have had no answer for 30 s, and no more are sent until one comes"
        );
        let started = Instant::now();
        assert!(limit.acquire_unless_stalled(stall).await.is_err());
        assert_eq!(started.elapsed(), Duration::ZERO);

        // An answer (the permit back): the next one goes out. A queue
        // behind refreshes that are answered waits its turn, past `stall`.
        drop(out);
        let out = limit.acquire_unless_stalled(stall).await.unwrap();
        let first = async {
            let turn = limit.acquire_unless_stalled(stall).await.unwrap();
            tokio::time::sleep(Duration::from_secs(20)).await;
            drop(turn);
        };
        let second = async {
            let started = Instant::now();
            let turn = limit.acquire_unless_stalled(stall).await;
            (turn.is_ok(), started.elapsed())
        };
        let answered = async {
            tokio::time::sleep(Duration::from_secs(20)).await;
            drop(out);
        };
        let ((), (sent, waited), ()) = tokio::join!(first, second, answered);
        assert!(sent, "the queue gave up while its refreshes were answered");
        assert_eq!(waited, Duration::from_secs(40));
    }

    /// A wait asked at the device authorization endpoint holds requests
    /// for a code of that client, not its refreshes and polls; one asked at
    /// the token endpoint holds those, not requests for a code.
    #[test]
    fn a_wait_asked_for_codes_holds_codes_only() {
        let limit = EndpointLimit::new("http://127.0.0.1:1/token", 4);
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        limit.note_code_failure(start, "app", &limited(Some(60)));
        let later = start + Duration::from_secs(20);
        assert_eq!(
            limit
                .asked_to_wait_for_codes(later, "app")
                .expect("held")
                .retry_after(),
            Some(Duration::from_secs(40))
        );
        assert!(limit.asked_to_wait(later, "app").is_none());
        assert!(limit.asked_to_wait_for_codes(later, "other-app").is_none());
        limit.note_failure(later, "other-app", &limited(Some(60)));
        assert!(limit.asked_to_wait(later, "other-app").is_some());
        assert!(limit.asked_to_wait_for_codes(later, "other-app").is_none());
    }

    #[test]
    fn an_asked_wait_binds_the_clients_refreshes_until_it_is_over() {
        let limit = EndpointLimit::new("http://127.0.0.1:1/token", 4);
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
