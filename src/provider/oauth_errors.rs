//! Error answers in every shape providers send them, read into one
//! [`OAuthError`], and provider text made fit to show.

use std::time::Duration;

use serde_json::Value;

use super::HttpResponse;
use super::oauth::{AnswerFields, MAX_POLL_INTERVAL};

/// Longest provider-supplied text kept in an error message.
const MAX_DETAIL_CHARS: usize = 300;

/// What OAuth error codes mean, for answers that give no description.
const EXPLANATIONS: &[(&str, &str)] = &[
    (
        "invalid_client",
        "the provider does not accept the client id or secret in the config",
    ),
    (
        "unauthorized_client",
        "the client may not use this grant; check the app's settings at the provider",
    ),
    ("invalid_scope", "the provider refuses the requested scopes"),
    (
        "unsupported_grant_type",
        "the provider does not offer this grant to the client",
    ),
    (
        "device_not_found",
        "the provider does not know this device code",
    ),
    (
        "bad_verification_code",
        "the provider does not know this device code",
    ),
    (
        "invalid_request",
        "the provider found the request malformed",
    ),
];

/// Twilio's error bodies carry no OAuth code (this is inferred, see
/// `shared/dialects.md` §2): the meaning is read from the message, exact
/// codes first, then plain words.
const TWILIO_MEANINGS: &[(&str, &str)] = &[
    ("authorization_pending", "authorization_pending"),
    ("slow_down", "slow_down"),
    ("access_denied", "access_denied"),
    ("expired_token", "expired_token"),
    ("invalid_grant", "invalid_grant"),
    ("invalid_client", "invalid_client"),
    ("pending", "authorization_pending"),
    ("slow down", "slow_down"),
    ("too many requests", "slow_down"),
    ("denied", "access_denied"),
    ("declined", "access_denied"),
    ("expired", "expired_token"),
];

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
    /// The RFC 6749 §5.2 error in `fields`, if there is one.
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

    /// The description, or what the code means when there is none.
    #[must_use]
    pub fn detail(&self) -> Option<String> {
        self.description.clone().or_else(|| {
            EXPLANATIONS
                .iter()
                .find(|(code, _)| *code == self.error)
                .map(|(_, text)| (*text).to_owned())
        })
    }
}

/// How a dialect's error bodies look. RFC 6749's `{"error": ...}` is
/// understood in every style; the others add a second shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorBodies {
    /// RFC 6749 §5.2 only.
    Rfc6749,
    /// Also Twilio's `{"code": 20001, "message": ..., "more_info": ...,
    /// "status": 400}`.
    Twilio,
    /// Also Django REST framework's field errors
    /// (`{"device_type": ["This field is required."]}`).
    Drf,
}

impl ErrorBodies {
    /// The error in `fields`, in any shape this style knows.
    #[must_use]
    pub fn read(self, fields: &AnswerFields) -> Option<OAuthError> {
        OAuthError::from_fields(fields).or_else(|| match self {
            Self::Rfc6749 => None,
            Self::Twilio => twilio_error(fields),
            Self::Drf => drf_field_errors(fields),
        })
    }
}

fn twilio_error(fields: &AnswerFields) -> Option<OAuthError> {
    let code = fields.map().get("code").and_then(Value::as_u64)?;
    let message = fields.text(&["message"]).unwrap_or_default();
    let lower = message.to_ascii_lowercase();
    let error = TWILIO_MEANINGS
        .iter()
        .find(|(needle, _)| lower.contains(needle))
        .map_or_else(|| format!("twilio_error_{code}"), |(_, e)| (*e).to_owned());
    let message = clean_detail(&message);
    Some(OAuthError {
        error,
        description: Some(if message.is_empty() {
            format!("Twilio error {code}")
        } else {
            format!("Twilio error {code}: {message}")
        }),
        interval: None,
    })
}

/// DRF answers a request that fails validation with one entry per field,
/// each a list of sentences; `non_field_errors` holds the rest.
fn drf_field_errors(fields: &AnswerFields) -> Option<OAuthError> {
    let map = fields.map();
    if map.is_empty() {
        return None;
    }
    let mut problems = Vec::with_capacity(map.len());
    for (name, value) in map {
        let Value::Array(items) = value else {
            return None;
        };
        let sentences: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
        if sentences.len() != items.len() || sentences.is_empty() {
            return None;
        }
        let sentences = sentences.join(" ");
        problems.push(if name == "non_field_errors" {
            sentences
        } else {
            format!("`{name}`: {sentences}")
        });
    }
    Some(OAuthError {
        error: "invalid_request".to_owned(),
        description: Some(clean_detail(&problems.join("; "))),
        interval: None,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> AnswerFields {
        let Value::Object(map) = serde_json::from_str(json).unwrap() else {
            panic!("not an object")
        };
        AnswerFields::from_map(map)
    }

    #[test]
    fn twilio_errors_are_read_by_their_message() {
        let read = |json| ErrorBodies::Twilio.read(&fields(json)).unwrap();
        let e = read(
            r#"{"code":20001,"message":"authorization_pending","more_info":"https://www.twilio.com/docs/errors/20001","status":400}"#,
        );
        assert_eq!(e.error, "authorization_pending");
        let e = read(r#"{"code":20001,"message":"The user denied the request","status":400}"#);
        assert_eq!(e.error, "access_denied");
        assert_eq!(
            e.description.as_deref(),
            Some("Twilio error 20001: The user denied the request")
        );
        let e = read(r#"{"code":20003,"message":"Authenticate","status":401}"#);
        assert_eq!(e.error, "twilio_error_20003");
        // The RFC shape wins when both are there.
        let e = read(r#"{"error":"slow_down","code":20429,"message":"x"}"#);
        assert_eq!(e.error, "slow_down");
        // Only Twilio's style reads Twilio's bodies.
        assert!(
            ErrorBodies::Rfc6749
                .read(&fields(r#"{"code":1,"message":"m"}"#))
                .is_none()
        );
    }

    #[test]
    fn drf_field_errors_become_one_sentence() {
        let e = ErrorBodies::Drf
            .read(&fields(
                r#"{"device_type":["This field is required."],"device_os":["This field is required.","Too long."]}"#,
            ))
            .unwrap();
        assert_eq!(e.error, "invalid_request");
        let text = e.description.unwrap();
        assert!(
            text.contains("`device_type`: This field is required.")
                && text.contains("`device_os`: This field is required. Too long."),
            "{text}"
        );
        // A token answer or a `detail` is no field error.
        assert!(
            ErrorBodies::Drf
                .read(&fields(r#"{"access_token":"a"}"#))
                .is_none()
        );
        assert!(
            ErrorBodies::Drf
                .read(&fields(r#"{"detail":"Throttled."}"#))
                .is_none()
        );
        assert!(ErrorBodies::Drf.read(&fields(r#"{"x":[]}"#)).is_none());
    }

    #[test]
    fn codes_without_description_are_explained() {
        let e = OAuthError::from_fields(&fields(r#"{"error":"device_not_found"}"#)).unwrap();
        assert_eq!(
            e.detail().as_deref(),
            Some("the provider does not know this device code")
        );
        let e = OAuthError::from_fields(&fields(r#"{"error":"weird"}"#)).unwrap();
        assert_eq!(e.detail(), None);
    }

    #[test]
    fn details_are_cleaned_and_capped() {
        let long = "x".repeat(1000);
        assert!(clean_detail(&long).chars().count() <= MAX_DETAIL_CHARS + 1);
        assert_eq!(clean_detail("a\nb\u{1b}[31m"), "a b [31m");
    }
}
