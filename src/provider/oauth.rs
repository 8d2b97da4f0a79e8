//! Reading RFC 6749 / RFC 8628 answers, tolerantly.
//!
//! Shared by every dialect that speaks (something close to) the standard:
//! token answers, OAuth error bodies, device authorization answers, and the
//! classification of failures into transient, permanent and revoked.
//! Tolerance is deliberate and listed in `shared/dialects.md` §0: form-encoded
//! answers (GitHub without `Accept`), numbers sent as strings (Azure AD v1),
//! `verification_url` for `verification_uri` (Google), errors with HTTP 200
//! (GitHub).

use std::time::Duration;

use serde_json::{Map, Value};

use super::{DeviceAuthorization, Expiry, HttpResponse, PollOutcome, ProviderError, TokenGrant};
use crate::secret::Secret;

/// The longest access-token lifetime believed; beyond it `expires_in` is
/// treated as garbage rather than trusted for years.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(400 * 24 * 3600);

/// The longest device-code lifetime believed (RFC 8628 examples use 1800 s).
pub const MAX_DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The longest poll interval believed.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(3600);

/// Longest provider-supplied text kept in an error message.
const MAX_DETAIL_CHARS: usize = 300;

/// An answer body read as a flat object: JSON, or form-encoded as GitHub
/// sends when it ignores `Accept`.
#[derive(Debug, Default)]
pub struct AnswerFields(Map<String, Value>);

impl AnswerFields {
    /// Reads the body of `response`. `None` when it is neither a JSON object
    /// nor a form-encoded body.
    #[must_use]
    pub fn parse(response: &HttpResponse) -> Option<Self> {
        let body = response.body.as_ref();
        if body.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            return Some(Self(map));
        }
        let is_form = response
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let map = url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect();
            return Some(Self(map));
        }
        None
    }

    /// Wraps an already parsed object.
    #[must_use]
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self(map)
    }

    /// A string field under the first of `names` that is present and not
    /// null. Numbers are accepted and rendered as text.
    #[must_use]
    pub fn text(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|name| match self.0.get(*name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    }

    /// Whether `name` is present with a non-null value.
    #[must_use]
    pub fn has(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| !v.is_null())
    }

    /// A whole number of seconds under `name`: a JSON number or a numeric
    /// string. `Ok(None)` when absent or null.
    ///
    /// # Errors
    /// A sentence naming the field when the value is negative, fractional,
    /// not a number, or larger than `max`.
    pub fn seconds(&self, name: &str, max: Duration) -> Result<Option<Duration>, String> {
        let value = match self.0.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(v) => v,
        };
        let secs = match value {
            Value::Number(n) => n.as_u64().or_else(|| {
                // 3600.0 is a whole number some servers send as a float.
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 1e12)
                    .map(|f| {
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let whole = f as u64; // exact: checked whole and in range above
                        whole
                    })
            }),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        let Some(secs) = secs else {
            return Err(format!(
                "`{name}` is not a whole number of seconds: {value}"
            ));
        };
        let duration = Duration::from_secs(secs);
        if duration > max {
            return Err(format!(
                "`{name}` of {secs} s is beyond the believable maximum of {} s",
                max.as_secs()
            ));
        }
        Ok(Some(duration))
    }
}

/// An OAuth error answer (`{"error": ..., "error_description": ...}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The error code.
    pub error: String,
    /// The description, cleaned for display.
    pub description: Option<String>,
    /// `interval` sent along with `slow_down` (GitHub).
    pub interval: Option<Duration>,
}

impl OAuthError {
    /// The OAuth error in `fields`, if there is one.
    #[must_use]
    pub fn from_fields(fields: &AnswerFields) -> Option<Self> {
        let error = fields.text(&["error"])?;
        if error.is_empty() {
            return None;
        }
        Some(Self {
            error: clean_detail(&error),
            description: fields
                .text(&["error_description", "message"])
                .map(|d| clean_detail(&d))
                .filter(|d| !d.is_empty()),
            interval: fields.seconds("interval", MAX_POLL_INTERVAL).ok().flatten(),
        })
    }
}

/// Provider text made safe to show: control characters removed, length capped.
#[must_use]
pub fn clean_detail(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_DETAIL_CHARS)
        .collect();
    let cleaned = cleaned.trim().to_owned();
    if text.chars().count() > MAX_DETAIL_CHARS {
        format!("{cleaned}…")
    } else {
        cleaned
    }
}

