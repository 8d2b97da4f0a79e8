//! An answer body read as a flat object, and the limits on what its
//! numbers are believed to mean. Below both the answer readers
//! ([`super::oauth`]) and the error readers ([`super::oauth_errors`]), so
//! that neither needs the other's module.

use std::time::Duration;

use serde_json::{Map, Value};

use super::HttpResponse;

/// The longest access-token lifetime believed; beyond it `expires_in` is
/// treated as garbage rather than trusted for years.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(400 * 24 * 3600);

/// The longest device-code lifetime believed (RFC 8628 examples use 1800 s).
pub const MAX_DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The longest poll interval believed.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(3600);

/// Longest provider-supplied text kept in an error message.
pub(crate) const MAX_DETAIL_CHARS: usize = 300;

/// An answer body read as a flat object: JSON, or form-encoded as GitHub
/// sends when it ignores `Accept`.
#[derive(Debug, Default)]
pub struct AnswerFields(Map<String, Value>);

impl AnswerFields {
    /// Reads the body of `response`. `None` when it is neither a JSON object
    /// nor a form-encoded body. A leading UTF-8 byte order mark is skipped
    /// (RFC 8259 §8.1 lets parsers ignore it; servers on .NET send one).
    #[must_use]
    pub fn parse(response: &HttpResponse) -> Option<Self> {
        Self::parse_body(&response.body, response.content_type.as_deref())
    }

    /// [`Self::parse`] of a body of `content_type`.
    #[must_use]
    pub fn parse_body(body: &[u8], content_type: Option<&str>) -> Option<Self> {
        let body = without_bom(body);
        if body.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            return Some(Self(map));
        }
        // JSON must be UTF-8, but a server that writes its messages in
        // Latin-1 ("Jeton expiré") still says what happened in its codes:
        // read with the bad bytes replaced, so `invalid_grant` is not taken
        // for an unreadable answer (and retried for ever).
        if std::str::from_utf8(body).is_err()
            && let Ok(Value::Object(map)) =
                serde_json::from_str::<Value>(&String::from_utf8_lossy(body))
        {
            return Some(Self(map));
        }
        let is_form =
            content_type.is_some_and(|ct| media_type_is(ct, "application/x-www-form-urlencoded"));
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

    /// The object itself.
    #[must_use]
    pub fn map(&self) -> &Map<String, Value> {
        &self.0
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

    /// What a required text field that [`Self::text`] did not give is:
    /// missing, or there but of another JSON type (named), for the message.
    #[must_use]
    pub fn why_no_text(&self, name: &str) -> String {
        match self.0.get(name) {
            None | Some(Value::Null) => format!("no `{name}`"),
            Some(Value::String(_)) => format!("an empty `{name}`"),
            Some(Value::Bool(_)) => format!("`{name}` is a boolean, not text"),
            Some(Value::Array(_)) => format!("`{name}` is an array, not text"),
            Some(Value::Object(_)) => format!("`{name}` is an object, not text"),
            Some(Value::Number(_)) => format!("`{name}` is a number, not text"),
        }
    }

    /// Whether `name` is present with a non-null value.
    #[must_use]
    pub fn has(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| !v.is_null())
    }

    /// A number of seconds under `name`: a JSON number or a numeric string,
    /// a fraction rounded as `rounding` says. `Ok(None)` when absent or null.
    ///
    /// # Errors
    /// A sentence naming the field when the value is negative, not a
    /// finite number, or (rounded) larger than `max`.
    pub fn seconds(
        &self,
        name: &str,
        max: Duration,
        rounding: Rounding,
    ) -> Result<Option<Duration>, String> {
        let value = match self.0.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(v) => v,
        };
        let beyond = |shown: &str| {
            format!(
                "`{name}` of {shown} s is beyond the believable maximum of {} s",
                max.as_secs()
            )
        };
        let secs = match read_seconds(value, rounding) {
            Seconds::Whole(secs) => secs,
            Seconds::TooLarge => return Err(beyond(&clean_detail(&value.to_string()))),
            Seconds::Unreadable => {
                return Err(format!(
                    "`{name}` is not a number of seconds (at least 0): {}",
                    clean_detail(&value.to_string())
                ));
            }
        };
        let duration = Duration::from_secs(secs);
        if duration > max {
            return Err(beyond(&secs.to_string()));
        }
        Ok(Some(duration))
    }
}

