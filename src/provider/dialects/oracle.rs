//! Oracle identity domains (IDCS): RFC 8628 at `/oauth2/v1/device` and
//! `/oauth2/v1/token`, with three differences, all data:
//! - the device request needs `response_type=device_code` and a `scope`
//!   (the config requires scopes for this dialect);
//! - the device endpoint is unauthenticated, so no secret goes there;
//! - answers carry no `interval` (the login polls every 5 s, RFC 8628's
//!   default), and a refresh token comes only with `offline_access`, which
//!   the config check warns about.
//!
//! The token endpoint takes each of the three client authentications:
//! `client_id` alone (public), HTTP Basic, or the secret in the body.

use std::time::Duration;

use crate::provider::data_only::DataOnlyDialect;
use crate::provider::oauth::AnswerFormat;
use crate::provider::wire::WireFormat;
use crate::provider::{
    ClientAuth, ClientIdentity, CommonSettings, DialectSettings, DialectSpec, FixedPaths,
    ProviderDialect, SettingsSource,
};

/// Oracle's requests.
pub const WIRE: WireFormat = WireFormat {
    device_fields: &[("response_type", "device_code")],
    authenticate_device_request: false,
    ..WireFormat::STANDARD
};

/// Oracle's answers are RFC 6749's, with `expires_in` defaulting to an hour
/// when left out, as Oracle documents it.
pub const ANSWERS: AnswerFormat = AnswerFormat {
    default_token_lifetime: Some(DEFAULT_TOKEN_LIFETIME),
    ..AnswerFormat::STANDARD
};

/// The access-token lifetime Oracle documents as `expires_in`'s default.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The scope without which Oracle issues no refresh token.
pub const OFFLINE_SCOPE: &str = "offline_access";

/// Oracle identity domains: fixed paths below the domain's URL, `scopes`
/// required.
pub static DIALECT: DialectSpec = DialectSpec {
    name: "oracle",
    fixed_paths: Some(FixedPaths {
        device_authorization: "/oauth2/v1/device",
        token: "/oauth2/v1/token",
        refresh: None,
    }),
    // A confidential client refreshes with HTTP Basic (polls take either),
    // so that is the default when a secret is set.
    client_auth_modes: &[
        ClientAuth::SecretBasic,
        ClientAuth::SecretPost,
        ClientAuth::None,
    ],
    own_keys: &[],
    read_settings: DialectSpec::no_settings,
    check_common,
    default_device_params: DialectSpec::no_device_defaults,
    build,
    presets: &["config/oracle.toml"],
};

fn build(client: ClientIdentity, _: &DialectSettings) -> Box<dyn ProviderDialect> {
    Box::new(dialect(client))
}

/// Oracle needs scopes, refreshes only with [`OFFLINE_SCOPE`] among them,
/// and wants a confidential client's refreshes in HTTP Basic.
fn check_common(common: &CommonSettings<'_>, source: &mut dyn SettingsSource) {
    if common.has_secret == Ok(true) && common.client_auth == Some(ClientAuth::SecretPost) {
        source.warning(
            Some("client_auth"),
            "Oracle wants a confidential client's secret in HTTP Basic when it refreshes: with \"client_secret_post\" its refreshes may be refused (leave `client_auth` out for HTTP Basic)".into(),
        );
    }
    if common.scopes.is_empty() {
        let context = source.context().to_owned();
        source.error(
            Some("scopes"),
            format!("dialect \"oracle\" requires `scopes` (at least one) in {context}"),
        );
    } else if !common.scopes.iter().any(|s| s == OFFLINE_SCOPE) {
        source.warning(
            Some("scopes"),
            format!(
                "Oracle issues a refresh token only with the `{OFFLINE_SCOPE}` scope: without it every expiry needs a new login"
            ),
        );
    }
}

/// The Oracle dialect.
pub type Oracle = DataOnlyDialect;

