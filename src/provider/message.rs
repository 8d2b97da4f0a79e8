//! What dialects and the HTTP client exchange: requests as data, answers
//! with their bodies read, and what answers mean once read.

use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use url::Url;

use super::ProviderError;
use crate::secret::Secret;

/// A value in a request body: plain, or a secret that `Debug` redacts.
#[derive(Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// An ordinary value.
    Plain(String),
    /// A secret value (client secret, device code, refresh token).
    Secret(Secret),
}

impl FieldValue {
    /// The text to put on the wire.
    #[must_use]
    pub fn wire_value(&self) -> &str {
        match self {
            Self::Plain(value) => value,
            Self::Secret(secret) => secret.expose(),
        }
    }
}

impl fmt::Debug for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(value) => fmt::Debug::fmt(value, f),
            Self::Secret(_) => f.write_str("[redacted]"),
        }
    }
}

/// The body of a request: flat name/value pairs and how to encode them.
/// Keys may repeat (Twilio sends arrays as repeated keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestBody {
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, FieldValue)>),
    /// `application/json`: an object whose values are all strings.
    Json(Vec<(String, FieldValue)>),
}

impl RequestBody {
    /// The fields, whatever the encoding.
    #[must_use]
    pub fn fields(&self) -> &[(String, FieldValue)] {
        match self {
            Self::Form(fields) | Self::Json(fields) => fields,
        }
    }
}

/// `url` as a log line names it: without its query, which may carry a
/// credential (`?subscription-key=...`, an Azure Function's `?code=...`).
/// Log lines are written where the request's secrets are not at hand to
/// redact; errors, which are redacted, keep the query.
#[must_use]
pub fn endpoint_for_log(url: &Url) -> &str {
    &url[..url::Position::AfterPath]
}

/// Whether a query key names a credential (`key`, `api_key`,
/// `subscription-key`, `sig`, `token`, `secret`, `password`, `pwd`, `auth`,
/// an Azure Function's `code`...).
fn names_a_credential(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "key",
        "code",
        "secret",
        "token",
        "sig",
        "pass",
        "pwd",
        "auth",
        "credential",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// A POST request to a provider endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The endpoint.
    pub url: Url,
    /// The body.
    pub body: RequestBody,
    /// HTTP Basic credentials (user, password).
    pub basic_auth: Option<(String, Secret)>,
    /// Extra headers (`Accept` is always `application/json`).
    pub headers: Vec<(&'static str, String)>,
}

/// A secret of a request, as a redaction needs it: borrowed from the
/// request, or a copy made from it (a decoded query value, the Basic
/// credentials as the header carries them) that is wiped when dropped.
pub struct SecretText<'a>(std::borrow::Cow<'a, str>);

impl AsRef<str> for SecretText<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Drop for SecretText<'_> {
    fn drop(&mut self) {
        if let std::borrow::Cow::Owned(copy) = &mut self.0 {
            zeroize::Zeroize::zeroize(copy);
        }
    }
}

impl fmt::Debug for SecretText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl HttpRequest {
    /// The secrets this request carries (secret body fields, the Basic
    /// password and the `Authorization` value made of it, and query values
    /// whose key names a credential, such as `?subscription-key=…` in a
    /// configured endpoint): what a provider's answer, or a message naming
    /// the endpoint, must not carry into logs and errors. A provider that
    /// echoes the request (a debugging proxy, a framework's error page)
    /// shows the headers too.
    ///
    /// Borrowed where the request holds them; the copies are wiped.
    #[must_use]
    pub fn secrets(&self) -> Vec<SecretText<'_>> {
        use std::borrow::Cow;
        let fields = self
            .body
            .fields()
            .iter()
            .filter_map(|(_, value)| match value {
                FieldValue::Secret(secret) => Some(Cow::Borrowed(secret.expose())),
                FieldValue::Plain(_) => None,
            });
        let password = self
            .basic_auth
            .iter()
            .map(|(_, password)| Cow::Borrowed(password.expose()));
        let credentials = self
            .basic_credentials()
            .map(|credentials| Cow::Owned(String::clone(&credentials)));
        let query = self
            .url
            .query_pairs()
            .filter(|(key, _)| names_a_credential(key))
            .map(|(_, value)| value);
        fields
            .chain(password)
            .chain(credentials)
            .chain(query)
            .map(SecretText)
            .collect()
    }

    /// The credentials of the `Authorization: Basic` header, when the
    /// request has them: base64 of `id:secret`, each form-encoded first
    /// (RFC 6749 §2.3.1).
    #[must_use]
    pub fn basic_credentials(&self) -> Option<zeroize::Zeroizing<String>> {
        use base64::Engine as _;
        let (user, password) = self.basic_auth.as_ref()?;
        let encode = |value: &str| -> zeroize::Zeroizing<String> {
            zeroize::Zeroizing::new(
                url::form_urlencoded::byte_serialize(value.as_bytes()).collect(),
            )
        };
        let pair =
            zeroize::Zeroizing::new(format!("{}:{}", *encode(user), *encode(password.expose())));
        Some(zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(pair.as_bytes()),
        ))
    }

    /// A form-encoded POST to `url`.
    #[must_use]
    pub fn form(url: Url, fields: Vec<(String, FieldValue)>) -> Self {
        Self {
            url,
            body: RequestBody::Form(fields),
            basic_auth: None,
            headers: Vec::new(),
        }
    }

    /// A JSON POST to `url`.
    #[must_use]
    pub fn json(url: Url, fields: Vec<(String, FieldValue)>) -> Self {
        Self {
            url,
            body: RequestBody::Json(fields),
            basic_auth: None,
            headers: Vec::new(),
        }
    }
}

