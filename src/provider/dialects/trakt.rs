//! Trakt (`shared/dialects.md` §1).
//!
//! As data: JSON bodies, the poll's device code under `code` and no
//! `grant_type`, the client secret in every poll and refresh, no scopes,
//! refreshes at their own endpoint (`/oauth/token`) with the registered
//! `redirect_uri`, `verification_url` in the device answer (read by
//! [`crate::provider::oauth`]), and `created_at` ageing the token's lifetime.
//!
//! As code: the poll answer is in the status code alone, bodies empty or
//! not JSON ([`POLL_STATUSES`]); and every request carries Trakt's API
//! headers, which its API gateway expects.

use crate::provider::oauth::{self, AnswerFormat, ExpiryField};
use crate::provider::wire::{Encoding, ScopeField, WireFormat};
use crate::provider::{
    ClientAuth, ClientIdentity, CommonSettings, DeviceAuthorization, DialectSettings, DialectSpec,
    Endpoints, FixedPaths, HttpRequest, HttpResponse, PollOutcome, ProviderDialect, ProviderError,
    SettingValue, SettingsSource, TokenGrant, plain,
};
use crate::secret::Secret;

/// The redirect URI of apps without one: device apps (RFC 8252's
/// out-of-band URI, which Trakt's app settings use).
pub const OOB_REDIRECT_URI: &str = "urn:ietf:wg:oauth:2.0:oob";

/// Trakt's API version header value.
pub const API_VERSION: &str = "2";

/// Trakt's requests.
pub const WIRE: WireFormat = WireFormat {
    encoding: Encoding::Json,
    scope: ScopeField::Omitted,
    device_grant: None,
    device_code: "code",
    // The device code request takes the client id alone.
    authenticate_device_request: false,
    ..WireFormat::STANDARD
};

/// Trakt's answers: RFC 6749 bodies where there are any, `created_at`.
pub const ANSWERS: AnswerFormat = AnswerFormat {
    expiry: ExpiryField::ExpiresInSinceCreated,
    ..AnswerFormat::STANDARD
};

/// What a poll's status code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollStatus {
    /// The body is the token answer.
    Granted,
    /// Keep polling.
    Pending,
    /// Poll slower.
    SlowDown,
    /// The person denied.
    Denied,
    /// The device code expired.
    Expired,
    /// A refusal the login cannot recover from: (error, explanation).
    Refused(&'static str, &'static str),
}

/// Trakt's poll answers, by status (Trakt API docs, "Get token").
pub const POLL_STATUSES: &[(u16, PollStatus)] = &[
    (200, PollStatus::Granted),
    (400, PollStatus::Pending),
    (
        404,
        PollStatus::Refused(
            "invalid_device_code",
            "Trakt does not know this device code",
        ),
    ),
    (
        409,
        PollStatus::Refused(
            "code_already_used",
            "this device code was already exchanged for tokens",
        ),
    ),
    (410, PollStatus::Expired),
    (418, PollStatus::Denied),
    (429, PollStatus::SlowDown),
];

/// The config key of the app's registered redirect URI, sent in
/// refreshes (default [`OOB_REDIRECT_URI`]).
pub const REDIRECT_URI: &str = "redirect_uri";

/// Trakt: fixed paths below `https://api.trakt.tv`, its own
/// `redirect_uri`, the client secret required and always in the body.
pub static DIALECT: DialectSpec = DialectSpec {
    name: "trakt",
    fixed_paths: Some(FixedPaths {
        device_authorization: "/oauth/device/code",
        token: "/oauth/device/token",
        refresh: Some("/oauth/token"),
    }),
    // Trakt wants the secret in every JSON body.
    client_auth_modes: &[ClientAuth::SecretPost],
    own_keys: &[REDIRECT_URI],
    read_settings,
    check_common,
    default_device_params: DialectSpec::no_device_defaults,
    build,
    presets: &["config/trakt.toml"],
};

