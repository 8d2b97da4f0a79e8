//! What the broker tells front-ends that publish changes (D-Bus signals,
//! hooks): plain data, shared by the sessions that raise the events and the
//! broker that hands them out.

use std::sync::Arc;

use super::policy::AccessPolicy;
use super::report::DevicePrompt;

/// What a [`BrokerEvent::Attention`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttentionKind {
    /// The provider ended the session: `tokenctl login NAME` again.
    LoginRequired,
    /// A refresh failed; it is retried with backoff.
    RefreshFailed,
    /// The refresh token itself expires soon: log in again before then.
    RefreshTokenExpiring,
    /// A refresh worked after failed ones (their `RefreshFailed` said):
    /// the all-clear, so that whoever was alerted hears the end too.
    RefreshRecovered,
}

impl AttentionKind {
    /// The event's name for hooks (`EVENT=`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::LoginRequired => "login_required",
            Self::RefreshFailed => "refresh_failed",
            Self::RefreshTokenExpiring => "refresh_token_expiring",
            Self::RefreshRecovered => "refresh_recovered",
        }
    }
}

/// Something that happened, for front-ends that publish changes.
/// Never carries a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerEvent {
    /// A device login has a code to show.
    LoginPrompt {
        /// Provider name.
        provider: String,
        /// The prompt.
        prompt: DevicePrompt,
    },
    /// A device login ended.
    LoginFinished {
        /// Provider name.
        provider: String,
        /// Whether tokens were obtained.
        ok: bool,
        /// What happened, for a person.
        message: String,
        /// Who may use the provider as the login ended: a reload that
        /// removes the provider ends its login, and the front-ends must
        /// still tell those who waited for it.
        policy: Arc<AccessPolicy>,
    },
    /// New tokens arrived (login or refresh).
    TokenRefreshed {
        /// Provider name.
        provider: String,
        /// New expiry (Unix seconds), when known.
        expires_at: Option<i64>,
    },
    /// A session needs a person: it must log in again, or its refresh
    /// failed (for hooks and desktop notifications).
    Attention {
        /// Provider name.
        provider: String,
        /// What happened.
        kind: AttentionKind,
        /// Why, for a person (never a secret).
        reason: String,
    },
    /// Something in the provider's status changed.
    StateChanged {
        /// Provider name.
        provider: String,
    },
    /// A config reload added, removed or rebuilt providers.
    ProvidersChanged {
        /// New providers.
        added: Vec<String>,
        /// Providers gone from the config.
        removed: Vec<String>,
        /// Providers whose config changed.
        changed: Vec<String>,
        /// The access rules of the removed and changed providers as they
        /// were before, so that a front-end can tell the peers who could
        /// see them, and no one else.
        previous_policies: Vec<(String, AccessPolicy)>,
    },
}
