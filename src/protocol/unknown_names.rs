//! An unknown op or field, named without echoing the request.
//!
//! serde names an unknown op ("unknown variant `x`, expected one of …")
//! or field ("unknown field `x`, expected …") as the request spelled it:
//! whole (an op of 15,000 bytes came back in a 15 KB message) and raw (a
//! bidi control or an escape sequence in it reached the terminal that
//! printed the error). The message is made again here in serde's words,
//! with the name as provider names are shown in errors: escaped
//! ([`str::escape_debug`], as `unknown_provider` shows the name asked
//! for) and cut after [`MAX_PROVIDER_NAME`] characters, the longest a
//! name tokend knows can be.

use std::fmt;

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use super::OPS;
use crate::config::MAX_PROVIDER_NAME;

/// The fields each op takes besides `op`, in the order serde names them.
fn fields_of(op: &str) -> Option<&'static [&'static str]> {
    Some(match op {
        "token" => &["provider", "min_valid", "refused"],
        "login" | "logout" | "cancel_login" => &["provider"],
        "status" => &["provider", "stream"],
        "version" | "metrics" => &[],
        _ => return None,
    })
}

/// serde's `message` about the request `text` again, with the unknown op
/// or field shown escaped and cut; `None` when the message is about
/// something else (it names no string of the request).
pub(super) fn reworded(message: &str, text: &str) -> Option<String> {
    if message.starts_with("unknown variant `") {
        let op = serde_json::from_str::<serde_json::Map<String, Value>>(text)
            .ok()
            .and_then(|object| match object.get("op") {
                Some(Value::String(op)) => Some(shown_name(op)),
                _ => None,
            });
        return Some(format!(
            "unknown variant {}, expected {}",
            named(op.as_deref(), "op"),
            one_of(&OPS)
        ));
    }
    if message.starts_with("unknown field `") {
        let (name, expected) = unknown_field(text).map_or((None, None), |(name, fields)| {
            (Some(shown_name(&name)), Some(fields))
        });
        let expected = match expected {
            Some([]) => "there are no fields".to_owned(),
            Some(fields) => format!("expected {}", one_of(fields)),
            None => "see the op's fields in the protocol".to_owned(),
        };
        return Some(format!(
            "unknown field {}, {expected}",
            named(name.as_deref(), "field")
        ));
    }
    None
}

/// A name in backquotes, or words for one that could not be found again
/// (never seen: serde and this read the same line).
fn named(shown: Option<&str>, what: &str) -> String {
    shown.map_or_else(
        || format!("(an unknown {what})"),
        |name| format!("`{name}`"),
    )
}

/// A name from a request as an error shows it: escaped, so that no
/// control or bidi character reaches a terminal that prints the message,
/// and cut after [`MAX_PROVIDER_NAME`] characters, with the length said.
pub(super) fn shown_name(name: &str) -> String {
    match name.char_indices().nth(MAX_PROVIDER_NAME) {
        None => name.escape_debug().to_string(),
        Some((cut, _)) => format!("{}… ({} bytes)", name[..cut].escape_debug(), name.len()),
    }
}

/// serde's list of what was expected: "`a`", "`a` or `b`", or "one of
/// `a`, `b`, `c`".
fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    match quoted.as_slice() {
        [one] => one.clone(),
        [first, second] => format!("{first} or {second}"),
        all => format!("one of {}", all.join(", ")),
    }
}

/// The first field of the request `text` its op does not take (serde
/// stops at the first, in the line's order), and the fields the op takes.
fn unknown_field(text: &str) -> Option<(String, &'static [&'static str])> {
    let Keys(keys) = serde_json::from_str(text).ok()?;
    let op = keys.iter().find_map(|(key, op)| match (key.as_str(), op) {
        ("op", Some(op)) => Some(op.as_str()),
        _ => None,
    })?;
    let fields = fields_of(op)?;
    let (unknown, _) = keys
        .iter()
        .find(|(key, _)| key != "op" && !fields.contains(&key.as_str()))?;
    Some((unknown.clone(), fields))
}

