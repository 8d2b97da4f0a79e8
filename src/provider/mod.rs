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
//! expiry is given), and each dialect's [`DialectSpec`] its config name,
//! own config keys, fixed paths and client authentications. Code is left
//! for what data cannot say: Trakt answers polls in the status code alone
//! ([`dialects::trakt`]), Twilio authenticates every request with the
//! account's credentials ([`dialects::twilio`]).
//!
//! Each dialect is one file under [`dialects`], listed in its registry;
//! the README's "Adding a dialect" lists every file a new one takes.

mod answer_fields;
pub mod ca_paths;
pub mod data_only;
pub mod datetime;
mod dialect_spec;
pub mod dialects;
pub mod discovery;
mod error;
pub mod http;
mod http_proxy;
mod message;
pub mod oauth;
mod oauth_errors;
mod redaction;
mod remote;
pub mod token_text;
pub mod url_rule;
pub mod wire;

use std::collections::BTreeMap;
use std::fmt;

use url::Url;

use crate::secret::Secret;

pub use dialect_spec::{
    CommonSettings, DialectSettings, DialectSpec, FixedPaths, Reported, SettingValue,
    SettingsSource,
};
pub use error::{FailureClass, ProviderError};
pub use http::HttpClient;
pub use message::{
    DeviceAuthorization, Expiry, FieldValue, HttpRequest, HttpResponse, MAX_RETRY_AFTER,
    PollOutcome, RequestBody, TokenGrant,
};
pub use remote::Provider;

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A public client: only `client_id` is sent.
    None,
    /// `client_secret` in the request body.
    SecretPost,
    /// HTTP Basic with `client_id:client_secret`.
    SecretBasic,
}

impl ClientAuth {
    /// Every mode with its config name (`client_auth = "..."`).
    pub const NAMES: &'static [(&'static str, ClientAuth)] = &[
        ("none", ClientAuth::None),
        ("client_secret_post", ClientAuth::SecretPost),
        ("client_secret_basic", ClientAuth::SecretBasic),
    ];

    /// The config name.
    #[must_use]
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, mode)| *mode == self)
            .map_or("?", |(name, _)| name)
    }
}

/// Where a provider's endpoints come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSource {
    /// Given in the config (or derived from `base_url`).
    Fixed {
        /// Device authorization endpoint.
        device_authorization: Url,
        /// Token endpoint.
        token: Url,
        /// Refresh endpoint, when refreshes do not go to the token endpoint (Trakt).
        refresh: Option<Url>,
    },
    /// OpenID discovery from the issuer, done when first needed.
    Discover {
        /// The issuer URL.
        issuer: Url,
    },
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

/// A wire dialect speaking for one provider's client (what a
/// [`DialectSpec`] builds): builds requests and reads answers, with no I/O.
pub trait ProviderDialect: Send + Sync + fmt::Debug {
    /// Which dialect this is.
    fn spec(&self) -> &'static DialectSpec;

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

/// A plain field, for building bodies.
pub(crate) fn plain(name: &str, value: impl Into<String>) -> (String, FieldValue) {
    (name.to_owned(), FieldValue::Plain(value.into()))
}

/// A secret field, for building bodies.
pub(crate) fn secret(name: &str, value: &Secret) -> (String, FieldValue) {
    (name.to_owned(), FieldValue::Secret(value.clone()))
}
