//! The standard dialect: RFC 8628 device authorization and RFC 6749 refresh.
//!
//! Used for GitHub, Google, Microsoft Entra, Keycloak and any OpenID
//! provider. Requests are exactly the RFC's; answers are read by
//! [`super::oauth`], which tolerates the deviations those providers are
//! known for.

use super::{
    ClientIdentity, DeviceAuthorization, DialectKind, Endpoints, HttpRequest, HttpResponse,
    PollOutcome, ProviderDialect, ProviderError, TokenGrant, oauth, plain, secret,
};
use crate::secret::Secret;

/// The grant type of a device-code poll (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The standard dialect.
#[derive(Debug)]
pub struct Rfc8628 {
    client: ClientIdentity,
}

impl Rfc8628 {
    /// The dialect speaking for `client`.
    #[must_use]
    pub fn new(client: ClientIdentity) -> Self {
        Self { client }
    }
}

impl ProviderDialect for Rfc8628 {
    fn kind(&self) -> DialectKind {
        DialectKind::Rfc8628
    }

    fn device_authorization_request(&self, endpoints: &Endpoints) -> HttpRequest {
        let mut fields = vec![plain("client_id", &self.client.client_id)];
        if !self.client.scopes.is_empty() {
            fields.push(plain("scope", self.client.scopes.join(" ")));
        }
        for (name, value) in &self.client.device_params {
            fields.push(plain(name, value));
        }
        let mut request = HttpRequest::form(endpoints.device_authorization.clone(), fields);
        self.client.authenticate(&mut request);
        request
    }

    fn parse_device_authorization(
        &self,
        response: &HttpResponse,
    ) -> Result<DeviceAuthorization, ProviderError> {
        oauth::device_authorization(response)
    }

    fn poll_request(&self, endpoints: &Endpoints, device_code: &Secret) -> HttpRequest {
        let fields = vec![
            plain("grant_type", DEVICE_CODE_GRANT),
            secret("device_code", device_code),
            plain("client_id", &self.client.client_id),
        ];
        let mut request = HttpRequest::form(endpoints.token.clone(), fields);
        self.client.authenticate(&mut request);
        request
    }

    fn parse_poll(&self, response: &HttpResponse) -> PollOutcome {
        oauth::poll_answer(response)
    }

    fn refresh_request(&self, endpoints: &Endpoints, refresh_token: &Secret) -> HttpRequest {
        let fields = vec![
            plain("grant_type", "refresh_token"),
            secret("refresh_token", refresh_token),
            plain("client_id", &self.client.client_id),
        ];
        let mut request = HttpRequest::form(endpoints.token.clone(), fields);
        self.client.authenticate(&mut request);
        request
    }

    fn parse_refresh(&self, response: &HttpResponse) -> Result<TokenGrant, ProviderError> {
        oauth::refresh_answer(response)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::ClientAuth;
    use crate::provider::{FieldValue, RequestBody};

    fn endpoints() -> Endpoints {
        Endpoints {
            device_authorization: "http://127.0.0.1:1/device".parse().unwrap(),
            token: "http://127.0.0.1:1/token".parse().unwrap(),
        }
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

    fn field<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
        request
            .body
            .fields()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.wire_value())
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
    fn requests_redact_secrets_in_debug() {
        let dialect = Rfc8628::new(client(ClientAuth::SecretPost));
        let request = dialect.refresh_request(&endpoints(), &Secret::from("refresh-SECRET"));
        let debug = format!("{request:?}");
        assert!(!debug.contains("refresh-SECRET"), "{debug}");
        assert!(!debug.contains("csecret"), "{debug}");
        assert!(matches!(request.body.fields()[1].1, FieldValue::Secret(_)));
    }
}
