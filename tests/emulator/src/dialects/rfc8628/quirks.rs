//! Deviations of real providers from RFC 8628 (`shared/dialects.md` §0),
//! which the standard dialect's client must tolerate: each a switch of the
//! RFC 8628 emulator, all off by default.
//!
//! They act on the JSON an answer would have had: renamed fields, numbers
//! as strings, other statuses, other error codes, or the whole answer
//! form-encoded.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use serde_json::{Map, Value};

use crate::body::ReplyBody;
use crate::received::Received;
use crate::record::Grant;
use crate::reply::Reply;
use crate::wire::wire_seconds;

/// When answers are form-encoded instead of JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormAnswers {
    /// Never: JSON, as RFC 6749 §5.1 says.
    #[default]
    Never,
    /// Unless the request asks for JSON with `Accept: application/json`
    /// (GitHub).
    UnlessAcceptJson,
    /// Always, whatever the request accepts (GitHub's behaviour as met by
    /// a client that forgets `Accept`, forced for testing).
    Always,
}

/// Which answers start with a UTF-8 byte order mark (`EF BB BF`), as
/// servers whose UTF-8 encoder writes one by default send them (.NET's
/// `Encoding.UTF8`). RFC 8259 §8.1 forbids it but lets parsers ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ByteOrderMarks {
    /// None.
    #[default]
    Never,
    /// Answers to refreshes only, so that a login without one comes first.
    Refreshes,
    /// Every JSON or form answer of the dialect.
    Always,
}

/// The deviations to reproduce. Start from `Default` (none) or a
/// provider's set ([`Self::github`], [`Self::google`], ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
// Independent switches, like the options they belong to.
#[allow(clippy::struct_excessive_bools)]
pub struct Rfc8628Quirks {
    /// GitHub: answers form-encoded (see [`FormAnswers`]).
    pub form_answers: FormAnswers,
    /// GitHub: token-endpoint errors (pending, slow down, denied, ...)
    /// come with HTTP 200.
    pub errors_with_200: bool,
    /// GitHub: `slow_down` carries the new `interval`.
    pub slow_down_interval: bool,
    /// GitHub: a refresh token that is no longer valid is
    /// `bad_refresh_token`, not `invalid_grant`.
    pub bad_refresh_token: bool,
    /// Google, Azure AD v1: `verification_url` instead of
    /// `verification_uri`, and no complete URI.
    pub verification_url: bool,
    /// GitHub, the Microsoft identity platform: no
    /// `verification_uri_complete` (the person types the code).
    pub no_complete_uri: bool,
    /// Google: `authorization_pending` with HTTP 428, `slow_down` and
    /// `access_denied` with 403.
    pub google_statuses: bool,
    /// Another status for `authorization_pending` (some servers send 403).
    pub pending_status: Option<u16>,
    /// "Pending" as a bare status (`pending_status`, else 400) with an
    /// empty body, no OAuth error code: "some servers signal pending with
    /// 403" (`shared/dialects.md` §0) says no more than the status.
    pub bare_pending: bool,
    /// Microsoft: a `message` sentence in the device answer.
    pub message: bool,
    /// Microsoft: `authorization_declined` for a denial and
    /// `bad_verification_code` for an unknown device code.
    pub microsoft_errors: bool,
    /// Azure AD v1: `expires_in` and `interval` as strings.
    pub string_numbers: bool,
    /// Durations sent with their fraction (`"expires_in": 3599.5`,
    /// `"interval": 1.5`) instead of whole seconds, as servers that
    /// compute them in floating point do. With [`Self::string_numbers`],
    /// as strings (`"3599.5"`).
    pub fractional_seconds: bool,
    /// Which answers start with a byte order mark.
    pub byte_order_marks: ByteOrderMarks,
    /// Keycloak: a refresh token's lifetime (its SSO session's idle or
    /// maximum time) is sent as `refresh_expires_in`, not GitHub's
    /// `refresh_token_expires_in`; 0 when it has none (an offline token).
    pub refresh_expires_in: bool,
    /// No `expires_in` in token answers: RFC 6749 §5.1 only recommends it
    /// ("absent: treat as unknown and refresh on demand",
    /// `shared/dialects.md` §0). The tokens still live
    /// `access_token_lifetime` here.
    pub no_token_expires_in: bool,
    /// Microsoft Entra for a token of the app's own API (`api://…`): a
    /// refresh without `scope` is refused with `invalid_request`
    /// (AADSTS90009).
    pub refresh_needs_scope: bool,
    /// GitHub: the granted `scope` of a token answer is comma-separated
    /// (`repo,read:org`), not space-separated as RFC 6749 §3.3 has it.
    pub comma_scopes: bool,
    /// Auth0: an expired device code is answered `expired_token` once,
    /// then `invalid_grant` ("Invalid or expired device code.") at every
    /// later poll (`shared/dialects.md` §0). A client that stops at the
    /// first never sees the second.
    pub expired_token_once: bool,
}

