//! The tokens of a session, and how they become a stored record and back.

use std::time::{Duration, SystemTime};

use crate::broker::clock::{from_unix_secs, unix_secs};
use crate::provider::{Expiry, TokenGrant};
use crate::secret::Secret;
use crate::store::{STORED_SESSION_VERSION, StoredSession};

/// An access token with what a caller needs to use it.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The token.
    pub secret: Secret,
    /// `Bearer`, usually.
    pub token_type: String,
    /// Expiry; `None` when the provider did not say.
    pub expires_at: Option<SystemTime>,
}

impl AccessToken {
    /// Whether the token has at least `min_valid` of life left at `now`.
    #[must_use]
    pub fn valid_for(&self, now: SystemTime, min_valid: Duration) -> bool {
        self.expires_at.is_none_or(|at| at >= now + min_valid)
    }
}

/// How fresh a token a caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// A token the daemon would not refresh yet: more life left than its
    /// refresh margin (a share of the provider's lifetime, so short-lived
    /// tokens qualify too). When the refresh that is due cannot be had, a
    /// token that is still valid will do. The default of `tokenctl token`
    /// and D-Bus `GetToken`.
    Default,
    /// At least this much life left, refreshed first when needed; an error
    /// when even a fresh token has less.
    AtLeast(Duration),
    /// A token other than the one with this fingerprint, which the caller
    /// says was refused where it was used (git's `erase`): a refresh when
    /// the current token is that one, joined by every caller that saw the
    /// same refusal; the current token when it is already another. When no
    /// refresh can be had, as [`Self::Default`].
    Replacing(TokenFingerprint),
}

/// A token's SHA-256, to compare tokens without keeping or sending one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenFingerprint([u8; 32]);

impl TokenFingerprint {
    /// The fingerprint of `token`.
    #[must_use]
    pub fn of(token: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }
}

impl std::fmt::Debug for TokenFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Even a hash of a token stays out of logs.
        f.write_str("TokenFingerprint(..)")
    }
}

impl From<Duration> for Freshness {
    fn from(min_valid: Duration) -> Self {
        Self::AtLeast(min_valid)
    }
}

/// The tokens of an established session.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub(crate) access: Option<AccessToken>,
    pub(crate) refresh: Option<Secret>,
    pub(crate) scope: Option<String>,
    /// When the current refresh token was obtained.
    pub(crate) obtained_at: SystemTime,
    /// When the current refresh token expires, when the provider said.
    pub(crate) refresh_expires_at: Option<SystemTime>,
    /// How long the provider said the access token lives, as issued (not
    /// what is left of it); unknown for a restored one.
    pub(crate) access_lifetime: Option<Duration>,
    /// Which of these times were counted on this process's clock (see
    /// [`CountedHere`]).
    pub(crate) counted_here: CountedHere,
}

/// Which times of [`Tokens`] were counted on this process's clock, a
/// reading of it plus a lifetime in seconds: those move with the wall
/// clock when it is set (see `machine::clock_step`). A time read from the
/// store, or given by the provider as a date, stays where it is: the clock
/// set right after a start (a board without a battery-backed clock)
/// makes such a time neither nearer nor farther.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CountedHere {
    /// The access token's expiry (`expires_in`).
    pub(crate) access_expiry: bool,
    /// When the refresh token was obtained.
    pub(crate) obtained: bool,
    /// The refresh token's expiry (`refresh_token_expires_in`).
    pub(crate) refresh_expiry: bool,
}

impl Tokens {
    /// Tokens from a grant whose request was sent at `sent_at`. A refresh
    /// answer without a refresh token keeps the previous one (RFC 6749 §6).
    pub(crate) fn from_grant(
        grant: TokenGrant,
        sent_at: SystemTime,
        previous: Option<&Tokens>,
    ) -> Self {
        let expires_at = match grant.expiry {
            // Counted from when the request left, not when the answer came:
            // errs on the side of refreshing early.
            Expiry::In(lifetime) => Some(sent_at + lifetime),
            Expiry::At(at) => Some(at),
            Expiry::Unknown => None,
        };
        // Replaced, not sent back unchanged: an echoed refresh token is the
        // one held, with the expiry and the time it was obtained.
        let rotated = match (
            &grant.refresh_token,
            previous.and_then(|p| p.refresh.as_ref()),
        ) {
            (Some(new), Some(old)) => new.expose() != old.expose(),
            (Some(_), None) => true,
            (None, _) => false,
        };
        let access_lifetime = expires_at.and_then(|at| at.duration_since(sent_at).ok());
        let kept = |counted: fn(&CountedHere) -> bool| match previous {
            Some(p) if !rotated => counted(&p.counted_here),
            _ => false,
        };
        let counted_here = CountedHere {
            access_expiry: matches!(grant.expiry, Expiry::In(_)),
            obtained: previous.is_none() || rotated || kept(|c| c.obtained),
            refresh_expiry: if grant.refresh_expires_in.is_some() {
                true
            } else {
                kept(|c| c.refresh_expiry)
            },
        };
        Self {
            counted_here,
            access_lifetime,
            access: Some(AccessToken {
                secret: grant.access_token,
                token_type: grant.token_type,
                expires_at,
            }),
            refresh: grant
                .refresh_token
                .or_else(|| previous.and_then(|p| p.refresh.clone())),
            scope: grant
                .scope
                .or_else(|| previous.and_then(|p| p.scope.clone())),
            obtained_at: match previous {
                Some(p) if !rotated => p.obtained_at,
                _ => sent_at,
            },
            // A kept refresh token keeps its expiry unless the answer says.
            refresh_expires_at: grant
                .refresh_expires_in
                .map(|lifetime| sent_at + lifetime)
                .or(match previous {
                    Some(p) if !rotated => p.refresh_expires_at,
                    _ => None,
                }),
        }
    }

