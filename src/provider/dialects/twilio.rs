//! Twilio OAuth v1, device era (`shared/dialects.md` §2).
//!
//! As data: form bodies with PascalCase keys (`ClientSid`, `GrantType`,
//! `DeviceCode`, `RefreshToken`, `ClientSecret`), scopes and audiences as
//! repeated keys, answers with status 201, every field nullable, no
//! `expires_in` and no `token_type` but an absolute
//! `access_token_expires_at` (ISO 8601, with or without an offset, or RFC
//! 2822, all read by [`crate::provider::datetime`]), and error bodies
//! either RFC 6749's or Twilio's own (`{"code", "message", "more_info",
//! "status"}`).
//!
//! As code: every request carries HTTP Basic with the account SID and auth
//! token, whatever the client authentication; and Twilio's own error
//! bodies, whose messages need not name an OAuth error, are read by their
//! status where their words say nothing known (`parse_poll`,
//! `parse_refresh`).

use std::time::Duration;

use serde_json::Value;

use crate::provider::oauth::{
    self, AnswerFields, AnswerFormat, ExpiryField, OAuthError, clean_detail,
};
use crate::provider::wire::{DEVICE_CODE_GRANT, Encoding, ScopeField, WireFormat};
use crate::provider::{
    ClientAuth, ClientIdentity, CommonSettings, DeviceAuthorization, DialectSettings, DialectSpec,
    Endpoints, FixedPaths, HttpRequest, HttpResponse, PollOutcome, ProviderDialect, ProviderError,
    RequestBody, SettingValue, SettingsSource, TokenGrant, plain,
};
use crate::secret::Secret;

/// Twilio's requests.
pub const WIRE: WireFormat = WireFormat {
    encoding: Encoding::Form,
    client_id: "ClientSid",
    client_secret: "ClientSecret",
    scope: ScopeField::Repeated("Scopes"),
    grant_type: "GrantType",
    device_grant: Some(DEVICE_CODE_GRANT),
    device_code: "DeviceCode",
    refresh_token: "RefreshToken",
    device_fields: &[],
    // The device code request has no ClientSecret parameter; the account's
    // Basic credentials authenticate it.
    authenticate_device_request: false,
};

/// Twilio's answers. A device answer whose `expires_in` is null is taken
/// to live 5 minutes: short enough that the login never polls a dead code
/// for long, the usual lifetime of device codes elsewhere.
pub const ANSWERS: AnswerFormat = AnswerFormat {
    own_errors: Some(twilio_error),
    expiry: ExpiryField::ExpiresAt("access_token_expires_at"),
    default_device_lifetime: Some(Duration::from_secs(300)),
    default_token_lifetime: None,
};

/// Config keys of the account every request authenticates as.
const ACCOUNT_SID: &str = "account_sid";
const AUTH_TOKEN: &str = "auth_token";
const AUTH_TOKEN_FILE: &str = "auth_token_file";
const AUDIENCES_KEY: &str = "audiences";

/// Twilio: fixed paths below `https://oauth.twilio.com`, the account's
/// credentials as keys of its own, `scopes` required.
pub static DIALECT: DialectSpec = DialectSpec {
    name: "twilio",
    fixed_paths: Some(FixedPaths {
        device_authorization: "/v1/device/code",
        token: "/v1/token",
        refresh: None,
    }),
    // HTTP Basic carries the account's credentials; a client secret can
    // only go in the body (`ClientSecret`).
    client_auth_modes: &[ClientAuth::SecretPost, ClientAuth::None],
    own_keys: &[ACCOUNT_SID, AUTH_TOKEN, AUTH_TOKEN_FILE, AUDIENCES_KEY],
    read_settings,
    check_common,
    default_device_params: DialectSpec::no_device_defaults,
    build,
    presets: &["config/twilio.toml"],
};

fn read_settings(source: &mut dyn SettingsSource) -> Option<DialectSettings> {
    let context = source.context().to_owned();
    let account_sid = if source.has(ACCOUNT_SID) {
        source.text(ACCOUNT_SID).ok().flatten()
    } else {
        source.error(None, format!("missing key `{ACCOUNT_SID}` in {context}"));
        None
    };
    if let Some(sid) = &account_sid
        && !sid.starts_with("AC")
    {
        source.warning(
            Some(ACCOUNT_SID),
            "Twilio account SIDs start with \"AC\"; is this the account SID?".to_owned(),
        );
    }
    let auth_token = match source.secret(AUTH_TOKEN, AUTH_TOKEN_FILE) {
        Ok(Some(token)) => Some(token),
        Ok(None) => {
            source.error(
                None,
                format!(
                    "dialect \"twilio\" needs the account's auth token: set `{AUTH_TOKEN}` or `{AUTH_TOKEN_FILE}` in {context}"
                ),
            );
            None
        }
        Err(_) => None,
    };
    let audiences = source.text_list(AUDIENCES_KEY).ok().flatten();
    let mut settings = DialectSettings::default();
    settings.set(ACCOUNT_SID, SettingValue::Text(account_sid?));
    settings.set(AUTH_TOKEN, SettingValue::Secret(auth_token?));
    settings.set(
        AUDIENCES_KEY,
        SettingValue::List(audiences.unwrap_or_default()),
    );
    Some(settings)
}

