//! A generic device API v1, as a Django REST framework service serves it
//! (shape inferred from its generated client, `shared/dialects.md` §4).
//!
//! Requests are RFC 8628's, form-encoded, with the device metadata
//! (`device_type`, `device_os`) the service requires; the config supplies
//! them through `device_params`, with defaults from the host. The paths
//! differ in their trailing slash ([`DIALECT`]).
//! Answers are RFC 6749's plus DRF's field errors
//! (`{"device_type": ["This field is required."]}`), which become one
//! readable sentence ([`drf_field_errors`]). An unknown device code is `404 device_not_found`,
//! explained as such. The service never sends `slow_down`; its throttle
//! (HTTP 429) is a transient failure the login backs off from.
//! `verification_uri` may be empty: the config's `verification_uri` then
//! tells the person where to go.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::provider::data_only::DataOnlyDialect;
use crate::provider::oauth::{AnswerFields, AnswerFormat, OAuthError, clean_detail};
use crate::provider::wire::WireFormat;
use crate::provider::{
    ClientAuth, ClientIdentity, CommonSettings, DialectSettings, DialectSpec, FixedPaths,
    ProviderDialect, SettingsSource,
};

/// A Django REST framework device API: fixed paths below the service's
/// URL, device metadata defaulted from the host.
pub static DIALECT: DialectSpec = DialectSpec {
    name: "generic-v1",
    // The trailing slash of the first and its absence on the second are the
    // service's (Django routes); neither may be "fixed".
    fixed_paths: Some(FixedPaths {
        device_authorization: "/api/v1/oauth/device-authorization/",
        token: "/api/v1/oauth/token",
        refresh: None,
    }),
    client_auth_modes: &[
        ClientAuth::SecretPost,
        ClientAuth::SecretBasic,
        ClientAuth::None,
    ],
    own_keys: &[],
    read_settings: DialectSpec::no_settings,
    check_common,
    default_device_params,
    build,
    presets: &["config/generic-v1.toml"],
};

/// The config key naming the page people visit to enter the code.
const VERIFICATION_URI: &str = "verification_uri";

/// The service may send an empty `verification_uri` (`shared/dialects.md`
/// §4: people learn the page some other way), and a login then has only
/// the config's to show: without it, such a login fails, naming the key.
/// A warning at `--check`, not an error: a service that sends its page
/// needs none.
fn check_common(_: &CommonSettings<'_>, source: &mut dyn SettingsSource) {
    if !source.has(VERIFICATION_URI) {
        let message = format!(
            "{} has no `{VERIFICATION_URI}`: a generic-v1 service may send an empty verification URL, and a login then cannot show where to enter the code and fails; set `{VERIFICATION_URI}` to the page people visit",
            source.context()
        );
        source.warning(None, message);
    }
}

fn build(client: ClientIdentity, _: &DialectSettings) -> Box<dyn ProviderDialect> {
    Box::new(dialect(client))
}

/// The device metadata fields the service requires.
pub const DEVICE_FIELDS: [&str; 2] = ["device_type", "device_os"];

/// generic-v1's requests are RFC 8628's (form is the encoding every
/// endpoint of the service accepts).
pub const WIRE: WireFormat = WireFormat::STANDARD;

/// generic-v1's answers: RFC 6749's and DRF's field errors.
pub const ANSWERS: AnswerFormat = AnswerFormat {
    own_errors: Some(drf_field_errors),
    ..AnswerFormat::STANDARD
};

/// The generic-v1 dialect.
pub type GenericV1 = DataOnlyDialect;

/// The generic-v1 dialect speaking for `client`.
#[must_use]
pub fn dialect(client: ClientIdentity) -> GenericV1 {
    DataOnlyDialect::new(&DIALECT, WIRE, ANSWERS, client)
}

/// Fills in the device metadata the service requires when the config does
/// not set it: the OS from the build, the chassis systemd records in
/// `/etc/machine-info` (`hostnamectl chassis`), else "desktop".
fn default_device_params(params: &mut BTreeMap<String, String>, etc: &Path) {
    let [device_type, device_os] = DEVICE_FIELDS;
    if !params.contains_key(device_type) {
        params.insert(device_type.to_owned(), chassis(etc));
    }
    params
        .entry(device_os.to_owned())
        .or_insert_with(|| std::env::consts::OS.to_owned());
}

