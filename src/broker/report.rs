//! What the broker reports about its sessions and its store, as plain core
//! types: typed states and `SystemTime`s, no wire encoding.
//!
//! The front-ends map these to what their callers read: the socket to the
//! JSON of [`crate::protocol`] (`ipc::socket::wire`), D-Bus to properties
//! and signal arguments (`ipc::dbus`). Keeping the wire types out of the
//! core means a change of encoding touches one front-end, and the core's
//! tests compare states, not strings.

use std::time::{Duration, SystemTime};

/// The last error `status` shows of a session whose login was approved
/// and whose tokens are being saved (`login_pending`, with no prompt): for
/// as long as the store takes, up to its timeout when it hangs.
pub const LOGIN_APPROVED_SAVING: &str =
    "the login was approved: its tokens are being saved (the store has not answered yet)";

/// Where a session stands, as `tokenctl status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionPhase {
    /// No tokens: never logged in, logged out, or not yet read from a store
    /// that is down.
    LoggedOut,
    /// A device login waits for the person.
    LoginPending,
    /// Tokens that are valid, or a refresh token that has not failed yet.
    Active,
    /// The access token expired and refreshing it is failing (retried with
    /// backoff).
    Expired,
    /// The provider ended the session: a person must log in again.
    LoginRequired,
    /// The stored session could not be read for a reason of its own (a
    /// damaged record, one sealed with another key, a file tokend's user
    /// may not read, two keyring items matching it): the last error says
    /// why and what to do. It is read again when asked for, and when the
    /// store announces a change; a login replaces it.
    Unreadable,
}

impl SessionPhase {
    /// Every phase, in the order of the enum.
    pub const ALL: [Self; 6] = [
        Self::LoggedOut,
        Self::LoginPending,
        Self::Active,
        Self::Expired,
        Self::LoginRequired,
        Self::Unreadable,
    ];

    /// The phase's name, the same on every front-end and in metrics
    /// (`logged_out`, `login_pending`, `active`, `expired`, `login_required`,
    /// `unreadable`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::LoggedOut => "logged_out",
            Self::LoginPending => "login_pending",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::LoginRequired => "login_required",
            Self::Unreadable => "unreadable",
        }
    }
}

/// What a person needs to approve a device login, as of when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePrompt {
    /// The code the person types at the verification page.
    pub user_code: String,
    /// The page where the person enters the code.
    pub verification_uri: String,
    /// A page that already carries the code, when the provider gives one.
    pub verification_uri_complete: Option<String>,
    /// Time left until the code expires (whole seconds).
    pub expires_in: Duration,
    /// A ready-made instruction sentence some providers send (Microsoft).
    pub message: Option<String>,
}

/// One provider's session as a caller may see it: a login's prompt only
/// for those who may manage the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReport {
    /// Provider name.
    pub name: String,
    /// The provider's wire dialect (`rfc8628`, `trakt`, ...).
    pub dialect: &'static str,
    /// Where the session stands.
    pub phase: SessionPhase,
    /// When the access token expires, when there is one of known expiry.
    pub expires_at: Option<SystemTime>,
    /// When the last refresh or login brought tokens.
    pub last_refresh: Option<SystemTime>,
    /// When the next background refresh is due.
    pub next_refresh: Option<SystemTime>,
    /// The last failure, for a person (never a secret); cleared by the next
    /// success.
    pub last_error: Option<String>,
    /// Scopes granted, or requested before a login.
    pub scopes: Vec<String>,
    /// The pending device login's prompt, for callers who may manage.
    pub login: Option<DevicePrompt>,
    /// Whether the tokens in memory are the ones in the store (`false`
    /// while a save is failing).
    pub saved: bool,
    /// The hosts whose credentials these tokens are (`hosts`).
    pub hosts: Vec<String>,
    /// The user name credential helpers send with the token.
    pub username: String,
    /// When the refresh token expires, when the provider said: a new
    /// login is needed by then.
    pub login_needed_by: Option<SystemTime>,
    /// How the git credential helper hands git the token (`git_auth`).
    pub git_auth: crate::config::GitAuth,
}

/// The store's state, reported once per status answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreReport {
    /// The store (`Secret Service`, `encrypted file store`, `memory store`).
    pub name: &'static str,
    /// Why and since when it cannot be used; `None` while it can.
    pub outage: Option<StoreOutage>,
}

impl StoreReport {
    /// Whether the store can be used.
    #[must_use]
    pub fn is_available(&self) -> bool {
        self.outage.is_none()
    }

    /// The state's name, the same on every front-end: `available` or
    /// `unavailable`.
    #[must_use]
    pub fn state_name(&self) -> &'static str {
        if self.is_available() {
            "available"
        } else {
            "unavailable"
        }
    }
}

/// Why the store cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOutage {
    /// What failed and what to do, for a person.
    pub reason: String,
    /// When it became unavailable.
    pub since: SystemTime,
}

#[cfg(test)]
mod tests {
    use super::SessionPhase;

    #[test]
    fn phase_names_are_distinct_snake_case() {
        let names: Vec<&str> = SessionPhase::ALL.iter().map(|p| p.name()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert!(
            names
                .iter()
                .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
    }
}
