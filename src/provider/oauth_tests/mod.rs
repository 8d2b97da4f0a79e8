use super::*;
use crate::provider::FailureClass;

const STD: AnswerFormat = AnswerFormat::STANDARD;

fn answer(status: u16, content_type: &str, body: &str) -> HttpResponse {
    HttpResponse::for_test(
        "http://127.0.0.1/token".parse().unwrap(),
        status,
        Some(content_type),
        body,
    )
}

fn json(status: u16, body: &str) -> HttpResponse {
    answer(status, "application/json", body)
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn token_answer_with_string_expiry() {
    let r = json(
        200,
        r#"{"access_token":"a","token_type":"bearer","expires_in":"3600","refresh_token":"r"}"#,
    );
    let grant = refresh_answer(&STD, &r).unwrap();
    assert_eq!(grant.access_token.expose(), "a");
    assert_eq!(grant.expiry, Expiry::In(Duration::from_secs(3600)));
    assert_eq!(grant.refresh_token.unwrap().expose(), "r");
    // "bearer" is handed out as RFC 6750 writes it; another type as sent.
    assert_eq!(grant.token_type, "Bearer");
    let r = json(200, r#"{"access_token":"a","token_type":"DPoP"}"#);
    assert_eq!(refresh_answer(&STD, &r).unwrap().token_type, "DPoP");
}

#[test]
fn github_form_encoded_answers_parse() {
    let r = answer(
        200,
        "application/x-www-form-urlencoded; charset=utf-8",
        "access_token=gho_x&token_type=bearer&scope=repo",
    );
    let grant = refresh_answer(&STD, &r).unwrap();
    assert_eq!(grant.access_token.expose(), "gho_x");
    assert_eq!(grant.expiry, Expiry::Unknown);
    let r = answer(
        200,
        "application/x-www-form-urlencoded",
        "error=authorization_pending",
    );
    assert!(matches!(poll_answer(&STD, &r), PollOutcome::Pending));
}

#[test]
fn github_slow_down_with_200_and_interval() {
    let r = json(200, r#"{"error":"slow_down","interval":10}"#);
    match poll_answer(&STD, &r) {
        PollOutcome::SlowDown { interval, .. } => {
            assert_eq!(interval, Some(Duration::from_secs(10)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn poll_errors_map_to_outcomes() {
    let poll = |status, body| poll_answer(&STD, &json(status, body));
    assert!(matches!(
        poll(400, r#"{"error":"authorization_pending"}"#),
        PollOutcome::Pending
    ));
    for status in [403, 428] {
        assert!(matches!(
            poll(status, r#"{"error":"authorization_pending"}"#),
            PollOutcome::Pending
        ));
    }
    assert!(matches!(
        poll(403, r#"{"error":"slow_down"}"#),
        PollOutcome::SlowDown { interval: None, .. }
    ));
    assert!(matches!(
        poll(400, r#"{"error":"access_denied"}"#),
        PollOutcome::Denied { .. }
    ));
    assert!(matches!(
        poll(400, r#"{"error":"authorization_declined"}"#),
        PollOutcome::Denied { .. }
    ));
    assert!(matches!(
        poll(400, r#"{"error":"expired_token"}"#),
        PollOutcome::Expired { .. }
    ));
    match poll(
        401,
        r#"{"error":"invalid_client","error_description":"bad id"}"#,
    ) {
        PollOutcome::Failed(e) => {
            assert_eq!(e.class(), FailureClass::Permanent);
            assert!(e.to_string().contains("invalid_client"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    match poll(400, r#"{"error":"bad_verification_code"}"#) {
        PollOutcome::Failed(e) => {
            assert_eq!(e.class(), FailureClass::Permanent);
            assert!(
                e.to_string().contains("does not know this device code"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    match poll(503, "") {
        PollOutcome::Failed(e) => assert_eq!(e.class(), FailureClass::Transient),
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_grant_and_expired_token_end_the_grant() {
    for (status, error) in [
        (400, "invalid_grant"),
        (401, "invalid_grant"),
        (400, "expired_token"),
    ] {
        let e = refresh_answer(
            &STD,
            &json(
                status,
                &format!(r#"{{"error":"{error}","error_description":"gone"}}"#),
            ),
        )
        .unwrap_err();
        assert_eq!(e.class(), FailureClass::GrantRevoked, "{error}");
    }
}

/// Microsoft Entra answers a refresh with `interaction_required` when a
/// policy now asks for MFA (AADSTS50076): a new login, not a refusal to
/// retry for ever. Said as a sign-in the provider wants, not a revocation.
#[test]
fn a_provider_that_wants_a_new_sign_in_ends_the_grant() {
    for error in ["interaction_required", "consent_required", "login_required"] {
        let e = refresh_answer(
            &STD,
            &json(
                400,
                &format!(r#"{{"error":"{error}","error_description":"AADSTS50076: MFA"}}"#),
            ),
        )
        .unwrap_err();
        assert_eq!(e.class(), FailureClass::GrantRevoked, "{error}");
        assert_eq!(
            e.to_string(),
            format!("the provider wants the person to sign in again ({error}): AADSTS50076: MFA")
        );
    }
}

#[test]
fn garbage_answers_are_named() {
    let e = refresh_answer(
        &STD,
        &answer(200, "text/html", "<!DOCTYPE html><html>login</html>"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("HTML page"), "{e}");
    assert_eq!(e.class(), FailureClass::Transient);
    let e = refresh_answer(&STD, &json(200, r#"{"token_type":"Bearer"}"#)).unwrap_err();
    assert!(e.to_string().contains("access_token"), "{e}");
    let e =
        refresh_answer(&STD, &json(200, r#"{"access_token":"a","expires_in":-5}"#)).unwrap_err();
    assert!(e.to_string().contains("expires_in"), "{e}");
    let e = refresh_answer(
        &STD,
        &json(200, r#"{"access_token":"a","expires_in":99999999999}"#),
    )
    .unwrap_err();
    assert!(e.to_string().contains("believable"), "{e}");
    let mut redirect = answer(302, "text/html", "");
    redirect.location = Some("http://127.0.0.1/elsewhere".into());
    let e = refresh_answer(&STD, &redirect).unwrap_err();
    assert!(e.to_string().contains("redirect"), "{e}");
    // Bodies without an OAuth code still say what they say.
    let e = refresh_answer(&STD, &json(429, r#"{"detail":"Request was throttled."}"#)).unwrap_err();
    assert!(e.to_string().contains("Request was throttled."), "{e}");
    assert_eq!(e.class(), FailureClass::Transient);
}

#[test]
fn device_authorization_tolerates_google_and_azure_v1() {
    let r = json(
        200,
        r#"{"device_code":"d","user_code":"U","verification_url":"https://x/device","expires_in":"1800","interval":"5"}"#,
    );
    let auth = device_authorization(&STD, &r).unwrap();
    assert_eq!(auth.verification_uri.as_deref(), Some("https://x/device"));
    assert_eq!(auth.expires_in, Duration::from_secs(1800));
    assert_eq!(auth.interval, Some(Duration::from_secs(5)));
    let r = json(
        200,
        r#"{"device_code":"d","user_code":"U","verification_uri":"","expires_in":600}"#,
    );
    assert_eq!(
        device_authorization(&STD, &r).unwrap().verification_uri,
        None
    );
    let e = device_authorization(&STD, &json(200, r#"{"user_code":"U","expires_in":600}"#))
        .unwrap_err();
    assert!(e.to_string().contains("device_code"), "{e}");
    // A field of the wrong type is named as such, not as missing; a
    // whole number too large to read is unbelievable, not "not whole".
    let e = device_authorization(
        &STD,
        &json(
            200,
            r#"{"device_code":["d"],"user_code":"U","expires_in":600}"#,
        ),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("`device_code` is an array, not text in the device authorization answer"),
        "{e}"
    );
    // A device code living longer than a day (a realm's two-day codes, or
    // an absurd number) is used for a day, not refused.
    for long in ["172800", "1e300"] {
        let body = format!(r#"{{"device_code":"d","user_code":"U","expires_in":{long}}}"#);
        let auth = device_authorization(&STD, &json(200, &body)).unwrap();
        assert_eq!(auth.expires_in, MAX_DEVICE_CODE_LIFETIME, "{long}");
    }
    let e = device_authorization(
        &STD,
        &json(
            200,
            r#"{"device_code":"d","user_code":"U","expires_in":-5}"#,
        ),
    )
    .unwrap_err();
    assert!(e.to_string().contains("is not a number of seconds"), "{e}");
    let e = refresh_answer(&STD, &json(200, r#"{"access_token":{"a":1}}"#)).unwrap_err();
    assert!(
        e.to_string()
            .contains("`access_token` is an object, not text"),
        "{e}"
    );
    // A captive portal's page where the device answer should be: named
    // for what was expected there.
    let e = device_authorization(&STD, &answer(200, "text/html", "<html>hi</html>")).unwrap_err();
    assert!(
        e.to_string()
            .contains("expected a device authorization answer, got an HTML page"),
        "{e}"
    );
}

/// A device answer without a field RFC 8628 §3.2 requires (absent, null
/// or empty) is the provider's answer as it stands, which a new login
/// gets again: a failure no retry mends, naming the field (it was
/// malformed, a passing failure: `tokenctl login` exited 6, "retry
/// later"). A field of another type, or a life under a second, stays
/// malformed.
#[test]
fn a_device_answer_without_a_required_field_is_no_passing_failure() {
    for (body, said) in [
        (
            r#"{"device_code":"d","user_code":"U","verification_uri":"https://x"}"#,
            "with no `expires_in`, a field RFC 8628 §3.2 requires",
        ),
        (
            r#"{"device_code":"d","user_code":"U","verification_uri":"https://x","expires_in":null}"#,
            "with no `expires_in`",
        ),
        (
            r#"{"device_code":"d","user_code":"","expires_in":600}"#,
            "with an empty `user_code`",
        ),
        (
            r#"{"user_code":"U","expires_in":600}"#,
            "with no `device_code`",
        ),
    ] {
        let e = device_authorization(&STD, &json(200, body)).unwrap_err();
        assert!(
            matches!(e, ProviderError::IncompleteDeviceAnswer { .. }),
            "{body}: {e:?}"
        );
        assert_eq!(e.class(), FailureClass::Permanent, "{body}");
        assert!(e.to_string().contains(said), "{body}: {e}");
        assert!(
            e.to_string().starts_with("http://127.0.0.1/token sent"),
            "{e}"
        );
    }
    for body in [
        r#"{"device_code":"d","user_code":"U","expires_in":0}"#,
        r#"{"device_code":"d","user_code":["U"],"expires_in":600}"#,
    ] {
        let e = device_authorization(&STD, &json(200, body)).unwrap_err();
        assert!(
            matches!(e, ProviderError::Malformed { .. }),
            "{body}: {e:?}"
        );
        assert_eq!(e.class(), FailureClass::Transient, "{body}");
    }
}

#[test]
fn a_default_device_lifetime_stands_in_for_null() {
    let body = r#"{"device_code":"d","user_code":"U","verification_uri":"https://x","expires_in":null,"interval":null}"#;
    assert!(device_authorization(&STD, &json(201, body)).is_err());
    let lenient = AnswerFormat {
        default_device_lifetime: Some(Duration::from_secs(300)),
        ..STD
    };
    let auth = device_authorization(&lenient, &json(201, body)).unwrap();
    assert_eq!(auth.expires_in, Duration::from_secs(300));
    assert_eq!(auth.interval, None);
}

/// A device authorization answer with `"interval": 0` gives no interval,
/// so the login polls at the default 5 s: taken as sent, a zero interval
/// had the login poll the token endpoint as fast as it answered.
#[test]
fn a_zero_poll_interval_is_no_interval() {
    for interval in ["0", "\"0\""] {
        let body = format!(
            r#"{{"device_code":"d","user_code":"U","verification_uri":"https://x","expires_in":600,"interval":{interval}}}"#
        );
        let auth = device_authorization(&STD, &json(200, &body)).unwrap();
        assert_eq!(auth.interval, None, "{interval}");
    }
}

/// HTTP 408 (Request Timeout) with an empty body is a passing trouble,
/// as 429 and 5xx are: a refresh retries soon and a login keeps polling.
/// Taken as a refusal, a proxy's timeout ended the login as failed.
#[test]
fn request_timeout_is_transient() {
    let answer = json(408, "");
    let refreshed = refresh_answer(&STD, &answer).unwrap_err();
    assert!(
        matches!(
            refreshed,
            ProviderError::Unavailable {
                status: 408,
                detail: None,
                ..
            }
        ),
        "{refreshed:?}"
    );
    assert_eq!(refreshed.class(), FailureClass::Transient);
    match poll_answer(&STD, &answer) {
        PollOutcome::Failed(e @ ProviderError::Unavailable { status: 408, .. }) => {
            assert_eq!(e.class(), FailureClass::Transient, "{e}");
        }
        other => panic!("{other:?}"),
    }
}

/// RFC 6749's "try again later" codes (`temporarily_unavailable`,
/// `server_error`), which Microsoft's token endpoint sends with 400, are a
/// passing trouble whatever the status: a login keeps polling, a refresh
/// retries soon, rather than ending as a refusal.
#[test]
fn try_again_later_codes_are_transient_whatever_the_status() {
    for code in ["temporarily_unavailable", "server_error"] {
        let body = format!(r#"{{"error":"{code}","error_description":"AADSTS90033: busy"}}"#);
        for status in [400, 200] {
            let answer = json(status, &body);
            let PollOutcome::Failed(failure) = poll_answer(&STD, &answer) else {
                panic!("{code} with {status} is not a failure");
            };
            assert_eq!(
                failure.class(),
                FailureClass::Transient,
                "{code} {status}: {failure}"
            );
            let refreshed = refresh_answer(&STD, &answer).unwrap_err();
            assert_eq!(
                refreshed.class(),
                FailureClass::Transient,
                "{code} {status}"
            );
            assert!(failure.to_string().contains("AADSTS90033"), "{failure}");
        }
    }
}

mod encodings;
mod expiries;
mod provider_codes;
