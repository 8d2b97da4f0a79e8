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
//!
//! Differences between dialects are data where they can be: a
//! [`wire::WireFormat`] says how requests look (encoding, field names, how
//! scopes are sent, where the client secret goes, fixed extra fields), an
//! [`oauth::AnswerFormat`] how answers read (error body styles, how the
//! expiry is given), and [`DialectKind::fixed_paths`] where the endpoints
//! are. Code is left for what data cannot say: Trakt answers polls in the
//! status code alone ([`trakt`]), Twilio authenticates every request with
//! the account's credentials ([`twilio`]).
//!
//! # Adding a dialect
//!
//! 1. **Name it.** Add a variant to [`DialectKind`] with its config name,
//!    its paths in [`DialectKind::fixed_paths`] if they are fixed below a
//!    `base_url`, and the client authentications it can send in
//!    [`DialectKind::client_auth_modes`].
//! 2. **Describe it.** Write `src/provider/NAME.rs` with a
//!    [`wire::WireFormat`] constant (encoding, field names, how scopes and
//!    the secret are sent, fixed extra fields) and an
//!    [`oauth::AnswerFormat`] constant (error body shapes, how the expiry
//!    is given). If data says it all, the dialect is a
//!    [`described::DescribedDialect`] built from the two (see `oracle.rs`,
//!    some forty lines without its tests). Otherwise write a type
//!    implementing [`ProviderDialect`] that calls the `WireFormat` request
//!    builders and the `oauth` answer readers and adds only what data
//!    cannot say (see `trakt.rs`: status-code answers; `twilio.rs`: account
//!    credentials on every request). Unit-test it from bytes.
//! 3. **Configure it.** Add its arm to [`dialect_for`]. Settings no other
//!    dialect has go in `config::DialectOptions`, are read in
//!    `config/dialect.rs` and listed in its `DIALECT_KEYS` (which makes
//!    them errors, with their position, on every other dialect); its
//!    requirements on the common keys go in `check_requirements` there.
//! 4. **Emulate it.** Write `src/emulator/NAME.rs`: an options struct with
//!    a `policy()`, and a type implementing the emulator's `Dialect` that
//!    maps the wire onto the shared `Authority` verdicts. Make it as strict
//!    as the real provider (encodings, key names, required parameters,
//!    client authentication, poll spacing), record every client mistake as
//!    a violation, and reproduce every quirk, configurable where the facts
//!    are inferred. Add its variant in `src/emulator/options.rs`.
//! 5. **Prove it.** Add a config builder in `tests/e2e/support/provider.rs`
//!    and `tests/e2e/dialect_NAME.rs`, which runs the shared scenarios of
//!    `tests/e2e/support/flows.rs` (login, approve, token, expiry and refresh
//!    with rotation, denial, device-code expiry, slow down) through the
//!    real `tokend` and `tokenctl`, then the dialect's own error states.
//!    Add a commented preset `config/NAME.toml`; `tests/e2e/config_presets.rs`
//!    checks it with `tokend --check`.

pub mod datetime;
pub mod described;
pub mod discovery;
mod error;
pub mod generic_v1;
pub mod http;
mod message;
pub mod oauth;
mod oauth_errors;
pub mod oracle;
mod remote;
pub mod rfc8628;
pub mod trakt;
pub mod twilio;
pub mod url_rule;
pub mod wire;

use std::collections::BTreeMap;
use std::fmt;

use url::Url;

use crate::config::{ClientAuth, DialectOptions, ProviderConfig};
use crate::secret::Secret;

pub use error::{FailureClass, ProviderError};
pub use http::HttpClient;
pub use message::{
    DeviceAuthorization, Expiry, FieldValue, HttpRequest, HttpResponse, PollOutcome, RequestBody,
    TokenGrant,
};
pub use remote::Provider;

/// The wire dialects tokend speaks (see `shared/dialects.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialectKind {
    /// RFC 8628 + RFC 6749, with the common deviations tolerated (GitHub,
    /// Google, Microsoft, Keycloak, ...).
    Rfc8628,
    /// Trakt: JSON bodies, poll answers in the status code.
    Trakt,
    /// Twilio OAuth v1: PascalCase forms, account credentials on every
    /// request, absolute expiries.
    Twilio,
    /// Oracle identity domains (IDCS).
    Oracle,
    /// A Django REST framework device API (`/api/v1/oauth/...`).
    GenericV1,
}

/// Endpoint paths below `base_url`, for dialects whose paths are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedPaths {
    /// The device authorization endpoint.
    pub device_authorization: &'static str,
    /// The token endpoint (polls, and refreshes unless `refresh` is set).
    pub token: &'static str,
    /// Where refreshes go when that is not the token endpoint (Trakt).
    pub refresh: Option<&'static str>,
}