fn read_settings(source: &mut dyn SettingsSource) -> Option<DialectSettings> {
    let redirect_uri = match source.text(REDIRECT_URI).ok()? {
        Some(uri) if uri.trim().is_empty() => {
            source.error(Some(REDIRECT_URI), format!("`{REDIRECT_URI}` is empty"));
            return None;
        }
        Some(uri) => uri,
        None => OOB_REDIRECT_URI.to_owned(),
    };
    let mut settings = DialectSettings::default();
    settings.set(REDIRECT_URI, SettingValue::Text(redirect_uri));
    Some(settings)
}

/// Trakt polls and refreshes with the client secret.
fn check_common(common: &CommonSettings<'_>, source: &mut dyn SettingsSource) {
    if common.has_secret == Ok(false) {
        let context = source.context().to_owned();
        source.error(
            None,
            format!(
                "dialect \"trakt\" needs the app's client secret (Trakt polls and refreshes with it): set `client_secret`, `client_secret_file` or `client_secret_credential` in {context}"
            ),
        );
    }
}

fn build(client: ClientIdentity, settings: &DialectSettings) -> Box<dyn ProviderDialect> {
    let redirect_uri = settings.text(REDIRECT_URI).unwrap_or(OOB_REDIRECT_URI);
    Box::new(Trakt::new(client, redirect_uri))
}

/// The Trakt dialect.
#[derive(Debug)]
pub struct Trakt {
    client: ClientIdentity,
    redirect_uri: String,
}

impl Trakt {
    /// The dialect speaking for `client`, whose app is registered with
    /// `redirect_uri`.
    #[must_use]
    pub fn new(client: ClientIdentity, redirect_uri: &str) -> Self {
        Self {
            client,
            redirect_uri: redirect_uri.to_owned(),
        }
    }

    fn with_headers(&self, mut request: HttpRequest) -> HttpRequest {
        request
            .headers
            .push(("trakt-api-version", API_VERSION.to_owned()));
        request
            .headers
            .push(("trakt-api-key", self.client.client_id.clone()));
        request
    }
}

