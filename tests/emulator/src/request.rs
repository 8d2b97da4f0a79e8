//! Reading requests strictly: form bodies and client authentication.
//!
//! The emulator is stricter than most real providers on purpose: whatever
//! it lets through, a real provider may refuse. Every refusal caused by the
//! client is also recorded as a violation, so a test fails even when the
//! client happened to recover.

// A refusal is a whole answer (`Reply`), passed back once per request: its
// size does not matter, and `?` on it keeps the endpoint code linear.
#![allow(clippy::result_large_err)]

use std::time::Instant;

use bytes::Bytes;
use hyper::{HeaderMap, Method};

use super::form::{self, Form};
use super::record::AuthSeen;
use super::reply::Reply;

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
    /// Arrival: every decision about timing uses this, not "now".
    pub at: Instant,
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
                form::multipart_pairs(content_type, &self.body).unwrap_or_default()
            }
            _ => Vec::new(),
        }
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

/// How a client must authenticate (RFC 6749 §2.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClientAuthMode {
    /// A public client: `client_id` in the body, no secret at all.
    #[default]
    Public,
    /// `client_secret` in the body beside `client_id` (`client_secret_post`).
    SecretPost(String),
    /// HTTP Basic with the form-encoded id and secret (`client_secret_basic`);
    /// `client_id` may also be in the body, and must then match.
    SecretBasic(String),
}

/// The one client an emulator knows.
#[derive(Debug, Clone)]
pub(crate) struct ClientRegistration {
    /// Its id.
    pub client_id: String,
    /// How it must authenticate.
    pub auth: ClientAuthMode,
}

impl ClientRegistration {
    /// Checks the client authentication of a form request.
    ///
    /// # Errors
    /// 401 `invalid_client` for missing, wrong or unexpected credentials,
    /// 400 `invalid_request` for two methods at once; each with a violation.
    pub(crate) fn authenticate(&self, request: &Received, form: &Form) -> Result<(), Reply> {
        let refuse = |why: &str| {
            Reply::invalid_client(why).violation(format!("client authentication: {why}"))
        };
        let basic = match request.basic_credentials() {
            Some(Ok(credentials)) => Some(credentials),
            Some(Err(why)) => return Err(refuse(why)),
            None => None,
        };
        let post_secret = form.get("client_secret");
        if basic.is_some() && post_secret.is_some() {
            return Err(Reply::invalid_request(
                "the client used HTTP Basic and client_secret at once (RFC 6749 §2.3: one method per request)",
            ));
        }
        let body_id = form.get("client_id");
        if let (Some((basic_id, _)), Some(body_id)) = (&basic, body_id)
            && basic_id != body_id
        {
            return Err(refuse(
                "`client_id` in the body differs from the HTTP Basic user",
            ));
        }
        let Some(id) = basic.as_ref().map(|(id, _)| id.as_str()).or(body_id) else {
            return Err(refuse("no client authentication and no `client_id`"));
        };
        if id != self.client_id {
            return Err(refuse(&format!("unknown client `{id}`")));
        }
        let basic_secret = basic.as_ref().map(|(_, secret)| secret.as_str());
        // Plain comparisons: this is a test tool, timing attacks are moot.
        match (&self.auth, basic_secret, post_secret) {
            (ClientAuthMode::Public, None, None) => Ok(()),
            (ClientAuthMode::Public, _, _) => Err(refuse(
                "the client is public (no secret registered) but sent a secret",
            )),
            (ClientAuthMode::SecretPost(secret), None, Some(sent)) if sent == secret => Ok(()),
            (ClientAuthMode::SecretBasic(secret), Some(sent), None) if sent == secret => Ok(()),
            (ClientAuthMode::SecretPost(_), Some(_), _) => Err(refuse(
                "the client must use client_secret_post but sent HTTP Basic",
            )),
            (ClientAuthMode::SecretBasic(_), _, Some(_)) => Err(refuse(
                "the client must use client_secret_basic but sent client_secret in the body",
            )),
            (_, None, None) => Err(refuse("the client sent no secret")),
            _ => Err(refuse("wrong client secret")),
        }
    }
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
        at: std::time::Instant::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: Option<&str>, body: &str, authorization: Option<&str>) -> Received {
        test_post(content_type, body, authorization)
    }

    const FORM: &str = "application/x-www-form-urlencoded";

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

    fn check(auth: ClientAuthMode, body: &str, authorization: Option<&str>) -> Result<(), u16> {
        let client = ClientRegistration {
            client_id: "cid".into(),
            auth,
        };
        let r = request(Some(FORM), body, authorization);
        let form = Form::parse_strict(&r).unwrap();
        client.authenticate(&r, &form).map_err(|reply| {
            assert!(!reply.violations.is_empty());
            reply.status
        })
    }

    #[test]
    fn client_authentication_modes() {
        let basic = Some("Basic Y2lkOnNlY3JldA=="); // cid:secret
        let post = || ClientAuthMode::SecretPost("secret".into());
        let basic_mode = || ClientAuthMode::SecretBasic("secret".into());
        assert_eq!(check(ClientAuthMode::Public, "client_id=cid", None), Ok(()));
        assert_eq!(
            check(ClientAuthMode::Public, "client_id=other", None),
            Err(401)
        );
        assert_eq!(check(ClientAuthMode::Public, "", None), Err(401));
        assert_eq!(
            check(ClientAuthMode::Public, "client_id=cid", basic),
            Err(401)
        );
        assert_eq!(
            check(post(), "client_id=cid&client_secret=secret", None),
            Ok(())
        );
        assert_eq!(
            check(post(), "client_id=cid&client_secret=nope", None),
            Err(401)
        );
        assert_eq!(check(post(), "client_id=cid", None), Err(401));
        assert_eq!(check(post(), "client_id=cid", basic), Err(401));
        assert_eq!(check(basic_mode(), "client_id=cid", basic), Ok(()));
        assert_eq!(check(basic_mode(), "", basic), Ok(()));
        assert_eq!(check(basic_mode(), "client_id=other", basic), Err(401));
        assert_eq!(
            check(basic_mode(), "client_id=cid&client_secret=secret", None),
            Err(401)
        );
        assert_eq!(
            check(basic_mode(), "client_id=cid&client_secret=secret", basic),
            Err(400)
        );
    }
}