impl Rfc8628Quirks {
    /// GitHub's: JSON only on `Accept: application/json`, errors with 200,
    /// `slow_down` with `interval`, `bad_refresh_token`, comma-separated
    /// scopes, no complete URI.
    #[must_use]
    pub fn github() -> Self {
        Self {
            form_answers: FormAnswers::UnlessAcceptJson,
            errors_with_200: true,
            slow_down_interval: true,
            bad_refresh_token: true,
            comma_scopes: true,
            no_complete_uri: true,
            ..Self::default()
        }
    }

    /// Google's: `verification_url`, pending as 428, slow down and denial as 403.
    #[must_use]
    pub fn google() -> Self {
        Self {
            verification_url: true,
            google_statuses: true,
            ..Self::default()
        }
    }

    /// The Microsoft identity platform's: `message`, `authorization_declined`,
    /// `bad_verification_code`, no complete URI.
    #[must_use]
    pub fn microsoft() -> Self {
        Self {
            message: true,
            microsoft_errors: true,
            no_complete_uri: true,
            ..Self::default()
        }
    }

    /// Auth0's: `expired_token` once, then `invalid_grant`.
    #[must_use]
    pub fn auth0() -> Self {
        Self {
            expired_token_once: true,
            ..Self::default()
        }
    }

    /// Azure AD v1's: `verification_url`, numbers as strings, `message`.
    #[must_use]
    pub fn azure_ad_v1() -> Self {
        Self {
            verification_url: true,
            string_numbers: true,
            message: true,
            ..Self::default()
        }
    }

    /// Bends a device authorization answer.
    pub(crate) fn device_answer(&self, body: &mut Map<String, Value>) {
        if self.message {
            let sentence = format!(
                "To sign in, use a web browser to open the page {} and enter the code {} to authenticate.",
                body["verification_uri"].as_str().unwrap_or_default(),
                body["user_code"].as_str().unwrap_or_default()
            );
            body.insert("message".into(), Value::from(sentence));
        }
        if self.verification_url {
            if let Some(uri) = body.remove("verification_uri") {
                body.insert("verification_url".into(), uri);
            }
            body.remove("verification_uri_complete");
        }
        if self.no_complete_uri {
            body.remove("verification_uri_complete");
        }
        self.numbers(body);
    }

    /// Bends a token answer, whose access token lives `expires_in`.
    pub(crate) fn token_answer(&self, body: &mut Map<String, Value>, expires_in: Duration) {
        if self.no_token_expires_in {
            body.remove("expires_in");
        } else if body.contains_key("expires_in") {
            body.insert("expires_in".into(), self.seconds(expires_in));
        }
        if self.comma_scopes
            && let Some(Value::String(scope)) = body.get("scope")
        {
            let commas = scope.split_whitespace().collect::<Vec<_>>().join(",");
            body.insert("scope".into(), commas.into());
        }
        self.numbers(body);
    }

