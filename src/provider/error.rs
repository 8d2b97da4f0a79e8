//! Failures talking to a provider, and how to treat each.

use std::time::Duration;

use super::redaction::redact;
use crate::secret::Secret;

/// How a provider failure should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Retrying later may work (network, 5xx, 408, 429, garbage answers).
    Transient,
    /// The provider refused for a reason retrying will not fix soon
    /// (invalid client, bad scope); the session itself may still be fine.
    Permanent,
    /// The grant is gone (`invalid_grant`): a new login is needed.
    GrantRevoked,
    /// A refusal that at times means the grant is gone and at times not
    /// (Trakt's bare 400): a refusal while the session's access token still
    /// works, the end of the session once it has expired.
    PerhapsRevoked,
}

/// A failure talking to a provider. Messages never contain tokens or secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer: DNS, connect, TLS, timeout or a connection cut mid-answer.
    #[error("could not reach {endpoint}: {reason}")]
    Unreachable {
        /// The endpoint URL.
        endpoint: String,
        /// What failed.
        reason: String,
    },
    /// The request was sent and no answer began within `http_timeout`.
    /// Kept apart from [`Self::Unreachable`]: the provider was reached and
    /// may have done what was asked (rotated the refresh token sent) in an
    /// answer that never came, which a refusal after it is said to follow.
    #[error(
        "sent the request to {endpoint}: no complete answer within {waited_secs} s{}",
        listening_suffix(*.listening)
    )]
    Unanswered {
        /// The endpoint URL.
        endpoint: String,
        /// How long tokend waited (`http_timeout`).
        waited_secs: u64,
        /// Whether tokend still waits for the answer on the open
        /// connection (a refresh's late answer: see `session::refresh`).
        listening: bool,
    },
    /// A refresh not sent: the refreshes already out at its token endpoint
    /// hold every permit (`max_concurrent_refreshes`) and none of them has
    /// been answered for `waited_secs` (a provider that hangs). Sending
    /// more would only add requests the provider may act on later, each
    /// rotating a refresh token in an answer nobody reads.
    #[error(
        "not sent to {endpoint}: the {in_flight} refreshes already sent there have had no answer for {waited_secs} s, and no more are sent until one comes"
    )]
    Stalled {
        /// The token endpoint (or the issuer it is discovered from).
        endpoint: String,
        /// The refreshes out at the endpoint.
        in_flight: usize,
        /// How long none of them has been answered.
        waited_secs: u64,
    },
    /// An answer whose status arrived and whose body was cut off (the
    /// connection closed, or `http_timeout` passed, mid-body). Kept apart
    /// from [`Self::Unreachable`]: a cut-off success (2xx) means the
    /// provider did what was asked (spent a device code, perhaps rotated
    /// a refresh token) and its tokens are lost, which a later refusal
    /// must be read with.
    #[error("{endpoint} answered HTTP {status}, but the answer was cut off: {reason}")]
    CutOff {
        /// The endpoint URL.
        endpoint: String,
        /// The answer's HTTP status.
        status: u16,
        /// What cut it off.
        reason: String,
    },
    /// A temporary failure answer (5xx, 408, 429).
    #[error(
        "{endpoint} is unavailable (HTTP {status}){}{}",
        detail_suffix(.detail.as_deref()),
        retry_after_suffix(*.retry_after)
    )]
    Unavailable {
        /// The endpoint URL.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// The provider's explanation, if any.
        detail: Option<String>,
        /// How long the provider asked to be left alone (`Retry-After`):
        /// no retry comes sooner.
        retry_after: Option<Duration>,
    },
    /// The grant behind the refresh token is gone, or the provider wants
    /// the person to sign in again before it issues more tokens.
    #[error("{}{}", grant_gone(.error), detail_suffix(.detail.as_deref()))]
    GrantRevoked {
        /// The OAuth error code (`invalid_grant`, ...).
        error: String,
        /// The provider's explanation, if any.
        detail: Option<String>,
    },
    /// An OAuth error answer that retrying will not fix.
    #[error("{endpoint} refused the request: {error} (HTTP {status}){}", detail_suffix(.detail.as_deref()))]
    Rejected {
        /// The endpoint URL.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// The OAuth error code, or a summary when there was none.
        error: String,
        /// The provider's explanation, if any.
        detail: Option<String>,
    },
    /// A refresh refused with no reason given, which the provider also
    /// answers for a refresh token it no longer takes (Trakt's bare 400):
    /// see [`FailureClass::PerhapsRevoked`].
    #[error("{endpoint} refused the request: {error} (HTTP {status}){}", detail_suffix(.detail.as_deref()))]
    RefusedPerhapsRevoked {
        /// The endpoint URL.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// A summary of the answer.
        error: String,
        /// What it may mean.
        detail: Option<String>,
    },
    /// A success answer whose access token cannot be used (missing,
    /// empty, with a control character inside) beside a new refresh
    /// token that can. The provider issued that refresh token, and one
    /// that rotates them retired the token sent: refusing the whole answer
    /// lost the session (its retry presented the retired token and was
    /// told `invalid_grant`). The refresh token is kept; the refresh
    /// failed all the same and is retried with it.
    #[error("{endpoint} sent an invalid answer: {problem}, beside a new refresh token")]
    AccessTokenUnusable {
        /// The endpoint URL.
        endpoint: String,
        /// What is wrong with the access token.
        problem: String,
        /// The new refresh token the answer carried.
        refresh_token: Secret,
    },
    /// An answer that makes no sense (not JSON, missing fields, absurd values, too large).
    #[error("{endpoint} sent an invalid answer: {problem}")]
    Malformed {
        /// The endpoint URL.
        endpoint: String,
        /// What is wrong with it.
        problem: String,
        /// The answer's HTTP status, when it was read to the end and is
        /// the provider's own (not empty, not a web page): a success
        /// (2xx) means the provider may have done what was asked (rotated
        /// the refresh token sent) in an answer that is lost.
        status: Option<u16>,
    },
    /// A device authorization answer that is the provider's own (read,
    /// not a portal's page) but lacks a field RFC 8628 §3.2 requires
    /// (`device_code`, `user_code`, `expires_in`): asking again brings the
    /// same answer, so it is no passing failure ("retry later") but a
    /// login that cannot be done with this provider as configured.
    #[error(
        "{endpoint} sent a device authorization answer with {problem}, a field RFC 8628 §3.2 requires; asking again brings the same answer: check the provider's `dialect` and endpoints in the config"
    )]
    IncompleteDeviceAnswer {
        /// The endpoint URL.
        endpoint: String,
        /// The field missing, in words: "no `expires_in`", "an empty
        /// `user_code`".
        problem: String,
    },
    /// OpenID discovery failed.
    #[error("OpenID discovery at {issuer} failed: {problem}")]
    Discovery {
        /// The issuer URL.
        issuer: String,
        /// What went wrong.
        problem: String,
    },
}

