//! `token`: an access token, and a word to the person when it is slow.
//!
//! A token is answered from memory in well under a millisecond, but a
//! request may wait for a refresh at a slow provider, or for a keyring
//! that asks to be unlocked, up to the client's timeout. Someone at a
//! terminal should learn why nothing happens: [`Client::notice_slow_tokens`]
//! has the client say so once, after a delay, and go on waiting.

use std::time::{Duration, Instant};

use super::{Client, ClientError, parse_answer};
use crate::protocol::{Request, TokenAnswer};
use crate::secret::Secret;

/// Told that a token of `provider` has not come after `waited`, and that
/// the client gives up after `gives_up_after` in all.
pub type SlowTokenNotice = fn(provider: &str, waited: Duration, gives_up_after: Duration);

impl Client {
    /// A valid access token for `provider` with at least `min_valid` seconds
    /// of life (the daemon's default, 60, when `None`).
    ///
    /// # Errors
    /// [`ClientError::Daemon`] with `login_required`, `unknown_provider`, ...
    /// when the daemon has none to give; transport errors otherwise.
    pub fn token(
        &mut self,
        provider: &str,
        min_valid: Option<u64>,
    ) -> Result<TokenAnswer, ClientError> {
        self.call_for_token(&Request::Token {
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
        self.call_for_token(&Request::Token {
            provider: provider.to_owned(),
            min_valid: None,
            refused: Some(Secret::from(refused)),
        })
    }

    /// Has `notice` called once when a token's answer has not come `after`
    /// the request (and the timeout is longer): the wait goes on.
    pub fn notice_slow_tokens(&mut self, after: Duration, notice: SlowTokenNotice) {
        self.slow_token_notice = Some((after, notice));
    }

    /// Sends a `token` request and reads its answer, with the notice of
    /// [`Self::notice_slow_tokens`] when one is set.
    fn call_for_token(&mut self, request: &Request) -> Result<TokenAnswer, ClientError> {
        self.send(request)?;
        let sent = Instant::now();
        if let (Some((after, notice)), Request::Token { provider, .. }) =
            (self.slow_token_notice, request)
            && after < self.timeout
        {
            if let Some(line) = self.next_line(after)? {
                return parse_answer(&line);
            }
            notice(provider, after, self.timeout);
        }
        self.answer_since(sent)
    }
}
