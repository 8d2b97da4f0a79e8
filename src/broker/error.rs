//! Errors of the broker core, the one place their wording lives.

use crate::provider::ProviderError;
use crate::store::StoreError;

/// Why the broker could not do what was asked. Every message names the
/// provider and, where one exists, the next step for the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// No provider of that name is configured.
    // The name is the caller's, shown back to it: escaped, so that a
    // newline or a terminal's escape sequence in it stays text.
    #[error("no provider named `{}` is configured{}", .provider.escape_debug(), known_suffix(.known, *.unlisted))]
    UnknownProvider {
        /// The name asked for.
        provider: String,
        /// The first names that exist (of the ones the caller may see), at
        /// most eight: a daemon with 10,000 providers does not name them all
        /// in one error.
        known: Vec<String>,
        /// How many more exist beyond `known`.
        unlisted: usize,
    },
    /// The provider a request was waiting on (a token behind a refresh, a
    /// login starting) was removed from the config by a reload meanwhile:
    /// said so, as "not configured" alone read as the caller's typo.
    #[error(
        "provider `{}`: a reload removed it from the config while this request waited for it",
        .provider.escape_debug()
    )]
    RemovedByReload {
        /// The provider.
        provider: String,
    },
    /// The caller may use this provider but not manage it (log in or out).
    /// A caller with no role at all gets [`Self::UnknownProvider`] instead.
    #[error(
        "provider `{provider}`: uid {uid} may use it but not log in or out (see manage_users/manage_groups in the config)"
    )]
    AccessDenied {
        /// The provider.
        provider: String,
        /// The caller.
        uid: u32,
    },
    /// There is no usable session.
    #[error("provider `{provider}`: login required{} — {}", login_reason(.reason.as_deref(), .pending_code.as_deref()), login_advice(provider, *.may_log_in))]
    LoginRequired {
        /// The provider.
        provider: String,
        /// Why the session is gone, when it existed.
        reason: Option<String>,
        /// The user code of the device login under way: for callers who
        /// may log in only, since whoever approves it binds the provider
        /// to their account (`for_caller_without_login` drops it).
        pending_code: Option<String>,
        /// Whether the caller may log in itself (the advice differs).
        may_log_in: bool,
    },
    /// A temporary provider failure; the token is not valid long enough to serve meanwhile.
    #[error("provider `{provider}` is unavailable: {source}")]
    ProviderUnavailable {
        /// The provider.
        provider: String,
        /// The failure.
        source: ProviderError,
    },
    /// The provider refused for a reason retrying will not fix.
    #[error("provider `{provider}` refused: {source}")]
    ProviderRejected {
        /// The provider.
        provider: String,
        /// The failure.
        source: ProviderError,
    },
    /// The device login ended without tokens.
    #[error("provider `{provider}`: login {reason}")]
    LoginFailed {
        /// The provider.
        provider: String,
        /// What ended it ("was denied: ...", "expired before it was approved", ...).
        reason: String,
    },
    /// The provider's tokens live shorter than the caller wants.
    #[error("{}", too_short_text(.provider, *.lifetime_secs, *.left_secs, *.min_valid_secs))]
    TokenTooShort {
        /// The provider.
        provider: String,
        /// Lifetime of the freshest token.
        lifetime_secs: u64,
        /// What is left of it.
        left_secs: u64,
        /// What was asked for.
        min_valid_secs: u64,
    },
    /// A request argument is unusable.
    #[error("{message}")]
    InvalidArgument {
        /// What is wrong.
        message: String,
    },
    /// The secret store failed where the broker could not carry on without it.
    #[error("provider `{provider}`: {source}")]
    Store {
        /// The provider.
        provider: String,
        /// The failure.
        source: StoreError,
    },
    /// A logout whose record the store could not delete: the session is
    /// logged out in tokend all the same, and the record is deleted when
    /// the store works again (its status says why it is still there).
    #[error(
        "provider `{provider}`: logged out in tokend, but its record could not be deleted \
         ({source}); {}",
        not_deleted_advice(source, *remembered)
    )]
    RecordNotDeleted {
        /// The provider.
        provider: String,
        /// The failure.
        source: StoreError,
        /// Whether the logout is noted outside the record, so that the
        /// next start deletes the record rather than restore the session
        /// (`Store::remembers_logout`); set by the session's driver, which
        /// asks the store once the write and its note are done.
        remembered: bool,
    },
    /// A login that would ask the provider for another device code too
    /// soon after the last ones (see `login_pace`).
    #[error(
        "provider `{provider}`: {started} logins were started in the last minute; the next may \
         start in {wait_secs} s (tokend paces them: a provider that limits how often its \
         clients ask for codes may lock this one out, for every user)"
    )]
    LoginsTooFrequent {
        /// The provider.
        provider: String,
        /// Logins started within the window.
        started: usize,
        /// How long until the next may start (whole seconds, at least 1).
        wait_secs: u64,
    },
    /// The daemon is stopping.
    #[error("tokend is shutting down")]
    ShuttingDown,
}

