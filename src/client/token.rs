//! `token`: an access token, and a word to the person when it is slow.
//!
//! A token is answered from memory in well under a millisecond, but a
//! request may wait for a refresh at a slow provider, or for a keyring
//! that asks to be unlocked, up to the client's timeout; a `logout` may
//! wait for the keyring too (its record is deleted before the answer).
//! Someone at a terminal should learn why nothing happens:
//! [`Client::notice_slow_answers`] has the client say so once, after a
//! delay, and go on waiting.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::{Client, ClientError, parse_answer};
use crate::protocol::{CancelLoginAnswer, LogoutAnswer, Request, TokenAnswer};
use crate::secret::Secret;

/// A request whose answer is slow to come, for [`SlowAnswerNotice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowRequest<'a> {
    /// A `token` request for this provider.
    Token(&'a str),
    /// A `logout` of this provider.
    Logout(&'a str),
}

/// Told that the answer to a request has not come after `waited`, and
/// that the client gives up after `gives_up_after` in all.
pub type SlowAnswerNotice =
    fn(request: SlowRequest<'_>, waited: Duration, gives_up_after: Duration);

impl Client {
    /// A valid access token for `provider` with at least `min_valid` seconds
    /// of life; when `None`, the token the daemon would not refresh yet
    /// (which may have less than a minute left, when the provider's tokens
    /// live that briefly).
    ///
    /// # Errors
    /// [`ClientError::Daemon`] with `login_required`, `unknown_provider`, ...
    /// when the daemon has none to give; transport errors otherwise.
    pub fn token(
        &mut self,
        provider: &str,
        min_valid: Option<u64>,
    ) -> Result<TokenAnswer, ClientError> {
        self.call_noticing(&Request::Token {
            provider: provider.to_owned(),
            min_valid,
            refused: None,
        })
    }

    /// A token of `provider` other than `refused`, which was refused where
    /// it was used (see [`crate::broker::Freshness::Replacing`]).
    ///
    /// # Errors
    /// As for [`Client::token`].
    pub fn token_replacing(
        &mut self,
        provider: &str,
        refused: &str,
    ) -> Result<TokenAnswer, ClientError> {
        self.call_noticing(&Request::Token {
            provider: provider.to_owned(),
            min_valid: None,
            refused: Some(Secret::from(refused)),
        })
    }

    /// Has `notice` called once when the answer to a `token` or `logout`
    /// request has not come `after` the request (and the timeout is
    /// longer): the wait goes on.
    pub fn notice_slow_answers(&mut self, after: Duration, notice: SlowAnswerNotice) {
        self.slow_answer_notice = Some((after, notice));
    }

    /// Forgets the session of `provider`: its tokens in the daemon and its
    /// record in the store, with the notice of
    /// [`Self::notice_slow_answers`] when one is set.
    ///
    /// # Errors
    /// As for [`Client::token`].
    pub fn logout(&mut self, provider: &str) -> Result<LogoutAnswer, ClientError> {
        self.call_noticing(&Request::Logout {
            provider: provider.to_owned(),
        })
    }

    /// Cancels the device login of `provider` that waits for the person,
    /// leaving its session as it is (protocol 4).
    ///
    /// # Errors
    /// As for [`Client::token`]; a daemon of protocol 3 or older answers
    /// `bad_request`.
    pub fn cancel_login(&mut self, provider: &str) -> Result<CancelLoginAnswer, ClientError> {
        self.call(&Request::CancelLogin {
            provider: provider.to_owned(),
        })
    }

    /// Sends `request` and reads its answer, with the notice of
    /// [`Self::notice_slow_answers`] when one is set and the request is
    /// one it is for.
    fn call_noticing<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, ClientError> {
        self.send(request)?;
        let sent = Instant::now();
        let slow = match request {
            Request::Token { provider, .. } => Some(SlowRequest::Token(provider)),
            Request::Logout { provider } => Some(SlowRequest::Logout(provider)),
            _ => None,
        };
        if let (Some((after, notice)), Some(slow)) = (self.slow_answer_notice, slow)
            && after < self.timeout
        {
            if let Some(line) = self.next_line(after)? {
                return parse_answer(&line);
            }
            notice(slow, after, self.timeout);
        }
        self.answer_since(sent)
    }
}
