//! A generic device API v1, as a Django REST framework service serves it
//! (shape inferred from its generated client, `shared/dialects.md` §4).
//!
//! Requests are RFC 8628's, form-encoded, with the device metadata
//! (`device_type`, `device_os`) the service requires; the config supplies
//! them through `device_params`, with defaults from the host. The paths
//! differ in their trailing slash ([`super::DialectKind::fixed_paths`]).
//! Answers are RFC 6749's plus DRF's field errors
//! (`{"device_type": ["This field is required."]}`), which become one
//! readable sentence. An unknown device code is `404 device_not_found`,
//! explained as such. The service never sends `slow_down`; its throttle
//! (HTTP 429) is a transient failure the login backs off from.
//! `verification_uri` may be empty: the config's `verification_uri` then
//! tells the person where to go.

use super::described::DescribedDialect;
use super::oauth::{AnswerFormat, ErrorBodies};
use super::wire::WireFormat;
use super::{ClientIdentity, DialectKind};

/// The device metadata fields the service requires.
pub const DEVICE_FIELDS: [&str; 2] = ["device_type", "device_os"];

/// generic-v1's requests are RFC 8628's (form is the encoding every
/// endpoint of the service accepts).
pub const WIRE: WireFormat = WireFormat::STANDARD;

/// generic-v1's answers: RFC 6749's and DRF's field errors.
pub const ANSWERS: AnswerFormat = AnswerFormat {
    errors: ErrorBodies::Drf,
    ..AnswerFormat::STANDARD
};

/// The generic-v1 dialect.
pub type GenericV1 = DescribedDialect;

/// The generic-v1 dialect speaking for `client`.
#[must_use]
pub fn dialect(client: ClientIdentity) -> GenericV1 {
    DescribedDialect::new(DialectKind::GenericV1, WIRE, ANSWERS, client)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::*;
    use crate::config::ClientAuth;
    use crate::provider::wire::field;
    use crate::provider::{
        Endpoints, FailureClass, HttpResponse, PollOutcome, ProviderDialect, RequestBody,
    };

    fn generic() -> GenericV1 {
        dialect(ClientIdentity {
            client_id: "cid".into(),
            client_secret: None,
            client_auth: ClientAuth::None,
            scopes: vec!["read".into()],
            device_params: BTreeMap::from([
                ("device_os".into(), "linux".into()),
                ("device_type".into(), "desktop".into()),
            ]),
        })
    }

    fn answer(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            url: "http://127.0.0.1/api/v1/oauth/token".parse().unwrap(),
            status,
            content_type: Some("application/json".into()),
            location: None,
            date: None,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn the_device_request_carries_the_metadata() {
        let base: url::Url = "https://api.example".parse().unwrap();
        let paths = DialectKind::GenericV1.fixed_paths().unwrap();
        let endpoints = Endpoints::new(
            base.join(paths.device_authorization).unwrap(),
            base.join(paths.token).unwrap(),
        );
        let request = generic().device_authorization_request(&endpoints);
        assert!(request.url.path().ends_with('/'));
        assert!(matches!(request.body, RequestBody::Form(_)));
        for name in DEVICE_FIELDS {
            assert!(field(&request, name).is_some(), "{name}");
        }
        assert_eq!(field(&request, "scope"), Some("read"));
        let poll = generic().poll_request(&endpoints, &crate::secret::Secret::from("dc"));
        assert!(!poll.url.path().ends_with('/'));
    }

    #[test]
    fn its_error_states_read_clearly() {
        let dialect = generic();
        match dialect.parse_poll(&answer(404, r#"{"error":"device_not_found"}"#)) {
            PollOutcome::Failed(e) => {
                assert_eq!(e.class(), FailureClass::Permanent);
                assert!(
                    e.to_string().contains("does not know this device code"),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
        let e = dialect
            .parse_device_authorization(&answer(
                400,
                r#"{"device_type":["This field is required."]}"#,
            ))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("`device_type`: This field is required."),
            "{e}"
        );
        let auth = dialect
            .parse_device_authorization(&answer(
                200,
                r#"{"device_code":"d","user_code":"U","verification_uri":"","expires_in":600,"interval":5}"#,
            ))
            .unwrap();
        assert_eq!(auth.verification_uri, None);
    }
}
