//! Error answers in RFC 6749's shape, read into one [`OAuthError`]; shapes
//! of one dialect only are read by an [`ErrorReader`] in that dialect's file.

use std::time::Duration;

use super::HttpResponse;
use super::answer_fields::{
    AnswerFields, MAX_POLL_INTERVAL, Rounding, clean_detail, media_type_is, without_bom,
};

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
    ///
    /// Google's `error_code` is read as the code when there is no `error`:
    /// its device endpoint's quota answer,
    /// `{"error_code": "rate_limit_exceeded"}` with 403, read as a plain
    /// refusal, ended a login that should have waited.
    #[must_use]
    pub fn from_fields(fields: &AnswerFields) -> Option<Self> {
        let error = fields
            .text(&["error", "error_code"])
            .filter(|e| !e.is_empty())?;
        Some(Self {
            error: code_as_written_by_the_rfc(&clean_detail(&error)),
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

/// An error code as RFC 6749 writes codes, lower case, when it came all in
/// upper case (`INVALID_GRANT`): read as sent, a revoked grant was taken
/// for a refusal to retry for ever, and a pending login for a failed one.
/// A code in mixed or lower case is kept as sent.
fn code_as_written_by_the_rfc(code: &str) -> String {
    let shouted = code.chars().any(|c| c.is_ascii_uppercase())
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if shouted {
        code.to_ascii_lowercase()
    } else {
        code.to_owned()
    }
}

/// Reads error bodies in a dialect's own shape, for answers without RFC
/// 6749's `error` (Twilio's codes, Django REST framework's field errors).
/// The dialect's file defines it; [`super::oauth::AnswerFormat`] carries it.
pub type ErrorReader = fn(&AnswerFields) -> Option<OAuthError>;

/// A short description of a body that is not what was expected, for error
/// messages ("an HTML page", "an empty body", "12 bytes of text/plain"),
/// with why it cannot be read when that can be told: compressed, not
/// UTF-8, not JSON though it says it is (the parser's complaint and
/// position). Never a byte of the body itself: it may hold a secret.
#[must_use]
pub fn describe_body(response: &HttpResponse) -> String {
    describe(
        &response.body,
        response.content_type.as_deref(),
        response.content_encoding.as_deref(),
    )
}

fn describe(body: &[u8], content_type: Option<&str>, content_encoding: Option<&str>) -> String {
    let body = without_bom(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return "an empty body".to_owned();
    }
    let ct = content_type.map_or_else(|| "no content type".to_owned(), clean_detail);
    let size = format!("{} bytes of {ct}", body.len());
    // tokend asks for `Accept-Encoding: identity` only.
    if let Some(coding) = content_encoding
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
    {
        return format!(
            "{size} compressed with `{}`, which tokend does not ask for and cannot read",
            clean_detail(coding)
        );
    }
    if looks_like_html(body, content_type) {
        return "an HTML page".to_owned();
    }
    match why_unreadable(body, content_type) {
        Some(why) => format!("{size} {why}"),
        None => size,
    }
}

/// Whether `body` is a web page (by its type, or its first bytes).
fn looks_like_html(body: &[u8], content_type: Option<&str>) -> bool {
    let head = String::from_utf8_lossy(&body[..body.len().min(64)]).to_ascii_lowercase();
    content_type.is_some_and(|ct| media_type_is(ct, "text/html"))
        || head.trim_start().starts_with("<!doctype")
        || head.contains("<html")
}

/// Whether the answer's body is empty or a web page: what a captive
/// portal or a proxy answers in the provider's place, rather than the
/// provider's own words (compressed, or JSON with bytes after it).
#[must_use]
pub fn is_empty_or_a_page(response: &HttpResponse) -> bool {
    let body = without_bom(&response.body);
    body.iter().all(u8::is_ascii_whitespace)
        || looks_like_html(body, response.content_type.as_deref())
}

/// Why a body that is not HTML cannot be read as an answer, when it is
/// text of the wrong encoding or JSON that does not parse.
fn why_unreadable(body: &[u8], content_type: Option<&str>) -> Option<String> {
    let utf16 = body.starts_with(&[0xFF, 0xFE])
        || body.starts_with(&[0xFE, 0xFF])
        || (body.len() >= 2 && (body[0] == 0) != (body[1] == 0));
    if utf16 {
        return Some("in UTF-16, not the UTF-8 JSON must be in (RFC 8259 §8.1)".to_owned());
    }
    if let Err(e) = std::str::from_utf8(body) {
        return Some(format!(
            "that is not UTF-8 (from byte {})",
            e.valid_up_to() + 1
        ));
    }
    let media_type = content_type
        .and_then(|ct| ct.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let claims_json = media_type == "application/json" || media_type.ends_with("+json");
    let looks_like_json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[');
    if !claims_json && !looks_like_json {
        return None;
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        // Syntax and end-of-input errors are serde_json's fixed wording
        // and a position; the others (I/O, "data") may carry text of the
        // input, so only their position is told.
        Err(e) => Some(match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("that is not JSON: {}", clean_detail(&e.to_string()))
            }
            serde_json::error::Category::Io | serde_json::error::Category::Data => format!(
                "that is not JSON (at line {} column {})",
                e.line(),
                e.column()
            ),
        }),
        Ok(value) => {
            let kind = match value {
                serde_json::Value::Object(_) => return None,
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Null => "null",
            };
            Some(format!("that is JSON but {kind}, not an object"))
        }
    }
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

    /// Body, content type, content coding, what is said of it.
    type Case<'a> = (&'a [u8], Option<&'a str>, Option<&'a str>, &'a str);

    /// Why a body cannot be read is said: compressed, UTF-16, not UTF-8,
    /// JSON that does not parse or is no object.
    #[test]
    fn unreadable_bodies_say_why() {
        let json = Some("application/json");
        let cases: &[Case] = &[
            (
                b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
                json,
                Some("gzip"),
                "10 bytes of application/json compressed with `gzip`, which tokend does not ask for and cannot read",
            ),
            (
                b"x\x9c\xabV",
                json,
                Some(" Deflate "),
                "compressed with `Deflate`",
            ),
            (
                b"{\"access_token\":",
                json,
                Some("identity"),
                "16 bytes of application/json that is not JSON: EOF while parsing a value at line 1 column 16",
            ),
            (
                b"\xFF\xFE{\x00}\x00",
                json,
                None,
                "in UTF-16, not the UTF-8 JSON must be in (RFC 8259 §8.1)",
            ),
            (b"{\x00\"\x00", None, None, "in UTF-16"),
            (
                b"{\"note\":\"caf\xe9\"}",
                json,
                None,
                "15 bytes of application/json that is not UTF-8 (from byte 13)",
            ),
            (
                b"{\"a\":1,}",
                Some("Application/JSON; charset=utf-8"),
                None,
                "that is not JSON: trailing comma at line 1 column 8",
            ),
            (
                b"[1, 2]",
                Some("application/problem+json"),
                None,
                "that is JSON but an array, not an object",
            ),
            (
                b"\"ok\"",
                json,
                None,
                "that is JSON but a string, not an object",
            ),
            // Not said to be JSON, not looking like it: size and type only.
            (
                b"Bad Gateway",
                Some("text/plain"),
                None,
                "11 bytes of text/plain",
            ),
            (b"<p>down</p>", Some("TEXT/HTML"), None, "an HTML page"),
            (b"\xEF\xBB\xBF \r\n", json, None, "an empty body"),
        ];
        for (body, content_type, coding, expected) in cases {
            let said = describe(body, *content_type, *coding);
            assert!(said.contains(expected), "{said:?} lacks {expected:?}");
        }
        let said = describe(b"Bad Gateway", Some("text/plain"), None);
        assert_eq!(said, "11 bytes of text/plain");
    }

    /// Whatever the parser finds wrong, the description holds no byte of
    /// the body: it may be a token answer cut short or garbled.
    #[test]
    fn unreadable_bodies_are_never_echoed() {
        let bodies: &[&str] = &[
            r#"{"access_token":"SECRET-AT","refresh_token":"SECRET-RT""#,
            r#"{"access_token":"SECRET-AT",}"#,
            r#"{"access_token":"SECRET-AT" "refresh_token":"SECRET-RT"}"#,
            r#"{SECRET:"SECRET"}"#,
            r#"{"access_token":"SECRET\q"}"#,
            r#"{"access_token":"SECRET\uD800"}"#,
            "{\"access_token\":\"SECRET\u{1}\"}",
            r#"{"access_token":SECRET}"#,
            r#"{"expires_in":1e999,"access_token":"SECRET"}"#,
            r#"{"access_token":"SECRET"} SECRET"#,
            r#"["SECRET"]"#,
            r#""SECRET""#,
        ];
        for body in bodies {
            for ct in [Some("application/json"), Some("text/plain"), None] {
                let said = describe(body.as_bytes(), ct, None);
                assert!(
                    !said.to_ascii_lowercase().contains("secret"),
                    "{body} ({ct:?}): {said}"
                );
                assert!(said.contains(" bytes of "), "{body} ({ct:?}): {said}");
            }
        }
        // Header values are cleaned: no control characters reach a message.
        let said = describe(b"x", Some("text/plain\u{1b}[31m"), Some("br\u{202e}"));
        assert!(!said.contains(['\u{1b}', '\u{202e}']), "{said:?}");
    }
}
