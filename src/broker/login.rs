//! The device login (RFC 8628): one at a time per provider, joined by
//! every caller who asks while it runs.
//!
//! The login runs in its own task and publishes its progress on a `watch`
//! channel: `Starting`, then `Prompt` (the code to show), then `Finished`.
//! A caller that disconnects does not stop it; another caller can join it
//! and see the same prompt. Logout and shutdown (from its very start, see
//! `Broker::end_logins`) cancel its wait for the person; tokens that have
//! arrived are saved regardless.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::error::BrokerError;
use super::report::DevicePrompt;

/// Poll interval when the provider does not give one (RFC 8628 §3.2).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// What `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// Cap on the extra wait after network failures while polling.
pub(crate) const MAX_POLL_BACKOFF: Duration = Duration::from_secs(60);

/// How long before a device code expires the last poll a backed-off wait
/// is cut short for goes out: room for its round trip.
pub(crate) const LAST_POLL_MARGIN: Duration = Duration::from_secs(2);

/// How long after a device code expires a poll sent before it may still
/// be answered. Longer, and the login's end waits on a provider that does
/// not answer (up to `http_timeout`, which may be minutes): `tokenctl
/// login` waits a minute past the code's expiry for the verdict, then
/// says it does not know how the login ended.
pub(crate) const POLL_PAST_EXPIRY: Duration = Duration::from_secs(15);

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
    /// When the code expires, on [`Clock::since_boot`]'s clock: a wall
    /// clock set mid-login changes nothing of its life, nor of the time
    /// left a late joiner is told.
    ///
    /// [`Clock::since_boot`]: crate::broker::clock::Clock::since_boot
    pub dies_at: Duration,
    /// Why the last poll failed, while polls fail (the provider down, an
    /// answer that cannot be read): shown live, so a person who approved
    /// does not wait out the code believing the login is fine.
    pub poll_trouble: Option<String>,
}