fn chassis(etc: &Path) -> String {
    std::fs::read_to_string(etc.join("machine-info"))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let value = line.trim().strip_prefix("CHASSIS=")?;
                let value = value.trim_matches(|c| c == '"' || c == '\'').trim();
                (!value.is_empty()).then(|| value.to_owned())
            })
        })
        .unwrap_or_else(|| "desktop".to_owned())
}

/// DRF answers a request that fails validation with one entry per field,
/// each a list of sentences; `non_field_errors` holds the rest.
pub fn drf_field_errors(fields: &AnswerFields) -> Option<OAuthError> {
    let map = fields.map();
    if map.is_empty() {
        return None;
    }
    let mut problems = Vec::with_capacity(map.len());
    for (name, value) in map {
        let Value::Array(items) = value else {
            return None;
        };
        let sentences: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
        if sentences.len() != items.len() || sentences.is_empty() {
            return None;
        }
        let sentences = sentences.join(" ");
        problems.push(if name == "non_field_errors" {
            sentences
        } else {
            format!("`{name}`: {sentences}")
        });
    }
    Some(OAuthError {
        error: "invalid_request".to_owned(),
        description: Some(clean_detail(&problems.join("; "))),
        interval: None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::provider::oauth::device_authorization;
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
        HttpResponse::for_test(
            "http://127.0.0.1/api/v1/oauth/token".parse().unwrap(),
            status,
            Some("application/json"),
            body,
        )
    }

    #[test]
    fn the_device_request_carries_the_metadata() {
        let base: url::Url = "https://api.example".parse().unwrap();
        let paths = DIALECT.fixed_paths.unwrap();
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

    fn fields(json: &str) -> AnswerFields {
        let Value::Object(map) = serde_json::from_str(json).unwrap() else {
            panic!("not an object")
        };
        AnswerFields::from_map(map)
    }

    /// Django REST Framework's validation answer (each field a list of
    /// sentences) is read as one `invalid_request` naming the fields; a body
    /// that is not only such lists is no field error.
    #[test]
    fn drf_field_errors_become_one_sentence() {
        let e = ANSWERS
            .read_error(&fields(
                r#"{"device_type":["This field is required."],"device_os":["This field is required.","Too long."]}"#,
            ))
            .unwrap();
        assert_eq!(e.error, "invalid_request");
        let text = e.description.unwrap();
        assert!(
            text.contains("`device_type`: This field is required.")
                && text.contains("`device_os`: This field is required. Too long."),
            "{text}"
        );
        // A token answer or a `detail` is no field error.
        assert!(
            ANSWERS
                .read_error(&fields(r#"{"access_token":"a"}"#))
                .is_none()
        );
        assert!(
            ANSWERS
                .read_error(&fields(r#"{"detail":"Throttled."}"#))
                .is_none()
        );
        assert!(ANSWERS.read_error(&fields(r#"{"x":[]}"#)).is_none());
        // Nor a list holding anything but sentences: read as one, what
        // was not a sentence was dropped unsaid.
        assert!(ANSWERS.read_error(&fields(r#"{"x":["a",1]}"#)).is_none());
    }

    /// A field error's sentences are cleaned as every provider text is
    /// (no escape sequence rewriting a terminal, no new line forging a log
    /// line, no hiding character) and capped: this reader is the dialect's
    /// own, past the shared one that cleans.
    #[test]
    fn drf_field_errors_are_cleaned_and_capped() {
        let long = "x".repeat(2000);
        let body = format!(
            r#"{{"device_type":["bad\u001b[2Jthing\u202e\nforged"],"device_os":["{long}"]}}"#
        );
        let text = ANSWERS
            .read_error(&fields(&body))
            .unwrap()
            .description
            .unwrap();
        assert!(
            !text
                .chars()
                .any(|c| c.is_control() || crate::provider::url_rule::is_deceptive(c)),
            "{text:?}"
        );
        assert!(text.chars().count() <= 301, "{}", text.chars().count());
        assert!(text.ends_with('…'), "{text}");
    }

    /// Moved from the shared answer readers' tests: a field error is a
    /// permanent failure of the device request.
    #[test]
    fn drf_field_errors_drive_outcomes() {
        let e = device_authorization(
            &ANSWERS,
            &answer(400, r#"{"device_type":["This field is required."]}"#),
        )
        .unwrap_err();
        assert_eq!(e.class(), FailureClass::Permanent);
        assert!(
            e.to_string()
                .contains("invalid_request (HTTP 400): `device_type`: This field is required."),
            "{e}"
        );
    }
}
