//! A login finished by a refresh: the provider answered the approved
//! code's poll with a refresh token beside an access token that cannot be
//! used (missing, empty, a control character inside).
//!
//! The code is spent on that answer, so polling on would only be told
//! `invalid_grant` until it died, and the person who approved would have
//! to start again. The refresh token is good, though: one refresh with it
//! brings the access token, as a session's refresh would.

use std::sync::Arc;

use tracing::info;

use super::Session;
use crate::broker::error::BrokerError;
use crate::provider::{ProviderError, TokenGrant};

impl Session {
    /// Finishes the login with one refresh of the refresh token that
    /// `unusable` (a poll's success answer) carried: the grant that
    /// refresh brings (with that refresh token, unless it brought a new
    /// one), and when it was sent (time since boot: dated on the wall
    /// clock when installed). A refresh that fails fails the login,
    /// naming both answers; it is not retried, as a login's end should not
    /// wait for a provider's outage (the person logs in again).
    pub(super) async fn finish_login_by_refresh(
        &self,
        unusable: ProviderError,
    ) -> Result<(TokenGrant, std::time::Duration), BrokerError> {
        let Some(refresh_token) = unusable.kept_refresh_token().cloned() else {
            return Err(self.login_failed(format!(
                "failed: a poll was answered with success, but the answer could not be used ({unusable})"
            )));
        };
        info!(provider = %self.name, event = "login_refresh", "the approved login's answer has a refresh token but no usable access token ({unusable}): one refresh with it finishes the login");
        let clock = Arc::clone(&self.shared.clock);
        let sent_since_boot = clock.since_boot();
        match self.provider.refresh(&refresh_token).await {
            Ok(mut grant) => {
                grant.refresh_token = grant.refresh_token.or(Some(refresh_token));
                Ok((grant, sent_since_boot))
            }
            Err(failure) => Err(self.login_failed(format!(
                "failed: the login was approved, but the provider's answer could not be used ({unusable}), and the refresh with the refresh token in it failed: {failure}"
            ))),
        }
    }
}
