//! The [`Emulator`] handle: starts a provider emulator, drives the
//! person's side and the provider's rules, moves its clock, and reads what
//! the client did.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

use crate::authority::{Authority, TokenCheck};
use crate::clock::Clock;
use crate::codes::{ApprovalError, CodeStatus, IssuedCode};
use crate::dialects::EmulatorOptions;
use crate::fault::Fault;
use crate::record::{Endpoint, RecordedRequest};
use crate::server::{self, Shared, State};

/// How long the `wait_for*` methods wait before they panic. Generous: they
/// return as soon as the event happens, the limit only ends a stuck test.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Tokens of a session granted by [`Emulator::grant_session`].
#[derive(Debug, Clone)]
pub struct SeededSession {
    /// The access token.
    pub access_token: String,
    /// The refresh token, unless the emulator issues none.
    pub refresh_token: Option<String>,
    /// How long the access token lives from the grant.
    pub lifetime: Duration,
}

/// A running provider emulator. Dropping it stops the server and cuts every
/// open connection, hanging ones included.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Emulator {
    /// Starts an emulator on `127.0.0.1` and a free port, on the system
    /// clock.
    ///
    /// # Errors
    /// The socket could not be bound.
    pub async fn start(options: impl Into<EmulatorOptions>) -> io::Result<Self> {
        Self::start_with_clock(options, Clock::system()).await
    }

    /// Starts an emulator on `127.0.0.1` and a free port, whose time is
    /// `clock`: a test passes [`Clock::manual`] to [`Self::advance`] it.
    ///
    /// # Errors
    /// The socket could not be bound.
    pub async fn start_with_clock(
        options: impl Into<EmulatorOptions>,
        clock: Clock,
    ) -> io::Result<Self> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), options, clock).await
    }

    /// Starts an emulator on `addr`, which must be a loopback address (the
    /// emulator hands out tokens to anyone who asks and must never be
    /// reachable from the network), whose time is `clock`.
    ///
    /// # Errors
    /// `addr` is not loopback, or the socket could not be bound.
    pub async fn start_on(
        addr: SocketAddr,
        options: impl Into<EmulatorOptions>,
        clock: Clock,
    ) -> io::Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the emulator listens on loopback addresses only, and {} is not one",
                    addr.ip()
                ),
            ));
        }
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let origin = format!("http://{addr}");
        let (dialect, policy) = options.into().build(&origin);
        let shared = Arc::new(Shared::new(dialect, Authority::new(policy), clock));
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(server::accept_loop(
            listener,
            Arc::clone(&shared),
            stop.clone(),
            tasks.clone(),
        ));
        Ok(Self {
            shared,
            addr,
            stop,
            tasks,
        })
    }

    /// Stops the server and waits until every connection task has ended.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    // ---- where it is ----------------------------------------------------

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/`.
    #[must_use]
    pub fn base_url(&self) -> Url {
        parse(&format!("http://{}/", self.addr))
    }

    /// The URL of `endpoint`, when the dialect serves it.
    #[must_use]
    pub fn endpoint_url(&self, endpoint: Endpoint) -> Option<Url> {
        let path = self.shared.dialect.path(endpoint)?;
        Some(parse(&format!("http://{}{path}", self.addr)))
    }

    fn served(&self, endpoint: Endpoint) -> Url {
        self.endpoint_url(endpoint)
            .unwrap_or_else(|| panic!("this emulator's dialect has no {endpoint:?} endpoint"))
    }

    /// The device authorization endpoint.
    #[must_use]
    pub fn device_authorization_endpoint(&self) -> Url {
        self.served(Endpoint::DeviceAuthorization)
    }

    /// The token endpoint (for Trakt: where polls go; refreshes go to
    /// `/oauth/token`, also recorded as [`Endpoint::Token`]).
    #[must_use]
    pub fn token_endpoint(&self) -> Url {
        self.served(Endpoint::Token)
    }

    /// The userinfo endpoint, which accepts exactly the valid access tokens.
    #[must_use]
    pub fn userinfo_endpoint(&self) -> Url {
        self.served(Endpoint::UserInfo)
    }

    /// The approval page (`verification_uri`).
    #[must_use]
    pub fn verification_uri(&self) -> Url {
        self.served(Endpoint::Approval)
    }

    /// The OIDC issuer: discovery lives under it.
    #[must_use]
    pub fn issuer(&self) -> Url {
        let discovery = self.served(Endpoint::Discovery);
        let path = discovery
            .path()
            .trim_end_matches("/.well-known/openid-configuration");
        let mut issuer = discovery.clone();
        issuer.set_path(path);
        issuer
    }

    // ---- the provider's time -----------------------------------------------

    /// The emulator's clock (a clone: it moves with the emulator's).
    #[must_use]
    pub fn clock(&self) -> Clock {
        self.shared.clock.clone()
    }

    /// Now, on the emulator's clock.
    fn now(&self) -> Instant {
        self.shared.clock.now()
    }

    /// Moves the provider's time `by` ahead, at once: device codes, access
    /// tokens and refresh tokens expire, and intervals pass, as if that
    /// time had gone by. Clients see it in the answers to their next
    /// requests; the emulator's waiters re-check at once.
    ///
    /// # Panics
    /// When the emulator runs on the system clock (started without
    /// [`Clock::manual`]).
    #[track_caller]
    pub fn advance(&self, by: Duration) {
        self.shared.clock.advance(by);
        self.shared.notify();
    }

    // ---- the person's side and the provider's rules ----------------------

    fn change<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let result = f(&mut self.shared.lock());
        self.shared.notify();
        result
    }

    /// Approves the device that shows `user_code` (case and dashes ignored).
    ///
    /// # Errors
    /// The code is unknown, expired, or already decided or used.
    pub fn approve(&self, user_code: &str) -> Result<IssuedCode, ApprovalError> {
        self.change(|s| s.authority.approve(user_code, self.now()))
    }

    /// Denies the device that shows `user_code`.
    ///
    /// # Errors
    /// As for [`Self::approve`].
    pub fn deny(&self, user_code: &str) -> Result<IssuedCode, ApprovalError> {
        self.change(|s| s.authority.deny(user_code, self.now()))
    }

    /// A session granted without a device login, as if `client_id` had
    /// logged in just now: its access token lives `lifetime` (whatever
    /// the configured lifetime), its refresh token as configured. For
    /// seeding a client's store with many sessions at once; the request
    /// log does not show it.
    #[must_use]
    pub fn grant_session(&self, client_id: &str, lifetime: Duration) -> SeededSession {
        let issued = self.change(|s| {
            s.authority
                .grant_directly(client_id, None, lifetime, self.now())
        });
        SeededSession {
            access_token: issued.access_token,
            refresh_token: issued.refresh_token,
            lifetime,
        }
    }

    /// Every device code issued so far expires now.
    pub fn expire_device_codes(&self) {
        self.change(|s| s.authority.expire_codes(self.now()));
    }

    /// Every access and refresh token issued so far, including the ones a
    /// client holds and has not sent back yet (the newest refresh token):
    /// secrets it must never show.
    #[must_use]
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.lock().authority.issued_tokens()
    }

    /// Every access token issued so far expires now (refresh tokens stay).
    pub fn expire_access_tokens(&self) {
        self.change(|s| s.authority.expire_access_tokens(self.now()));
    }

    /// Revokes every login: its access tokens stop working and its refresh
    /// tokens get `invalid_grant`.
    pub fn revoke_all(&self) {
        self.change(|s| s.authority.revoke_all());
    }

    /// Lifetime of access tokens issued from now on.
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        self.change(|s| s.authority.policy.access_token_lifetime = lifetime);
    }

    /// Interval of device codes issued from now on (codes already issued
    /// keep theirs).
    pub fn set_interval(&self, interval: Duration) {
        self.change(|s| s.authority.policy.interval = interval);
    }

    /// Whether refreshes from now on rotate the refresh token.
    pub fn set_rotate_refresh_tokens(&self, rotate: bool) {
        self.change(|s| s.authority.policy.rotate_refresh_tokens = rotate);
    }

    /// The next `count` device-code polls are told to slow down, however
    /// well timed, each in the dialect's way (`slow_down`, Trakt's 429), and
    /// each adds 5 s to its code's interval. Not violations. generic-v1,
    /// which never says `slow_down`, throttles instead (429, interval kept).
    pub fn slow_down_next_polls(&self, count: usize) {
        self.change(|s| s.authority.force_slow_downs(count));
    }

    /// Expired device codes are answered "pending" (in the dialect's way)
    /// instead of `expired_token`, as by a server that never says so: a
    /// poll after `expires_in` has passed is then a violation, so a client
    /// must stop on its own deadline.
    pub fn set_silent_expiry(&self, silent: bool) {
        self.change(|s| s.authority.set_silent_expiry(silent));
    }

    /// The next `count` requests to `endpoint` get `fault` instead of their
    /// answer (after faults injected earlier for that endpoint).
    pub fn inject(&self, endpoint: Endpoint, fault: Fault, count: usize) {
        self.change(|s| s.faults.add(endpoint, fault, count));
    }

    /// Forgets every fault not yet used.
    pub fn clear_faults(&self) {
        self.change(|s| s.faults.clear());
    }

    /// While `true`, every request is answered 503 (an outage).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.change(|s| s.unavailable = unavailable);
    }

    // ---- what happened ----------------------------------------------------

    /// Every request so far, in the order their answers were decided.
    #[must_use]
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().records.clone()
    }

    /// A live feed of every later request (for logs).
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<RecordedRequest> {
        self.shared.subscribe()
    }

    /// Every device code issued so far, oldest first.
    #[must_use]
    pub fn device_codes(&self) -> Vec<IssuedCode> {
        self.shared.lock().authority.codes(self.now())
    }

    /// Protocol violations the client committed so far, each naming its
    /// request: too-fast polls, replayed refresh tokens, bad client
    /// authentication, malformed requests, polling after a final answer.
    #[must_use]
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    /// Checks that the client committed no violation.
    ///
    /// # Panics
    /// When it did, listing every violation.
    #[track_caller]
    pub fn assert_no_violations(&self) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "the client broke the protocol:\n  {}",
            violations.join("\n  ")
        );
    }

    /// How many refresh requests reached the token endpoint (any answer).
    #[must_use]
    pub fn refresh_count(&self) -> usize {
        self.shared
            .lock()
            .records
            .iter()
            .filter(|r| r.is_refresh())
            .count()
    }

    /// Arrival times of every device-code poll.
    #[must_use]
    pub fn poll_times(&self) -> Vec<Instant> {
        let state = self.shared.lock();
        state
            .records
            .iter()
            .filter(|r| r.is_poll())
            .map(|r| r.at)
            .collect()
    }

    /// The most token-endpoint requests that were ever in flight at once.
    #[must_use]
    pub fn max_concurrent_token_requests(&self) -> usize {
        self.shared.token_peak()
    }

    /// Whether a resource server would accept `token` now: issued here, not
    /// expired, its login not revoked.
    #[must_use]
    pub fn is_valid_access_token(&self, token: &str) -> bool {
        let state = self.shared.lock();
        matches!(
            state.authority.check_access(token, self.now()),
            TokenCheck::Valid { .. }
        )
    }

    /// Waits until `done` holds for the requests so far, and returns them.
    /// Wakes on every new request; `done` runs without any lock held, so it
    /// may call the emulator.
    ///
    /// # Panics
    /// After [`WAIT_TIMEOUT`], with every request and violation listed.
    #[track_caller]
    pub fn wait_for<F>(&self, mut done: F) -> impl Future<Output = Vec<RecordedRequest>>
    where
        F: FnMut(&[RecordedRequest]) -> bool,
    {
        let caller = Location::caller();
        async move {
            self.wait_until(caller, "the awaited requests", || {
                let records = self.requests();
                done(&records).then_some(records)
            })
            .await
        }
    }

    /// Waits for a device code waiting for the person, and returns the most
    /// recent one.
    ///
    /// # Panics
    /// After [`WAIT_TIMEOUT`].
    #[track_caller]
    pub fn wait_for_device_code(&self) -> impl Future<Output = IssuedCode> {
        let caller = Location::caller();
        async move {
            self.wait_until(caller, "a pending device code", || {
                self.device_codes()
                    .into_iter()
                    .rev()
                    .find(|c| c.status == CodeStatus::Pending)
            })
            .await
        }
    }

    async fn wait_until<T>(
        &self,
        caller: &Location<'_>,
        what: &str,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let mut changes = self.shared.watch();
        let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
        loop {
            // Mark seen before checking, so a change right after the check wakes us.
            changes.borrow_and_update();
            if let Some(found) = check() {
                return found;
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                let requests: Vec<String> =
                    self.requests().iter().map(ToString::to_string).collect();
                panic!(
                    "tokend emulator: no {what} within {} s (waiting at {caller}).\nrequests:\n  {}\nviolations:\n  {}",
                    WAIT_TIMEOUT.as_secs(),
                    requests.join("\n  "),
                    self.violations().join("\n  ")
                );
            }
        }
    }
}

fn parse(url: &str) -> Url {
    Url::parse(url).unwrap_or_else(|e| panic!("the emulator built an invalid URL {url}: {e}"))
}
