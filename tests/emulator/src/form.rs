//! Request bodies read strictly: the encodings an endpoint takes, each
//! parameter once unless the dialect says it repeats, every value a string.
//!
//! Whatever an emulator lets through, a real provider may refuse; whatever
//! it refuses is a client bug, so each refusal also becomes a violation.

// A refusal is a whole answer (`Reply`); see `client_auth.rs`.
#![allow(clippy::result_large_err)]

use bytes::Bytes;

use crate::multipart::multipart_pairs;
use crate::received::Received;
use crate::reply::Reply;

/// A body encoding an endpoint may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/json`: an object whose values are strings.
    Json,
    /// `multipart/form-data`, text parts only.
    Multipart,
}

impl Encoding {
    fn media_type(self) -> &'static str {
        match self {
            Self::Form => "application/x-www-form-urlencoded",
            Self::Json => "application/json",
            Self::Multipart => "multipart/form-data",
        }
    }
}

/// Request parameters, in order, whatever the encoding. An empty value
/// counts as absent (RFC 6749 §3.1).
#[derive(Debug, Default)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    /// Reads a form body as the standard dialect's endpoints want it.
    ///
    /// # Errors
    /// `invalid_request` (and a violation) for another encoding or a
    /// repeated parameter.
    pub(crate) fn parse_strict(request: &Received) -> Result<Self, Reply> {
        Self::read(request, &[Encoding::Form], &[]).map_err(|p| Reply::invalid_request(&p))
    }

    /// Reads the body of `request`, which must be in one of `encodings`;
    /// only the `repeatable` parameters may appear more than once.
    ///
    /// # Errors
    /// What is wrong with the body, as a sentence for the violation.
    pub(crate) fn read(
        request: &Received,
        encodings: &[Encoding],
        repeatable: &[&str],
    ) -> Result<Self, String> {
        let accepted = || {
            encodings
                .iter()
                .map(|e| e.media_type())
                .collect::<Vec<_>>()
                .join(" or ")
        };
        let media_type = request.media_type();
        let encoding = encodings
            .iter()
            .copied()
            .find(|e| media_type.as_deref() == Some(e.media_type()));
        let pairs = match (encoding, media_type) {
            (Some(Encoding::Form), _) => url::form_urlencoded::parse(&request.body)
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect(),
            (Some(Encoding::Json), _) => json_pairs(&request.body)?,
            (Some(Encoding::Multipart), _) => {
                let content_type = request.header("content-type").unwrap_or_default();
                multipart_pairs(content_type, &request.body)?
            }
            (None, Some(other)) => {
                return Err(format!(
                    "Content-Type {other}; this endpoint takes {}",
                    accepted()
                ));
            }
            (None, None) => {
                return Err(format!(
                    "no Content-Type; this endpoint takes {}",
                    accepted()
                ));
            }
        };
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !repeatable.contains(&name.as_str()) && pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(format!(
                    "parameter `{name}` sent more than once (RFC 6749 §3.1)"
                ));
            }
        }
        Ok(Self(pairs))
    }

    /// The parameter `name`; an empty value is absent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every non-empty value of the repeated parameter `name`.
    pub(crate) fn get_all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The parameter `name`, which must be there.
    ///
    /// # Errors
    /// `invalid_request` naming the missing parameter.
    pub(crate) fn require(&self, name: &str) -> Result<&str, Reply> {
        self.get(name)
            .ok_or_else(|| Reply::invalid_request(&format!("missing parameter `{name}`")))
    }

    /// Every pair except the named ones (extra parameters, for the record).
    pub(crate) fn other_than(&self, names: &[&str]) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|(n, _)| !names.contains(&n.as_str()))
            .cloned()
            .collect()
    }

    /// The names of parameters not among `known`, each once.
    pub(crate) fn unknown(&self, known: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (name, _) in &self.0 {
            if !known.contains(&name.as_str()) && !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }
}

/// A JSON object's members, each value a string.
fn json_pairs(body: &Bytes) -> Result<Vec<(String, String)>, String> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(name, value)| match value {
                serde_json::Value::String(s) => Ok((name, s)),
                other => Err(format!(
                    "parameter `{name}` is JSON {}, not a string",
                    json_type(&other)
                )),
            })
            .collect(),
        Ok(_) => Err("the JSON body is not an object".to_owned()),
        Err(e) => Err(format!("the body is not valid JSON ({e})")),
    }
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: Option<&str>, body: &str) -> Received {
        crate::received::test_post(content_type, body, None)
    }

    const FORM: &str = "application/x-www-form-urlencoded";

    #[test]
    fn forms_are_strict() {
        let form = Form::parse_strict(&request(Some(FORM), "a=1&b=&c=3")).unwrap();
        assert_eq!(form.get("a"), Some("1"));
        assert_eq!(form.get("b"), None, "empty means absent");
        assert!(form.require("b").is_err());
        let json = Form::parse_strict(&request(Some("application/json"), "{}"));
        let reply = json.unwrap_err();
        assert_eq!(reply.status, 400);
        assert_eq!(reply.violations.len(), 1);
        let twice = Form::parse_strict(&request(Some(FORM), "a=1&a=2")).unwrap_err();
        assert_eq!(twice.json_body()["error"], "invalid_request");
        assert!(Form::parse_strict(&request(None, "a=1")).is_err());
    }

    #[test]
    fn repeated_keys_only_where_allowed() {
        let r = request(Some(FORM), "Scopes=a&Scopes=b&ClientSid=x");
        let form = Form::read(&r, &[Encoding::Form], &["Scopes"]).unwrap();
        assert_eq!(form.get_all("Scopes"), ["a", "b"]);
        let r = request(Some(FORM), "Scopes=a&ClientSid=x&ClientSid=y");
        assert!(Form::read(&r, &[Encoding::Form], &["Scopes"]).is_err());
        assert_eq!(form.unknown(&["Scopes"]), ["ClientSid"]);
    }

    #[test]
    fn json_bodies_hold_strings() {
        let r = request(
            Some("application/json; charset=utf-8"),
            r#"{"code":"x","client_id":"c"}"#,
        );
        let form = Form::read(&r, &[Encoding::Json], &[]).unwrap();
        assert_eq!(form.get("code"), Some("x"));
        let r = request(Some("application/json"), r#"{"code":5}"#);
        let e = Form::read(&r, &[Encoding::Json], &[]).unwrap_err();
        assert!(e.contains("a number"), "{e}");
        assert!(
            Form::read(
                &request(Some("application/json"), "[]"),
                &[Encoding::Json],
                &[]
            )
            .is_err()
        );
        let e = Form::read(&request(Some(FORM), "a=1"), &[Encoding::Json], &[]).unwrap_err();
        assert!(e.contains("this endpoint takes application/json"), "{e}");
    }

    #[test]
    fn multipart_text_parts() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\ncid\r\n--XyZ\r\nContent-Disposition: form-data; name=\"device_os\"\r\n\r\nlinux\r\n--XyZ--\r\n";
        let r = request(Some("multipart/form-data; boundary=XyZ"), body);
        let form = Form::read(&r, &[Encoding::Form, Encoding::Multipart], &[]).unwrap();
        assert_eq!(form.get("client_id"), Some("cid"));
        assert_eq!(form.get("device_os"), Some("linux"));
        let r = request(Some("multipart/form-data"), body);
        assert!(Form::read(&r, &[Encoding::Multipart], &[]).is_err());
        let r = request(Some("multipart/form-data; boundary=XyZ"), "--XyZ\r\nno end");
        assert!(Form::read(&r, &[Encoding::Multipart], &[]).is_err());
    }
}
