//! Oracle identity domains (`response_type`, a required scope, no
//! interval) and the generic `/api/v1/oauth` API (Django-style answers).

use super::*;

#[tokio::test]
async fn oracle_requires_response_type_and_scope_and_gives_no_interval() {
    let emu = start(OracleOptions {
        interval: SECOND,
        ..OracleOptions::default()
    })
    .await;
    let http = http();
    let device = join(&emu, "/oauth2/v1/device");
    let (status, _, answer) = json(post(
        &http,
        device.clone(),
        &[("client_id", "tokend-test"), ("scope", "openid")],
    ))
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _, answer) = json(post(
        &http,
        device.clone(),
        &[
            ("client_id", "tokend-test"),
            ("scope", "openid"),
            ("response_type", "code"),
        ],
    ))
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("unsupported_response_type"))
    );
    let (status, _, _) = json(post(
        &http,
        device.clone(),
        &[
            ("client_id", "tokend-test"),
            ("response_type", "device_code"),
        ],
    ))
    .await;
    assert_eq!(status, 400);
    let mut codes = Vec::new();
    for scope in ["openid", "openid offline_access"] {
        let (status, _, code) = json(post(
            &http,
            device.clone(),
            &[
                ("client_id", "tokend-test"),
                ("scope", scope),
                ("response_type", "device_code"),
            ],
        ))
        .await;
        assert_eq!(status, 200);
        assert!(code.get("interval").is_none() && code.get("verification_uri_complete").is_none());
        assert!(text(&code, "verification_uri").ends_with("/ui/v1/device"));
        emu.approve(&text(&code, "user_code")).unwrap();
        codes.push(text(&code, "device_code"));
    }
    // A refresh token only with offline_access.
    for (device_code, refresh) in codes.iter().zip([false, true]) {
        let poll = [
            ("grant_type", DEVICE_CODE_GRANT),
            ("device_code", device_code.as_str()),
            ("client_id", "tokend-test"),
        ];
        let (status, _, tokens) = json(post(&http, join(&emu, "/oauth2/v1/token"), &poll)).await;
        assert_eq!(status, 200);
        assert_eq!(tokens.get("refresh_token").is_some(), refresh, "{tokens}");
    }
    // A secret sent to the unauthenticated device endpoint is noted.
    let with_secret = post(
        &http,
        device,
        &[
            ("client_id", "tokend-test"),
            ("scope", "openid"),
            ("response_type", "device_code"),
        ],
    )
    .basic_auth("tokend-test", Some("s"));
    assert_eq!(json(with_secret).await.0, 200);
    let violations = emu.violations();
    assert_eq!(violations.len(), 4, "{violations:#?}");
    assert!(violations[3].contains("unauthenticated device endpoint"));
}

#[tokio::test]
async fn generic_v1_is_django() {
    let emu = start(GenericV1Options {
        interval: SECOND,
        empty_verification_uri: true,
        ..GenericV1Options::default()
    })
    .await;
    let http = http();
    let device = join(&emu, "/api/v1/oauth/device-authorization/");
    // JSON, form and multipart are all accepted.
    let fields = [
        ("client_id", "tokend-test"),
        ("device_type", "tv"),
        ("device_os", "linux"),
    ];
    let as_json = send_json(
        &http,
        device.clone(),
        &j!({"client_id": "tokend-test", "device_type": "tv", "device_os": "linux"}),
    );
    let mut multipart_body = String::new();
    for (name, value) in fields {
        let _ = write!(
            multipart_body,
            "--B\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        );
    }
    multipart_body.push_str("--B--\r\n");
    let as_multipart = http
        .post(device.clone())
        .header(CONTENT_TYPE, "multipart/form-data; boundary=B")
        .body(multipart_body);
    for request in [as_json, post(&http, device.clone(), &fields), as_multipart] {
        let (status, _, code) = json(request).await;
        assert_eq!(status, 200, "{code}");
        assert_eq!(code["verification_uri"], "");
    }
    assert_eq!(
        emu.device_codes()[2].params,
        [
            ("device_type".to_owned(), "tv".to_owned()),
            ("device_os".to_owned(), "linux".to_owned())
        ]
    );
    // Missing metadata: DRF's field errors.
    let (status, _, errors) =
        json(post(&http, device.clone(), &[("client_id", "tokend-test")])).await;
    assert_eq!(status, 400);
    assert_eq!(
        errors,
        j!({"device_type": ["This field is required."], "device_os": ["This field is required."]})
    );
    // The slash matters, both ways.
    let no_slash = join(&emu, "/api/v1/oauth/device-authorization");
    let (status, headers, _) = raw(post(&http, no_slash, &fields)).await;
    assert_eq!(
        (status, headers[LOCATION].to_str().unwrap()),
        (301, "/api/v1/oauth/device-authorization/")
    );
    let violations = emu.violations();
    assert_eq!(violations.len(), 2, "{violations:#?}");
    assert!(violations[0].contains("missing field(s) `device_os`, `device_type`"));
    assert!(violations[1].contains("needs its trailing slash"));
}

#[tokio::test]
async fn generic_v1_token_endpoint_never_says_slow_down() {
    let emu = start(GenericV1Options {
        interval: SECOND,
        ..GenericV1Options::default()
    })
    .await;
    let http = http();
    let device = join(&emu, "/api/v1/oauth/device-authorization/");
    let fields = [
        ("client_id", "tokend-test"),
        ("device_type", "tv"),
        ("device_os", "linux"),
    ];
    let (_, _, code) = json(post(&http, device, &fields)).await;
    let poll = [
        ("grant_type", DEVICE_CODE_GRANT),
        ("device_code", &text(&code, "device_code")),
        ("client_id", "tokend-test"),
    ];
    assert_eq!(
        raw(post(&http, join(&emu, "/api/v1/oauth/token/"), &poll))
            .await
            .0,
        404
    );
    let token = join(&emu, "/api/v1/oauth/token");
    // Pending; then too fast: still "pending" (it never says slow_down).
    for _ in 0..2 {
        let (status, _, answer) = json(post(&http, token.clone(), &poll)).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("authorization_pending"))
        );
    }
    // Told to slow down: DRF's throttle.
    emu.slow_down_next_polls(1);
    emu.advance(SECOND);
    let (status, headers, answer) = json(post(&http, token.clone(), &poll)).await;
    assert_eq!((status, headers[RETRY_AFTER].to_str().unwrap()), (429, "1"));
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .starts_with("Request was throttled.")
    );
    // An unknown code: 404 device_not_found. JSON: refused.
    let unknown = [
        ("grant_type", DEVICE_CODE_GRANT),
        ("device_code", "nope"),
        ("client_id", "tokend-test"),
    ];
    let (status, _, answer) = json(post(&http, token.clone(), &unknown)).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("device_not_found"))
    );
    let as_json = send_json(
        &http,
        token,
        &j!({"grant_type": "refresh_token", "refresh_token": "x", "client_id": "tokend-test"}),
    );
    assert_eq!(json(as_json).await.0, 400);
    let violations = emu.violations();
    assert_eq!(violations.len(), 4, "{violations:#?}");
    for (violation, words) in violations.iter().zip([
        "has no trailing slash",
        "RFC 8628 §3.5",
        "never issued",
        "invalid request",
    ]) {
        assert!(violation.contains(words), "{violation} / {words}");
    }
}