/// The Oracle dialect speaking for `client`.
#[must_use]
pub fn dialect(client: ClientIdentity) -> Oracle {
    DataOnlyDialect::new(&DIALECT, WIRE, ANSWERS, client)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::provider::ClientAuth;
    use crate::provider::wire::{DEVICE_CODE_GRANT, field};
    use crate::provider::{Endpoints, Expiry, PollOutcome, ProviderDialect};
    use crate::secret::Secret;

    fn oracle(auth: ClientAuth) -> Oracle {
        dialect(ClientIdentity {
            client_id: "cid".into(),
            client_secret: Some(Secret::from("cs")),
            client_auth: auth,
            scopes: vec!["urn:opc:idm:__myscopes__".into(), OFFLINE_SCOPE.into()],
            device_params: BTreeMap::new(),
        })
    }

    fn endpoints() -> Endpoints {
        Endpoints::new(
            "https://idcs.example/oauth2/v1/device".parse().unwrap(),
            "https://idcs.example/oauth2/v1/token".parse().unwrap(),
        )
    }

    #[test]
    fn the_device_request_is_unauthenticated_with_response_type() {
        let request = oracle(ClientAuth::SecretBasic).device_authorization_request(&endpoints());
        assert_eq!(field(&request, "response_type"), Some("device_code"));
        assert_eq!(
            field(&request, "scope"),
            Some("urn:opc:idm:__myscopes__ offline_access")
        );
        assert_eq!(field(&request, "client_id"), Some("cid"));
        assert!(request.basic_auth.is_none());
        let request = oracle(ClientAuth::SecretPost).device_authorization_request(&endpoints());
        assert_eq!(field(&request, "client_secret"), None);
    }

    #[test]
    fn the_token_endpoint_takes_each_client_authentication() {
        let code = Secret::from("dc");
        let request = oracle(ClientAuth::SecretBasic).poll_request(&endpoints(), &code);
        assert_eq!(field(&request, "grant_type"), Some(DEVICE_CODE_GRANT));
        assert!(request.basic_auth.is_some());
        let request = oracle(ClientAuth::SecretPost).poll_request(&endpoints(), &code);
        assert_eq!(field(&request, "client_secret"), Some("cs"));
        let request = oracle(ClientAuth::None).refresh_request(&endpoints(), &code);
        assert_eq!(field(&request, "client_secret"), None);
        assert!(request.basic_auth.is_none());
        assert_eq!(field(&request, "client_id"), Some("cid"));
    }

    /// `expires_in` left out of a token answer is Oracle's documented
    /// default, an hour, not an unknown expiry (whose tokens would be
    /// refreshed only once a caller finds them dead).
    #[test]
    fn a_token_answer_without_expires_in_lives_an_hour() {
        let answer = crate::provider::HttpResponse::for_test(
            "https://idcs.example/oauth2/v1/token".parse().unwrap(),
            200,
            Some("application/json"),
            r#"{"access_token":"at","token_type":"Bearer","refresh_token":"rt"}"#,
        );
        let oracle = oracle(ClientAuth::SecretBasic);
        let PollOutcome::Granted(grant) = oracle.parse_poll(&answer) else {
            panic!("not granted");
        };
        assert_eq!(grant.expiry, Expiry::In(DEFAULT_TOKEN_LIFETIME));
        let grant = oracle.parse_refresh(&answer).unwrap();
        assert_eq!(grant.expiry, Expiry::In(DEFAULT_TOKEN_LIFETIME));
        // One that says is taken at its word.
        let answer = crate::provider::HttpResponse::for_test(
            "https://idcs.example/oauth2/v1/token".parse().unwrap(),
            200,
            Some("application/json"),
            r#"{"access_token":"at","token_type":"Bearer","expires_in":600}"#,
        );
        let grant = oracle.parse_refresh(&answer).unwrap();
        assert_eq!(grant.expiry, Expiry::In(Duration::from_secs(600)));
    }
}
