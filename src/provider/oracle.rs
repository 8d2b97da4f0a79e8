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

use super::described::DescribedDialect;
use super::oauth::AnswerFormat;
use super::wire::WireFormat;
use super::{ClientIdentity, DialectKind};

/// Oracle's requests.
pub const WIRE: WireFormat = WireFormat {
    device_fields: &[("response_type", "device_code")],
    authenticate_device_request: false,
    ..WireFormat::STANDARD
};

/// Oracle's answers are RFC 6749's.
pub const ANSWERS: AnswerFormat = AnswerFormat::STANDARD;

/// The scope without which Oracle issues no refresh token.
pub const OFFLINE_SCOPE: &str = "offline_access";

/// The Oracle dialect.
pub type Oracle = DescribedDialect;

/// The Oracle dialect speaking for `client`.
#[must_use]
pub fn dialect(client: ClientIdentity) -> Oracle {
    DescribedDialect::new(DialectKind::Oracle, WIRE, ANSWERS, client)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::ClientAuth;
    use crate::provider::wire::{DEVICE_CODE_GRANT, field};
    use crate::provider::{Endpoints, ProviderDialect};
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
}