/// Twilio's tokens are for the scopes asked for; it needs at least one.
fn check_common(common: &CommonSettings<'_>, source: &mut dyn SettingsSource) {
    if common.scopes.is_empty() {
        let context = source.context().to_owned();
        source.error(
            Some("scopes"),
            format!("dialect \"twilio\" requires `scopes` (at least one) in {context}"),
        );
    }
}

fn build(client: ClientIdentity, settings: &DialectSettings) -> Box<dyn ProviderDialect> {
    // The config loader never gives a Twilio provider settings without its
    // account; without one every request would be refused anyway.
    let account = TwilioAccount {
        account_sid: settings.text(ACCOUNT_SID).unwrap_or_default().to_owned(),
        auth_token: settings
            .secret(AUTH_TOKEN)
            .cloned()
            .unwrap_or_else(|| Secret::from("")),
        audiences: settings.list(AUDIENCES_KEY).to_vec(),
    };
    Box::new(Twilio::new(client, account))
}

/// Twilio's settings: the account every request authenticates as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioAccount {
    /// The account SID (`AC...`), the HTTP Basic user.
    pub account_sid: String,
    /// The account's auth token, the HTTP Basic password.
    pub auth_token: Secret,
    /// Audiences of the tokens, sent as repeated `Audiences` keys.
    pub audiences: Vec<String>,
}

/// Twilio's error bodies carry no OAuth code (this is inferred, see
/// `shared/dialects.md` §2): the meaning is read from the message, exact
/// codes first, then plain words. A message with none of them is read by
/// its status, differently in a poll and in a refresh.
const TWILIO_MEANINGS: &[(&str, &str)] = &[
    ("authorization_pending", "authorization_pending"),
    ("slow_down", "slow_down"),
    ("access_denied", "access_denied"),
    ("expired_token", "expired_token"),
    ("invalid_grant", "invalid_grant"),
    ("invalid_client", "invalid_client"),
    // The app's own credentials (a ClientSecret rotated in the console
    // before the config, a mistyped ClientSid): a 400 may say so in these
    // words, and the session is not what is wrong. Before "expired", so
    // "Client secret expired" blames the app; a ClientSid only as the
    // thing that is invalid (a message may name the app's SID in passing:
    // "Refresh token expired for ClientSid OQ…" is the grant's).
    ("client authentication", "invalid_client"),
    ("invalid clientsecret", "invalid_client"),
    ("client secret", "invalid_client"),
    ("invalid clientsid", "invalid_client"),
    ("invalid client sid", "invalid_client"),
    ("slow down", "slow_down"),
    ("too many requests", "slow_down"),
    ("denied", "access_denied"),
    ("declined", "access_denied"),
    ("rejected", "access_denied"),
    ("expired", "expired_token"),
    // "Invalid device code": a code already spent (its grant's answer
    // lost on the way) or unknown. Read as pending, the login waited out
    // the code's whole life for nothing. Only these words: "Invalid
    // ClientSid" is the request's mistake, not a grant gone.
    ("invalid device code", "invalid_grant"),
    // The same in Twilio's own parameter name, and turned around.
    ("invalid devicecode", "invalid_grant"),
    ("device code is invalid", "invalid_grant"),
    ("devicecode is invalid", "invalid_grant"),
    // Last: a message may say what ended the wait beside the wait itself
    // ("Device code expired while awaiting approval").
    ("pending", "authorization_pending"),
    // "Authorization request is awaiting user approval".
    ("awaiting", "authorization_pending"),
];

/// The OAuth error a Twilio error message names, if it names one.
fn meaning(message: &str) -> Option<&'static str> {
    let lower = message.to_ascii_lowercase();
    TWILIO_MEANINGS
        .iter()
        .find(|(needle, _)| lower.contains(needle))
        .map(|(_, e)| *e)
}

/// Reads Twilio's own error bodies (`{"code": 20001, "message": ...,
/// "more_info": ..., "status": 400}`), which carry no OAuth code.
#[must_use]
pub fn twilio_error(fields: &AnswerFields) -> Option<OAuthError> {
    let code = fields.map().get("code").and_then(Value::as_u64)?;
    let message = fields.text(&["message"]).unwrap_or_default();
    let error = meaning(&message).map_or_else(|| format!("twilio_error_{code}"), str::to_owned);
    let message = clean_detail(&message);
    Some(OAuthError {
        error,
        description: Some(if message.is_empty() {
            format!("Twilio error {code}")
        } else {
            format!("Twilio error {code}: {message}")
        }),
        interval: None,
    })
}

/// A failed answer in Twilio's own shape (a numeric `code`, no RFC 6749
/// `error`): the error as [`twilio_error`] reads it, and whether its
/// message named a known meaning.
struct TwilioFailure {
    error: OAuthError,
    meaning: Option<&'static str>,
}