impl PendingPrompt {
    /// The prompt with the time left when `Clock::since_boot` reads
    /// `since_boot` (whole seconds).
    #[must_use]
    pub fn to_prompt(&self, since_boot: Duration) -> DevicePrompt {
        DevicePrompt {
            user_code: self.user_code.clone(),
            verification_uri: self.verification_uri.clone(),
            verification_uri_complete: self.verification_uri_complete.clone(),
            expires_in: Duration::from_secs(self.dies_at.saturating_sub(since_boot).as_secs()),
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
    /// Approved: the tokens have come and are being installed, stored
    /// first (a store that hangs makes this last up to its timeout).
    Approved,
    /// Over: tokens obtained, or why not.
    Finished(Result<(), BrokerError>),
}

/// What a caller following a login learns next: see [`LoginWatch::next`].
#[derive(Debug, Clone)]
pub enum LoginChange {
    /// The polls began to fail (why), or answer again (`None`).
    PollTrouble(Option<String>),
    /// The login is over: tokens obtained, or why not.
    Finished(Result<(), BrokerError>),
}

/// The session's handle on its current (or last) login.
#[derive(Debug)]
pub(crate) struct LoginHandle {
    progress: watch::Receiver<LoginProgress>,
    cancel: LoginCancel,
}

/// How a login is stopped before it ends, and why (for the message its
/// callers get).
#[derive(Debug, Clone)]
pub(crate) struct LoginCancel {
    token: CancellationToken,
    why: Arc<std::sync::OnceLock<&'static str>>,
    /// [`WAITING`], then [`CANCELLED`] or [`SETTLED`], whichever comes
    /// first: a cancel that comes once the tokens have arrived is too late.
    outcome: Arc<AtomicU8>,
}

/// How long a stop waits for the answer to a login's poll under way (see
/// [`LoginCancel::poll_cut`]): a provider answers a poll in well under a
/// second, and the stop's whole grace is 20 s.
pub(crate) const POLL_AT_STOP: Duration = Duration::from_secs(5);

/// The login waits for the person.
const WAITING: u8 = 0;
/// A cancel came first.
const CANCELLED: u8 = 1;
/// The tokens came first: they are installed whatever follows.
const SETTLED: u8 = 2;

impl LoginCancel {
    /// A cancel that also fires with `token` (logins ending at shutdown).
    pub(crate) fn new(token: CancellationToken) -> Self {
        Self {
            token,
            why: Arc::default(),
            outcome: Arc::new(AtomicU8::new(WAITING)),
        }
    }

    /// Stops the login, `why` saying what stopped it ("logout"). Whether
    /// it is stopped: not once its tokens have arrived ([`Self::settle`]),
    /// which are then installed (a logout runs after them).
    pub(crate) fn cancel(&self, why: &'static str) -> bool {
        match self
            .outcome
            .compare_exchange(WAITING, CANCELLED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => {
                let _ = self.why.set(why);
                self.token.cancel();
                true
            }
            Err(outcome) => outcome == CANCELLED,
        }
    }

    /// The login's tokens have arrived: whether they are to be installed,
    /// that is whether no cancel came first (it may have come after the
    /// provider's answer and before this).
    pub(crate) fn settle(&self) -> bool {
        self.outcome
            .compare_exchange(WAITING, SETTLED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Resolves once the login is stopped.
    pub(crate) async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    /// Whether the login is stopped now.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when a poll under way is to be cut short, saying whether
    /// it was at the daemon's stop: at once when the login is stopped by
    /// [`Self::cancel`] (a logout, a reload, `login --cancel`: its tokens
    /// could not be installed anyway); [`POLL_AT_STOP`] after the daemon
    /// began to stop, whose wait its answer may be worth (the tokens of a
    /// login the person approved: the provider spent the code on them),
    /// while a provider that does not answer does not hold the stop.
    pub(crate) async fn poll_cut(&self) -> bool {
        self.token.cancelled().await;
        if self.outcome.load(Ordering::SeqCst) == CANCELLED {
            return false;
        }
        tokio::time::sleep(POLL_AT_STOP).await;
        true
    }

    /// Why it was stopped, when [`Self::cancel`] said.
    pub(crate) fn reason(&self) -> Option<&'static str> {
        self.why.get().copied()
    }
}

impl LoginHandle {
    /// A handle on a login that is starting, with the sender its task
    /// publishes progress on; `cancel` stops it.
    pub(crate) fn starting(cancel: LoginCancel) -> (Self, watch::Sender<LoginProgress>) {
        let (tx, rx) = watch::channel(LoginProgress::Starting);
        (
            Self {
                progress: rx,
                cancel,
            },
            tx,
        )
    }

    /// A caller's view of this login.
    pub(crate) fn watch(&self, provider: &str, clock: Arc<dyn Clock>) -> LoginWatch {
        LoginWatch {
            provider: provider.to_owned(),
            progress: self.progress.clone(),
            clock,
            trouble_told: None,
        }
    }

    /// Whether the login has ended (a new one may start).
    pub(crate) fn is_finished(&self) -> bool {
        matches!(*self.progress.borrow(), LoginProgress::Finished(_))
    }

    /// Stops the login (see [`LoginCancel::cancel`]), `why` saying what
    /// stopped it; or, when its tokens have arrived, waits for its end:
    /// they are installed first. Whether it was stopped. Waited for before
    /// the caller (a logout, a reload's retirement) asks for the session's
    /// persist lock: it could take that lock between the login's settling
    /// and its install, and the install then undid the logout, or went to
    /// a retired session.
    pub(crate) async fn cancel_or_await_install(&self, why: &'static str) -> bool {
        if self.cancel(why) {
            return true;
        }
        self.finished().await;
        false
    }

    /// Resolves once the login has ended (or its task is gone).
    pub(crate) async fn finished(&self) {
        let mut progress = self.progress.clone();
        let _ = progress
            .wait_for(|p| matches!(p, LoginProgress::Finished(_)))
            .await;
    }

    /// The user code, while the login waits for the person.
    pub(crate) fn pending_code(&self) -> Option<String> {
        match &*self.progress.borrow() {
            LoginProgress::Prompt(p) => Some(p.user_code.clone()),
            _ => None,
        }
    }

    /// The prompt for `status`, while the login waits for the person
    /// (`since_boot`: see [`PendingPrompt::to_prompt`]).
    pub(crate) fn prompt_for_status(&self, since_boot: Duration) -> Option<DevicePrompt> {
        match &*self.progress.borrow() {
            LoginProgress::Prompt(p) => Some(p.to_prompt(since_boot)),
            _ => None,
        }
    }

    /// While the approved login's tokens are being installed (stored
    /// first): the login's progress, to wait for its end on. A request for
    /// a token meanwhile waits for them, rather than being told to enter a
    /// code already approved.
    pub(crate) fn installing_tokens(&self) -> Option<watch::Receiver<LoginProgress>> {
        matches!(&*self.progress.borrow(), LoginProgress::Approved).then(|| self.progress.clone())
    }

    /// Whether the login is still asking the provider for its code (its
    /// first request, which may take up to `http_timeout`).
    pub(crate) fn is_asking_for_a_code(&self) -> bool {
        matches!(&*self.progress.borrow(), LoginProgress::Starting)
    }

    /// Why the login's polls fail, while they do.
    pub(crate) fn poll_trouble(&self) -> Option<String> {
        match &*self.progress.borrow() {
            LoginProgress::Prompt(p) => p.poll_trouble.clone(),
            _ => None,
        }
    }

    /// Stops the login; `why` is what its callers are told stopped it.
    /// Whether it is stopped (see [`LoginCancel::cancel`]).
    pub(crate) fn cancel(&self, why: &'static str) -> bool {
        self.cancel.cancel(why)
    }
}

/// A caller's view of a login: wait for its prompt, then for its outcome.
#[derive(Debug)]
pub struct LoginWatch {
    provider: String,
    progress: watch::Receiver<LoginProgress>,
    clock: Arc<dyn Clock>,
    /// The poll trouble [`Self::next`] last told of.
    trouble_told: Option<String>,
}

impl LoginWatch {
    /// The provider logging in.
    #[must_use]
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Waits for the prompt to show the person: `None` when the login
    /// was approved before this caller could be shown it (it joined while
    /// the approved login's tokens were being saved, which takes as long
    /// as the store does); [`Self::next`] then says how it ends.
    ///
    /// # Errors
    /// The login ended before a prompt existed (provider unreachable, bad
    /// client id, ...), or, when joining late, has already ended.
    pub async fn prompt(&mut self) -> Result<Option<DevicePrompt>, BrokerError> {
        let progress = self
            .progress
            .wait_for(|p| !matches!(p, LoginProgress::Starting))
            .await
            .map(|p| p.clone())
            .map_err(|_| BrokerError::ShuttingDown)?;
        match progress {
            LoginProgress::Prompt(p) => Ok(Some(p.to_prompt(self.clock.since_boot()))),
            LoginProgress::Finished(Err(e)) => Err(e),
            // A joiner that came after the approval was told the login
            // "finished before its prompt could be shown", exit 8, as a
            // failure, while it was logging in. (`Starting` was waited
            // past.)
            LoginProgress::Approved | LoginProgress::Finished(Ok(())) | LoginProgress::Starting => {
                Ok(None)
            }
        }
    }

    /// Waits for the login's next change a caller is told of: its polls
    /// failing or answering again, or its end. A caller joining while
    /// polls fail is told so at once.
    pub async fn next(&mut self) -> LoginChange {
        loop {
            {
                let progress = self.progress.borrow_and_update();
                match &*progress {
                    LoginProgress::Finished(result) => {
                        return LoginChange::Finished(result.clone());
                    }
                    LoginProgress::Prompt(prompt) if prompt.poll_trouble != self.trouble_told => {
                        self.trouble_told.clone_from(&prompt.poll_trouble);
                        return LoginChange::PollTrouble(prompt.poll_trouble.clone());
                    }
                    LoginProgress::Prompt(_)
                    | LoginProgress::Starting
                    | LoginProgress::Approved => {}
                }
            }
            if self.progress.changed().await.is_err() {
                return LoginChange::Finished(Err(BrokerError::ShuttingDown));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A cancel that comes once the tokens have arrived is too late, and
    /// says so; one that comes first wins over tokens that arrive after it
    /// (the person was told the login is cancelled).
    #[test]
    fn a_cancel_and_the_tokens_settle_the_login_once() {
        let tokens_first = LoginCancel::new(CancellationToken::new());
        assert!(tokens_first.settle());
        assert!(!tokens_first.cancel("asked to cancel it"));
        assert_eq!(tokens_first.reason(), None);

        let cancel_first = LoginCancel::new(CancellationToken::new());
        assert!(cancel_first.cancel("asked to cancel it"));
        assert!(!cancel_first.settle());
        assert_eq!(cancel_first.reason(), Some("asked to cancel it"));
        // A logout after the cancel finds it cancelled already.
        assert!(cancel_first.cancel("logout"));
        assert_eq!(cancel_first.reason(), Some("asked to cancel it"));
    }
}