/// OpenID Connect's codes (Core §3.1.2.6) for "the person must sign in
/// (again)", which Microsoft Entra answers a refresh with when a policy
/// changed (MFA now required: `interaction_required`, AADSTS50076; new
/// consent: `consent_required`). No refresh will do: a new login is needed,
/// and said as such, not retried for ever as a refusal.
pub(crate) const SIGN_IN_AGAIN: &[&str] =
    &["interaction_required", "consent_required", "login_required"];

/// Why a grant is gone, in words: a provider that wants a new sign-in
/// (a policy that now asks for MFA or consent) has not revoked anything.
fn grant_gone(error: &str) -> String {
    if SIGN_IN_AGAIN.contains(&error) {
        format!("the provider wants the person to sign in again ({error})")
    } else {
        format!("the provider revoked the session ({error})")
    }
}

fn listening_suffix(listening: bool) -> &'static str {
    if listening {
        "; tokend keeps the connection open for a late answer, and sends no other refresh until it comes or gives up"
    } else {
        ""
    }
}

fn detail_suffix(detail: Option<&str>) -> String {
    detail.map(|d| format!(": {d}")).unwrap_or_default()
}

/// The longest `Retry-After` heeded. A provider asking for more is asked
/// again after this: its sessions' tokens may expire meanwhile, and an
/// hour is long enough for any rate limit tokend could have tripped.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `; it asks to be retried in N s` for a `Retry-After`, else nothing. A
/// wait at the cap was asked as that or longer: said so, not as if the
/// provider had asked for an hour exactly.
fn retry_after_suffix(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|wait| {
            if wait >= MAX_RETRY_AFTER {
                format!(
                    "; it asks to be retried in {} s or more (tokend waits an hour at most)",
                    wait.as_secs()
                )
            } else {
                format!("; it asks to be retried in {} s", wait.as_secs())
            }
        })
        .unwrap_or_default()
}

