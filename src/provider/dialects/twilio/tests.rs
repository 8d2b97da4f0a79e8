use std::collections::BTreeMap;
use std::time::SystemTime;

use super::*;
use crate::provider::ClientAuth;
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
        TwilioAccount {
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
        date: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_751_371_200 - 3600)),
        ..HttpResponse::for_test(endpoints().token, status, Some("application/json"), body)
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
    assert_eq!(grant.refresh_expires_in, None);
    // The refresh token's own expiry, absolute too (ISO 8601 here),
    // counted from the answer's Date.
    let PollOutcome::Granted(grant) = dialect.parse_poll(&answer(
        201,
        r#"{"access_token":"at","refresh_token":"rt","access_token_expires_at":"2025-07-01T12:00:00Z","refresh_token_expires_at":"2025-07-08T11:00:00Z"}"#,
    )) else {
        panic!("not granted")
    };
    assert_eq!(
        grant.refresh_expires_in,
        Some(Duration::from_secs(7 * 24 * 3600))
    );
    // Unreadable: unsaid, the tokens still taken.
    let PollOutcome::Granted(grant) = dialect.parse_poll(&answer(
        201,
        r#"{"access_token":"at","refresh_token":"rt","access_token_expires_at":"2025-07-01T12:00:00Z","refresh_token_expires_at":"next week"}"#,
    )) else {
        panic!("not granted")
    };
    assert_eq!(grant.refresh_expires_in, None);
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

fn body_fields(json: &str) -> AnswerFields {
    let Value::Object(map) = serde_json::from_str(json).unwrap() else {
        panic!("not an object")
    };
    AnswerFields::from_map(map)
}