    /// What the store keeps of these tokens: the refresh token and the
    /// last access token; the access token alone when the provider issued
    /// no refresh token (it is then all a restart could get back). `None`
    /// when there is nothing worth keeping.
    pub(crate) fn to_record(&self, identity: &str) -> Option<StoredSession> {
        if self.refresh.is_none() && self.access.is_none() {
            return None;
        }
        Some(StoredSession {
            version: STORED_SESSION_VERSION,
            identity: identity.to_owned(),
            refresh_token: self.refresh.clone(),
            obtained_at: unix_secs(self.obtained_at),
            scope: self.scope.clone(),
            access_token: self.access.as_ref().map(|a| a.secret.clone()),
            token_type: self.access.as_ref().map(|a| a.token_type.clone()),
            expires_at: self
                .access
                .as_ref()
                .and_then(|a| a.expires_at)
                .map(unix_secs),
            refresh_expires_at: self.refresh_expires_at.map(unix_secs),
            ended: None,
        })
    }

    pub(crate) fn from_record(record: StoredSession) -> Self {
        // An access token of unknown expiry is restored only when it is all
        // there is (no refresh token): it may have died while the daemon
        // was down, and where a refresh can tell, it does. Without one, a
        // caller that finds it dead says so (`refused`).
        let restorable = record.expires_at.is_some() || record.refresh_token.is_none();
        let access = record
            .access_token
            .filter(|_| restorable)
            // One an older tokend kept with a control character in it
            // (see `provider::token_text`) is not handed out: refreshed.
            .filter(|secret| !secret.expose().chars().any(char::is_control))
            .map(|secret| AccessToken {
                secret,
                // A record saved before tokend wrote "Bearer" so.
                token_type: crate::provider::oauth::token_type_handed_out(record.token_type),
                expires_at: record.expires_at.map(from_unix_secs),
            });
        Self {
            access,
            refresh: record.refresh_token,
            scope: record
                .scope
                .and_then(|s| crate::provider::token_text::cleaned_scope(&s)),
            obtained_at: from_unix_secs(record.obtained_at),
            refresh_expires_at: record.refresh_expires_at.map(from_unix_secs),
            access_lifetime: None,
            counted_here: CountedHere::default(),
        }
    }
}

impl Tokens {
    /// What is left of the access token's life at `now`: nothing when it
    /// expired, when its expiry is unknown, or when there is none.
    pub(crate) fn access_left(&self, now: SystemTime) -> Duration {
        self.access
            .as_ref()
            .and_then(|a| a.expires_at)
            .and_then(|at| at.duration_since(now).ok())
            .unwrap_or_default()
    }

    /// When the access token expires, in Unix seconds, for events and logs.
    pub(crate) fn expires_at_unix(&self) -> Option<i64> {
        self.access
            .as_ref()
            .and_then(|a| a.expires_at)
            .map(unix_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record saved with a provider's "bearer" (before tokend wrote it
    /// "Bearer") hands out "Bearer" once restored, as a fresh grant would:
    /// a GitHub OAuth app's token, which never expires, is never granted
    /// again to be written anew.
    #[test]
    fn a_restored_bearer_is_written_as_rfc_6750_writes_it() {
        let record = StoredSession {
            version: STORED_SESSION_VERSION,
            identity: "x".into(),
            refresh_token: None,
            obtained_at: 1,
            scope: None,
            access_token: Some(Secret::from("gho_x")),
            token_type: Some("bearer".into()),
            expires_at: None,
            refresh_expires_at: None,
            ended: None,
        };
        let tokens = Tokens::from_record(record);
        assert_eq!(tokens.access.unwrap().token_type, "Bearer");
    }
}