    /// `duration` for the wire: whole seconds (rounded up), or with its
    /// fraction when [`Self::fractional_seconds`] is set.
    pub(crate) fn seconds(&self, duration: Duration) -> Value {
        if self.fractional_seconds && duration.subsec_nanos() > 0 {
            Value::from(duration.as_secs_f64())
        } else {
            Value::from(wire_seconds(duration))
        }
    }

    fn numbers(&self, body: &mut Map<String, Value>) {
        if self.string_numbers {
            for name in ["expires_in", "interval"] {
                if let Some(Value::Number(n)) = body.get(name) {
                    let text = n.to_string();
                    body.insert(name.into(), Value::from(text));
                }
            }
        }
    }

    /// The status and error code of a poll error the RFC answers with 400.
    pub(crate) fn poll_error<'e>(&self, error: &'e str) -> (u16, &'e str) {
        let error = match error {
            "access_denied" if self.microsoft_errors => "authorization_declined",
            "invalid_grant" if self.microsoft_errors => "bad_verification_code",
            other => other,
        };
        let status = match (error, self.pending_status) {
            _ if self.errors_with_200 => 200,
            ("authorization_pending", Some(status)) => status,
            ("authorization_pending", None) if self.google_statuses => 428,
            ("slow_down" | "access_denied", _) if self.google_statuses => 403,
            _ => 400,
        };
        (status, error)
    }

    /// The error code and description of a poll with an expired device
    /// code, whose expiry was already answered or not (`told`).
    pub(crate) fn expired_error(&self, told: bool) -> (&'static str, &'static str) {
        if told && self.expired_token_once {
            ("invalid_grant", "Invalid or expired device code.")
        } else {
            ("expired_token", "the device code expired")
        }
    }

    /// The status and error code of a refresh error the RFC answers with 400.
    pub(crate) fn refresh_error<'e>(&self, error: &'e str) -> (u16, &'e str) {
        let error = match error {
            "invalid_grant" if self.bad_refresh_token => "bad_refresh_token",
            other => other,
        };
        (if self.errors_with_200 { 200 } else { 400 }, error)
    }

    /// The answer with `body`, JSON or form-encoded as the quirks and the
    /// request's `Accept` say, after a byte order mark if they say so.
    pub(crate) fn encode(
        &self,
        request: &Received,
        status: u16,
        body: Map<String, Value>,
    ) -> Reply {
        let accepts_json = request
            .header("accept")
            .is_some_and(|a| a.contains("application/json"));
        let form = match self.form_answers {
            FormAnswers::Never => false,
            FormAnswers::UnlessAcceptJson => !accepts_json,
            FormAnswers::Always => true,
        };
        let mark = match self.byte_order_marks {
            ByteOrderMarks::Never => false,
            ByteOrderMarks::Refreshes => request.grant("grant_type") == Some(Grant::RefreshToken),
            ByteOrderMarks::Always => true,
        };
        let marked = |text: String| {
            let mut bytes = BytesMut::with_capacity(text.len() + 3);
            if mark {
                bytes.put_slice(b"\xEF\xBB\xBF");
            }
            bytes.put_slice(text.as_bytes());
            ReplyBody::full(bytes.freeze())
        };
        if !form {
            return Reply::new(
                status,
                Some("application/json"),
                marked(Value::Object(body).to_string()),
            )
            .header(hyper::header::CACHE_CONTROL, "no-store")
            .header(hyper::header::PRAGMA, "no-cache");
        }
        let mut encoded = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in &body {
            match value {
                Value::Null => {}
                Value::String(s) => {
                    encoded.append_pair(name, s);
                }
                other => {
                    encoded.append_pair(name, &other.to_string());
                }
            }
        }
        Reply::new(
            status,
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            marked(encoded.finish()),
        )
        .header(hyper::header::CACHE_CONTROL, "no-store")
    }
}