impl ProviderError {
    /// The wait the provider asked for (`Retry-After`), if it did.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether this is an HTTP 429 ("too many requests"): a rate limit,
    /// which a poll meets as if told to poll slower.
    #[must_use]
    pub fn is_too_many_requests(&self) -> bool {
        matches!(self, Self::Unavailable { status: 429, .. })
    }

    /// This failure with every occurrence of `secrets` in its text (as
    /// sent, and percent-encoded as a form body carries them) replaced by
    /// `[redacted]`. Providers may echo a request in their error text (a
    /// debugging proxy, a framework's default error page), and that text
    /// reaches logs, `status` and the callers of `token`.
    #[must_use]
    pub fn without_secrets<S: AsRef<str>>(mut self, secrets: &[S]) -> Self {
        let texts: Vec<&mut String> = match &mut self {
            Self::Unreachable { endpoint, reason }
            | Self::CutOff {
                endpoint, reason, ..
            } => {
                vec![endpoint, reason]
            }
            Self::Unanswered { endpoint, .. } | Self::Stalled { endpoint, .. } => vec![endpoint],
            Self::Unavailable {
                endpoint, detail, ..
            } => std::iter::once(endpoint).chain(detail.as_mut()).collect(),
            Self::GrantRevoked { error, detail } => {
                std::iter::once(error).chain(detail.as_mut()).collect()
            }
            Self::Rejected {
                endpoint,
                error,
                detail,
                ..
            }
            | Self::RefusedPerhapsRevoked {
                endpoint,
                error,
                detail,
                ..
            } => [endpoint, error]
                .into_iter()
                .chain(detail.as_mut())
                .collect(),
            Self::Malformed {
                endpoint, problem, ..
            }
            | Self::IncompleteDeviceAnswer { endpoint, problem }
            | Self::AccessTokenUnusable {
                endpoint, problem, ..
            } => vec![endpoint, problem],
            Self::Discovery { issuer, problem } => vec![issuer, problem],
        };
        for text in texts {
            redact(text, secrets);
        }
        self
    }

    /// The new refresh token of a success answer whose access token could
    /// not be used ([`Self::AccessTokenUnusable`]): to be kept.
    #[must_use]
    pub fn kept_refresh_token(&self) -> Option<&Secret> {
        match self {
            Self::AccessTokenUnusable { refresh_token, .. } => Some(refresh_token),
            _ => None,
        }
    }

    /// Whether this is a success answer (2xx) that was cut off: the
    /// provider did what was asked, and its tokens are lost.
    #[must_use]
    pub fn is_lost_success(&self) -> bool {
        matches!(self, Self::CutOff { status, .. } if (200..300).contains(status))
    }

    /// Whether the request was sent and no answer came in time
    /// ([`Self::Unanswered`]): the provider may have rotated the refresh
    /// token sent in an answer that is lost.
    #[must_use]
    pub fn is_unanswered(&self) -> bool {
        matches!(self, Self::Unanswered { .. })
    }

    /// [`Self::is_lost_success`], or a success answer that could not be
    /// read (compressed though tokend asks for none, JSON with bytes after
    /// it, a form labelled as text): the provider may have rotated the
    /// refresh token sent, in an answer that is lost all the same.
    #[must_use]
    pub fn is_unusable_success(&self) -> bool {
        self.is_lost_success()
            || matches!(self, Self::Malformed { status: Some(status), .. } if (200..300).contains(status))
    }