/// A provider's answer, body already read (and bounded in size).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The endpoint that answered (for error messages).
    pub url: Url,
    /// HTTP status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The `Location` header, if any (to explain unexpected redirects).
    pub location: Option<String>,
    /// The `Date` header: the provider's clock when it answered. Absolute
    /// times in the answer are measured against it, so a skewed local
    /// clock does not shorten or stretch a token's life.
    pub date: Option<SystemTime>,
    /// The `Retry-After` header (RFC 9110 §10.2.3) as a wait: its seconds,
    /// or its date less the `Date` header (else the local clock), at most
    /// [`MAX_RETRY_AFTER`]. A provider that is rate limiting or down says
    /// when to come back; asking sooner only prolongs it.
    pub retry_after: Option<Duration>,
    /// The `Content-Encoding` header. tokend asks for no compression and
    /// decodes none, so a body in any coding but `identity` cannot be
    /// read; messages about such a body name the coding.
    pub content_encoding: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// The longest `Retry-After` heeded (defined beside the error that says
/// it, which may not look here: see `error`).
pub use super::error::MAX_RETRY_AFTER;

impl HttpResponse {
    /// An answer from `url` with `status`, `content_type` and `body`, and
    /// no other header: what the unit tests of the dialects read.
    #[cfg(test)]
    pub(crate) fn for_test(url: Url, status: u16, content_type: Option<&str>, body: &str) -> Self {
        Self {
            url,
            status,
            content_type: content_type.map(str::to_owned),
            location: None,
            date: None,
            retry_after: None,
            content_encoding: None,
            body: Bytes::from(body.to_owned()),
        }
    }

    /// Reads a `Retry-After` value: delay-seconds or an HTTP-date, measured
    /// from `now` (the answer's `Date`, else the local clock). `None` when
    /// it is neither; capped at [`MAX_RETRY_AFTER`].
    #[must_use]
    pub fn read_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
        let value = value.trim();
        let wait = match value.parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => super::datetime::parse(value)?
                .duration_since(now)
                .unwrap_or_default(),
        };
        Some(wait.min(MAX_RETRY_AFTER))
    }
}

impl fmt::Debug for HttpResponse {
    // The body can hold tokens: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("url", &self.url.as_str())
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("date", &self.date)
            .field("retry_after", &self.retry_after)
            .field("content_encoding", &self.content_encoding)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// The answer to a device authorization request: what to show the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// The code the client polls with. Secret: it can be exchanged for tokens.
    pub device_code: Secret,
    /// The code the person types.
    pub user_code: String,
    /// Where the person goes; `None` when the provider sent none (or an
    /// empty string) and the config must supply it.
    pub verification_uri: Option<String>,
    /// A page that already carries the code.
    pub verification_uri_complete: Option<String>,
    /// How long the codes stay valid.
    pub expires_in: Duration,
    /// The minimum time between polls, when the provider says.
    pub interval: Option<Duration>,
    /// A ready-made instruction sentence (Microsoft).
    pub message: Option<String>,
}

/// When an access token expires, as the provider put it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Relative to when the request was sent (`expires_in`).
    In(Duration),
    /// Absolute (Twilio's `access_token_expires_at`).
    At(SystemTime),
    /// The provider did not say: the token is used until it fails.
    Unknown,
}

/// Tokens issued by a successful poll or refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// The access token.
    pub access_token: Secret,
    /// `Bearer` unless the provider says otherwise.
    pub token_type: String,
    /// When the access token expires.
    pub expiry: Expiry,
    /// A refresh token; on refresh, `None` means the old one stays valid.
    pub refresh_token: Option<Secret>,
    /// Space-separated granted scopes, when the provider says.
    pub scope: Option<String>,
    /// How long the new refresh token lives, when the provider says
    /// (`refresh_token_expires_in`, as GitHub sends).
    pub refresh_expires_in: Option<Duration>,
    /// Why the answer's expiry was not believed, when the grant was kept
    /// with its access token's expiry taken as unknown. It may quote the
    /// provider's words: logged only once the request's secrets are taken
    /// out of it (`Provider::refresh`, `Provider::poll`).
    pub expiry_problem: Option<String>,
}