/// A short description of a body that is not what was expected, for error
/// messages ("an HTML page", "an empty body", "12 bytes of text/plain").
#[must_use]
pub fn describe_body(response: &HttpResponse) -> String {
    let body = response.body.as_ref();
    if body.iter().all(u8::is_ascii_whitespace) {
        return "an empty body".to_owned();
    }
    let ct = response
        .content_type
        .as_deref()
        .unwrap_or("no content type");
    let head = String::from_utf8_lossy(&body[..body.len().min(64)]).to_ascii_lowercase();
    if ct.starts_with("text/html")
        || head.trim_start().starts_with("<!doctype")
        || head.contains("<html")
    {
        return "an HTML page".to_owned();
    }
    format!("{} bytes of {ct}", body.len())
}

fn endpoint(response: &HttpResponse) -> String {
    response.url.as_str().to_owned()
}

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
    response: &HttpResponse,
    fields: Option<&AnswerFields>,
) -> ProviderError {
    let oauth = fields.and_then(OAuthError::from_fields);
    if let Some(oauth) = &oauth
        && oauth.error == "invalid_grant"
    {
        return ProviderError::GrantRevoked {
            error: oauth.error.clone(),
            detail: oauth.description.clone(),
        };
    }
    let status = response.status;
    if is_transient_status(status) {
        let detail = match &oauth {
            Some(o) => Some(
                o.description
                    .clone()
                    .map_or_else(|| o.error.clone(), |d| format!("{}: {d}", o.error)),
            ),
            None => Some(describe_body(response)).filter(|d| d != "an empty body"),
        };
        return ProviderError::Unavailable {
            endpoint: endpoint(response),
            status,
            detail,
        };
    }
    if (300..400).contains(&status) {
        return ProviderError::Malformed {
            endpoint: endpoint(response),
            problem: format!(
                "unexpected redirect (HTTP {status}) to {}",
                response.location.as_deref().unwrap_or("nowhere")
            ),
        };
    }
    match oauth {
        Some(oauth) => ProviderError::Rejected {
            endpoint: endpoint(response),
            status,
            error: oauth.error,
            detail: oauth.description,
        },
        None if (200..300).contains(&status) => ProviderError::Malformed {
            endpoint: endpoint(response),
            problem: format!("expected a token answer, got {}", describe_body(response)),
        },
        None => ProviderError::Rejected {
            endpoint: endpoint(response),
            status,
            error: format!("HTTP {status}"),
            detail: Some(describe_body(response)),
        },
    }
}

/// Reads a successful token answer (RFC 6749 §5.1).
///
/// # Errors
/// [`ProviderError::Malformed`] when `access_token` is missing or empty or
/// `expires_in` is unbelievable.
pub fn token_grant(
    response: &HttpResponse,
    fields: &AnswerFields,
) -> Result<TokenGrant, ProviderError> {
    let malformed = |problem: String| ProviderError::Malformed {
        endpoint: endpoint(response),
        problem,
    };
    let access_token = fields
        .text(&["access_token"])
        .filter(|t| !t.is_empty())
        .ok_or_else(|| malformed("no `access_token` in the token answer".to_owned()))?;
    let token_type = fields
        .text(&["token_type"])
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "Bearer".to_owned());
    let expiry = match fields
        .seconds("expires_in", MAX_TOKEN_LIFETIME)
        .map_err(malformed)?
    {
        Some(d) if d.is_zero() => return Err(malformed("`expires_in` is 0".to_owned())),
        Some(d) => Expiry::In(d),
        None => Expiry::Unknown,
    };
    Ok(TokenGrant {
        access_token: Secret::new(access_token),
        token_type,
        expiry,
        refresh_token: fields
            .text(&["refresh_token"])
            .filter(|t| !t.is_empty())
            .map(Secret::new),
        scope: fields.text(&["scope"]),
    })
}

/// Reads a refresh answer: a token answer on success, a classified error otherwise.
///
/// # Errors
/// See [`failure_from_answer`] and [`token_grant`].
pub fn refresh_answer(response: &HttpResponse) -> Result<TokenGrant, ProviderError> {
    let fields = AnswerFields::parse(response);
    match &fields {
        Some(f)
            if (200..300).contains(&response.status) && OAuthError::from_fields(f).is_none() =>
        {
            token_grant(response, f)
        }
        _ => Err(failure_from_answer(response, fields.as_ref())),
    }
}