impl TwilioFailure {
    fn read(response: &HttpResponse) -> Option<Self> {
        if (200..300).contains(&response.status) {
            return None;
        }
        let fields = AnswerFields::parse(response)?;
        if OAuthError::from_fields(&fields).is_some() {
            return None;
        }
        let error = twilio_error(&fields)?;
        let message = fields.text(&["message"]).unwrap_or_default();
        Some(Self {
            meaning: meaning(&message),
            error,
        })
    }

    /// A refusal that retrying will not fix, the session kept.
    fn rejected(self, response: &HttpResponse) -> ProviderError {
        ProviderError::Rejected {
            endpoint: response.url.as_str().to_owned(),
            status: response.status,
            detail: self.error.detail(),
            error: self.error.error,
        }
    }
}

/// The name of the repeated audience key of the device request.
pub const AUDIENCES: &str = "Audiences";

/// The Twilio dialect.
#[derive(Debug)]
pub struct Twilio {
    client: ClientIdentity,
    account: TwilioAccount,
}

impl Twilio {
    /// The dialect speaking for `client` within the Twilio `account`.
    #[must_use]
    pub fn new(client: ClientIdentity, account: TwilioAccount) -> Self {
        Self { client, account }
    }

    fn with_account(&self, mut request: HttpRequest) -> HttpRequest {
        // Account SIDs and auth tokens are [A-Za-z0-9]: the form-encoding
        // the HTTP client applies to Basic credentials leaves them as they are.
        request.basic_auth = Some((
            self.account.account_sid.clone(),
            self.account.auth_token.clone(),
        ));
        request
    }
}

impl ProviderDialect for Twilio {
    fn spec(&self) -> &'static DialectSpec {
        &DIALECT
    }

    fn device_authorization_request(&self, endpoints: &Endpoints) -> HttpRequest {
        let mut request = WIRE.device_request(&self.client, endpoints.device_authorization.clone());
        if let RequestBody::Form(fields) = &mut request.body {
            fields.extend(self.account.audiences.iter().map(|a| plain(AUDIENCES, a)));
        }
        self.with_account(request)
    }

    fn parse_device_authorization(
        &self,
        response: &HttpResponse,
    ) -> Result<DeviceAuthorization, ProviderError> {
        oauth::device_authorization(&ANSWERS, response)
    }

    fn poll_request(&self, endpoints: &Endpoints, device_code: &Secret) -> HttpRequest {
        self.with_account(WIRE.poll_request(&self.client, endpoints.token.clone(), device_code))
    }

    /// Twilio's own error bodies: 401 and 403 are the account's (or the
    /// app's) credentials, a failure whatever the words; otherwise a known
    /// meaning in the message decides (denied, expired, ...), and a message
    /// without one is pending at 400 (the device code's expiry ends the
    /// wait, as for RFC 8628's pending; the message named then, as what
    /// the polls were answered) and slow down at 429. RFC 6749
    /// bodies get the shared reading.
    fn parse_poll(&self, response: &HttpResponse) -> PollOutcome {
        if let Some(failure) = TwilioFailure::read(response) {
            match (response.status, failure.meaning) {
                (401 | 403, _) => return PollOutcome::Failed(failure.rejected(response)),
                (400, None) => {
                    // Not the provider's words: unredacted here, they
                    // may echo the device code.
                    tracing::debug!(
                        endpoint = crate::provider::message::endpoint_for_log(&response.url),
                        "a poll answered 400 with a Twilio error of no known meaning: read as pending"
                    );
                    // Polled on, but named: a login every poll of which
                    // was refused for the request's own fault ("Invalid
                    // GrantType") ended as "expired before it was
                    // approved", nothing said.
                    return PollOutcome::PendingUnclear(failure.rejected(response));
                }
                (429, None) => {
                    return PollOutcome::SlowDown {
                        interval: None,
                        retry_after: response.retry_after,
                    };
                }
                _ => {}
            }
        }
        oauth::poll_answer(&ANSWERS, response)
    }

    fn refresh_request(&self, endpoints: &Endpoints, refresh_token: &Secret) -> HttpRequest {
        self.with_account(WIRE.refresh_request(
            &self.client,
            endpoints.refresh_url().clone(),
            refresh_token,
        ))
    }

    /// Twilio's own error bodies: the refresh request is fixed and well
    /// formed, so a 400 says the refresh token is not taken: the session is
    /// gone (unless the message blames the app, `invalid_client`, or the
    /// pace, `slow_down`). 401 and 403 are the account's (or the app's)
    /// credentials: a refusal that keeps the session whatever the words
    /// ("expired" included). Other statuses (429, 5xx) and RFC 6749 bodies
    /// get the shared reading.
    fn parse_refresh(&self, response: &HttpResponse) -> Result<TokenGrant, ProviderError> {
        if let Some(failure) = TwilioFailure::read(response) {
            match (response.status, failure.meaning) {
                (401 | 403, _) => return Err(failure.rejected(response)),
                (400, meaning) if !matches!(meaning, Some("invalid_client" | "slow_down")) => {
                    return Err(ProviderError::GrantRevoked {
                        error: failure.error.error,
                        detail: failure.error.description,
                    });
                }
                _ => {}
            }
        }
        oauth::refresh_answer(&ANSWERS, response)
    }
}

#[cfg(test)]
mod tests;