impl DialectKind {
    /// Every dialect, for listing in error messages.
    pub const ALL: &'static [DialectKind] = &[
        DialectKind::Rfc8628,
        DialectKind::Trakt,
        DialectKind::Twilio,
        DialectKind::Oracle,
        DialectKind::GenericV1,
    ];

    /// The config name of the dialect.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Rfc8628 => "rfc8628",
            Self::Trakt => "trakt",
            Self::Twilio => "twilio",
            Self::Oracle => "oracle",
            Self::GenericV1 => "generic-v1",
        }
    }

    /// Parses a config name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|d| d.name() == name)
    }

    /// Paths of the endpoints relative to `base_url`, for dialects whose
    /// paths are fixed.
    #[must_use]
    pub fn fixed_paths(self) -> Option<FixedPaths> {
        let paths = |device_authorization, token, refresh| {
            Some(FixedPaths {
                device_authorization,
                token,
                refresh,
            })
        };
        match self {
            Self::Rfc8628 => None,
            Self::Trakt => paths(
                "/oauth/device/code",
                "/oauth/device/token",
                Some("/oauth/token"),
            ),
            Self::Twilio => paths("/v1/device/code", "/v1/token", None),
            Self::Oracle => paths("/oauth2/v1/device", "/oauth2/v1/token", None),
            // The trailing slash of the first and its absence on the second
            // are the service's (Django routes); neither may be "fixed".
            Self::GenericV1 => paths(
                "/api/v1/oauth/device-authorization/",
                "/api/v1/oauth/token",
                None,
            ),
        }
    }

    /// The client authentication modes the dialect can send, the default first.
    #[must_use]
    pub fn client_auth_modes(self) -> &'static [ClientAuth] {
        match self {
            // Trakt wants the secret in every JSON body.
            Self::Trakt => &[ClientAuth::SecretPost],
            // HTTP Basic carries the account's credentials; a client secret
            // can only go in the body (`ClientSecret`).
            Self::Twilio => &[ClientAuth::SecretPost, ClientAuth::None],
            Self::Rfc8628 | Self::Oracle | Self::GenericV1 => &[
                ClientAuth::SecretPost,
                ClientAuth::SecretBasic,
                ClientAuth::None,
            ],
        }
    }
}

impl fmt::Display for DialectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The endpoints of a device-grant provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Where the device authorization request goes.
    pub device_authorization: Url,
    /// Where polls go, and refreshes unless `refresh` is set.
    pub token: Url,
    /// Where refreshes go, when not the token endpoint (Trakt).
    pub refresh: Option<Url>,
}

impl Endpoints {
    /// The two usual endpoints; refreshes go to the token endpoint.
    #[must_use]
    pub fn new(device_authorization: Url, token: Url) -> Self {
        Self {
            device_authorization,
            token,
            refresh: None,
        }
    }

    /// Where refreshes go.
    #[must_use]
    pub fn refresh_url(&self) -> &Url {
        self.refresh.as_ref().unwrap_or(&self.token)
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

    /// Adds client authentication to `request` as configured: the secret in
    /// the body (`client_secret_post`) or as HTTP Basic (`client_secret_basic`).
    /// `client_id` is in the body in every mode; servers accept it beside
    /// Basic, and public clients need it there.
    pub fn authenticate(&self, request: &mut HttpRequest) {
        self.authenticate_as(request, "client_secret");
    }

    /// As [`Self::authenticate`], with the body field named `secret_field`
    /// (`ClientSecret` for Twilio).
    pub fn authenticate_as(&self, request: &mut HttpRequest, secret_field: &str) {
        let Some(client_secret) = &self.client_secret else {
            return;
        };
        match self.client_auth {
            ClientAuth::None => {}
            ClientAuth::SecretPost => {
                let fields = match &mut request.body {
                    RequestBody::Form(fields) | RequestBody::Json(fields) => fields,
                };
                fields.push(secret(secret_field, client_secret));
            }
            ClientAuth::SecretBasic => {
                request.basic_auth = Some((self.client_id.clone(), client_secret.clone()));
            }
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
    match (config.dialect, &config.dialect_options) {
        (DialectKind::Trakt, DialectOptions::Trakt(options)) => {
            Box::new(trakt::Trakt::new(client, &options.redirect_uri))
        }
        (DialectKind::Trakt, _) => Box::new(trakt::Trakt::new(client, trakt::OOB_REDIRECT_URI)),
        (DialectKind::Twilio, DialectOptions::Twilio(options)) => {
            Box::new(twilio::Twilio::new(client, options.clone()))
        }
        (DialectKind::Twilio, _) => {
            // The config loader never builds a Twilio provider without its
            // account; without one every request would be refused anyway.
            Box::new(twilio::Twilio::new(
                client,
                crate::config::TwilioOptions::default(),
            ))
        }
        (DialectKind::Oracle, _) => Box::new(oracle::dialect(client)),
        (DialectKind::GenericV1, _) => Box::new(generic_v1::dialect(client)),
        (DialectKind::Rfc8628, _) => Box::new(rfc8628::Rfc8628::new(client)),
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
