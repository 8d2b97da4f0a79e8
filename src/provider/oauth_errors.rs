//! Error answers in RFC 6749's shape, read into one [`OAuthError`]; shapes
//! of one dialect only are read by an [`ErrorReader`] in that dialect's file.

use std::time::Duration;

use super::HttpResponse;
use super::answer_fields::{AnswerFields, MAX_POLL_INTERVAL, Rounding, clean_detail};

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
            interval: fields
                .seconds("interval", MAX_POLL_INTERVAL, Rounding::Up)
                .ok()
                .flatten(),
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

/// Reads error bodies in a dialect's own shape, for answers without RFC
/// 6749's `error` (Twilio's codes, Django REST framework's field errors).
/// The dialect's file defines it; [`super::oauth::AnswerFormat`] carries it.
pub type ErrorReader = fn(&AnswerFields) -> Option<OAuthError>;

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
    use serde_json::Value;

    use super::*;
    use crate::provider::answer_fields::MAX_DETAIL_CHARS;

    fn fields(json: &str) -> AnswerFields {
        let Value::Object(map) = serde_json::from_str(json).unwrap() else {
            panic!("not an object")
        };
        AnswerFields::from_map(map)
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
        assert_eq!(
            clean_detail("bad client\u{202E}live\u{2028}x\u{200B}y"),
            "bad client live x y"
        );
    }
}