/// Reads a poll answer of the standard dialect: the OAuth error code decides
/// (whatever the status, since GitHub sends errors with 200 and some servers
/// send `authorization_pending` with 403 or 428), then the status.
#[must_use]
pub fn poll_answer(response: &HttpResponse) -> PollOutcome {
    let fields = AnswerFields::parse(response);
    if let Some(oauth) = fields.as_ref().and_then(OAuthError::from_fields) {
        let message = oauth
            .description
            .clone()
            .unwrap_or_else(|| oauth.error.clone());
        return match oauth.error.as_str() {
            "authorization_pending" => PollOutcome::Pending,
            "slow_down" => PollOutcome::SlowDown {
                interval: oauth.interval,
            },
            "access_denied" | "authorization_declined" => PollOutcome::Denied { message },
            "expired_token" => PollOutcome::Expired { message },
            _ => PollOutcome::Failed(failure_from_answer(response, fields.as_ref())),
        };
    }
    match &fields {
        Some(f) if (200..300).contains(&response.status) => match token_grant(response, f) {
            Ok(grant) => PollOutcome::Granted(grant),
            Err(e) => PollOutcome::Failed(e),
        },
        _ => PollOutcome::Failed(failure_from_answer(response, fields.as_ref())),
    }
}

/// Reads a device authorization answer (RFC 8628 §3.2), tolerating
/// `verification_url` and string numbers.
///
/// # Errors
/// A classified failure, or [`ProviderError::Malformed`] when a required
/// field is missing or unbelievable.
pub fn device_authorization(response: &HttpResponse) -> Result<DeviceAuthorization, ProviderError> {
    let fields = AnswerFields::parse(response);
    let fields = match fields {
        Some(f)
            if (200..300).contains(&response.status) && OAuthError::from_fields(&f).is_none() =>
        {
            f
        }
        other => return Err(failure_from_answer(response, other.as_ref())),
    };
    device_authorization_fields(response, &fields)
}

