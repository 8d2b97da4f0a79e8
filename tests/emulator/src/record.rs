//! What the emulator remembers about every request it received.
//!
//! Tests assert on these records instead of on timing: "the daemon polled
//! four times, never faster than the interval, then refreshed once". A
//! record is pushed before the answer leaves, so a client that has its
//! answer can rely on the record being there.

use std::fmt;
use std::time::{Instant, SystemTime};

/// The role of an endpoint, the same for every dialect whatever its paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Device authorization (RFC 8628 §3.1): hands out device and user codes.
    DeviceAuthorization,
    /// Token endpoint: device-code polls and refreshes.
    Token,
    /// The OIDC discovery document (`/.well-known/openid-configuration`).
    Discovery,
    /// A resource that checks access tokens (`/userinfo`).
    UserInfo,
    /// The approval page and its curl-friendly shortcuts.
    Approval,
    /// Any path the dialect does not serve (answered 404).
    Unknown,
}

impl Endpoint {
    /// A short lower-case name, for logs.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::DeviceAuthorization => "device_authorization",
            Self::Token => "token",
            Self::Discovery => "discovery",
            Self::UserInfo => "userinfo",
            Self::Approval => "approval",
            Self::Unknown => "unknown",
        }
    }
}

/// The grant type of a device-code poll (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The grant a token-endpoint request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// A device-code poll (`urn:ietf:params:oauth:grant-type:device_code`).
    DeviceCode,
    /// A refresh (`refresh_token`).
    RefreshToken,
    /// Any other grant type, as sent.
    Other(String),
}

impl Grant {
    /// The grant a `grant_type` value (or Twilio's `GrantType`) names.
    pub(crate) fn from_name(name: &str) -> Self {
        match name {
            DEVICE_CODE_GRANT => Self::DeviceCode,
            "refresh_token" => Self::RefreshToken,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// The credentials a request carried, whether or not they were right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSeen {
    /// No client id, no secret, no token.
    None,
    /// Only `client_id` in the body (a public client).
    ClientId,
    /// `client_secret` in the body (`client_secret_post`).
    SecretPost,
    /// HTTP Basic credentials (`client_secret_basic`).
    Basic,
    /// HTTP Basic and a body secret at once (forbidden by RFC 6749 §2.3).
    BasicAndSecretPost,
    /// An `Authorization: Bearer` access token.
    Bearer,
    /// An `Authorization` header that could not be read.
    Malformed,
}

/// One request as the emulator received and answered it.
///
/// Field values are kept verbatim (tests may compare refresh tokens), but
/// `Debug` and `Display` never show the values of secret fields or headers.
#[derive(Clone)]
pub struct RecordedRequest {
    /// Position in arrival order of answers, from 0.
    pub index: usize,
    /// Arrival on the emulator's clock, monotonic (a manual clock's
    /// advances included).
    pub at: Instant,
    /// Arrival on the emulator's clock, wall time.
    pub at_system: SystemTime,
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Which endpoint the path names.
    pub endpoint: Endpoint,
    /// For token-endpoint requests: the grant asked for.
    pub grant: Option<Grant>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// Body fields (form pairs, or the top level of a JSON object), in order.
    pub fields: Vec<(String, String)>,
    /// Request headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The credentials presented.
    pub auth: AuthSeen,
    /// The HTTP status answered; `None` when no status line was sent
    /// (hang, connection closed).
    pub status: Option<u16>,
    /// What the emulator made of it: `pending`, `slow_down`, `granted`,
    /// `refreshed`, `invalid_grant`, `fault:hang`, ...
    pub outcome: String,
    /// A human note that holds no secret (a user code, the new interval).
    pub detail: Option<String>,
    /// The protocol violations this request showed (each also in
    /// `Emulator::violations`, there prefixed with this request).
    pub violations: Vec<String>,
}

/// Body fields and headers whose values `Debug` and `Display` never show.
const SECRET_NAMES: &[&str] = &[
    "device_code",
    "code",
    "refresh_token",
    "access_token",
    "client_secret",
    "authorization",
    "password",
];

fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_NAMES.contains(&name.as_str())
        || name.ends_with("token")
        || name.ends_with("secret")
        || (name.ends_with("code") && name != "user_code")
}

impl RecordedRequest {
    /// The first body field named `name`.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first header named `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether this is a device-code poll.
    #[must_use]
    pub fn is_poll(&self) -> bool {
        self.grant == Some(Grant::DeviceCode)
    }

