//! A request as every dialect reads it: its body read whole, its arrival
//! on the emulator's clock, and what its headers and body say, leniently
//! (for the record; strict reading is `form.rs` and `client_auth.rs`).

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use hyper::{HeaderMap, Method};

use crate::multipart::multipart_pairs;
use crate::record::{AuthSeen, Grant};

/// A request with its body read.
#[derive(Debug)]
pub(crate) struct Received {
    /// HTTP method.
    pub method: Method,
    /// Path, without the query.
    pub path: String,
    /// Query string.
    pub query: Option<String>,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// Arrival on the emulator's clock: every decision about timing uses
    /// this, not "now".
    pub at: Instant,
    /// Arrival on the emulator's clock, wall time (for dates on the wire).
    pub at_system: SystemTime,
}

impl Received {
    /// A header's value, when present and readable.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The media type of the body, lower case, without parameters.
    pub(crate) fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// The first query parameter named `name`.
    pub(crate) fn query_value(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The body as flat fields, for the record: form pairs, the top level
    /// of a JSON object (non-string values as JSON text), or multipart parts.
    pub(crate) fn fields(&self) -> Vec<(String, String)> {
        match self.media_type().as_deref() {
            Some("application/x-www-form-urlencoded") => url::form_urlencoded::parse(&self.body)
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect(),
            Some("application/json") => match serde_json::from_slice(&self.body) {
                Ok(serde_json::Value::Object(map)) => map
                    .into_iter()
                    .map(|(n, v)| match v {
                        serde_json::Value::String(s) => (n, s),
                        other => (n, other.to_string()),
                    })
                    .collect(),
                _ => Vec::new(),
            },
            Some("multipart/form-data") => {
                let content_type = self.header("content-type").unwrap_or_default();
                multipart_pairs(content_type, &self.body).unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }

    /// The grant named by the body field `field` (`grant_type`, or
    /// Twilio's `GrantType`), read leniently; `None` when it is missing.
    pub(crate) fn grant(&self, field: &str) -> Option<Grant> {
        let fields = self.fields();
        let name = &fields.iter().find(|(n, _)| n == field)?.1;
        Some(Grant::from_name(name))
    }

    /// The `Authorization` header split into scheme and credentials.
    fn authorization(&self) -> Option<(&str, &str)> {
        let value = self.header("authorization")?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        Some((scheme, rest.trim()))
    }

    /// HTTP Basic credentials, decoded as RFC 6749 §2.3.1 asks (base64,
    /// then form-decoding of id and secret). `None` without Basic;
    /// `Some(Err(why))` when they cannot be read.
    pub(crate) fn basic_credentials(&self) -> Option<Result<(String, String), &'static str>> {
        let (scheme, encoded) = self.authorization()?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64_decode(encoded)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or("the HTTP Basic credentials are not valid base64 of UTF-8 text");
        Some(decoded.and_then(|text| {
            let (id, secret) = text
                .split_once(':')
                .ok_or("the HTTP Basic credentials have no ':'")?;
            Ok((form_decode(id), form_decode(secret)))
        }))
    }

    /// The token of an `Authorization: Bearer` header.
    pub(crate) fn bearer_token(&self) -> Option<&str> {
        let (scheme, token) = self.authorization()?;
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }

    /// The credentials presented, whatever the dialect.
    pub(crate) fn auth_seen(&self, fields: &[(String, String)]) -> AuthSeen {
        let has = |name: &str| fields.iter().any(|(n, v)| n == name && !v.is_empty());
        match self.authorization() {
            Some(_) if self.bearer_token().is_some() => AuthSeen::Bearer,
            Some(_) => match self.basic_credentials() {
                Some(Ok(_)) if has("client_secret") => AuthSeen::BasicAndSecretPost,
                Some(Ok(_)) => AuthSeen::Basic,
                _ => AuthSeen::Malformed,
            },
            None if has("client_secret") => AuthSeen::SecretPost,
            None if has("client_id") => AuthSeen::ClientId,
            None => AuthSeen::None,
        }
    }
}

/// Decodes one `application/x-www-form-urlencoded` value (`+` is a space).
/// An unencoded `&` ends the value: a client that does not encode is wrong.
fn form_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("v={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Standard base64 with optional padding (RFC 4648 §4).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let data = text.trim_end_matches('=');
    if text.len() - data.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in data.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits).to_le_bytes()[0]);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A `POST /token` as the unit tests of the request readers need it.
#[cfg(test)]
pub(crate) fn test_post(
    content_type: Option<&str>,
    body: &str,
    authorization: Option<&str>,
) -> Received {
    let mut headers = HeaderMap::new();
    if let Some(ct) = content_type {
        headers.insert("content-type", ct.parse().unwrap());
    }
    if let Some(auth) = authorization {
        headers.insert("authorization", auth.parse().unwrap());
    }
    Received {
        method: Method::POST,
        path: "/token".into(),
        query: None,
        headers,
        body: Bytes::from(body.to_owned()),
        at: Instant::now(),
        at_system: SystemTime::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: Option<&str>, body: &str, authorization: Option<&str>) -> Received {
        test_post(content_type, body, authorization)
    }

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64_decode("Y2lkOnNlY3JldA==").unwrap(), b"cid:secret");
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert!(base64_decode("a b").is_none());
        assert!(base64_decode("YQ===").is_none());
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        // "c%3Aid:s+cret%26" = base64 of the form-encoded id and secret.
        let r = request(None, "", Some("basic YyUzQWlkOnMrY3JldCUyNg=="));
        assert_eq!(
            r.basic_credentials().unwrap().unwrap(),
            ("c:id".to_owned(), "s cret&".to_owned())
        );
        let r = request(None, "", Some("Basic !!!"));
        assert!(r.basic_credentials().unwrap().is_err());
        assert_eq!(r.auth_seen(&[]), AuthSeen::Malformed);
    }
}
