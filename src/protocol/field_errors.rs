//! Which field of a request line has a value of the wrong type.
//!
//! serde reads an internally tagged request into a buffer before it knows
//! the op, and a type error from that buffer names neither the field nor
//! the position ("invalid type: integer `5`, expected a string"), and
//! quotes a string value as it is (`"30"`), which may be a token pasted
//! in the wrong place. For such an error the request is read again as
//! plain JSON and each known field checked against its type, so that the
//! answer names the field and says what it must be, never its value.

use serde_json::{Map, Value};

/// The type a request field takes.
#[derive(Clone, Copy)]
enum FieldType {
    /// A JSON string that every request gives (`op`): `null` is not one.
    Name,
    /// A JSON string (`provider`, `refused`).
    Text,
    /// A whole number of seconds, 0 or more (`min_valid`).
    Seconds,
    /// `true` or `false` (`stream`).
    Flag,
}

impl FieldType {
    /// Whether `value` is of this type; `null` counts as absent, which
    /// [`missing_required`] checks where a field is required, except for
    /// `op`, which every request needs: that one must be named here.
    fn accepts(self, value: &Value) -> bool {
        match (self, value) {
            (Self::Text | Self::Seconds | Self::Flag, Value::Null)
            | (Self::Name | Self::Text, Value::String(_))
            | (Self::Flag, Value::Bool(_)) => true,
            (Self::Seconds, Value::Number(n)) => n.is_u64(),
            _ => false,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Self::Name | Self::Text => "a string",
            Self::Seconds => "a whole number of seconds, 0 or more",
            Self::Flag => "true or false",
        }
    }
}

/// The fields of every op and their types.
const FIELDS: &[(&str, FieldType)] = &[
    ("op", FieldType::Name),
    ("provider", FieldType::Text),
    ("min_valid", FieldType::Seconds),
    ("refused", FieldType::Text),
    ("stream", FieldType::Flag),
];

/// The ops whose `provider` may not be absent or `null`.
const PROVIDER_REQUIRED: &[&str] = &["token", "login", "logout", "cancel_login"];

/// What kind of JSON value `value` is, in words, without its content.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.as_i64().is_some_and(|n| n < 0) => "a negative number",
        Value::Number(n) if n.is_f64() => float_kind(n.as_f64().unwrap_or(f64::NAN)),
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What kind of number serde could read only as a float: `1e3`, `60.0`
/// and numbers past `u64` are whole, and said as such.
fn float_kind(value: f64) -> &'static str {
    if value.is_sign_negative() {
        "a negative number"
    } else if value.fract() != 0.0 {
        "a number with a fraction"
    } else if value >= 18_446_744_073_709_551_616.0 {
        "a number too large"
    } else {
        "a number with a decimal point or an exponent (write it as digits alone, such as 60)"
    }
}

/// A sentence naming the first field of `text` whose value has the wrong
/// type (or a required `op` or `provider` given as `null`), or `None` when the
/// line is not a JSON object or every known field has its type (serde's
/// own message then says what is wrong).
pub(super) fn describe(text: &str) -> Option<String> {
    let object: Map<String, Value> = serde_json::from_str(text).ok()?;
    for (name, field) in FIELDS {
        if let Some(value) = object.get(*name)
            && !field.accepts(value)
        {
            return Some(format!(
                "`{name}` must be {}, got {}",
                field.expected(),
                kind(value)
            ));
        }
    }
    missing_required(&object)
}

/// `provider: null` for an op that needs a provider.
fn missing_required(object: &Map<String, Value>) -> Option<String> {
    let op = object.get("op")?.as_str()?;
    (PROVIDER_REQUIRED.contains(&op) && object.get("provider") == Some(&Value::Null))
        .then(|| format!("`provider` must be a string for `{op}`, got null"))
}
