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
    ("pending", "authorization_pending"),
    ("slow down", "slow_down"),
    ("too many requests", "slow_down"),
    ("denied", "access_denied"),
    ("declined", "access_denied"),
    ("rejected", "access_denied"),
    ("expired", "expired_token"),
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
    /// wait, as for RFC 8628's pending) and slow down at 429. RFC 6749
    /// bodies get the shared reading.
    fn parse_poll(&self, response: &HttpResponse) -> PollOutcome {
        if let Some(failure) = TwilioFailure::read(response) {
            match (response.status, failure.meaning) {
                (401 | 403, _) => return PollOutcome::Failed(failure.rejected(response)),
                (400, None) => {
                    tracing::debug!(
                        endpoint = %response.url,
                        "{}; read as pending",
                        failure.error.description.as_deref().unwrap_or_default()
                    );
                    return PollOutcome::Pending;
                }
                (429, None) => return PollOutcome::SlowDown { interval: None },
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
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use bytes::Bytes;

    use super::*;
    use crate::provider::ClientAuth;
    use crate::provider::wire::{field, fields};
    use crate::provider::{Expiry, FailureClass};

    fn twilio(secret: Option<&str>) -> Twilio {
        Twilio::new(
            ClientIdentity {
                client_id: "OQ123".into(),
                client_secret: secret.map(Secret::from),
                client_auth: if secret.is_some() {
                    ClientAuth::SecretPost
                } else {
                    ClientAuth::None
                },
                scopes: vec!["offline_access".into(), "profile".into()],
                device_params: BTreeMap::new(),
            },
            TwilioAccount {
                account_sid: "AC123".into(),
                auth_token: Secret::from("AUTH-TOKEN-VALUE"),
                audiences: vec!["aud1".into(), "aud2".into()],
            },
        )
    }

    fn endpoints() -> Endpoints {
        Endpoints::new(
            "https://oauth.twilio.com/v1/device/code".parse().unwrap(),
            "https://oauth.twilio.com/v1/token".parse().unwrap(),
        )
    }

    fn answer(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            url: endpoints().token,
            status,
            content_type: Some("application/json".into()),
            location: None,
            date: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_751_371_200 - 3600)),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn requests_are_pascal_case_forms_with_the_account_on_each() {
        let dialect = twilio(Some("client-secret"));
        let request = dialect.device_authorization_request(&endpoints());
        assert!(matches!(request.body, RequestBody::Form(_)));
        assert_eq!(field(&request, "ClientSid"), Some("OQ123"));
        assert_eq!(fields(&request, "Scopes"), ["offline_access", "profile"]);
        assert_eq!(fields(&request, "Audiences"), ["aud1", "aud2"]);
        assert_eq!(field(&request, "ClientSecret"), None);
        let (user, password) = request.basic_auth.as_ref().unwrap();
        assert_eq!(
            (user.as_str(), password.expose()),
            ("AC123", "AUTH-TOKEN-VALUE")
        );

        let poll = dialect.poll_request(&endpoints(), &Secret::from("dc"));
        assert_eq!(field(&poll, "GrantType"), Some(DEVICE_CODE_GRANT));
        assert_eq!(field(&poll, "DeviceCode"), Some("dc"));
        assert_eq!(field(&poll, "ClientSecret"), Some("client-secret"));
        assert!(poll.basic_auth.is_some());

        let refresh = twilio(None).refresh_request(&endpoints(), &Secret::from("rt"));
        assert_eq!(field(&refresh, "GrantType"), Some("refresh_token"));
        assert_eq!(field(&refresh, "RefreshToken"), Some("rt"));
        assert_eq!(field(&refresh, "ClientSecret"), None);
        assert!(refresh.basic_auth.is_some());
        let debug = format!("{refresh:?} {dialect:?}");
        assert!(!debug.contains("AUTH-TOKEN-VALUE"), "{debug}");
        assert!(!debug.contains("client-secret"), "{debug}");
    }

    #[test]
    fn answers_are_201_with_absolute_expiries_and_nulls() {
        let dialect = twilio(None);
        let auth = dialect
            .parse_device_authorization(&answer(
                201,
                r#"{"device_code":"dc","user_code":"U-1","verification_uri":"https://x/d","verification_uri_complete":null,"expires_in":null,"interval":null}"#,
            ))
            .unwrap();
        assert_eq!(auth.verification_uri_complete, None);
        assert_eq!(auth.expires_in, Duration::from_secs(300));
        assert_eq!(auth.interval, None);
        let PollOutcome::Granted(grant) = dialect.parse_poll(&answer(
            201,
            r#"{"access_token":"at","refresh_token":"rt","id_token":null,"access_token_expires_at":"Tue, 01 Jul 2025 12:00:00 +0000","refresh_token_expires_at":null}"#,
        )) else {
            panic!("not granted")
        };
        assert_eq!(grant.expiry, Expiry::In(Duration::from_secs(3600)));
        assert_eq!(grant.token_type, "Bearer");
        assert_eq!(grant.refresh_expires_in, None);
        // The refresh token's own expiry, absolute too (ISO 8601 here),
        // counted from the answer's Date.
        let PollOutcome::Granted(grant) = dialect.parse_poll(&answer(
            201,
            r#"{"access_token":"at","refresh_token":"rt","access_token_expires_at":"2025-07-01T12:00:00Z","refresh_token_expires_at":"2025-07-08T11:00:00Z"}"#,
        )) else {
            panic!("not granted")
        };
        assert_eq!(
            grant.refresh_expires_in,
            Some(Duration::from_secs(7 * 24 * 3600))
        );
        // Unreadable: unsaid, the tokens still taken.
        let PollOutcome::Granted(grant) = dialect.parse_poll(&answer(
            201,
            r#"{"access_token":"at","refresh_token":"rt","access_token_expires_at":"2025-07-01T12:00:00Z","refresh_token_expires_at":"next week"}"#,
        )) else {
            panic!("not granted")
        };
        assert_eq!(grant.refresh_expires_in, None);
    }

    #[test]
    fn both_error_styles() {
        let dialect = twilio(None);
        for body in [
            r#"{"error":"authorization_pending"}"#,
            r#"{"code":20001,"message":"authorization_pending: not yet","more_info":"https://www.twilio.com/docs/errors/20001","status":400}"#,
        ] {
            assert!(
                matches!(dialect.parse_poll(&answer(400, body)), PollOutcome::Pending),
                "{body}"
            );
        }
        let e = dialect
            .parse_refresh(&answer(
                401,
                r#"{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#,
            ))
            .unwrap_err();
        assert_eq!(e.class(), FailureClass::Permanent);
        assert!(
            e.to_string().contains("Twilio error 20003: Authenticate"),
            "{e}"
        );
    }

    fn body_fields(json: &str) -> AnswerFields {
        let Value::Object(map) = serde_json::from_str(json).unwrap() else {
            panic!("not an object")
        };
        AnswerFields::from_map(map)
    }

    #[test]
    fn twilio_errors_are_read_by_their_message() {
        let read = |json| ANSWERS.read_error(&body_fields(json)).unwrap();
        let e = read(
            r#"{"code":20001,"message":"authorization_pending","more_info":"https://www.twilio.com/docs/errors/20001","status":400}"#,
        );
        assert_eq!(e.error, "authorization_pending");
        let e = read(r#"{"code":20001,"message":"The user denied the request","status":400}"#);
        assert_eq!(e.error, "access_denied");
        assert_eq!(
            e.description.as_deref(),
            Some("Twilio error 20001: The user denied the request")
        );
        let e = read(r#"{"code":20003,"message":"Authenticate","status":401}"#);
        assert_eq!(e.error, "twilio_error_20003");
        // The RFC shape wins when both are there.
        let e = read(r#"{"error":"slow_down","code":20429,"message":"x"}"#);
        assert_eq!(e.error, "slow_down");
        // Only Twilio's style reads Twilio's bodies.
        assert!(
            crate::provider::oauth::AnswerFormat::STANDARD
                .read_error(&body_fields(r#"{"code":1,"message":"m"}"#))
                .is_none()
        );
    }

    fn twilio_body(code: u32, status: u16, message: &str) -> String {
        serde_json::json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        })
        .to_string()
    }

    #[test]
    fn twilio_poll_errors_without_known_words_are_read_by_their_status() {
        let dialect = twilio(None);
        let poll = |status, code, message| {
            dialect.parse_poll(&answer(status, &twilio_body(code, status, message)))
        };
        assert!(matches!(
            poll(
                400,
                20001,
                "Authorization request is awaiting user approval"
            ),
            PollOutcome::Pending
        ));
        assert!(matches!(
            poll(429, 20429, "Polling too frequently"),
            PollOutcome::SlowDown { interval: None }
        ));
        // A known meaning wins over the status.
        for message in [
            "Authorization request was rejected by the user",
            "The user declined",
            "access_denied",
        ] {
            let outcome = poll(400, 20001, message);
            assert!(
                matches!(&outcome, PollOutcome::Denied { message: m } if m.contains(message)),
                "{message}: {outcome:?}"
            );
        }
        assert!(matches!(
            poll(400, 20001, "Device code has expired"),
            PollOutcome::Expired { .. }
        ));
        assert!(matches!(
            poll(429, 20429, "Too Many Requests"),
            PollOutcome::SlowDown { .. }
        ));
        let PollOutcome::Failed(e) = poll(400, 20001, "invalid_client: wrong ClientSecret") else {
            panic!("not a failure")
        };
        assert_eq!(e.class(), FailureClass::Permanent);
        // The account's credentials: a failure whatever the words.
        for (status, message) in [
            (401, "Authenticate"),
            (401, "The auth token has expired"),
            (403, "Authorization request is awaiting user approval"),
        ] {
            let PollOutcome::Failed(e) = poll(status, 20003, message) else {
                panic!("{status} {message}: not a failure")
            };
            assert_eq!(e.class(), FailureClass::Permanent, "{status} {message}");
            assert!(e.to_string().contains(message), "{e}");
        }
        // Other statuses as the shared reading has them.
        let PollOutcome::Failed(e) = poll(404, 20404, "The requested resource was not found")
        else {
            panic!("not a failure")
        };
        assert_eq!(e.class(), FailureClass::Permanent);
        let PollOutcome::Failed(e) = poll(503, 20500, "Service unavailable") else {
            panic!("not a failure")
        };
        assert_eq!(e.class(), FailureClass::Transient);
        // RFC 6749 bodies as before: an unknown code at 400 ends the login.
        let PollOutcome::Failed(e) = dialect.parse_poll(&answer(
            400,
            r#"{"error":"invalid_request","error_description":"Authorization request is awaiting user approval"}"#,
        )) else {
            panic!("not a failure")
        };
        assert_eq!(e.class(), FailureClass::Permanent);
    }

    #[test]
    fn twilio_refresh_errors_are_read_by_their_status() {
        let dialect = twilio(None);
        let refresh = |status, code, message| {
            dialect
                .parse_refresh(&answer(status, &twilio_body(code, status, message)))
                .unwrap_err()
        };
        // 400: the refresh token is not taken, whatever the words.
        for message in [
            "Invalid refresh token",
            "",
            "Refresh token expired",
            "invalid_grant: the login was revoked",
        ] {
            let e = refresh(400, 20001, message);
            assert_eq!(e.class(), FailureClass::GrantRevoked, "{message}: {e}");
        }
        assert!(
            refresh(400, 20001, "Invalid refresh token")
                .to_string()
                .contains("Twilio error 20001: Invalid refresh token")
        );
        // ... unless the words blame the app or the pace.
        assert_eq!(
            refresh(400, 20001, "invalid_client: unknown ClientSid").class(),
            FailureClass::Permanent
        );
        assert_ne!(
            refresh(400, 20429, "slow down").class(),
            FailureClass::GrantRevoked
        );
        // 401 and 403: the account's credentials; the session stays, even
        // when the message says "expired" or names the grant.
        for (status, message) in [
            (401, "Authenticate"),
            (401, "The auth token has expired"),
            (401, "invalid_grant"),
            (403, "Account suspended: credentials expired"),
        ] {
            let e = refresh(status, 20003, message);
            assert_eq!(e.class(), FailureClass::Permanent, "{status} {message}");
            assert!(
                matches!(&e, ProviderError::Rejected { status: s, .. } if *s == status),
                "{e:?}"
            );
        }
        // 429 and 5xx: transient, as before.
        for (status, message) in [(429, "Too Many Requests"), (503, "Service unavailable")] {
            assert_eq!(
                refresh(status, 20000 + u32::from(status), message).class(),
                FailureClass::Transient
            );
        }
        // RFC 6749 bodies keep the shared reading.
        let rfc = |status, body| dialect.parse_refresh(&answer(status, body)).unwrap_err();
        assert_eq!(
            rfc(400, r#"{"error":"invalid_grant"}"#).class(),
            FailureClass::GrantRevoked
        );
        assert_eq!(
            rfc(400, r#"{"error":"invalid_request","code":20001}"#).class(),
            FailureClass::Permanent
        );
        assert_eq!(
            rfc(401, r#"{"error":"expired_token"}"#).class(),
            FailureClass::GrantRevoked
        );
        // A success is still a success.
        assert!(
            dialect
                .parse_refresh(&answer(
                    201,
                    r#"{"access_token":"at","refresh_token":"rt","access_token_expires_at":"2025-07-01T12:00:00"}"#,
                ))
                .is_ok()
        );
    }

    #[test]
    fn expiries_without_an_offset_are_utc() {
        let dialect = twilio(None);
        // The answer's Date is 11:00 UTC.
        let PollOutcome::Granted(grant) = dialect.parse_poll(&answer(
            201,
            r#"{"access_token":"at","refresh_token":"rt","access_token_expires_at":"2025-07-01T12:00:00.000000","refresh_token_expires_at":"2025-07-08T11:00:00"}"#,
        )) else {
            panic!("not granted")
        };
        assert_eq!(grant.expiry, Expiry::In(Duration::from_secs(3600)));
        assert_eq!(
            grant.refresh_expires_in,
            Some(Duration::from_secs(7 * 24 * 3600))
        );
    }

    /// Moved from the shared answer readers' tests: Twilio's pending body
    /// is pending for Twilio and a failure for the standard reader.
    #[test]
    fn twilio_error_bodies_drive_outcomes() {
        let body = r#"{"code":20001,"message":"authorization_pending","more_info":"https://www.twilio.com/docs/errors/20001","status":400}"#;
        assert!(matches!(
            oauth::poll_answer(&ANSWERS, &answer(400, body)),
            PollOutcome::Pending
        ));
        assert!(matches!(
            oauth::poll_answer(&AnswerFormat::STANDARD, &answer(400, body)),
            PollOutcome::Failed(_)
        ));
    }
}
