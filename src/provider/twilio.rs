//! Twilio OAuth v1, device era (`shared/dialects.md` §2).
//!
//! As data: form bodies with PascalCase keys (`ClientSid`, `GrantType`,
//! `DeviceCode`, `RefreshToken`, `ClientSecret`), scopes and audiences as
//! repeated keys, answers with status 201, every field nullable, no
//! `expires_in` and no `token_type` but an absolute
//! `access_token_expires_at` (ISO 8601 or RFC 2822, both read by
//! [`super::datetime`]), and error bodies either RFC 6749's or Twilio's own
//! (`{"code", "message", "more_info", "status"}`).
//!
//! As code: every request carries HTTP Basic with the account SID and auth
//! token, whatever the client authentication.

use std::time::Duration;

use super::oauth::{self, AnswerFormat, ErrorBodies, ExpiryField};
use super::wire::{DEVICE_CODE_GRANT, Encoding, ScopeField, WireFormat};
use super::{
    ClientIdentity, DeviceAuthorization, DialectKind, Endpoints, HttpRequest, HttpResponse,
    PollOutcome, ProviderDialect, ProviderError, RequestBody, TokenGrant, plain,
};
use crate::config::TwilioOptions;
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
    errors: ErrorBodies::Twilio,
    expiry: ExpiryField::ExpiresAt("access_token_expires_at"),
    default_device_lifetime: Some(Duration::from_secs(300)),
};

/// The name of the repeated audience key of the device request.
pub const AUDIENCES: &str = "Audiences";

/// The Twilio dialect.
#[derive(Debug)]
pub struct Twilio {
    client: ClientIdentity,
    account: TwilioOptions,
}

impl Twilio {
    /// The dialect speaking for `client` within the Twilio `account`.
    #[must_use]
    pub fn new(client: ClientIdentity, account: TwilioOptions) -> Self {
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
    fn kind(&self) -> DialectKind {
        DialectKind::Twilio
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

    fn parse_poll(&self, response: &HttpResponse) -> PollOutcome {
        oauth::poll_answer(&ANSWERS, response)
    }

    fn refresh_request(&self, endpoints: &Endpoints, refresh_token: &Secret) -> HttpRequest {
        self.with_account(WIRE.refresh_request(
            &self.client,
            endpoints.refresh_url().clone(),
            refresh_token,
        ))
    }

    fn parse_refresh(&self, response: &HttpResponse) -> Result<TokenGrant, ProviderError> {
        oauth::refresh_answer(&ANSWERS, response)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use bytes::Bytes;

    use super::*;
    use crate::config::ClientAuth;
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
            TwilioOptions {
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
}