impl AnswerFields {
    /// [`Self::seconds`] for a lifetime that may be taken as shorter than
    /// it is: a value beyond `max` is `max` (a device code living two days
    /// is used for one), not an error that makes the answer unusable.
    ///
    /// # Errors
    /// A sentence naming the field when the value is negative or not a
    /// finite number.
    pub fn seconds_at_most(
        &self,
        name: &str,
        max: Duration,
        rounding: Rounding,
    ) -> Result<Option<Duration>, String> {
        let Some(value) = self.0.get(name).filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        match read_seconds(value, rounding) {
            Seconds::Whole(secs) => Ok(Some(Duration::from_secs(secs).min(max))),
            Seconds::TooLarge => Ok(Some(max)),
            Seconds::Unreadable => Err(format!(
                "`{name}` is not a number of seconds (at least 0): {}",
                clean_detail(&value.to_string())
            )),
        }
    }
}

/// Which way a fraction of a second goes, so that rounding never errs on
/// the unsafe side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Down, for lifetimes: a token or a device code is never taken to
    /// live longer than it does (3599.5 s is 3599 s).
    Down,
    /// Up, for waits: a poll interval is never taken shorter than asked
    /// (1.5 s is 2 s).
    Up,
}

/// A value of seconds as read, before the field's maximum is applied.
enum Seconds {
    /// Whole seconds, rounded.
    Whole(u64),
    /// A number, but beyond any believable duration.
    TooLarge,
    /// Negative, not finite, or not a number at all.
    Unreadable,
}

/// Fractions beyond this many seconds (some 31 700 years) are not read:
/// above it every field's maximum is exceeded anyway, and `f64` has lost
/// the fraction long before `u64` overflows.
const LARGEST_FRACTIONAL_SECONDS: f64 = 1e12;

fn read_seconds(value: &Value, rounding: Rounding) -> Seconds {
    let (whole, float) = match value {
        Value::Number(n) => (n.as_u64(), n.as_f64()),
        Value::String(s) => {
            let s = s.trim();
            // Integers exactly first; `f64` parsing also takes "inf" and
            // "NaN", refused below as not finite.
            (s.parse::<u64>().ok(), s.parse::<f64>().ok())
        }
        _ => (None, None),
    };
    if let Some(whole) = whole {
        return Seconds::Whole(whole);
    }
    match float {
        Some(f) if !f.is_finite() || f < 0.0 => Seconds::Unreadable,
        Some(f) if f > LARGEST_FRACTIONAL_SECONDS => Seconds::TooLarge,
        Some(f) => {
            let rounded = match rounding {
                Rounding::Down => f.floor(),
                Rounding::Up => f.ceil(),
            };
            // Exact: whole, at least 0 and at most 1e12 (checked above).
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let secs = rounded as u64;
            Seconds::Whole(secs)
        }
        None => Seconds::Unreadable,
    }
}

/// `body` without a leading UTF-8 byte order mark.
#[must_use]
pub fn without_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

/// Whether the media type of the `Content-Type` value `content_type`
/// (before any parameter) is `media_type`, compared case-insensitively
/// (RFC 9110 §8.3.1).
#[must_use]
pub fn media_type_is(content_type: &str, media_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .eq_ignore_ascii_case(media_type)
}

