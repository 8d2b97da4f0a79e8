//! Reading RFC 6749 / RFC 8628 answers, tolerantly.
//!
//! Shared by every dialect: token answers, error answers, device
//! authorization answers, and the classification of failures into
//! transient, permanent and revoked. What differs between dialects is data,
//! an [`AnswerFormat`]: which error bodies they send and how they give a
//! token's expiry.
//!
//! Tolerance is deliberate and listed in `shared/dialects.md` §0: form-encoded
//! answers (GitHub without `Accept`), numbers sent as strings (Azure AD v1),
//! `verification_url` for `verification_uri` (Google, Trakt), errors with
//! HTTP 200 (GitHub) or 403/428 (Google), `message` (Microsoft).

use std::time::{Duration, SystemTime};

use super::error::SIGN_IN_AGAIN;
use super::{Expiry, HttpResponse, PollOutcome, ProviderError, TokenGrant, datetime, token_text};
use crate::secret::Secret;

pub use super::answer_fields::{
    AnswerFields, MAX_DEVICE_CODE_LIFETIME, MAX_POLL_INTERVAL, MAX_TOKEN_LIFETIME, Rounding,
    clean_detail,
};
pub use super::oauth_errors::{ErrorReader, OAuthError, describe_body};
pub use device::{device_authorization, device_authorization_fields};

mod device;

/// How a token answer gives the access token's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryField {
    /// `expires_in`, seconds from now (RFC 6749 §5.1).
    ExpiresIn,
    /// `expires_in` counted from `created_at` (epoch seconds of issue),
    /// measured against the answer's `Date` (Trakt).
    ExpiresInSinceCreated,
    /// An absolute date-time in the named field (Twilio), measured against
    /// the answer's `Date`; `expires_in` when the field is absent or null.
    ExpiresAt(&'static str),
}

/// The facts of a dialect's answers.
#[derive(Debug, Clone, Copy)]
pub struct AnswerFormat {
    /// Reads error bodies in the dialect's own shape, besides RFC 6749's
    /// `{"error": ...}`, which every dialect understands.
    pub own_errors: Option<ErrorReader>,
    /// How the expiry is given.
    pub expiry: ExpiryField,
    /// The device-code lifetime assumed when the answer gives none
    /// (Twilio's fields are all nullable); `None` makes `expires_in` required.
    pub default_device_lifetime: Option<Duration>,
    /// The access-token lifetime a token answer without `expires_in` has,
    /// when the provider documents one (Oracle: 3600 s); `None` takes such
    /// a token as of unknown expiry (RFC 6749 §5.1 leaves it unsaid).
    pub default_token_lifetime: Option<Duration>,
}

impl AnswerFormat {
    /// RFC 6749 and RFC 8628.
    pub const STANDARD: Self = Self {
        own_errors: None,
        expiry: ExpiryField::ExpiresIn,
        default_device_lifetime: None,
        default_token_lifetime: None,
    };

    /// The error in `fields`: RFC 6749's shape first, then the dialect's own.
    #[must_use]
    pub fn read_error(&self, fields: &AnswerFields) -> Option<OAuthError> {
        OAuthError::from_fields(fields).or_else(|| self.own_errors.and_then(|read| read(fields)))
    }

    /// Whether `response`'s body holds an error [`Self::read_error`] reads
    /// (for dialects that read a status differently when no error code
    /// says what it means).
    #[must_use]
    pub fn has_error(&self, response: &HttpResponse) -> bool {
        AnswerFields::parse(response)
            .as_ref()
            .and_then(|fields| self.read_error(fields))
            .is_some()
    }
}

fn endpoint(response: &HttpResponse) -> String {
    response.url.as_str().to_owned()
}

fn malformed(response: &HttpResponse, problem: String) -> ProviderError {
    ProviderError::Malformed {
        endpoint: endpoint(response),
        problem,
        // A web page or nothing in a success's place is a portal's or a
        // proxy's, which spent nothing at the provider.
        status: (!crate::provider::oauth_errors::is_empty_or_a_page(response))
            .then_some(response.status),
    }
}

fn is_success(response: &HttpResponse) -> bool {
    (200..300).contains(&response.status)
}

/// How an answer that redirects (tokend follows none) is said: the start
/// of a [`ProviderError::Malformed`]'s problem, which a device login reads
/// to end at once, as a config error, rather than as "retry later".
pub const UNEXPECTED_REDIRECT: &str = "unexpected redirect";

