//! The standard dialect: RFC 8628 device authorization and RFC 6749 refresh.
//!
//! Used for GitHub, Google, Microsoft Entra, Keycloak and any OpenID
//! provider. Requests are exactly the RFC's; answers are read by
//! [`crate::provider::oauth`], which tolerates the deviations those providers are
//! known for.

use crate::provider::oauth::{self, AnswerFormat};
use crate::provider::wire::WireFormat;
use crate::provider::{
    ClientAuth, ClientIdentity, CommonSettings, DeviceAuthorization, DialectSettings, DialectSpec,
    Endpoints, HttpRequest, HttpResponse, PollOutcome, ProviderDialect, ProviderError,
    SettingValue, SettingsSource, TokenGrant,
};
use crate::secret::Secret;

pub use crate::provider::wire::DEVICE_CODE_GRANT;

/// The standard dialect's requests: RFC 8628 and RFC 6749 as written.
pub const WIRE: WireFormat = WireFormat::STANDARD;

/// The standard dialect's answers; the known deviations are tolerated by
/// every reader in [`oauth`].
pub const ANSWERS: AnswerFormat = AnswerFormat::STANDARD;

/// The key naming the scopes a refresh asks for (`refresh_scopes`): absent,
/// the configured `scopes` for the Microsoft identity platform and none
/// elsewhere; `[]`, none.
pub const REFRESH_SCOPES: &str = "refresh_scopes";

/// Hosts of the Microsoft identity platform (Entra ID, its national
/// clouds), whose v2 token endpoint wants `scope` on a refresh: without it
/// a token for the app's own API (`api://…`) is refused (AADSTS90009).
const MICROSOFT_HOSTS: &[&str] = &[
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.partner.microsoftonline.cn",
    "login.chinacloudapi.cn",
];

/// The one requirement the standard dialect knows of: the Microsoft
/// identity platform issues a refresh token only with `offline_access`
/// among the scopes (without it, the session needs a new login at each
/// expiry, after an hour or so), as Oracle does (see its dialect).
fn check_common(common: &CommonSettings<'_>, source: &mut dyn SettingsSource) {
    let microsoft = common.token_host.is_some_and(|host| {
        MICROSOFT_HOSTS
            .iter()
            .any(|known| host.eq_ignore_ascii_case(known))
    });
    if microsoft && !common.scopes.iter().any(|s| s == "offline_access") {
        source.warning(
            Some("scopes"),
            "the Microsoft identity platform issues a refresh token only with the `offline_access` scope: without it every expiry (about an hour) needs a new login".into(),
        );
    }
}

/// The standard dialect, the default: its endpoints come from the config
/// (or OpenID discovery); its one key of its own is `refresh_scopes`.
pub static DIALECT: DialectSpec = DialectSpec {
    name: "rfc8628",
    fixed_paths: None,
    client_auth_modes: &[
        ClientAuth::SecretPost,
        ClientAuth::SecretBasic,
        ClientAuth::None,
    ],
    own_keys: &[REFRESH_SCOPES],
    read_settings,
    check_common,
    default_device_params: DialectSpec::no_device_defaults,
    build,
    presets: &[
        "config/github.toml",
        "config/google.toml",
        "config/keycloak.toml",
        "config/microsoft.toml",
    ],
};

fn read_settings(source: &mut dyn SettingsSource) -> Option<DialectSettings> {
    let mut settings = DialectSettings::default();
    if let Some(scopes) = source.text_list(REFRESH_SCOPES).ok()? {
        settings.set(REFRESH_SCOPES, SettingValue::List(scopes));
    }
    Some(settings)
}

fn build(client: ClientIdentity, settings: &DialectSettings) -> Box<dyn ProviderDialect> {
    let refresh_scopes = settings.list_if_set(REFRESH_SCOPES).map(<[String]>::to_vec);
    Box::new(Rfc8628 {
        client,
        refresh_scopes,
    })
}

/// The standard dialect.
#[derive(Debug)]
pub struct Rfc8628 {
    client: ClientIdentity,
    /// `refresh_scopes`, when set.
    refresh_scopes: Option<Vec<String>>,
}

impl Rfc8628 {
    /// The dialect speaking for `client`.
    #[must_use]
    pub fn new(client: ClientIdentity) -> Self {
        Self {
            client,
            refresh_scopes: None,
        }
    }