/// Provider text made safe to show: control characters and the invisible
/// ones that reorder or break text (see
/// [`is_deceptive`](super::url_rule::is_deceptive)) turned into spaces,
/// length capped.
#[must_use]
pub fn clean_detail(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if super::url_rule::is_deceptive(c) {
                ' '
            } else {
                c
            }
        })
        .take(MAX_DETAIL_CHARS)
        .collect();
    let cleaned = cleaned.trim().to_owned();
    if text.chars().count() > MAX_DETAIL_CHARS {
        format!("{cleaned}…")
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> AnswerFields {
        AnswerFields::parse_body(json.as_bytes(), Some("application/json")).expect("an object")
    }

    fn secs(json: &str, rounding: Rounding) -> Result<Option<Duration>, String> {
        fields(json).seconds("n", Duration::from_secs(3600), rounding)
    }

    /// Fractions are read, down for lifetimes and up for waits, as
    /// numbers and as strings; whole values are what they say either way.
    #[test]
    fn fractional_seconds_are_rounded_the_safe_way() {
        let s = Duration::from_secs;
        for json in [
            r#"{"n":3599.5}"#,
            r#"{"n":"3599.5"}"#,
            r#"{"n":" 3599.9 "}"#,
        ] {
            assert_eq!(secs(json, Rounding::Down), Ok(Some(s(3599))), "{json}");
            assert_eq!(secs(json, Rounding::Up), Ok(Some(s(3600))), "{json}");
        }
        assert_eq!(secs(r#"{"n":1.5}"#, Rounding::Up), Ok(Some(s(2))));
        assert_eq!(secs(r#"{"n":0.25}"#, Rounding::Down), Ok(Some(s(0))));
        assert_eq!(secs(r#"{"n":"1e3"}"#, Rounding::Down), Ok(Some(s(1000))));
        for json in [
            r#"{"n":5}"#,
            r#"{"n":5.0}"#,
            r#"{"n":"5"}"#,
            r#"{"n":"5.0"}"#,
        ] {
            for rounding in [Rounding::Down, Rounding::Up] {
                assert_eq!(secs(json, rounding), Ok(Some(s(5))), "{json}");
            }
        }
        assert_eq!(secs(r#"{"n":null}"#, Rounding::Up), Ok(None));
        assert_eq!(secs("{}", Rounding::Up), Ok(None));
    }

    /// Negative, not finite, not numbers and absurd values are refused as
    /// before; rounding up past the maximum is past it.
    #[test]
    fn unbelievable_seconds_are_refused() {
        for json in [
            r#"{"n":-1}"#,
            r#"{"n":-0.5}"#,
            r#"{"n":"-3600"}"#,
            r#"{"n":"NaN"}"#,
            r#"{"n":"inf"}"#,
            r#"{"n":"-infinity"}"#,
            r#"{"n":"soon"}"#,
            r#"{"n":""}"#,
            r#"{"n":true}"#,
            r#"{"n":[5]}"#,
        ] {
            let e = secs(json, Rounding::Down).unwrap_err();
            assert!(
                e.starts_with("`n` is not a number of seconds"),
                "{json}: {e}"
            );
        }
        for json in [
            r#"{"n":3601}"#,
            r#"{"n":"3600.5"}"#,
            r#"{"n":1e300}"#,
            r#"{"n":"99999999999999999999999"}"#,
        ] {
            let e = secs(json, Rounding::Up).unwrap_err();
            assert!(
                e.contains("beyond the believable maximum of 3600 s"),
                "{json}: {e}"
            );
        }
        // Down, 3600.5 is within the maximum.
        assert_eq!(
            secs(r#"{"n":3600.5}"#, Rounding::Down),
            Ok(Some(Duration::from_secs(3600)))
        );
    }

    /// A UTF-8 byte order mark before JSON or a form body is skipped.
    #[test]
    fn a_byte_order_mark_is_skipped() {
        let json = b"\xEF\xBB\xBF{\"access_token\":\"at\"}";
        let f = AnswerFields::parse_body(json, Some("application/json")).unwrap();
        assert_eq!(f.text(&["access_token"]).as_deref(), Some("at"));
        let form = b"\xEF\xBB\xBFaccess_token=at&expires_in=60";
        let f = AnswerFields::parse_body(form, Some("application/x-www-form-urlencoded")).unwrap();
        assert_eq!(f.text(&["access_token"]).as_deref(), Some("at"));
        // A mark and nothing else is an empty body.
        assert!(AnswerFields::parse_body(b"\xEF\xBB\xBF \n", Some("application/json")).is_none());
    }

    /// Media types are compared case-insensitively, parameters aside.
    #[test]
    fn form_media_types_are_case_insensitive() {
        for ct in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-Urlencoded",
            "APPLICATION/X-WWW-FORM-URLENCODED ; charset=UTF-8",
        ] {
            let f = AnswerFields::parse_body(b"access_token=at", Some(ct));
            assert_eq!(
                f.and_then(|f| f.text(&["access_token"])).as_deref(),
                Some("at"),
                "{ct}"
            );
        }
        assert!(AnswerFields::parse_body(b"access_token=at", Some("text/plain")).is_none());
        assert!(
            AnswerFields::parse_body(
                b"access_token=at",
                Some("application/x-www-form-urlencodedx")
            )
            .is_none()
        );
    }
}