/// Whether an HTTP status means "try again later".
#[must_use]
pub fn is_transient_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// The error for a failed answer with no token in it: classified by OAuth
/// error code first (`invalid_grant` means the grant is gone whatever the
/// status), then by status.
#[must_use]
pub fn failure_from_answer(
    format: &AnswerFormat,
    response: &HttpResponse,
    fields: Option<&AnswerFields>,
) -> ProviderError {
    let oauth = fields.and_then(|f| format.read_error(f));
    if let Some(oauth) = &oauth
        && oauth.error == "invalid_grant"
    {
        return ProviderError::GrantRevoked {
            error: oauth.error.clone(),
            detail: oauth.description.clone(),
        };
    }
    // Text some servers put in error bodies without an OAuth code (DRF's
    // `detail`, a bare `message`).
    let loose_text = || {
        fields
            .and_then(|f| f.text(&["error_description", "message", "detail"]))
            .map(|t| clean_detail(&t))
            .filter(|t| !t.is_empty())
    };
    let status = response.status;
    // RFC 6749's codes for "try again later", which some token endpoints
    // (Microsoft's) send with 400 rather than a 5xx status, and Google's
    // quota answer, sent with 403.
    let transient_code = oauth.as_ref().is_some_and(|o| {
        matches!(
            o.error.as_str(),
            "temporarily_unavailable" | "server_error" | "rate_limit_exceeded"
        )
    });
    if is_transient_status(status) || transient_code {
        let detail = match &oauth {
            Some(o) => Some(
                o.description
                    .clone()
                    .map_or_else(|| o.error.clone(), |d| format!("{}: {d}", o.error)),
            ),
            None => loose_text()
                .or_else(|| Some(describe_body(response)).filter(|d| d != "an empty body")),
        };
        return ProviderError::Unavailable {
            endpoint: endpoint(response),
            status,
            detail,
            retry_after: response.retry_after,
        };
    }
    if (300..400).contains(&status) {
        return malformed(
            response,
            format!(
                "{UNEXPECTED_REDIRECT} (HTTP {status}) to {}; check the endpoint URL in the config",
                response
                    .location
                    .as_deref()
                    .map_or_else(|| "nowhere".to_owned(), clean_detail)
            ),
        );
    }
    match oauth {
        Some(oauth) => ProviderError::Rejected {
            endpoint: endpoint(response),
            status,
            detail: oauth.detail(),
            error: oauth.error,
        },
        None if is_success(response) => malformed(
            response,
            format!("expected a token answer, got {}", describe_body(response)),
        ),
        None => ProviderError::Rejected {
            endpoint: endpoint(response),
            status,
            // No OAuth code: the status's own name says what there is.
            error: reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("an unexpected status")
                .to_owned(),
            detail: loose_text().or_else(|| Some(describe_body(response))),
        },
    }
}

/// The token type tokend hands out for one a provider sent (or a stored
/// session kept): RFC 6749 §5.1 makes the type case-insensitive, and
/// Bearer is written as RFC 6750 writes it (Trakt and GitHub send
/// "bearer"), so a client that builds its header from the type, or
/// compares it, sees one spelling whatever the provider; none or an empty
/// one is Bearer; another type is passed on as sent.
#[must_use]
pub fn token_type_handed_out(sent: Option<String>) -> String {
    sent.filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("bearer"))
        .unwrap_or_else(|| "Bearer".to_owned())
}

