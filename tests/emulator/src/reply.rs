//! Answers as the dialects build them, before the server sends them.
//!
//! A [`Reply`] carries, beside the HTTP answer, what the recorder needs: an
//! outcome label, an optional note, and the protocol violations the request
//! showed. Keeping those in the answer keeps the dialects free of recording
//! code: they decide, the server records and sends.

use std::time::Duration;

use bytes::Bytes;
use hyper::Response;
use hyper::header::{HeaderName, HeaderValue};

use crate::body::ReplyBody;

/// The realm named in `WWW-Authenticate` challenges.
pub(crate) const REALM: &str = "tokend-emulator";

/// How the answer reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// At once.
    Now,
    /// After a pause (the answer was decided, and state changed, on arrival).
    After(Duration),
    /// Never: the request hangs until the client gives up or the emulator stops.
    Never,
    /// No answer: the connection is closed.
    Close,
    /// At once, but the socket is set to reset (TCP RST) when it closes,
    /// which a body that fails mid-way makes happen.
    NowThenReset,
}

/// An answer and what to record about it.
#[derive(Debug)]
pub(crate) struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers besides the ones hyper adds (`content-length`, `date`).
    pub headers: Vec<(HeaderName, String)>,
    /// The body.
    pub body: ReplyBody,
    /// The outcome label recorded.
    pub outcome: String,
    /// A note recorded beside the outcome; never a secret.
    pub detail: Option<String>,
    /// Protocol violations this request showed, recorded for the tests.
    pub violations: Vec<String>,
    /// How the answer is delivered.
    pub delivery: Delivery,
}

impl Reply {
    /// An answer with `body` of `content_type`.
    pub(crate) fn new(status: u16, content_type: Option<&str>, body: ReplyBody) -> Self {
        let headers = content_type
            .map(|ct| vec![(hyper::header::CONTENT_TYPE, ct.to_owned())])
            .unwrap_or_default();
        Self {
            status,
            headers,
            body,
            outcome: String::new(),
            detail: None,
            violations: Vec::new(),
            delivery: Delivery::Now,
        }
    }

    /// A JSON answer that no cache may keep (RFC 6749 §5.1).
    pub(crate) fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(
            status,
            Some("application/json"),
            ReplyBody::full(value.to_string()),
        )
        .header(hyper::header::CACHE_CONTROL, "no-store")
        .header(hyper::header::PRAGMA, "no-cache")
    }

    /// An OAuth error answer (RFC 6749 §5.2); the outcome is the error code.
    pub(crate) fn oauth_error(status: u16, error: &str, description: &str) -> Self {
        let body = serde_json::json!({ "error": error, "error_description": description });
        Self::json(status, &body).outcome(error)
    }

    /// `invalid_client` with the challenge HTTP requires on every 401.
    pub(crate) fn invalid_client(description: &str) -> Self {
        Self::oauth_error(401, "invalid_client", description).header(
            hyper::header::WWW_AUTHENTICATE,
            &format!("Basic realm=\"{REALM}\""),
        )
    }

    /// `invalid_request`: always a client bug, so also a violation.
    pub(crate) fn invalid_request(description: &str) -> Self {
        Self::oauth_error(400, "invalid_request", description)
            .violation(format!("invalid request: {description}"))
    }

    /// An HTML page.
    pub(crate) fn html(status: u16, page: String) -> Self {
        Self::new(
            status,
            Some("text/html; charset=utf-8"),
            ReplyBody::full(page),
        )
    }

    /// A plain-text answer.
    pub(crate) fn text(status: u16, text: impl Into<Bytes>) -> Self {
        Self::new(
            status,
            Some("text/plain; charset=utf-8"),
            ReplyBody::full(text),
        )
    }

    /// 404 for paths the dialect does not serve.
    pub(crate) fn not_found() -> Self {
        Self::text(404, "not found\n").outcome("not_found")
    }

    /// 405 with the methods the path accepts.
    pub(crate) fn method_not_allowed(allow: &str) -> Self {
        Self::text(405, "method not allowed\n")
            .header(hyper::header::ALLOW, allow)
            .outcome("method_not_allowed")
    }

    /// Sets the outcome label.
    pub(crate) fn outcome(mut self, label: impl Into<String>) -> Self {
        self.outcome = label.into();
        self
    }

    /// Sets the note.
    pub(crate) fn detail(mut self, note: impl Into<String>) -> Self {
        self.detail = Some(note.into());
        self
    }

    /// Adds a violation.
    pub(crate) fn violation(mut self, text: impl Into<String>) -> Self {
        self.violations.push(text.into());
        self
    }

    /// Adds violations.
    pub(crate) fn violations(mut self, texts: impl IntoIterator<Item = String>) -> Self {
        self.violations.extend(texts);
        self
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: HeaderName, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// The status recorded: none when no status line is sent.
    pub(crate) fn recorded_status(&self) -> Option<u16> {
        match self.delivery {
            Delivery::Now | Delivery::After(_) | Delivery::NowThenReset => Some(self.status),
            Delivery::Never | Delivery::Close => None,
        }
    }

    /// The value of `name` among the headers (for tests).
    #[cfg(test)]
    pub(crate) fn header_value(&self, name: &HeaderName) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, when it is a complete JSON body (for tests).
    #[cfg(test)]
    pub(crate) fn json_body(&self) -> serde_json::Value {
        serde_json::from_slice(self.body.bytes().expect("a complete body")).expect("a JSON body")
    }

    /// The HTTP answer.
    pub(crate) fn into_response(self) -> Response<ReplyBody> {
        let mut response = Response::new(self.body);
        *response.status_mut() =
            hyper::StatusCode::from_u16(self.status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
        for (name, value) in self.headers {
            // Values come from the emulator or from a test's fault; one that
            // is not a valid header value is dropped rather than panicking.
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}