/// How many provider names an unknown-provider error lists at most.
pub(crate) const KNOWN_LISTED: usize = 8;

fn known_suffix(known: &[String], unlisted: usize) -> String {
    match (known.is_empty(), unlisted) {
        (true, _) => String::new(),
        (false, 0) => format!(" (configured: {})", known.join(", ")),
        (false, more) => format!(
            " (configured: {} and {more} more; `tokenctl status` lists them)",
            known.join(", ")
        ),
    }
}

fn reason_suffix(reason: Option<&str>) -> String {
    reason.map(|r| format!(" ({r})")).unwrap_or_default()
}

/// Why a login is required: the pending login's code to enter, else why
/// the session ended.
fn login_reason(reason: Option<&str>, pending_code: Option<&str>) -> String {
    match pending_code {
        Some(code) => format!(" (a login is pending: enter code {code})"),
        None => reason_suffix(reason),
    }
}

/// What to do about it: log in, or have someone who may do it.
fn login_advice(provider: &str, may_log_in: bool) -> String {
    if may_log_in {
        format!("run `tokenctl login {provider}`")
    } else {
        format!("someone who manages it must run `tokenctl login {provider}`")
    }
}

/// Why a token is too short: the provider's lifetime when that is the
/// reason, else how old the newest token is (a refresh that waited on a
/// slow provider, or on a store showing an unlock prompt, spends some of a
/// lifetime that would otherwise do; which of them is for the log to say).
fn too_short_text(provider: &str, lifetime: u64, left: u64, min_valid: u64) -> String {
    // A lifetime of exactly what was asked is not less: a token handed out
    // now has some of it spent already.
    if lifetime >= min_valid && left < min_valid {
        let age = lifetime - left;
        format!(
            "provider `{provider}`: the newest token, issued {age} s ago, has {left} s left of \
             its {lifetime} s, less than the {min_valid} s asked for; ask for less"
        )
    } else {
        format!(
            "provider `{provider}` issues tokens valid for {lifetime} s, less than the {min_valid} s asked for"
        )
    }
}

/// What a logout whose record was not deleted leaves to happen: with the
/// logout not noted either (the disk read-only, the state directory not
/// writable), a restart restores the session, which the user who logged
/// out to cut access must know (a reboot is the usual mend of a file
/// system remounted read-only).
fn not_deleted_advice(source: &StoreError, remembered: bool) -> &'static str {
    match (remembered, source.is_store_wide()) {
        (false, _) => {
            "nor could the logout be noted for the next start: a restart before the store works \
             again restores the session, so keep tokend running until `tokenctl status` no \
             longer shows the record"
        }
        (true, true) => "it is deleted when the store works again",
        (true, false) => "it is not restored meanwhile",
    }
}

impl BrokerError {
    /// "Login required" for `provider`, for a caller who may log in.
    pub(crate) fn login_required(provider: &str, reason: Option<String>) -> Self {
        Self::LoginRequired {
            provider: provider.to_owned(),
            reason,
            pending_code: None,
            may_log_in: true,
        }
    }

    /// This error as a caller who may use the provider but not log in
    /// sees it: without a pending login's code (approving it would bind
    /// the provider to the caller's own account) and with advice it can
    /// follow. Other errors are unchanged.
    #[must_use]
    pub(crate) fn for_caller_without_login(self) -> Self {
        match self {
            Self::LoginRequired {
                provider,
                reason,
                pending_code,
                ..
            } => Self::LoginRequired {
                provider,
                reason: if pending_code.is_some() {
                    Some("a login is pending".to_owned())
                } else {
                    reason
                },
                pending_code: None,
                may_log_in: false,
            },
            other => other,
        }
    }
}

/// What kind of failure a [`BrokerError`] is, without its details: what
/// front-ends map to their error codes (the socket's `code`, D-Bus error
/// names) and what metrics count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// [`BrokerError::UnknownProvider`], [`BrokerError::RemovedByReload`].
    UnknownProvider,
    /// [`BrokerError::AccessDenied`].
    AccessDenied,
    /// [`BrokerError::LoginRequired`].
    LoginRequired,
    /// [`BrokerError::ProviderUnavailable`].
    ProviderUnavailable,
    /// [`BrokerError::ProviderRejected`].
    ProviderRejected,
    /// [`BrokerError::LoginFailed`].
    LoginFailed,
    /// [`BrokerError::TokenTooShort`].
    TokenTooShort,
    /// [`BrokerError::InvalidArgument`].
    InvalidArgument,
    /// [`BrokerError::Store`].
    Store,
    /// [`BrokerError::ShuttingDown`].
    ShuttingDown,
}

