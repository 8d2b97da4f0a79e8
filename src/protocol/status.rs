//! The `status` answers: one provider's status ([`ProviderStatus`]), the
//! version-1 single line ([`StatusAnswer`]) and the streamed lines
//! ([`StatusEvent`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigStatus, ErrorBody, LoginPrompt, StoreStatus};

/// How long the daemon waits for a client that leaves a streamed `status`
/// unread (its reader paused: `tokenctl status | less`) before it closes
/// the connection: as long as a connection may be idle.
pub const STATUS_STREAM_PAUSE_LIMIT: Duration = Duration::from_secs(300);

/// The `last_error` of a provider whose login was approved and whose
/// tokens are being saved (`login_pending`, with no prompt), as the core
/// words it.
pub use crate::broker::LOGIN_APPROVED_SAVING;

/// One provider in a `status` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStatus {
    /// Provider name.
    pub name: String,
    /// Wire dialect (`rfc8628`, `trakt`, ...).
    pub dialect: String,
    /// Session state: `logged_out`, `login_pending`, `active`, `expired`,
    /// `login_required`, `unreadable` (the stored session could not be
    /// read; `last_error` says why).
    pub state: String,
    /// Access token expiry (Unix seconds), when there is a token with a known expiry.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// When the last successful refresh or login happened (Unix seconds).
    #[serde(default)]
    pub last_refresh: Option<i64>,
    /// When the next background refresh is due (Unix seconds).
    #[serde(default)]
    pub next_refresh: Option<i64>,
    /// The last error, cleared by the next success.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Scopes granted (or requested, before a login).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The pending device login's prompt, when a login is pending.
    #[serde(default)]
    pub login: Option<LoginPrompt>,
    /// Whether the session's tokens are in the store. `false` when the
    /// last save failed: the newest refresh token lives only in memory (a
    /// restart now would need a new login, or the provider may refuse the
    /// older stored one), `last_error` says why, and the save is retried
    /// soon and before the next refresh. Daemons before this field meant
    /// `true`.
    #[serde(default = "saved_by_default")]
    pub saved: bool,
    /// The hosts whose credentials this provider's tokens are (`hosts` in
    /// the config), for `tokenctl credential`; `[]` when none.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The user name the credential helpers send with the token (`username`, or its
    /// default); `null` only from a daemon older than this field.
    #[serde(default)]
    pub username: Option<String>,
    /// When the refresh token expires (Unix seconds), when the provider
    /// said: a new login is needed by then; `null` otherwise.
    #[serde(default)]
    pub login_needed_by: Option<i64>,
    /// How `tokenctl credential git` hands git the token (`git_auth` in
    /// the config: "auto", "basic" or "bearer"); `null` only from a daemon
    /// older than this field, which meant "basic".
    #[serde(default)]
    pub git_auth: Option<String>,
    // Every field is sent, `null` or `[]` when unset, as the older ones
    // always were: scripts (`jq '.[].hosts[]'`) can count on the keys. The
    // `#[serde(default)]`s are for reading daemons older than a field.
}

fn saved_by_default() -> bool {
    true
}

/// Answer to `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusAnswer {
    /// The providers the caller may see, by name.
    pub providers: Vec<ProviderStatus>,
}

/// One line of the streamed `status` answer (`"stream":true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StatusEvent {
    /// One provider's status; the lines come in name order. (Boxed: the
    /// other variant is small.)
    Provider(Box<ProviderStatus>),
    /// The end of the stream; the last line.
    Done {
        /// Whether every provider was sent.
        ok: bool,
        /// How many `provider` lines came before this one.
        #[serde(default)]
        count: u64,
        /// Why not, when `ok` is false (an unknown provider, ...).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorBody>,
        /// The store's state, once for the whole answer; sent when at
        /// least one provider was (a caller who may see none learns
        /// nothing of the daemon).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        store: Option<StoreStatus>,
        /// What the daemon has not taken from its config file (a refused
        /// reload, keys waiting for a restart), when anything; sent as
        /// `store` is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config: Option<ConfigStatus>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorCode;

    /// Every field is in every status, `[]` or `null` when unset: a script
    /// reading `.hosts[]` or `.login_needed_by` of a provider without them
    /// finds the key.
    #[test]
    fn unset_fields_are_sent_empty_not_left_out() {
        let bare = logged_out();
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            concat!(
                r#"{"name":"gh","dialect":"rfc8628","state":"logged_out","expires_at":null,"#,
                r#""last_refresh":null,"next_refresh":null,"last_error":null,"scopes":[],"#,
                r#""login":null,"saved":true,"hosts":[],"username":null,"login_needed_by":null,"#,
                r#""git_auth":null}"#
            )
        );
        // A daemon older than the newer fields left them out: read as unset.
        let old: ProviderStatus =
            serde_json::from_str(r#"{"name":"gh","dialect":"rfc8628","state":"logged_out"}"#)
                .unwrap();
        assert_eq!(old, bare);
    }

    /// `gh`, logged out, every optional field unset.
    fn logged_out() -> ProviderStatus {
        ProviderStatus {
            name: "gh".into(),
            dialect: "rfc8628".into(),
            state: "logged_out".into(),
            expires_at: None,
            last_refresh: None,
            next_refresh: None,
            last_error: None,
            scopes: vec![],
            login: None,
            saved: true,
            hosts: Vec::new(),
            username: None,
            login_needed_by: None,
            git_auth: None,
        }
    }

    #[test]
    fn status_events_are_tagged_lines() {
        let provider = ProviderStatus {
            state: "active".into(),
            expires_at: Some(1_790_000_000),
            ..logged_out()
        };
        let line =
            serde_json::to_string(&StatusEvent::Provider(Box::new(provider.clone()))).unwrap();
        assert!(
            line.starts_with(r#"{"event":"provider","name":"gh","dialect":"rfc8628""#),
            "{line}"
        );
        assert_eq!(
            serde_json::from_str::<StatusEvent>(&line).unwrap(),
            StatusEvent::Provider(Box::new(provider))
        );
        let done = StatusEvent::Done {
            ok: true,
            count: 10_000,
            error: None,
            store: None,
            config: None,
        };
        assert_eq!(
            serde_json::to_string(&done).unwrap(),
            r#"{"event":"done","ok":true,"count":10000}"#
        );
        let failed: StatusEvent = serde_json::from_str(
            r#"{"event":"done","ok":false,"error":{"code":"unknown_provider","message":"m"}}"#,
        )
        .unwrap();
        assert!(
            matches!(failed, StatusEvent::Done { ok: false, count: 0, error: Some(e), store: None, config: None } if e.code == ErrorCode::UnknownProvider)
        );
    }
}