    /// The scopes a refresh at `url` names: `refresh_scopes`, else the
    /// configured scopes at the Microsoft identity platform, else none
    /// (the scopes granted before, RFC 6749 §6).
    fn refresh_scopes(&self, url: &url::Url) -> &[String] {
        match &self.refresh_scopes {
            Some(scopes) => scopes,
            None if url.host_str().is_some_and(|host| {
                MICROSOFT_HOSTS
                    .iter()
                    .any(|known| host.eq_ignore_ascii_case(known))
            }) =>
            {
                &self.client.scopes
            }
            None => &[],
        }
    }
}

impl ProviderDialect for Rfc8628 {
    fn spec(&self) -> &'static DialectSpec {
        &DIALECT
    }

    fn device_authorization_request(&self, endpoints: &Endpoints) -> HttpRequest {
        WIRE.device_request(&self.client, endpoints.device_authorization.clone())
    }

    fn parse_device_authorization(
        &self,
        response: &HttpResponse,
    ) -> Result<DeviceAuthorization, ProviderError> {
        oauth::device_authorization(&ANSWERS, response)
    }

    fn poll_request(&self, endpoints: &Endpoints, device_code: &Secret) -> HttpRequest {
        WIRE.poll_request(&self.client, endpoints.token.clone(), device_code)
    }

    fn parse_poll(&self, response: &HttpResponse) -> PollOutcome {
        match oauth::poll_answer(&ANSWERS, response) {
            // "Some servers signal pending with 403" (`shared/dialects.md`
            // §0), some with nothing but the status. A 403 that carries no
            // OAuth error says no more than that: keep polling; the device
            // code's expiry ends the wait, as it ends any pending login. A
            // 403 with an error code is read by its code. One with a body
            // of another kind (a proxy's or firewall's page) is polled on
            // too, but named: else a login every poll of which a firewall
            // refused ended as "expired before it was approved", nothing
            // said.
            PollOutcome::Failed(failure)
                if response.status == 403 && !ANSWERS.has_error(response) =>
            {
                // Not the error's text: unredacted here, it may echo the
                // device code.
                tracing::debug!(
                    endpoint = crate::provider::message::endpoint_for_log(&response.url),
                    "a poll answered 403 with no OAuth error: taken as pending"
                );
                if response.body.iter().all(u8::is_ascii_whitespace) {
                    PollOutcome::Pending
                } else {
                    PollOutcome::PendingUnclear(failure)
                }
            }
            outcome => outcome,
        }
    }

    fn refresh_request(&self, endpoints: &Endpoints, refresh_token: &Secret) -> HttpRequest {
        let url = endpoints.refresh_url();
        WIRE.refresh_request_with_scopes(
            &self.client,
            url.clone(),
            refresh_token,
            self.refresh_scopes(url),
        )
    }

    fn parse_refresh(&self, response: &HttpResponse) -> Result<TokenGrant, ProviderError> {
        oauth::refresh_answer(&ANSWERS, response)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::provider::ClientAuth;
    use crate::provider::wire::field;
    use crate::provider::{FieldValue, RequestBody};

    fn endpoints() -> Endpoints {
        Endpoints::new(
            "http://127.0.0.1:1/device".parse().unwrap(),
            "http://127.0.0.1:1/token".parse().unwrap(),
        )
    }

    fn client(auth: ClientAuth) -> ClientIdentity {
        ClientIdentity {
            client_id: "cid".into(),
            client_secret: Some(Secret::from("csecret")),
            client_auth: auth,
            scopes: vec!["a".into(), "b".into()],
            device_params: BTreeMap::from([("device_type".into(), "kiosk".into())]),
        }
    }

    #[test]
    fn device_request_carries_scope_and_extra_params() {
        let dialect = Rfc8628::new(client(ClientAuth::None));
        let request = dialect.device_authorization_request(&endpoints());
        assert!(matches!(request.body, RequestBody::Form(_)));
        assert_eq!(field(&request, "client_id"), Some("cid"));
        assert_eq!(field(&request, "scope"), Some("a b"));
        assert_eq!(field(&request, "device_type"), Some("kiosk"));
        assert_eq!(field(&request, "client_secret"), None);
        assert!(request.basic_auth.is_none());
    }

    #[test]
    fn client_authentication_modes() {
        let post = Rfc8628::new(client(ClientAuth::SecretPost));
        let request = post.refresh_request(&endpoints(), &Secret::from("rt"));
        assert_eq!(field(&request, "client_secret"), Some("csecret"));
        assert_eq!(field(&request, "grant_type"), Some("refresh_token"));
        assert!(request.basic_auth.is_none());

        let basic = Rfc8628::new(client(ClientAuth::SecretBasic));
        let request = basic.poll_request(&endpoints(), &Secret::from("dc"));
        assert_eq!(field(&request, "client_secret"), None);
        assert_eq!(field(&request, "grant_type"), Some(DEVICE_CODE_GRANT));
        let (user, password) = request.basic_auth.as_ref().unwrap();
        assert_eq!((user.as_str(), password.expose()), ("cid", "csecret"));
    }

    #[test]
    fn a_refresh_names_scopes_at_microsoft_or_when_configured() {
        let plain = Rfc8628::new(client(ClientAuth::None));
        let request = plain.refresh_request(&endpoints(), &Secret::from("rt"));
        assert_eq!(field(&request, "scope"), None);
        let entra = Endpoints::new(
            "https://login.microsoftonline.com/organizations/oauth2/v2.0/devicecode"
                .parse()
                .unwrap(),
            "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
                .parse()
                .unwrap(),
        );
        let request = plain.refresh_request(&entra, &Secret::from("rt"));
        assert_eq!(field(&request, "scope"), Some("a b"));

        let mut settings = DialectSettings::default();
        settings.set(
            REFRESH_SCOPES,
            SettingValue::List(vec!["offline_access".into(), "api://x/y".into()]),
        );
        let configured = build(client(ClientAuth::None), &settings);
        let request = configured.refresh_request(&endpoints(), &Secret::from("rt"));
        assert_eq!(field(&request, "scope"), Some("offline_access api://x/y"));
        // Set empty: none, even at Microsoft.
        settings.set(REFRESH_SCOPES, SettingValue::List(Vec::new()));
        let none = build(client(ClientAuth::None), &settings);
        assert_eq!(
            field(&none.refresh_request(&entra, &Secret::from("rt")), "scope"),
            None
        );
    }

    #[test]
    fn requests_redact_secrets_in_debug() {
        let dialect = Rfc8628::new(client(ClientAuth::SecretPost));
        let request = dialect.refresh_request(&endpoints(), &Secret::from("refresh-SECRET"));
        let debug = format!("{request:?}");
        assert!(!debug.contains("refresh-SECRET"), "{debug}");
        assert!(!debug.contains("csecret"), "{debug}");
        assert!(matches!(request.body.fields()[1].1, FieldValue::Secret(_)));
    }

    fn poll_answer(status: u16, content_type: Option<&str>, body: &str) -> PollOutcome {
        Rfc8628::new(client(ClientAuth::None)).parse_poll(&HttpResponse::for_test(
            endpoints().token,
            status,
            content_type,
            body,
        ))
    }

    #[test]
    fn a_403_without_an_oauth_error_is_pending_and_one_with_a_code_says_it() {
        assert!(matches!(poll_answer(403, None, ""), PollOutcome::Pending));
        // A page of another kind: polled on, but named.
        let PollOutcome::PendingUnclear(failure) =
            poll_answer(403, Some("text/html"), "<h1>Forbidden</h1>")
        else {
            panic!("a 403 page is not plain pending");
        };
        assert!(failure.to_string().contains("403"), "{failure}");
        let json = Some("application/json");
        assert!(matches!(
            poll_answer(403, json, r#"{"error":"authorization_pending"}"#),
            PollOutcome::Pending
        ));
        assert!(matches!(
            poll_answer(403, json, r#"{"error":"access_denied"}"#),
            PollOutcome::Denied { .. }
        ));
        assert!(matches!(
            poll_answer(403, json, r#"{"error":"invalid_client"}"#),
            PollOutcome::Failed(_)
        ));
        // Other statuses without an error stay failures.
        assert!(matches!(poll_answer(400, None, ""), PollOutcome::Failed(_)));
    }
}
