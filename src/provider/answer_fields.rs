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
            // A whole number too large to read is unbelievable, not "not whole".
            let too_large = match value {
                Value::Number(n) => n.as_f64().is_some_and(|f| f.fract() == 0.0 && f > 0.0),
                Value::String(s) => {
                    let digits = s.trim();
                    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                }
                _ => false,
            };
            return Err(if too_large {
                format!(
                    "`{name}` of {} s is beyond the believable maximum of {} s",
                    clean_detail(&value.to_string()),
                    max.as_secs()
                )
            } else {
                format!(
                    "`{name}` is not a whole number of seconds: {}",
                    clean_detail(&value.to_string())
                )
            });
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