/// Reads the fields of a successful device authorization answer.
///
/// # Errors
/// [`ProviderError::Malformed`] when a required field is missing or unbelievable.
pub fn device_authorization_fields(
    response: &HttpResponse,
    fields: &AnswerFields,
) -> Result<DeviceAuthorization, ProviderError> {
    let malformed = |problem: String| ProviderError::Malformed {
        endpoint: endpoint(response),
        problem,
    };
    let required = |name: &str| {
        fields
            .text(&[name])
            .filter(|v| !v.is_empty())
            .ok_or_else(|| malformed(format!("no `{name}` in the device authorization answer")))
    };
    let device_code = Secret::new(required("device_code")?);
    let user_code = clean_detail(&required("user_code")?);
    let expires_in = fields
        .seconds("expires_in", MAX_DEVICE_CODE_LIFETIME)
        .map_err(malformed)?
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            malformed("no usable `expires_in` in the device authorization answer".to_owned())
        })?;
    let interval = fields
        .seconds("interval", MAX_POLL_INTERVAL)
        .map_err(malformed)?;
    let non_empty = |names: &[&str]| fields.text(names).filter(|v| !v.trim().is_empty());
    Ok(DeviceAuthorization {
        device_code,
        user_code,
        verification_uri: non_empty(&["verification_uri", "verification_url"]),
        verification_uri_complete: non_empty(&[
            "verification_uri_complete",
            "verification_url_complete",
        ]),
        expires_in,
        interval: interval.filter(|d| !d.is_zero()),
        message: non_empty(&["message"]).map(|m| clean_detail(&m)),
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn answer(status: u16, content_type: &str, body: &str) -> HttpResponse {
        HttpResponse {
            url: "http://127.0.0.1/token".parse().unwrap(),
            status,
            content_type: Some(content_type.to_owned()),
            location: None,
            body: Bytes::from(body.to_owned()),
        }
    }

    fn json(status: u16, body: &str) -> HttpResponse {
        answer(status, "application/json", body)
    }

    #[test]
    fn token_answer_with_string_expiry() {
        let r = json(
            200,
            r#"{"access_token":"a","token_type":"bearer","expires_in":"3600","refresh_token":"r"}"#,
        );
        let grant = refresh_answer(&r).unwrap();
        assert_eq!(grant.access_token.expose(), "a");
        assert_eq!(grant.expiry, Expiry::In(Duration::from_secs(3600)));
        assert_eq!(grant.refresh_token.unwrap().expose(), "r");
    }

    #[test]
    fn github_form_encoded_answers_parse() {
        let r = answer(
            200,
            "application/x-www-form-urlencoded; charset=utf-8",
            "access_token=gho_x&token_type=bearer&scope=repo",
        );
        let grant = refresh_answer(&r).unwrap();
        assert_eq!(grant.access_token.expose(), "gho_x");
        assert_eq!(grant.expiry, Expiry::Unknown);
        let r = answer(
            200,
            "application/x-www-form-urlencoded",
            "error=authorization_pending",
        );
        assert!(matches!(poll_answer(&r), PollOutcome::Pending));
    }

    #[test]
    fn github_slow_down_with_200_and_interval() {
        let r = json(200, r#"{"error":"slow_down","interval":10}"#);
        match poll_answer(&r) {
            PollOutcome::SlowDown { interval } => {
                assert_eq!(interval, Some(Duration::from_secs(10)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn poll_errors_map_to_outcomes() {
        assert!(matches!(
            poll_answer(&json(400, r#"{"error":"authorization_pending"}"#)),
            PollOutcome::Pending
        ));
        assert!(matches!(
            poll_answer(&json(403, r#"{"error":"authorization_pending"}"#)),
            PollOutcome::Pending
        ));
        assert!(matches!(
            poll_answer(&json(400, r#"{"error":"access_denied"}"#)),
            PollOutcome::Denied { .. }
        ));
        assert!(matches!(
            poll_answer(&json(400, r#"{"error":"authorization_declined"}"#)),
            PollOutcome::Denied { .. }
        ));
        assert!(matches!(
            poll_answer(&json(400, r#"{"error":"expired_token"}"#)),
            PollOutcome::Expired { .. }
        ));
        match poll_answer(&json(
            401,
            r#"{"error":"invalid_client","error_description":"bad id"}"#,
        )) {
            PollOutcome::Failed(e) => {
                assert_eq!(e.class(), crate::provider::FailureClass::Permanent);
                assert!(e.to_string().contains("invalid_client"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        match poll_answer(&json(503, "")) {
            PollOutcome::Failed(e) => {
                assert_eq!(e.class(), crate::provider::FailureClass::Transient);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_grant_is_revocation_whatever_the_status() {
        for status in [400, 401] {
            let e = refresh_answer(&json(
                status,
                r#"{"error":"invalid_grant","error_description":"revoked"}"#,
            ))
            .unwrap_err();
            assert_eq!(e.class(), crate::provider::FailureClass::GrantRevoked);
        }
    }

    #[test]
    fn garbage_answers_are_named() {
        let e = refresh_answer(&answer(
            200,
            "text/html",
            "<!DOCTYPE html><html>login</html>",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("HTML page"), "{e}");
        assert_eq!(e.class(), crate::provider::FailureClass::Transient);
        let e = refresh_answer(&json(200, r#"{"token_type":"Bearer"}"#)).unwrap_err();
        assert!(e.to_string().contains("access_token"), "{e}");
        let e = refresh_answer(&json(200, r#"{"access_token":"a","expires_in":-5}"#)).unwrap_err();
        assert!(e.to_string().contains("expires_in"), "{e}");
        let e = refresh_answer(&json(
            200,
            r#"{"access_token":"a","expires_in":99999999999}"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("believable"), "{e}");
        let mut redirect = answer(302, "text/html", "");
        redirect.location = Some("http://127.0.0.1/elsewhere".into());
        let e = refresh_answer(&redirect).unwrap_err();
        assert!(e.to_string().contains("redirect"), "{e}");
    }

    #[test]
    fn device_authorization_tolerates_google_and_azure_v1() {
        let r = json(
            200,
            r#"{"device_code":"d","user_code":"U","verification_url":"https://x/device","expires_in":"1800","interval":"5"}"#,
        );
        let auth = device_authorization(&r).unwrap();
        assert_eq!(auth.verification_uri.as_deref(), Some("https://x/device"));
        assert_eq!(auth.expires_in, Duration::from_secs(1800));
        assert_eq!(auth.interval, Some(Duration::from_secs(5)));
        let r = json(
            200,
            r#"{"device_code":"d","user_code":"U","verification_uri":"","expires_in":600}"#,
        );
        assert_eq!(device_authorization(&r).unwrap().verification_uri, None);
        let e =
            device_authorization(&json(200, r#"{"user_code":"U","expires_in":600}"#)).unwrap_err();
        assert!(e.to_string().contains("device_code"), "{e}");
    }

    #[test]
    fn details_are_cleaned_and_capped() {
        let long = "x".repeat(1000);
        assert!(clean_detail(&long).chars().count() <= MAX_DETAIL_CHARS + 1);
        assert_eq!(clean_detail("a\nb\u{1b}[31m"), "a b [31m");
    }
}