/// A JSON object's keys in the line's order, with the value of `op`
/// when it is a string.
struct Keys(Vec<(String, Option<String>)>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let op = if key == "op" {
                        match map.next_value::<Value>()? {
                            Value::String(op) => Some(op),
                            _ => None,
                        }
                    } else {
                        map.next_value::<IgnoredAny>()?;
                        None
                    };
                    keys.push((key, op));
                }
                Ok(Keys(keys))
            }
        }
        deserializer.deserialize_map(KeysVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_request;
    use super::*;

    /// The words are serde's: for a plain name the message is the one
    /// serde gives, for every op and its fields.
    #[test]
    fn a_plain_name_reads_as_serde_says_it() {
        let mut lines = vec![r#"{"op":"tokn","provider":"x"}"#.to_owned()];
        for op in &OPS {
            let provider = if *op == "status" || fields_of(op) == Some(&[]) {
                ""
            } else {
                r#","provider":"p""#
            };
            lines.push(format!(r#"{{"op":"{op}"{provider},"x":1}}"#));
        }
        for line in lines {
            let serde_says = serde_json::from_str::<super::super::Request>(&line)
                .unwrap_err()
                .to_string();
            // serde's message may end with the position in the line.
            let words = serde_says.split(" at line ").next().unwrap();
            assert_eq!(reworded(words, &line).as_deref(), Some(words), "{line}");
            assert_eq!(
                parse_request(line.as_bytes()),
                Err(format!("invalid request: {serde_says}")),
                "{line}"
            );
        }
    }

    /// An op or field name is shown escaped and cut: no control or bidi
    /// character, no escape sequence a client decodes, and not 15 KB of it.
    #[test]
    fn an_unknown_name_is_escaped_and_cut() {
        let long = "x".repeat(15_000);
        let lines = [
            format!(r#"{{"op":"{long}"}}"#),
            r#"{"op":"\u202eabc"}"#.to_owned(),
            r#"{"op":"a\u001b[31mred\n"}"#.to_owned(),
            format!(r#"{{"op":"status","{long}":1}}"#),
            r#"{"op":"token","provider":"p","\u001b]0;pwned\u0007":1}"#.to_owned(),
            r#"{"\u202efield":1,"op":"version"}"#.to_owned(),
        ];
        for line in &lines {
            let message = parse_request(line.as_bytes()).unwrap_err();
            assert!(message.len() < 600, "{} bytes: {line}", message.len());
            assert!(
                !message.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{message:?}"
            );
            // Sent as JSON, the message a client decodes is the same text:
            // the escapes are backslashes, not JSON escapes of raw ones.
            let sent = serde_json::to_string(&message).unwrap();
            assert!(!sent.contains("\\u00"), "{sent}");
        }
        let message = parse_request(lines[0].as_bytes()).unwrap_err();
        assert!(
            message.starts_with(&format!(
                "invalid request: unknown variant `{}… (15000 bytes)`, expected one of `token`",
                "x".repeat(MAX_PROVIDER_NAME)
            )),
            "{message}"
        );
        assert!(
            parse_request(lines[1].as_bytes())
                .unwrap_err()
                .starts_with(r"invalid request: unknown variant `\u{202e}abc`"),
        );
        assert!(parse_request(lines[4].as_bytes()).unwrap_err().starts_with(
            r"invalid request: unknown field `\u{1b}]0;pwned\u{7}`, expected one of `provider`"
        ),);
    }

    #[test]
    fn names_are_shown_whole_up_to_the_longest_provider_name() {
        let longest = "n".repeat(MAX_PROVIDER_NAME);
        assert_eq!(shown_name(&longest), longest);
        assert_eq!(shown_name("github"), "github");
        let cut = shown_name(&"é".repeat(MAX_PROVIDER_NAME + 1));
        assert_eq!(
            cut,
            format!("{}… (130 bytes)", "é".repeat(MAX_PROVIDER_NAME))
        );
    }
}
