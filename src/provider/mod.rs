//! Provider wire dialects behind one trait.
//!
//! A [`ProviderDialect`] is pure: it builds [`HttpRequest`]s and parses
//! [`HttpResponse`]s, and never does I/O. [`Provider`] pairs a dialect with
//! the shared HTTP client ([`http::HttpClient`]), which owns timeouts, size
//! limits and redirect policy for every dialect alike. Keeping the dialects
//! pure makes each one testable (and fuzzable) from bytes alone.
//!
//! Every dialect reduces to the same outcomes: a [`DeviceAuthorization`]
//! (the prompt), a [`PollOutcome`] per poll, and a [`TokenGrant`] or a
//! [`ProviderError`] per refresh.

pub mod discovery;
pub mod http;
pub mod oauth;
pub mod rfc8628;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::OnceCell;
use url::Url;

use crate::config::{ClientAuth, EndpointSource, ProviderConfig};
use crate::secret::Secret;

pub use http::HttpClient;

/// The wire dialects tokend speaks (see `shared/dialects.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialectKind {
    /// RFC 8628 + RFC 6749, with the common deviations tolerated (GitHub,
    /// Google, Microsoft, Keycloak, ...).
    Rfc8628,
}

impl DialectKind {
    /// Every dialect, for listing in error messages.
    pub const ALL: &'static [DialectKind] = &[DialectKind::Rfc8628];

    /// The config name of the dialect.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Rfc8628 => "rfc8628",
        }
    }

    /// Parses a config name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|d| d.name() == name)
    }

    /// Paths of the device-authorization and token endpoints relative to
    /// `base_url`, for dialects whose paths are fixed.
    #[must_use]
    pub fn fixed_paths(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Rfc8628 => None,
        }
    }
}

impl fmt::Display for DialectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The two endpoints of a device-grant provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Where the device authorization request goes.
    pub device_authorization: Url,
    /// Where polls and refreshes go.
    pub token: Url,
}

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

impl HttpRequest {
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
    /// The body.
    pub body: Bytes,
}

impl fmt::Debug for HttpResponse {
    // The body can hold tokens: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("url", &self.url.as_str())
            .field("status", &self.status)
            .field("content_type", &self.content_type)
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
    /// Anything else: transient failures are retried with backoff, the rest end the login.
    Failed(ProviderError),
}

/// How a provider failure should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Retrying later may work (network, 5xx, 408, 429, garbage answers).
    Transient,
    /// The provider refused for a reason retrying will not fix soon
    /// (invalid client, bad scope); the session itself may still be fine.
    Permanent,
    /// The grant is gone (`invalid_grant`): a new login is needed.
    GrantRevoked,
}

/// A failure talking to a provider. Messages never contain tokens or secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer: DNS, connect, TLS, timeout or a connection cut mid-answer.
    #[error("could not reach {endpoint}: {reason}")]
    Unreachable {
        /// The endpoint URL.
        endpoint: String,
        /// What failed.
        reason: String,
    },
    /// A temporary failure answer (5xx, 408, 429).
    #[error("{endpoint} is unavailable (HTTP {status}){}", detail_suffix(.detail.as_deref()))]
    Unavailable {
        /// The endpoint URL.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// The provider's explanation, if any.
        detail: Option<String>,
    },
    /// The grant behind the refresh token is gone.
    #[error("the provider revoked the session ({error}){}", detail_suffix(.detail.as_deref()))]
    GrantRevoked {
        /// The OAuth error code (`invalid_grant`, ...).
        error: String,
        /// The provider's explanation, if any.
        detail: Option<String>,
    },
    /// An OAuth error answer that retrying will not fix.
    #[error("{endpoint} refused the request: {error} (HTTP {status}){}", detail_suffix(.detail.as_deref()))]
    Rejected {
        /// The endpoint URL.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// The OAuth error code, or a summary when there was none.
        error: String,
        /// The provider's explanation, if any.
        detail: Option<String>,
    },
    /// An answer that makes no sense (not JSON, missing fields, absurd values, too large).
    #[error("{endpoint} sent an invalid answer: {problem}")]
    Malformed {
        /// The endpoint URL.
        endpoint: String,
        /// What is wrong with it.
        problem: String,
    },
    /// OpenID discovery failed.
    #[error("OpenID discovery at {issuer} failed: {problem}")]
    Discovery {
        /// The issuer URL.
        issuer: String,
        /// What went wrong.
        problem: String,
    },
}