/// Reads a successful token answer (RFC 6749 §5.1).
///
/// # Errors
/// [`ProviderError::Malformed`] when `access_token` is missing or empty,
/// a token is not one a client could use (see [`token_text`]), or the
/// expiry is unbelievable.
pub fn token_grant(
    format: &AnswerFormat,
    response: &HttpResponse,
    fields: &AnswerFields,
) -> Result<TokenGrant, ProviderError> {
    let refresh_token = fields
        .text(&["refresh_token"])
        .filter(|t| !t.trim().is_empty())
        .map(|t| token_text::usable_token("refresh_token", &t))
        .transpose()
        .map_err(|problem| malformed(response, problem))?;
    let access_token = fields
        .text(&["access_token"])
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("{} in the token answer", fields.why_no_text("access_token")))
        .and_then(|token| token_text::usable_token("access_token", &token));
    let access_token = match (access_token, refresh_token.as_ref()) {
        (Ok(token), _) => token,
        // The provider issued a new refresh token (and a rotating one
        // retired the old): kept, whatever is wrong with the access token.
        (Err(problem), Some(kept)) => {
            return Err(ProviderError::AccessTokenUnusable {
                endpoint: endpoint(response),
                problem,
                refresh_token: Secret::new(kept.clone()),
            });
        }
        (Err(problem), None) => return Err(malformed(response, problem)),
    };
    // One that cannot be a type (garbage, a proxy's echo of the request)
    // is taken as Bearer, the type of every provider tokend speaks to:
    // refusing the answer would lose the refresh token a rotating
    // provider has already retired.
    let token_type =
        token_text::usable_token_type(&token_type_handed_out(fields.text(&["token_type"])))
            .unwrap_or_else(|_| token_type_handed_out(None));
    let refresh_token_sent = refresh_token.is_some();
    let (expiry, expiry_problem) = match expiry(format, response, fields) {
        Ok(expiry) => (expiry, None),
        // An answer with a new refresh token is kept whatever its expiry
        // says: a rotating provider has already retired the old refresh
        // token, and refusing the answer would lose the session. The
        // access token is then taken as of unknown expiry (refreshed on
        // demand); the problem is logged once the request's secrets are
        // taken out of it (it may quote the provider's words).
        Err(problem) if refresh_token_sent => (Expiry::Unknown, Some(problem)),
        Err(problem) => return Err(malformed(response, problem)),
    };
    Ok(TokenGrant {
        access_token: Secret::new(access_token),
        token_type,
        expiry,
        refresh_token: refresh_token.map(Secret::new),
        scope: fields
            .text(&["scope"])
            .and_then(|s| token_text::cleaned_scope(&s)),
        refresh_expires_in: refresh_lifetime(response, fields),
        expiry_problem,
    })
}

/// How long the new refresh token lives, when the answer says:
/// `refresh_token_expires_in` (GitHub), `refresh_expires_in` (Keycloak: its
/// SSO session's idle or maximum time; 0 for an offline token, which has
/// none), or `refresh_token_expires_at`, a date-time (Twilio), measured
/// against the answer's `Date` when it has one. Advisory: an unreadable or
/// unbelievable value is no reason to refuse the tokens, so it counts as
/// unsaid.
fn refresh_lifetime(response: &HttpResponse, fields: &AnswerFields) -> Option<Duration> {
    for name in ["refresh_token_expires_in", "refresh_expires_in"] {
        if let Ok(Some(lifetime)) = fields.seconds(name, MAX_REFRESH_TOKEN_LIFETIME, Rounding::Down)
            && !lifetime.is_zero()
        {
            return Some(lifetime);
        }
    }
    let at = datetime::parse(&fields.text(&["refresh_token_expires_at"])?)?;
    let from = response.date.unwrap_or_else(SystemTime::now);
    at.duration_since(from)
        .ok()
        .filter(|left| !left.is_zero() && *left <= MAX_REFRESH_TOKEN_LIFETIME)
}

/// The longest refresh-token lifetime believed: ten years.
const MAX_REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// The access token's expiry as `format` says the answer gives it.
fn expiry(
    format: &AnswerFormat,
    response: &HttpResponse,
    fields: &AnswerFields,
) -> Result<Expiry, String> {
    let relative = || {
        match fields.seconds("expires_in", MAX_TOKEN_LIFETIME, Rounding::Down)? {
        Some(d) if d.is_zero() => Err("`expires_in` is under a second (0 or a fraction): the token would expire as it arrives".to_owned()),
        Some(d) => Ok(Expiry::In(d)),
        None => Ok(format.default_token_lifetime.map_or(Expiry::Unknown, Expiry::In)),
    }
    };
    match format.expiry {
        ExpiryField::ExpiresIn => relative(),
        ExpiryField::ExpiresInSinceCreated => {
            let Expiry::In(lifetime) = relative()? else {
                return Ok(Expiry::Unknown);
            };
            // created_at is informational: unreadable or from the future
            // (a skewed server) means "issued just now".
            let created = fields
                // Down: an earlier issue only shortens the life counted.
                .seconds(
                    "created_at",
                    Duration::from_secs(u64::MAX / 4),
                    Rounding::Down,
                )
                .ok()
                .flatten()
                .map(|since| SystemTime::UNIX_EPOCH + since);
            let age = match (created, response.date) {
                (Some(created), Some(date)) => date.duration_since(created).unwrap_or_default(),
                _ => Duration::ZERO,
            };
            // The Date header has whole seconds: a second of age is noise.
            let age = age.saturating_sub(Duration::from_secs(1));
            lifetime
                .checked_sub(age)
                .filter(|left| !left.is_zero())
                .map(Expiry::In)
                .ok_or_else(|| {
                    format!(
                        "the token had expired when it arrived (`created_at` {} s before the answer, `expires_in` {} s)",
                        age.as_secs(),
                        lifetime.as_secs()
                    )
                })
        }
        ExpiryField::ExpiresAt(name) => {
            let Some(text) = fields.text(&[name]) else {
                return relative();
            };
            let at = datetime::parse(&text)
                .ok_or_else(|| format!("`{name}` is not a date-time: {}", clean_detail(&text)))?;
            let Some(date) = response.date else {
                // No provider clock to measure against: take it as written.
                return Ok(Expiry::At(at));
            };
            match at.duration_since(date) {
                Ok(left) if left > MAX_TOKEN_LIFETIME => Err(format!(
                    "`{name}` {} is beyond the believable maximum of {} s away",
                    clean_detail(&text),
                    MAX_TOKEN_LIFETIME.as_secs()
                )),
                Ok(left) if !left.is_zero() => Ok(Expiry::In(left)),
                _ => Err(format!(
                    "`{name}` {} is not after the answer's own date",
                    clean_detail(&text)
                )),
            }
        }
    }
}