impl TokenGrant {
    /// This grant with `secrets` taken out of what it carries of the
    /// provider's words: its scope and token type, which callers see (use
    /// only callers too), and the problem with its expiry, which is
    /// logged. A provider that echoes the request into them (a debugging
    /// proxy, a broken server) would otherwise show a refresh token or
    /// the client secret. Its own tokens come out too: a provider that
    /// put its new refresh token in another field (the scope, `expires_in`)
    /// would have it shown.
    #[must_use]
    pub fn without_secrets<S: AsRef<str>>(mut self, secrets: &[S]) -> Self {
        let own = [Some(self.access_token.clone()), self.refresh_token.clone()];
        let secrets: Vec<&str> = secrets
            .iter()
            .map(AsRef::as_ref)
            .chain(own.iter().flatten().map(Secret::expose))
            .collect();
        super::redaction::redact_plain(&mut self.token_type, &secrets);
        for text in [self.scope.as_mut(), self.expiry_problem.as_mut()]
            .into_iter()
            .flatten()
        {
            super::redaction::redact_plain(text, &secrets);
        }
        self
    }
}

impl DeviceAuthorization {
    /// This answer with `secrets` taken out of its words (the user code,
    /// the URLs, the message), which are shown to the person, named in a
    /// refusal, and sent to the front-ends: a provider that echoes the
    /// request into them would show the client secret. Its own device code
    /// comes out of the message too (the secret a poll presents); not out
    /// of the user code and the URLs, which a provider that made its user
    /// code part of the device code would leave unusable.
    #[must_use]
    pub fn without_secrets<S: AsRef<str>>(mut self, secrets: &[S]) -> Self {
        super::redaction::redact(&mut self.user_code, secrets);
        for text in [
            self.verification_uri.as_mut(),
            self.verification_uri_complete.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            super::redaction::redact(text, secrets);
        }
        if let Some(message) = self.message.as_mut() {
            let own = self.device_code.clone();
            let secrets: Vec<&str> = secrets
                .iter()
                .map(AsRef::as_ref)
                .chain([own.expose()])
                .collect();
            super::redaction::redact(message, &secrets);
        }
        self
    }
}

/// The result of one poll of the token endpoint during a device login.
#[derive(Debug)]
pub enum PollOutcome {
    /// The person has not answered yet: poll again after the interval.
    Pending,
    /// Poll slower. `interval` is the provider's new interval when it sent
    /// one; otherwise the caller adds 5 s (RFC 8628 §3.5).
    SlowDown {
        /// The new interval, when given.
        interval: Option<Duration>,
        /// How long the answer's `Retry-After` asks to wait before the next
        /// poll (a rate limiter's 429), when it says.
        retry_after: Option<Duration>,
    },
    /// The person approved: here are the tokens.
    Granted(TokenGrant),
    /// The person (or the provider) denied the request.
    Denied {
        /// The provider's explanation.
        message: String,
    },
    /// The device code expired.
    Expired {
        /// The provider's explanation.
        message: String,
    },
    /// A success answer (2xx, fields readable) whose tokens cannot be used.
    /// The provider most likely approved the login and spent its code on
    /// it, so what it answers next (`invalid_grant`, `expired_token`) does
    /// not say what went wrong: the login polls on (a proxy's glitch
    /// passes) but names this answer however it ends.
    GrantUnusable(ProviderError),
    /// A redirect: the token endpoint in the config is not the provider's
    /// (tokend follows no redirects). Polling again would meet it again,
    /// so the login ends at once.
    Misdirected(ProviderError),
    /// Anything else: transient failures are retried with backoff, the rest end the login.
    Failed(ProviderError),
    /// An answer that may mean "pending" in a dialect's tolerance (an
    /// rfc8628 403 carrying no OAuth error) but carries something else: a
    /// proxy's or firewall's page, an error of another shape. Polled on at
    /// the interval, as pending, and named as the polls' trouble, so a
    /// login that then expires says what every poll was answered.
    PendingUnclear(ProviderError),
}

impl PollOutcome {
    /// This outcome with `secrets` taken out of its text (see
    /// [`ProviderError::without_secrets`]).
    #[must_use]
    pub fn without_secrets<S: AsRef<str>>(self, secrets: &[S]) -> Self {
        match self {
            Self::Denied { mut message } => {
                super::redaction::redact(&mut message, secrets);
                Self::Denied { message }
            }
            Self::Expired { mut message } => {
                super::redaction::redact(&mut message, secrets);
                Self::Expired { message }
            }
            Self::GrantUnusable(e) => Self::GrantUnusable(e.without_secrets(secrets)),
            Self::Misdirected(e) => Self::Misdirected(e.without_secrets(secrets)),
            Self::Failed(e) => Self::Failed(e.without_secrets(secrets)),
            Self::PendingUnclear(e) => Self::PendingUnclear(e.without_secrets(secrets)),
            outcome @ (Self::Pending | Self::SlowDown { .. } | Self::Granted(_)) => outcome,
        }
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
