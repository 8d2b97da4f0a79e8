//! Trakt (JSON bodies, answers in status codes) and Twilio (its account,
//! PascalCase keys, repeated keys).

use super::*;

#[tokio::test]
async fn trakt_is_json_status_codes_and_redirect_uri() {
    let emu = start(TraktOptions {
        interval: SECOND,
        ..TraktOptions::default()
    })
    .await;
    let http = http();
    // A form is refused; JSON gets verification_url.
    let form = post(
        &http,
        join(&emu, "/oauth/device/code"),
        &[("client_id", "tokend-test")],
    );
    assert_eq!(raw(form).await.0, 400);
    let (status, _, code) = json(send_json(
        &http,
        join(&emu, "/oauth/device/code"),
        &j!({"client_id": "tokend-test"}),
    ))
    .await;
    assert_eq!(status, 200);
    assert!(code["verification_uri"].is_null());
    assert_eq!(code["verification_url"], emu.verification_uri().as_str());
    let device_code = text(&code, "device_code");
    let poll_url = join(&emu, "/oauth/device/token");
    let poll = j!({"code": device_code, "client_id": "tokend-test", "client_secret": "tokend-test-secret"});
    // Pending: a bare 400.
    let (status, headers, body) = raw(send_json(&http, poll_url.clone(), &poll)).await;
    assert_eq!((status, body.as_str()), (400, ""));
    assert_eq!(headers[CONTENT_LENGTH], "0");
    // Too fast: 429 and a violation.
    assert_eq!(raw(send_json(&http, poll_url.clone(), &poll)).await.0, 429);
    // The RFC's key instead of Trakt's: refused.
    let wrong_key = j!({"device_code": device_code, "client_id": "tokend-test", "client_secret": "tokend-test-secret"});
    assert_eq!(
        raw(send_json(&http, poll_url.clone(), &wrong_key)).await.0,
        400
    );
    // An empty client secret: refused as missing (polls and refreshes
    // carry it).
    let no_secret = j!({"code": device_code, "client_id": "tokend-test", "client_secret": ""});
    assert_eq!(
        raw(send_json(&http, poll_url.clone(), &no_secret)).await.0,
        400
    );
    emu.approve(&text(&code, "user_code")).unwrap();
    emu.advance(SECOND * 6);
    let (status, _, tokens) = json(send_json(&http, poll_url.clone(), &poll)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (tokens["token_type"].as_str(), tokens["scope"].as_str()),
        (Some("bearer"), Some("public"))
    );
    assert!(tokens["created_at"].as_u64().unwrap() > 1_700_000_000);
    // Used: 409, and polling on is a violation.
    assert_eq!(raw(send_json(&http, poll_url, &poll)).await.0, 409);
    // A refresh needs redirect_uri, at /oauth/token.
    let refresh = |extra: Value| {
        let mut body = j!({
            "refresh_token": tokens["refresh_token"],
            "client_id": "tokend-test",
            "client_secret": "tokend-test-secret",
            "grant_type": "refresh_token",
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        send_json(&http, join(&emu, "/oauth/token"), &body)
    };
    let (status, _, answer) = json(refresh(j!({}))).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _, answer) =
        json(refresh(j!({"redirect_uri": "urn:ietf:wg:oauth:2.0:oob"}))).await;
    assert_eq!(status, 200, "{answer}");
    assert_ne!(answer["refresh_token"], tokens["refresh_token"]);
    let violations = emu.violations();
    assert_eq!(violations.len(), 6, "{violations:#?}");
    for (violation, words) in violations.iter().zip([
        "invalid request",
        "RFC 8628 §3.5",
        "missing key `code`",
        "missing key `client_secret`",
        "kept polling after the final answer",
        "missing key `redirect_uri`",
    ]) {
        assert!(violation.contains(words), "{violation}");
    }
}

#[tokio::test]
async fn twilio_wants_its_account_pascal_case_and_repeated_keys() {
    let emu = start(TwilioOptions {
        interval: SECOND,
        date_format: TwilioDateFormat::Rfc2822,
        error_style: TwilioErrorStyle::Twilio,
        ..TwilioOptions::default()
    })
    .await;
    let http = http();
    let device = join(&emu, "/v1/device/code");
    let account =
        |r: reqwest::RequestBuilder| r.basic_auth("ACtokendtest", Some("tokend-test-auth-token"));
    // No account: Twilio's own 401.
    let (status, _, answer) = json(post(
        &http,
        device.clone(),
        &[("ClientSid", "OQtokendtest"), ("Scopes", "a")],
    ))
    .await;
    assert_eq!((status, answer["code"].as_u64()), (401, Some(20003)));
    // snake_case keys: the PascalCase ones are missing.
    let (status, _, answer) = json(account(post(
        &http,
        device.clone(),
        &[("client_id", "OQtokendtest")],
    )))
    .await;
    assert_eq!(status, 400);
    assert!(
        answer["message"].as_str().unwrap().contains("ClientSid"),
        "{answer}"
    );
    // Scopes space-joined: accepted, but a violation.
    let (status, _, _) = json(account(post(
        &http,
        device.clone(),
        &[("ClientSid", "OQtokendtest"), ("Scopes", "a b")],
    )))
    .await;
    assert_eq!(status, 201);
    // Repeated keys: 201 with every field.
    let (status, _, code) = json(account(post(
        &http,
        device,
        &[
            ("ClientSid", "OQtokendtest"),
            ("Scopes", "a"),
            ("Scopes", "b"),
            ("Audiences", "x"),
        ],
    )))
    .await;
    assert_eq!(status, 201);
    assert_eq!(code["interval"], 1);
    assert_eq!(emu.device_codes()[1].scope.as_deref(), Some("a b"));
    let token = join(&emu, "/v1/token");
    let device_code = text(&code, "device_code");
    let poll = [
        ("GrantType", DEVICE_CODE_GRANT),
        ("ClientSid", "OQtokendtest"),
        ("DeviceCode", device_code.as_str()),
    ];
    let (status, _, pending) = json(account(post(&http, token.clone(), &poll))).await;
    assert_eq!(status, 400);
    assert!(
        pending["message"]
            .as_str()
            .unwrap()
            .starts_with("authorization_pending"),
        "{pending}"
    );
    assert!(
        pending["more_info"]
            .as_str()
            .unwrap()
            .starts_with("https://www.twilio.com/docs/errors/")
    );
    emu.approve(&text(&code, "user_code")).unwrap();
    emu.advance(SECOND);
    let (status, _, tokens) = json(account(post(&http, token, &poll))).await;
    assert_eq!(status, 201);
    assert!(tokens.get("expires_in").is_none() && tokens.get("token_type").is_none());
    assert!(tokens["id_token"].is_null());
    let expires_at = text(&tokens, "access_token_expires_at");
    assert!(expires_at.ends_with(" +0000"), "RFC 2822: {expires_at}");
    let violations = emu.violations();
    assert_eq!(violations.len(), 4, "{violations:#?}");
    assert!(violations[0].contains("account authentication"));
    assert!(violations[1].contains("missing parameter `ClientSid`"));
    assert!(violations[2].contains("unknown parameter `client_id`"));
    assert!(violations[3].contains("`Scopes` is a list"));
}