    /// How to treat this failure.
    #[must_use]
    pub fn class(&self) -> FailureClass {
        match self {
            // A captive portal's HTML page or a proxy's garbage is as
            // temporary as an outage: retry rather than give up the session.
            Self::Unreachable { .. }
            | Self::Unanswered { .. }
            | Self::Stalled { .. }
            | Self::CutOff { .. }
            | Self::Unavailable { .. }
            | Self::Malformed { .. }
            | Self::AccessTokenUnusable { .. }
            | Self::Discovery { .. } => FailureClass::Transient,
            Self::Rejected { .. } | Self::IncompleteDeviceAnswer { .. } => FailureClass::Permanent,
            Self::GrantRevoked { .. } => FailureClass::GrantRevoked,
            Self::RefusedPerhapsRevoked { .. } => FailureClass::PerhapsRevoked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Retry-After` at the cap (asked as an hour or longer) is said as
    /// that, not as an hour exactly; a shorter one as asked.
    #[test]
    fn a_wait_at_the_cap_is_said_as_one_or_more() {
        let unavailable = |secs| ProviderError::Unavailable {
            endpoint: "https://idp.example/token".into(),
            status: 429,
            detail: None,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            unavailable(3600).to_string(),
            "https://idp.example/token is unavailable (HTTP 429); it asks to be retried in \
             3600 s or more (tokend waits an hour at most)"
        );
        assert_eq!(
            unavailable(600).to_string(),
            "https://idp.example/token is unavailable (HTTP 429); it asks to be retried in 600 s"
        );
    }

    /// The start of a secret a provider cut itself with `...`, as with
    /// tokend's own `…`, comes out; `...` after other words stays.
    #[test]
    fn a_secret_the_provider_cut_short_is_redacted() {
        let e = ProviderError::Rejected {
            endpoint: "https://idp.example/token".into(),
            status: 400,
            error: "invalid_grant".into(),
            detail: Some("refresh token rt_abc123def... not accepted; try again...".into()),
        };
        let text = e.without_secrets(&["rt_abc123def456ghi"]).to_string();
        assert!(
            text.ends_with("refresh token [redacted]... not accepted; try again..."),
            "{text}"
        );
    }

    /// Secrets echoed in a failure's text, as sent or percent-encoded,
    /// come out; values shorter than 4 characters and other text stay, and
    /// one of exactly 4 comes out too (it was shown when only longer ones
    /// were taken out).
    #[test]
    fn echoed_secrets_are_redacted() {
        let e = ProviderError::Rejected {
            endpoint: "https://idp.example/token".into(),
            status: 400,
            error: "invalid_request".into(),
            detail: Some(
                "bad body refresh_token=rt%2Fsecret&client_secret=cs-secret&pin=w7Qz, id abc"
                    .into(),
            ),
        };
        let text = e
            .without_secrets(&["rt/secret", "cs-secret", "w7Qz", "abc"])
            .to_string();
        assert_eq!(
            text,
            "https://idp.example/token refused the request: invalid_request (HTTP 400): \
             bad body refresh_token=[redacted]&client_secret=[redacted]&pin=[redacted], id abc"
        );
    }

    /// A provider's text is capped where it is read, before the secrets
    /// are known: a long refresh token it echoed near the cap is cut
    /// inside, and the part before the cut comes out too.
    #[test]
    fn a_secret_cut_off_by_the_cap_is_redacted_too() {
        let refresh_token = format!("eyJ{}", "x".repeat(700));
        let echoed = format!("{} refresh_token={refresh_token}", "y".repeat(250));
        let e = ProviderError::Rejected {
            endpoint: "https://idp.example/token".into(),
            status: 400,
            error: "invalid_request".into(),
            detail: Some(super::super::answer_fields::clean_detail(&echoed)),
        };
        let text = e.without_secrets(&[refresh_token.as_str()]).to_string();
        assert!(!text.contains("eyJxxxx"), "{text}");
        assert!(text.ends_with("refresh_token=[redacted]…"), "{text}");
        // Text that merely ends like a secret's first letters, shorter
        // than 4, stays.
        let mut short = "a reply: ey…".to_owned();
        redact(&mut short, &[refresh_token.as_str()]);
        assert_eq!(short, "a reply: ey…");
    }
}