fn detail_suffix(detail: Option<&str>) -> String {
    detail.map(|d| format!(": {d}")).unwrap_or_default()
}

impl ProviderError {
    /// How to treat this failure.
    #[must_use]
    pub fn class(&self) -> FailureClass {
        match self {
            // A captive portal's HTML page or a proxy's garbage is as
            // temporary as an outage: retry rather than give up the session.
            Self::Unreachable { .. }
            | Self::Unavailable { .. }
            | Self::Malformed { .. }
            | Self::Discovery { .. } => FailureClass::Transient,
            Self::Rejected { .. } => FailureClass::Permanent,
            Self::GrantRevoked { .. } => FailureClass::GrantRevoked,
        }
    }
}

/// What a dialect knows about the client it speaks for.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// The OAuth client id.
    pub client_id: String,
    /// The client secret, for confidential clients.
    pub client_secret: Option<Secret>,
    /// Where the secret goes.
    pub client_auth: ClientAuth,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// Extra fields for the device authorization request.
    pub device_params: BTreeMap<String, String>,
}

impl ClientIdentity {
    /// The identity described by a provider's config.
    #[must_use]
    pub fn from_config(config: &ProviderConfig) -> Self {
        Self {
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            client_auth: config.client_auth,
            scopes: config.scopes.clone(),
            device_params: config.device_params.clone(),
        }
    }
}

/// One wire dialect: builds requests and reads answers, with no I/O.
pub trait ProviderDialect: Send + Sync + fmt::Debug {
    /// Which dialect this is.
    fn kind(&self) -> DialectKind;

    /// The device authorization request (RFC 8628 §3.1).
    fn device_authorization_request(&self, endpoints: &Endpoints) -> HttpRequest;

    /// Reads the device authorization answer.
    ///
    /// # Errors
    /// The provider refused, or the answer is unusable.
    fn parse_device_authorization(
        &self,
        response: &HttpResponse,
    ) -> Result<DeviceAuthorization, ProviderError>;

    /// One poll of the token endpoint with the device code (RFC 8628 §3.4).
    fn poll_request(&self, endpoints: &Endpoints, device_code: &Secret) -> HttpRequest;

    /// Reads a poll answer.
    fn parse_poll(&self, response: &HttpResponse) -> PollOutcome;

    /// A refresh request (RFC 6749 §6).
    fn refresh_request(&self, endpoints: &Endpoints, refresh_token: &Secret) -> HttpRequest;

    /// Reads a refresh answer.
    ///
    /// # Errors
    /// The refresh failed; [`ProviderError::class`] says how to treat it.
    fn parse_refresh(&self, response: &HttpResponse) -> Result<TokenGrant, ProviderError>;
}

/// Builds the dialect a provider's config asks for.
#[must_use]
pub fn dialect_for(config: &ProviderConfig) -> Box<dyn ProviderDialect> {
    let client = ClientIdentity::from_config(config);
    match config.dialect {
        DialectKind::Rfc8628 => Box::new(rfc8628::Rfc8628::new(client)),
    }
}

/// A configured provider: its dialect, its endpoints and the HTTP client.
#[derive(Debug)]
pub struct Provider {
    dialect: Box<dyn ProviderDialect>,
    http: HttpClient,
    source: EndpointSource,
    /// Endpoints once known; discovery runs at most once at a time and its
    /// result is kept (a failed discovery is retried on the next call).
    endpoints: OnceCell<Endpoints>,
}