#[test]
fn twilio_errors_are_read_by_their_message() {
    let read = |json| ANSWERS.read_error(&body_fields(json)).unwrap();
    let e = read(
        r#"{"code":20001,"message":"authorization_pending","more_info":"https://www.twilio.com/docs/errors/20001","status":400}"#,
    );
    assert_eq!(e.error, "authorization_pending");
    let e = read(r#"{"code":20001,"message":"The user denied the request","status":400}"#);
    assert_eq!(e.error, "access_denied");
    assert_eq!(
        e.description.as_deref(),
        Some("Twilio error 20001: The user denied the request")
    );
    let e = read(r#"{"code":20003,"message":"Authenticate","status":401}"#);
    assert_eq!(e.error, "twilio_error_20003");
    // The RFC shape wins when both are there.
    let e = read(r#"{"error":"slow_down","code":20429,"message":"x"}"#);
    assert_eq!(e.error, "slow_down");
    // Only Twilio's style reads Twilio's bodies.
    assert!(
        crate::provider::oauth::AnswerFormat::STANDARD
            .read_error(&body_fields(r#"{"code":1,"message":"m"}"#))
            .is_none()
    );
}

fn twilio_body(code: u32, status: u16, message: &str) -> String {
    serde_json::json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    })
    .to_string()
}

#[test]
fn twilio_poll_errors_without_known_words_are_read_by_their_status() {
    let dialect = twilio(None);
    let poll = |status, code, message| {
        dialect.parse_poll(&answer(status, &twilio_body(code, status, message)))
    };
    assert!(matches!(
        poll(
            400,
            20001,
            "Authorization request is awaiting user approval"
        ),
        PollOutcome::Pending
    ));
    assert!(matches!(
        poll(429, 20429, "Polling too frequently"),
        PollOutcome::SlowDown { interval: None, .. }
    ));
    // A known meaning wins over the status.
    for message in [
        "Authorization request was rejected by the user",
        "The user declined",
        "access_denied",
    ] {
        let outcome = poll(400, 20001, message);
        assert!(
            matches!(&outcome, PollOutcome::Denied { message: m } if m.contains(message)),
            "{message}: {outcome:?}"
        );
    }
    assert!(matches!(
        poll(400, 20001, "Device code has expired"),
        PollOutcome::Expired { .. }
    ));
    // What ended the wait wins over the wait's own words.
    assert!(matches!(
        poll(400, 20001, "Device code expired while awaiting approval"),
        PollOutcome::Expired { .. }
    ));
    assert!(matches!(
        poll(400, 20001, "Request awaiting approval was denied"),
        PollOutcome::Denied { .. }
    ));
    // Words of no known meaning: polled on, but named (the polls' trouble).
    let PollOutcome::PendingUnclear(e) = poll(400, 20001, "Invalid GrantType") else {
        panic!("not pending with a word")
    };
    assert!(
        e.to_string()
            .contains("Twilio error 20001: Invalid GrantType"),
        "{e}"
    );
    assert!(matches!(
        poll(429, 20429, "Too Many Requests"),
        PollOutcome::SlowDown { .. }
    ));
    let PollOutcome::Failed(e) = poll(400, 20001, "invalid_client: wrong ClientSecret") else {
        panic!("not a failure")
    };
    assert_eq!(e.class(), FailureClass::Permanent);
    // The account's credentials: a failure whatever the words.
    for (status, message) in [
        (401, "Authenticate"),
        (401, "The auth token has expired"),
        (403, "Authorization request is awaiting user approval"),
    ] {
        let PollOutcome::Failed(e) = poll(status, 20003, message) else {
            panic!("{status} {message}: not a failure")
        };
        assert_eq!(e.class(), FailureClass::Permanent, "{status} {message}");
        assert!(e.to_string().contains(message), "{e}");
    }
    // Other statuses as the shared reading has them.
    let PollOutcome::Failed(e) = poll(404, 20404, "The requested resource was not found") else {
        panic!("not a failure")
    };
    assert_eq!(e.class(), FailureClass::Permanent);
    let PollOutcome::Failed(e) = poll(503, 20500, "Service unavailable") else {
        panic!("not a failure")
    };
    assert_eq!(e.class(), FailureClass::Transient);
    // RFC 6749 bodies as before: an unknown code at 400 ends the login.
    let PollOutcome::Failed(e) = dialect.parse_poll(&answer(
        400,
        r#"{"error":"invalid_request","error_description":"Authorization request is awaiting user approval"}"#,
    )) else {
        panic!("not a failure")
    };
    assert_eq!(e.class(), FailureClass::Permanent);
}

#[test]
fn twilio_refresh_errors_are_read_by_their_status() {
    let dialect = twilio(None);
    let refresh = |status, code, message| {
        dialect
            .parse_refresh(&answer(status, &twilio_body(code, status, message)))
            .unwrap_err()
    };
    // 400: the refresh token is not taken, whatever the words.
    for message in [
        "Invalid refresh token",
        "",
        "Refresh token expired",
        "invalid_grant: the login was revoked",
    ] {
        let e = refresh(400, 20001, message);
        assert_eq!(e.class(), FailureClass::GrantRevoked, "{message}: {e}");
    }
    assert!(
        refresh(400, 20001, "Invalid refresh token")
            .to_string()
            .contains("Twilio error 20001: Invalid refresh token")
    );
    // ... unless the words blame the app or the pace.
    assert_eq!(
        refresh(400, 20001, "invalid_client: unknown ClientSid").class(),
        FailureClass::Permanent
    );
    // The app's credentials in Twilio's own words (a ClientSecret rotated
    // in the console before the config): the session is kept, to be used
    // once the config is mended.
    for message in [
        "Client authentication failed",
        "Invalid ClientSecret",
        "Invalid ClientSid",
        "Client secret expired",
    ] {
        let e = refresh(400, 20001, message);
        assert_eq!(e.class(), FailureClass::Permanent, "{message}: {e}");
    }
    // The app named in passing is not its blame.
    assert_eq!(
        refresh(400, 20001, "Refresh token expired for ClientSid OQ1").class(),
        FailureClass::GrantRevoked
    );
    assert_ne!(
        refresh(400, 20429, "slow down").class(),
        FailureClass::GrantRevoked
    );
    // 401 and 403: the account's credentials; the session stays, even
    // when the message says "expired" or names the grant.
    for (status, message) in [
        (401, "Authenticate"),
        (401, "The auth token has expired"),
        (401, "invalid_grant"),
        (403, "Account suspended: credentials expired"),
    ] {
        let e = refresh(status, 20003, message);
        assert_eq!(e.class(), FailureClass::Permanent, "{status} {message}");
        assert!(
            matches!(&e, ProviderError::Rejected { status: s, .. } if *s == status),
            "{e:?}"
        );
    }
    // 429 and 5xx: transient, as before.
    for (status, message) in [(429, "Too Many Requests"), (503, "Service unavailable")] {
        assert_eq!(
            refresh(status, 20000 + u32::from(status), message).class(),
            FailureClass::Transient
        );
    }
    // RFC 6749 bodies keep the shared reading.
    let rfc = |status, body| dialect.parse_refresh(&answer(status, body)).unwrap_err();
    assert_eq!(
        rfc(400, r#"{"error":"invalid_grant"}"#).class(),
        FailureClass::GrantRevoked
    );
    assert_eq!(
        rfc(400, r#"{"error":"invalid_request","code":20001}"#).class(),
        FailureClass::Permanent
    );
    assert_eq!(
        rfc(401, r#"{"error":"expired_token"}"#).class(),
        FailureClass::GrantRevoked
    );
    // A success is still a success.
    assert!(
        dialect
            .parse_refresh(&answer(
                201,
                r#"{"access_token":"at","refresh_token":"rt","access_token_expires_at":"2025-07-01T12:00:00"}"#,
            ))
            .is_ok()
    );
}

#[test]
fn expiries_without_an_offset_are_utc() {
    let dialect = twilio(None);
    // The answer's Date is 11:00 UTC.
    let PollOutcome::Granted(grant) = dialect.parse_poll(&answer(
        201,
        r#"{"access_token":"at","refresh_token":"rt","access_token_expires_at":"2025-07-01T12:00:00.000000","refresh_token_expires_at":"2025-07-08T11:00:00"}"#,
    )) else {
        panic!("not granted")
    };
    assert_eq!(grant.expiry, Expiry::In(Duration::from_secs(3600)));
    assert_eq!(
        grant.refresh_expires_in,
        Some(Duration::from_secs(7 * 24 * 3600))
    );
}

/// Moved from the shared answer readers' tests: Twilio's pending body
/// is pending for Twilio and a failure for the standard reader.
#[test]
fn twilio_error_bodies_drive_outcomes() {
    let body = r#"{"code":20001,"message":"authorization_pending","more_info":"https://www.twilio.com/docs/errors/20001","status":400}"#;
    assert!(matches!(
        oauth::poll_answer(&ANSWERS, &answer(400, body)),
        PollOutcome::Pending
    ));
    assert!(matches!(
        oauth::poll_answer(&AnswerFormat::STANDARD, &answer(400, body)),
        PollOutcome::Failed(_)
    ));
}

/// A spent or unknown device code, in Twilio's own words, ends the login
/// (it was read as pending, and the login waited out the code's life).
#[test]
fn an_invalid_device_code_ends_the_login() {
    let dialect = twilio(None);
    let body = r#"{"code":20001,"message":"Invalid device code","more_info":"https://www.twilio.com/docs/errors/20001","status":400}"#;
    let PollOutcome::Failed(failure) = dialect.parse_poll(&answer(400, body)) else {
        panic!("read as something else than a failure");
    };
    // Ends the login (no class that is retried), naming the words.
    assert_eq!(failure.class(), FailureClass::GrantRevoked);
    assert!(
        failure.to_string().contains("Invalid device code"),
        "{failure}"
    );
    // The same in the parameter's name, and turned around.
    for words in [
        "Invalid DeviceCode",
        "The device code is invalid",
        "DeviceCode is invalid",
    ] {
        let body = format!(r#"{{"code":20001,"message":"{words}","more_info":"","status":400}}"#);
        let PollOutcome::Failed(failure) = dialect.parse_poll(&answer(400, &body)) else {
            panic!("{words}: read as something else than a failure");
        };
        assert_eq!(failure.class(), FailureClass::GrantRevoked, "{words}");
    }
    // Other "invalid" words are the request's mistake, not a grant gone.
    let typo = r#"{"code":20001,"message":"Invalid ClientSid","more_info":"","status":400}"#;
    let e = dialect
        .parse_device_authorization(&answer(400, typo))
        .unwrap_err();
    assert_ne!(e.class(), FailureClass::GrantRevoked, "{e}");
    assert!(!e.to_string().contains("revoked"), "{e}");
    // Pending, in its words, is still pending.
    let pending = r#"{"code":20001,"message":"Authorization request is awaiting user approval","more_info":"","status":400}"#;
    assert!(matches!(
        dialect.parse_poll(&answer(400, pending)),
        PollOutcome::Pending
    ));
}