    /// Whether this is a refresh.
    #[must_use]
    pub fn is_refresh(&self) -> bool {
        self.grant == Some(Grant::RefreshToken)
    }
}

/// A value, or `[redacted]` for a secret.
struct Shown<'a>(&'a str, &'a str);

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_secret(self.0) {
            f.write_str("[redacted]")
        } else {
            fmt::Debug::fmt(self.1, f)
        }
    }
}

impl fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Pairs<'a>(&'a [(String, String)]);
        impl fmt::Debug for Pairs<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(self.0.iter().map(|(n, v)| (n, Shown(n, v))))
                    .finish()
            }
        }
        f.debug_struct("RecordedRequest")
            .field("index", &self.index)
            .field("at", &self.at)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("endpoint", &self.endpoint)
            .field("grant", &self.grant)
            .field("content_type", &self.content_type)
            .field("fields", &Pairs(&self.fields))
            .field("headers", &Pairs(&self.headers))
            .field("auth", &self.auth)
            .field("status", &self.status)
            .field("outcome", &self.outcome)
            .field("detail", &self.detail)
            .field("violations", &self.violations)
            .finish_non_exhaustive()
    }
}

/// One line for logs and panic messages, without any secret value:
/// `#3 POST /token (token, refresh_token, auth ClientId) -> 200 refreshed`.
impl fmt::Display for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {} {}", self.index, self.method, self.path)?;
        let endpoint = self.endpoint.name();
        match &self.grant {
            Some(Grant::DeviceCode) => write!(f, " ({endpoint}, device_code")?,
            Some(Grant::RefreshToken) => write!(f, " ({endpoint}, refresh_token")?,
            Some(Grant::Other(other)) => write!(f, " ({endpoint}, grant {other:?}")?,
            None => write!(f, " ({endpoint}")?,
        }
        write!(f, ", auth {:?}) -> ", self.auth)?;
        match self.status {
            Some(status) => write!(f, "{status} ")?,
            None => f.write_str("no answer, ")?,
        }
        f.write_str(&self.outcome)?;
        if let Some(detail) = &self.detail {
            write!(f, " [{detail}]")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordedRequest {
        RecordedRequest {
            index: 3,
            at: Instant::now(),
            at_system: SystemTime::now(),
            method: "POST".into(),
            path: "/token".into(),
            query: None,
            endpoint: Endpoint::Token,
            grant: Some(Grant::RefreshToken),
            content_type: Some("application/x-www-form-urlencoded".into()),
            fields: vec![
                ("grant_type".into(), "refresh_token".into()),
                ("refresh_token".into(), "rt_SECRET".into()),
                ("client_secret".into(), "cs_SECRET".into()),
                ("client_id".into(), "cid".into()),
            ],
            headers: vec![("authorization".into(), "Basic SECRET".into())],
            auth: AuthSeen::SecretPost,
            status: Some(200),
            outcome: "refreshed".into(),
            detail: None,
            violations: Vec::new(),
        }
    }

    #[test]
    fn debug_and_display_hide_secret_values() {
        let record = sample();
        for text in [format!("{record:?}"), record.to_string()] {
            assert!(!text.contains("SECRET"), "{text}");
        }
        assert!(format!("{record:?}").contains("\"cid\""));
        assert_eq!(
            record.to_string(),
            "#3 POST /token (token, refresh_token, auth SecretPost) -> 200 refreshed"
        );
    }

    #[test]
    fn lookups() {
        let record = sample();
        assert_eq!(record.field("client_id"), Some("cid"));
        assert_eq!(record.header("Authorization"), Some("Basic SECRET"));
        assert!(record.is_refresh() && !record.is_poll());
        assert!(!is_secret("user_code") && is_secret("DeviceCode"));
    }
}