impl ErrorKind {
    /// Every kind, in the order of the enum.
    pub const ALL: [Self; 10] = [
        Self::UnknownProvider,
        Self::AccessDenied,
        Self::LoginRequired,
        Self::ProviderUnavailable,
        Self::ProviderRejected,
        Self::LoginFailed,
        Self::TokenTooShort,
        Self::InvalidArgument,
        Self::Store,
        Self::ShuttingDown,
    ];

    /// The kind's name where callers read it: the socket's error `code`
    /// and the metrics' `outcome` label. Part of the interface contract:
    /// the socket front-end's tests check its codes against these.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::UnknownProvider => "unknown_provider",
            Self::AccessDenied => "access_denied",
            Self::LoginRequired => "login_required",
            Self::ProviderUnavailable => "provider_unavailable",
            // Named for what the caller can do about it, as the contract
            // has always called it.
            Self::ProviderRejected => "provider_error",
            Self::LoginFailed => "login_failed",
            Self::TokenTooShort => "token_too_short",
            Self::InvalidArgument => "bad_request",
            // Not "internal": the store's state is no bug, and its message
            // says what to do (unlock the keyring, restore the key).
            Self::Store => "store_error",
            Self::ShuttingDown => "shutting_down",
        }
    }
}

impl BrokerError {
    /// What kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownProvider { .. } | Self::RemovedByReload { .. } => {
                ErrorKind::UnknownProvider
            }
            Self::AccessDenied { .. } => ErrorKind::AccessDenied,
            Self::LoginRequired { .. } => ErrorKind::LoginRequired,
            // "Later", as for a provider's own 429: exit 6 for tokenctl.
            Self::ProviderUnavailable { .. } | Self::LoginsTooFrequent { .. } => {
                ErrorKind::ProviderUnavailable
            }
            Self::ProviderRejected { .. } => ErrorKind::ProviderRejected,
            Self::LoginFailed { .. } => ErrorKind::LoginFailed,
            Self::TokenTooShort { .. } => ErrorKind::TokenTooShort,
            Self::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Self::Store { .. } | Self::RecordNotDeleted { .. } => ErrorKind::Store,
            Self::ShuttingDown => ErrorKind::ShuttingDown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_provider_and_the_next_step() {
        let e =
            BrokerError::login_required("trakt", Some("the provider revoked the session".into()));
        assert_eq!(
            e.to_string(),
            "provider `trakt`: login required (the provider revoked the session) — run `tokenctl login trakt`"
        );
        // A pending login's code, for those who may log in; not for others.
        let pending = BrokerError::LoginRequired {
            provider: "trakt".into(),
            reason: None,
            pending_code: Some("WDJB-MJHT".into()),
            may_log_in: true,
        };
        assert_eq!(
            pending.to_string(),
            "provider `trakt`: login required (a login is pending: enter code WDJB-MJHT) — run `tokenctl login trakt`"
        );
        let user = pending.for_caller_without_login();
        assert_eq!(
            user.to_string(),
            "provider `trakt`: login required (a login is pending) — someone who manages it must run `tokenctl login trakt`"
        );
        assert_eq!(
            e.for_caller_without_login().to_string(),
            "provider `trakt`: login required (the provider revoked the session) — someone who manages it must run `tokenctl login trakt`"
        );
        let e = BrokerError::UnknownProvider {
            provider: "gh".into(),
            known: vec!["github".into()],
            unlisted: 0,
        };
        assert_eq!(
            e.to_string(),
            "no provider named `gh` is configured (configured: github)"
        );
        let e = BrokerError::UnknownProvider {
            provider: "gh".into(),
            known: vec!["a".into(), "b".into()],
            unlisted: 9_998,
        };
        assert_eq!(
            e.to_string(),
            "no provider named `gh` is configured (configured: a, b and 9998 more; `tokenctl status` lists them)"
        );
    }

    /// "Too short" names the provider's lifetime when that is why, and
    /// what is left when a late answer spent what would have done: "valid
    /// for 3600 s, less than the 3599 s asked for" contradicted itself.
    #[test]
    fn too_short_says_why() {
        let e = |lifetime_secs, left_secs, min_valid_secs| {
            BrokerError::TokenTooShort {
                provider: "p".into(),
                lifetime_secs,
                left_secs,
                min_valid_secs,
            }
            .to_string()
        };
        assert_eq!(
            e(300, 299, 600),
            "provider `p` issues tokens valid for 300 s, less than the 600 s asked for"
        );
        assert_eq!(
            e(3600, 3585, 3599),
            "provider `p`: the newest token, issued 15 s ago, has 3585 s left of its 3600 s, less than the 3599 s asked for; ask for less"
        );
        // Asked for exactly the lifetime: "valid for 300 s, less than the
        // 300 s asked for" was false.
        assert_eq!(
            e(300, 299, 300),
            "provider `p`: the newest token, issued 1 s ago, has 299 s left of its 300 s, less than the 300 s asked for; ask for less"
        );
    }
}
