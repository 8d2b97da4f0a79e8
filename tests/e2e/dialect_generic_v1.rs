//! `dialect = "generic-v1"` end to end: the real `tokend` and `tokenctl`
//! against the strict emulator of the Django REST framework device API
//! (trailing-slash paths, required device metadata, DRF field errors,
//! empty `verification_uri`, `404 device_not_found`, a throttle instead of
//! `slow_down`).

use crate::support;

use std::time::Duration;

use support::daemon::{Daemon, LoginRun};
use support::flows::{self, EXIT_LOGIN_FAILED, NAME};
use support::provider::Provider;
use tokend_emulator::{Endpoint, Fault, GenericV1Options, RecordedRequest};

#[test]
fn login_with_device_metadata_then_refresh_with_rotation() {
    let provider = Provider::start(GenericV1Options {
        access_token_lifetime: Duration::from_secs(4),
        ..fast_generic_v1()
    });
    let config = generic_v1_config(
        &provider,
        NAME,
        "scopes = [\"read\"]\ndevice_params = { device_type = \"kiosk\" }",
    );
    flows::login_then_refresh_with_rotation(&provider, &config, "refresh_token");
    let requests = provider.requests();
    let device = requests
        .iter()
        .find(|r| r.endpoint == Endpoint::DeviceAuthorization)
        .unwrap();
    // The trailing slash where the service has one, and none where it has none.
    assert_eq!(device.path, "/api/v1/oauth/device-authorization/");
    assert_eq!(device.field("device_type"), Some("kiosk"));
    assert_eq!(device.field("device_os"), Some(std::env::consts::OS));
    assert_eq!(device.field("scope"), Some("read"));
    assert!(
        requests
            .iter()
            .filter(|r| r.endpoint == Endpoint::Token)
            .all(|r| r.path == "/api/v1/oauth/token")
    );
}

#[test]
fn denial() {
    let provider = Provider::start(fast_generic_v1());
    flows::denial(&provider, &generic_v1_config(&provider, NAME, ""));
}

#[test]
fn device_code_expiry() {
    let provider = Provider::start(fast_generic_v1());
    flows::device_code_expiry(&provider, &generic_v1_config(&provider, NAME, ""));
}

#[test]
fn a_throttle_is_backed_off_from_without_slow_down() {
    let provider = Provider::start(fast_generic_v1());
    // The service never says slow_down; told to, the emulator throttles.
    provider.slow_down_next_polls(1);
    let daemon = Daemon::start(&generic_v1_config(&provider, NAME, ""));
    let run = LoginRun::start(&daemon.socket, NAME);
    provider.wait_for_count(1, RecordedRequest::is_poll);
    provider.approve(&run.user_code()).unwrap();
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}");
    let polls = provider.polls();
    assert_eq!(polls[0].status, Some(429));
    assert_eq!(polls[0].outcome, "throttled");
    assert!(provider.requests().iter().all(|r| r.outcome != "slow_down"));
    // Backed off: the next poll waited at least twice the interval.
    assert!(polls[1].at - polls[0].at >= Duration::from_secs(2));
    provider.assert_no_violations();
}

#[test]
fn an_empty_verification_uri_is_replaced_by_the_configured_one() {
    let provider = Provider::start(GenericV1Options {
        empty_verification_uri: true,
        ..fast_generic_v1()
    });
    let (_daemon, prompt) = flows::logged_in(
        &provider,
        &generic_v1_config(
            &provider,
            NAME,
            "verification_uri = \"https://example.com/activate\"",
        ),
    );
    assert_eq!(prompt["verification_uri"], "https://example.com/activate");
    provider.assert_no_violations();
}

/// A service that sends an empty verification URL to a config without
/// `verification_uri`: `tokend --check` warned of it (naming the provider
/// and the key; it said nothing), and the login fails saying what to set.
#[test]
fn without_any_verification_uri_the_login_says_what_to_set() {
    let provider = Provider::start(GenericV1Options {
        empty_verification_uri: true,
        ..fast_generic_v1()
    });
    let daemon = Daemon::start(&generic_v1_config(&provider, NAME, ""));
    let check = daemon.tokend(&["--check"]);
    let warned = support::daemon::stderr(&check);
    assert!(check.status.success(), "{warned}");
    assert!(
        warned.contains(&format!(
            "warning: [providers.{NAME}] has no `verification_uri`"
        )) && warned.contains("set `verification_uri` to the page people visit"),
        "{warned}"
    );
    let out = daemon.tokenctl(&["login", NAME]);
    assert_eq!(out.status.code(), Some(EXIT_LOGIN_FAILED));
    let err = support::daemon::stderr(&out);
    assert!(
        err.contains("provider `demo`")
            && err.contains("sent no verification URL; set `verification_uri`"),
        "{err}"
    );
}

#[test]
fn drf_field_errors_are_readable() {
    let provider = Provider::start(fast_generic_v1());
    // An empty value is no value to Django: the field is reported missing.
    let daemon = Daemon::start(&generic_v1_config(
        &provider,
        NAME,
        "device_params = { device_type = \"\" }",
    ));
    let out = daemon.tokenctl(&["login", NAME]);
    assert!(!out.status.success());
    let err = support::daemon::stderr(&out);
    assert!(
        err.contains("provider `demo`")
            && err.contains("invalid_request (HTTP 400): `device_type`: This field is required."),
        "{err}"
    );
    assert_eq!(provider.violations().len(), 1);
}

#[test]
fn an_unknown_device_code_is_device_not_found() {
    let provider = Provider::start(fast_generic_v1());
    // As if the service lost the code (a restart, a purge): its 404.
    provider.inject(
        Endpoint::Token,
        Fault::Body {
            status: 404,
            content_type: Some("application/json".into()),
            body: r#"{"error":"device_not_found"}"#.into(),
        },
        1,
    );
    let daemon = Daemon::start(&generic_v1_config(&provider, NAME, ""));
    let (done, err, code) = LoginRun::start(&daemon.socket, NAME).finish();
    assert_eq!(code, EXIT_LOGIN_FAILED, "{done} {err}");
    assert!(
        err.contains("device_not_found (HTTP 404): the provider does not know this device code"),
        "{err}"
    );
}

/// generic-v1 with a 1 s poll interval.
fn fast_generic_v1() -> GenericV1Options {
    GenericV1Options {
        interval: Duration::from_secs(1),
        ..GenericV1Options::default()
    }
}

/// The table for a generic-v1 emulator, plus `extra`.
fn generic_v1_config(provider: &Provider, name: &str, extra: &str) -> String {
    provider.base_config(
        name,
        "generic-v1",
        &format!("client_id = \"tokend-test\"\n{extra}"),
    )
}