impl Provider {
    /// A provider speaking `dialect` at the endpoints `source` describes.
    #[must_use]
    pub fn new(
        dialect: Box<dyn ProviderDialect>,
        source: EndpointSource,
        http: HttpClient,
    ) -> Self {
        let endpoints = OnceCell::new();
        if let EndpointSource::Fixed {
            device_authorization,
            token,
        } = &source
        {
            let _ = endpoints.set(Endpoints {
                device_authorization: device_authorization.clone(),
                token: token.clone(),
            });
        }
        Self {
            dialect,
            http,
            source,
            endpoints,
        }
    }

    /// The dialect.
    #[must_use]
    pub fn dialect(&self) -> &dyn ProviderDialect {
        self.dialect.as_ref()
    }

    async fn endpoints(&self) -> Result<&Endpoints, ProviderError> {
        self.endpoints
            .get_or_try_init(|| async {
                match &self.source {
                    EndpointSource::Fixed {
                        device_authorization,
                        token,
                    } => Ok(Endpoints {
                        device_authorization: device_authorization.clone(),
                        token: token.clone(),
                    }),
                    EndpointSource::Discover { issuer } => {
                        discovery::discover(&self.http, issuer).await
                    }
                }
            })
            .await
    }

    /// Starts a device login: asks for a device and user code.
    ///
    /// # Errors
    /// Discovery or the request failed, or the answer is unusable.
    pub async fn start_device_authorization(&self) -> Result<DeviceAuthorization, ProviderError> {
        let endpoints = self.endpoints().await?;
        let request = self.dialect.device_authorization_request(endpoints);
        let response = self.http.send(&request).await?;
        self.dialect.parse_device_authorization(&response)
    }

    /// Polls once for the outcome of a device login.
    pub async fn poll(&self, device_code: &Secret) -> PollOutcome {
        let endpoints = match self.endpoints().await {
            Ok(endpoints) => endpoints,
            Err(e) => return PollOutcome::Failed(e),
        };
        let request = self.dialect.poll_request(endpoints, device_code);
        match self.http.send(&request).await {
            Ok(response) => self.dialect.parse_poll(&response),
            Err(e) => PollOutcome::Failed(e),
        }
    }

    /// Exchanges a refresh token for new tokens.
    ///
    /// # Errors
    /// See [`ProviderError::class`].
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenGrant, ProviderError> {
        let endpoints = self.endpoints().await?;
        let request = self.dialect.refresh_request(endpoints, refresh_token);
        let response = self.http.send(&request).await?;
        self.dialect.parse_refresh(&response)
    }

    /// The token endpoint, when known without discovery (used to group
    /// refreshes per endpoint for the concurrency bound).
    #[must_use]
    pub fn token_endpoint_hint(&self) -> String {
        match &self.source {
            EndpointSource::Fixed { token, .. } => token.as_str().to_owned(),
            EndpointSource::Discover { issuer } => issuer.as_str().to_owned(),
        }
    }
}

impl ClientIdentity {
    /// Adds client authentication to `request` as configured: the secret in
    /// the body (`client_secret_post`) or as HTTP Basic (`client_secret_basic`).
    /// `client_id` is in the body in every mode; servers accept it beside
    /// Basic, and public clients need it there.
    pub fn authenticate(&self, request: &mut HttpRequest) {
        let Some(secret) = &self.client_secret else {
            return;
        };
        match self.client_auth {
            ClientAuth::None => {}
            ClientAuth::SecretPost => {
                let fields = match &mut request.body {
                    RequestBody::Form(fields) | RequestBody::Json(fields) => fields,
                };
                fields.push((
                    "client_secret".to_owned(),
                    FieldValue::Secret(secret.clone()),
                ));
            }
            ClientAuth::SecretBasic => {
                request.basic_auth = Some((self.client_id.clone(), secret.clone()));
            }
        }
    }
}

/// A plain field, for building bodies.
pub(crate) fn plain(name: &str, value: impl Into<String>) -> (String, FieldValue) {
    (name.to_owned(), FieldValue::Plain(value.into()))
}

/// A secret field, for building bodies.
pub(crate) fn secret(name: &str, value: &Secret) -> (String, FieldValue) {
    (name.to_owned(), FieldValue::Secret(value.clone()))
}