impl ProviderDialect for Trakt {
    fn spec(&self) -> &'static DialectSpec {
        &DIALECT
    }

    fn device_authorization_request(&self, endpoints: &Endpoints) -> HttpRequest {
        self.with_headers(WIRE.device_request(&self.client, endpoints.device_authorization.clone()))
    }

    fn parse_device_authorization(
        &self,
        response: &HttpResponse,
    ) -> Result<DeviceAuthorization, ProviderError> {
        oauth::device_authorization(&ANSWERS, response)
    }

    fn poll_request(&self, endpoints: &Endpoints, device_code: &Secret) -> HttpRequest {
        self.with_headers(WIRE.poll_request(&self.client, endpoints.token.clone(), device_code))
    }

    fn parse_poll(&self, response: &HttpResponse) -> PollOutcome {
        let meaning = POLL_STATUSES
            .iter()
            .find(|(status, _)| *status == response.status)
            .map(|(_, meaning)| *meaning);
        // A 400 that does carry an OAuth error (a malformed request) says
        // more than "pending"; the status table is for Trakt's bare answers.
        match meaning {
            Some(PollStatus::Pending) if !ANSWERS.has_error(response) => PollOutcome::Pending,
            Some(PollStatus::SlowDown) => PollOutcome::SlowDown {
                interval: None,
                retry_after: response.retry_after,
            },
            Some(PollStatus::Denied) => PollOutcome::Denied {
                message: "the person denied the request (HTTP 418)".to_owned(),
            },
            Some(PollStatus::Expired) => PollOutcome::Expired {
                message: "the device code expired (HTTP 410)".to_owned(),
            },
            Some(PollStatus::Refused(error, detail)) => {
                PollOutcome::Failed(ProviderError::Rejected {
                    endpoint: response.url.as_str().to_owned(),
                    status: response.status,
                    error: error.to_owned(),
                    detail: Some(detail.to_owned()),
                })
            }
            Some(PollStatus::Granted | PollStatus::Pending) | None => {
                oauth::poll_answer(&ANSWERS, response)
            }
        }
    }

    fn refresh_request(&self, endpoints: &Endpoints, refresh_token: &Secret) -> HttpRequest {
        let mut request =
            WIRE.refresh_request(&self.client, endpoints.refresh_url().clone(), refresh_token);
        if let crate::provider::RequestBody::Json(fields) = &mut request.body {
            fields.push(plain("redirect_uri", &self.redirect_uri));
        }
        self.with_headers(request)
    }

    fn parse_refresh(&self, response: &HttpResponse) -> Result<TokenGrant, ProviderError> {
        match oauth::refresh_answer(&ANSWERS, response) {
            // Trakt answers a refresh with a bare 400 both for a request it
            // cannot read and, at times, for a refresh token it no longer
            // takes (shared/dialects.md §1), and historically with 401 for
            // the latter: a bare one of either is not proof enough to drop
            // a session whose access token still works (it is retried), but
            // the end of one whose access token has expired (the session
            // machine decides), and the person should know what it may mean.
            // (A bare 401 was retried for good, saying nothing of a login.)
            Err(ProviderError::Rejected {
                endpoint,
                status: status @ (400 | 401),
                error,
                detail,
            }) if response.body.iter().all(u8::is_ascii_whitespace) => {
                Err(ProviderError::RefusedPerhapsRevoked {
                    endpoint,
                    status,
                    error,
                    detail: Some(format!(
                        "{}; Trakt answers so when it no longer takes the refresh token: if this goes on, log in again",
                        detail.unwrap_or_else(|| "an empty body".into())
                    )),
                })
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::provider::ClientAuth;
    use crate::provider::wire::field;
    use crate::provider::{Expiry, FailureClass, RequestBody};

    fn trakt() -> Trakt {
        Trakt::new(
            ClientIdentity {
                client_id: "cid".into(),
                client_secret: Some(Secret::from("csecret")),
                client_auth: ClientAuth::SecretPost,
                scopes: Vec::new(),
                device_params: BTreeMap::new(),
            },
            OOB_REDIRECT_URI,
        )
    }

    fn endpoints() -> Endpoints {
        let base: url::Url = "https://api.trakt.tv".parse().unwrap();
        let paths = DIALECT.fixed_paths.unwrap();
        Endpoints {
            device_authorization: base.join(paths.device_authorization).unwrap(),
            token: base.join(paths.token).unwrap(),
            refresh: paths.refresh.map(|p| base.join(p).unwrap()),
        }
    }

    fn answer(status: u16, content_type: Option<&str>, body: &str) -> HttpResponse {
        HttpResponse::for_test(endpoints().token, status, content_type, body)
    }

    #[test]
    fn requests_are_json_with_trakt_names() {
        let dialect = trakt();
        let request = dialect.device_authorization_request(&endpoints());
        assert!(matches!(&request.body, RequestBody::Json(f) if f.len() == 1));
        assert_eq!(field(&request, "client_id"), Some("cid"));
        assert!(
            request
                .headers
                .contains(&("trakt-api-key", "cid".to_owned()))
        );
        let poll = dialect.poll_request(&endpoints(), &Secret::from("dc"));
        assert_eq!(poll.url.path(), "/oauth/device/token");
        assert_eq!(field(&poll, "code"), Some("dc"));
        assert_eq!(field(&poll, "client_secret"), Some("csecret"));
        assert_eq!(field(&poll, "grant_type"), None);
        assert_eq!(field(&poll, "device_code"), None);
        let refresh = dialect.refresh_request(&endpoints(), &Secret::from("rt"));
        assert_eq!(refresh.url.path(), "/oauth/token");
        assert_eq!(field(&refresh, "grant_type"), Some("refresh_token"));
        assert_eq!(field(&refresh, "redirect_uri"), Some(OOB_REDIRECT_URI));
        assert_eq!(field(&refresh, "client_secret"), Some("csecret"));
        assert!(!format!("{refresh:?}").contains("csecret"));
    }

    #[test]
    fn polls_are_answered_by_status() {
        let dialect = trakt();
        let poll = |status, body: &str| dialect.parse_poll(&answer(status, None, body));
        assert!(matches!(poll(400, ""), PollOutcome::Pending));
        assert!(matches!(poll(400, "Pending"), PollOutcome::Pending));
        assert!(matches!(
            poll(429, ""),
            PollOutcome::SlowDown { interval: None, .. }
        ));
        assert!(matches!(poll(418, ""), PollOutcome::Denied { .. }));
        // A rate limiter's 429 with `Retry-After` says how long to hold off.
        let mut limited = answer(429, None, "");
        limited.retry_after = Some(Duration::from_secs(30));
        assert!(matches!(
            dialect.parse_poll(&limited),
            PollOutcome::SlowDown { retry_after: Some(wait), .. } if wait == Duration::from_secs(30)
        ));
        assert!(matches!(poll(410, ""), PollOutcome::Expired { .. }));
        for status in [404, 409] {
            match poll(status, "") {
                PollOutcome::Failed(e) => assert_eq!(e.class(), FailureClass::Permanent),
                other => panic!("{status}: {other:?}"),
            }
        }
        match poll(503, "") {
            PollOutcome::Failed(e) => assert_eq!(e.class(), FailureClass::Transient),
            other => panic!("{other:?}"),
        }
        match poll(400, r#"{"error":"invalid_request"}"#) {
            PollOutcome::Failed(e) => assert!(e.to_string().contains("invalid_request")),
            other => panic!("{other:?}"),
        }
        // An empty 200 is no token.
        assert!(matches!(poll(200, ""), PollOutcome::Failed(_)));
    }

    #[test]
    fn the_token_answer_honours_created_at() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut response = answer(
            200,
            Some("application/json"),
            r#"{"access_token":"at","token_type":"bearer","expires_in":604800,"refresh_token":"rt","scope":"public","created_at":1699999990}"#,
        );
        response.date = Some(now);
        let PollOutcome::Granted(grant) = trakt().parse_poll(&response) else {
            panic!("not granted")
        };
        assert_eq!(grant.expiry, Expiry::In(Duration::from_secs(604_800 - 9)));
        assert_eq!(grant.scope.as_deref(), Some("public"));
        assert_eq!(grant.refresh_token.unwrap().expose(), "rt");
    }

    #[test]
    fn refresh_errors() {
        let dialect = trakt();
        let e = dialect
            .parse_refresh(&answer(
                401,
                Some("application/json"),
                r#"{"error":"invalid_grant"}"#,
            ))
            .unwrap_err();
        assert_eq!(e.class(), FailureClass::GrantRevoked);
        for status in [400, 401] {
            let e = dialect
                .parse_refresh(&answer(status, None, ""))
                .unwrap_err();
            assert_eq!(e.class(), FailureClass::PerhapsRevoked, "{status}");
            assert!(e.to_string().contains(&format!("HTTP {status}")), "{e}");
            assert!(e.to_string().contains("log in again"), "{e}");
        }
    }

    /// Only Trakt's bare 400 is ambiguous: a 400 that names its error says
    /// what is wrong, and a misconfigured client must not be read as a
    /// refresh token Trakt may no longer take (which ends a session whose
    /// access token has expired).
    #[test]
    fn a_refresh_400_that_names_its_error_is_not_perhaps_revoked() {
        let e = trakt()
            .parse_refresh(&answer(
                400,
                Some("application/json"),
                r#"{"error":"invalid_client"}"#,
            ))
            .unwrap_err();
        assert_eq!(e.class(), FailureClass::Permanent, "{e}");
    }
}
