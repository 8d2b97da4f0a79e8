//! Lifetimes as answers give them: absolute expiries against the answer's
//! own `Date` (Twilio), lifetimes aged by `created_at` (Trakt), fractions
//! of a second rounded the safe way for each field (poll intervals too),
//! and the refresh token's own lifetime (Keycloak's `refresh_expires_in`).

use super::*;

#[test]
fn absolute_expiries_are_measured_against_the_answers_date() {
    let twilio = AnswerFormat {
        expiry: ExpiryField::ExpiresAt("access_token_expires_at"),
        ..STD
    };
    let body = |at: &str| {
        format!(r#"{{"access_token":"a","refresh_token":null,"access_token_expires_at":{at}}}"#)
    };
    // 2025-07-01T12:00:00Z is 1751371200.
    let mut r = json(201, &body(r#""2025-07-01T12:00:00Z""#));
    r.date = Some(at(1_751_371_200 - 3600));
    let grant = token_grant(&twilio, &r, &AnswerFields::parse(&r).unwrap()).unwrap();
    assert_eq!(grant.expiry, Expiry::In(Duration::from_secs(3600)));
    assert_eq!(grant.token_type, "Bearer");
    assert!(grant.refresh_token.is_none());
    let mut r = json(201, &body(r#""Tue, 01 Jul 2025 12:00:00 +0000""#));
    r.date = Some(at(1_751_371_200 - 60));
    let grant = refresh_answer(&twilio, &r).unwrap();
    assert_eq!(grant.expiry, Expiry::In(Duration::from_secs(60)));
    // Without a Date header, as written.
    r.date = None;
    let grant = refresh_answer(&twilio, &r).unwrap();
    assert_eq!(grant.expiry, Expiry::At(at(1_751_371_200)));
    // Null falls back to expires_in, then to unknown.
    let r = json(201, &body("null"));
    assert_eq!(refresh_answer(&twilio, &r).unwrap().expiry, Expiry::Unknown);
    // In the past, or garbage, or absurd: refused.
    let mut r = json(201, &body(r#""2025-07-01T12:00:00Z""#));
    r.date = Some(at(1_751_371_200 + 10));
    let e = refresh_answer(&twilio, &r).unwrap_err();
    assert!(
        e.to_string().contains("not after the answer's own date"),
        "{e}"
    );
    let r = json(201, &body(r#""next tuesday""#));
    let e = refresh_answer(&twilio, &r).unwrap_err();
    assert!(e.to_string().contains("not a date-time"), "{e}");
    let mut r = json(201, &body(r#""9999-01-01T00:00:00Z""#));
    r.date = Some(at(1_751_371_200));
    let e = refresh_answer(&twilio, &r).unwrap_err();
    assert!(e.to_string().contains("believable"), "{e}");
}

/// The believable maximum holds for an absolute expiry as for `expires_in`:
/// a date a second past 400 days from the answer's own `Date` is refused (a
/// garbled year must not keep a token "valid" for years), one at 400 days
/// is taken.
#[test]
fn an_absolute_expiry_past_the_believable_maximum_is_refused() {
    let twilio = AnswerFormat {
        expiry: ExpiryField::ExpiresAt("access_token_expires_at"),
        ..STD
    };
    // 2025-07-01T12:00:00Z is 1751371200.
    let mut r = json(
        201,
        r#"{"access_token":"a","access_token_expires_at":"2025-07-01T12:00:00Z"}"#,
    );
    r.date = Some(at(1_751_371_200) - MAX_TOKEN_LIFETIME);
    assert_eq!(
        refresh_answer(&twilio, &r).unwrap().expiry,
        Expiry::In(MAX_TOKEN_LIFETIME)
    );
    r.date = Some(at(1_751_371_200 - 1) - MAX_TOKEN_LIFETIME);
    let e = refresh_answer(&twilio, &r).unwrap_err();
    assert!(e.to_string().contains("believable"), "{e}");
}

#[test]
fn created_at_ages_the_lifetime() {
    let trakt = AnswerFormat {
        expiry: ExpiryField::ExpiresInSinceCreated,
        ..STD
    };
    let body = |created: u64| {
        format!(
            r#"{{"access_token":"a","token_type":"bearer","expires_in":600,"created_at":{created}}}"#
        )
    };
    let mut r = json(200, &body(1_000_000));
    r.date = Some(at(1_000_100));
    // 100 s old, less the second of Date's resolution.
    assert_eq!(
        refresh_answer(&trakt, &r).unwrap().expiry,
        Expiry::In(Duration::from_secs(501))
    );
    // From the future (skew) or without a Date: fresh.
    r.date = Some(at(999_000));
    assert_eq!(
        refresh_answer(&trakt, &r).unwrap().expiry,
        Expiry::In(Duration::from_secs(600))
    );
    r.date = None;
    assert_eq!(
        refresh_answer(&trakt, &r).unwrap().expiry,
        Expiry::In(Duration::from_secs(600))
    );
    // Already dead on arrival.
    r.date = Some(at(1_000_700));
    let e = refresh_answer(&trakt, &r).unwrap_err();
    assert!(e.to_string().contains("had expired when it arrived"), "{e}");
}

/// Each field's fraction goes the safe way: lifetimes down (a token or a
/// device code never taken to live longer than it does), poll intervals up
/// (never polled faster than asked).
#[test]
fn fractional_seconds_round_the_safe_way_for_each_field() {
    let s = Duration::from_secs;
    let r = json(
        200,
        r#"{"device_code":"d","user_code":"U","verification_uri":"https://x/device","expires_in":899.9,"interval":1.5}"#,
    );
    let auth = device_authorization(&STD, &r).unwrap();
    assert_eq!((auth.expires_in, auth.interval), (s(899), Some(s(2))));
    let r = json(
        200,
        r#"{"device_code":"d","user_code":"U","expires_in":"899.9","interval":"0.2"}"#,
    );
    let auth = device_authorization(&STD, &r).unwrap();
    assert_eq!((auth.expires_in, auth.interval), (s(899), Some(s(1))));
    // With and without a new refresh token: the expiry is known either way.
    for body in [
        r#"{"access_token":"a","expires_in":3599.5,"refresh_token":"r","refresh_token_expires_in":86399.5}"#,
        r#"{"access_token":"a","expires_in":"3599.5"}"#,
    ] {
        let grant = refresh_answer(&STD, &json(200, body)).unwrap();
        assert_eq!(grant.expiry, Expiry::In(s(3599)), "{body}");
        let PollOutcome::Granted(grant) = poll_answer(&STD, &json(200, body)) else {
            panic!("{body} is not a grant");
        };
        assert_eq!(grant.expiry, Expiry::In(s(3599)), "{body}");
    }
    let grant = refresh_answer(
        &STD,
        &json(
            200,
            r#"{"access_token":"a","expires_in":60,"refresh_token":"r","refresh_token_expires_in":86399.5}"#,
        ),
    )
    .unwrap();
    assert_eq!(grant.refresh_expires_in, Some(s(86399)));
    let r = json(400, r#"{"error":"slow_down","interval":7.25}"#);
    assert!(
        matches!(poll_answer(&STD, &r), PollOutcome::SlowDown { interval: Some(i), .. } if i == s(8))
    );
    // Under a second of life is no life.
    let e =
        refresh_answer(&STD, &json(200, r#"{"access_token":"a","expires_in":0.5}"#)).unwrap_err();
    assert!(
        e.to_string().contains("`expires_in` is under a second"),
        "{e}"
    );
}

/// Keycloak names a refresh token's lifetime `refresh_expires_in` (its SSO
/// session's idle or maximum time) and sends 0 for an offline token, which
/// has none; GitHub's `refresh_token_expires_in` is read as before.
#[test]
fn keycloaks_refresh_expires_in_is_the_refresh_tokens_lifetime_and_0_none() {
    let lifetime = |body: &str| {
        refresh_answer(&STD, &json(200, body))
            .unwrap()
            .refresh_expires_in
    };
    assert_eq!(
        lifetime(
            r#"{"access_token":"a","expires_in":300,"refresh_expires_in":1800,"refresh_token":"r","token_type":"Bearer"}"#
        ),
        Some(Duration::from_secs(1800))
    );
    assert_eq!(
        lifetime(
            r#"{"access_token":"a","expires_in":300,"refresh_expires_in":0,"refresh_token":"r"}"#
        ),
        None
    );
    assert_eq!(
        lifetime(
            r#"{"access_token":"a","expires_in":300,"refresh_token_expires_in":900,"refresh_token":"r"}"#
        ),
        Some(Duration::from_secs(900))
    );
}