/// Error codes that, in a refresh answer, mean what `invalid_grant` means:
/// the grant is gone and a new login is needed (GitHub says
/// `bad_refresh_token`; some servers `expired_token`), and those of
/// [`SIGN_IN_AGAIN`](super::error::SIGN_IN_AGAIN).
const GRANT_GONE: &[&str] = &["expired_token", "bad_refresh_token"];

/// Reads a refresh answer: a token answer on success, a classified error
/// otherwise. `expired_token`, `bad_refresh_token` and the codes of
/// `SIGN_IN_AGAIN` (`interaction_required`, `consent_required`, `login_required`) are read like `invalid_grant`: the grant is gone.
///
/// # Errors
/// See [`failure_from_answer`] and [`token_grant`].
pub fn refresh_answer(
    format: &AnswerFormat,
    response: &HttpResponse,
) -> Result<TokenGrant, ProviderError> {
    let fields = AnswerFields::parse(response);
    let error = fields.as_ref().and_then(|f| format.read_error(f));
    match (&fields, error) {
        (Some(f), None) if is_success(response) => token_grant(format, response, f),
        (_, Some(e))
            if GRANT_GONE.contains(&e.error.as_str())
                || SIGN_IN_AGAIN.contains(&e.error.as_str()) =>
        {
            Err(ProviderError::GrantRevoked {
                error: e.error,
                detail: e.description,
            })
        }
        _ => Err(failure_from_answer(format, response, fields.as_ref())),
    }
}

/// Reads a poll answer: the OAuth error code decides (whatever the status,
/// since GitHub sends errors with 200 and Google sends `authorization_pending`
/// with 428), then the status.
#[must_use]
pub fn poll_answer(format: &AnswerFormat, response: &HttpResponse) -> PollOutcome {
    let fields = AnswerFields::parse(response);
    if let Some(oauth) = fields.as_ref().and_then(|f| format.read_error(f)) {
        let message = oauth
            .description
            .clone()
            .unwrap_or_else(|| oauth.error.clone());
        return match oauth.error.as_str() {
            "authorization_pending" => PollOutcome::Pending,
            "slow_down" => PollOutcome::SlowDown {
                interval: oauth.interval,
                retry_after: response.retry_after,
            },
            "access_denied" | "authorization_declined" => PollOutcome::Denied { message },
            // `code_expired`: Microsoft's older endpoints (ADAL's AADSTS70020).
            "expired_token" | "code_expired" => PollOutcome::Expired { message },
            _ => PollOutcome::Failed(failure_from_answer(format, response, fields.as_ref())),
        };
    }
    match &fields {
        Some(f) if is_success(response) => match token_grant(format, response, f) {
            Ok(grant) => PollOutcome::Granted(grant),
            Err(e) => PollOutcome::Failed(e),
        },
        _ => PollOutcome::Failed(failure_from_answer(format, response, fields.as_ref())),
    }
}

#[cfg(test)]
#[path = "../oauth_tests/mod.rs"]
mod tests;
