//! The dialect emulators over real HTTP: each is as strict as the provider
//! it stands for (wrong encodings, wrong key names, missing parameters,
//! wrong authentication and too-fast polls are refused and recorded as
//! violations) and reproduces its quirks. The RFC 8628 emulator's quirk
//! modes are in `emulator_quirks.rs`.
//!
//! No sleeps: where the protocol makes a client wait (a poll interval), the
//! test advances the emulator's clock.

use std::fmt::Write as _;

use crate::http::{SECOND, http, json, post, start, text};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use serde_json::{Value, json as j};
use tokend_emulator::{
    DEVICE_CODE_GRANT, Emulator, GenericV1Options, OracleOptions, TraktOptions, TwilioDateFormat,
    TwilioErrorStyle, TwilioOptions,
};

fn send_json(http: &reqwest::Client, url: url::Url, body: &Value) -> reqwest::RequestBuilder {
    http.post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string())
}

/// Sends and returns status, headers and the raw body.
async fn raw(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

fn join(emu: &Emulator, path: &str) -> url::Url {
    emu.base_url().join(path).unwrap()
}

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
    assert_eq!(violations.len(), 5, "{violations:#?}");
    for (violation, words) in violations.iter().zip([
        "invalid request",
        "RFC 8628 §3.5",
        "missing key `code`",
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

/// The demo binary, killed when dropped.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_emulator_binary_speaks_every_dialect_with_a_config_tokend_accepts() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    for (dialect, name) in [
        ("trakt", "Trakt"),
        ("twilio", "Twilio"),
        ("oracle", "Oracle"),
        ("generic-v1", "generic-v1"),
    ] {
        let config = dir.path().join(format!("{dialect}.toml"));
        let mut demo = Demo(
            Command::new(env!("CARGO_BIN_EXE_tokend-emulator"))
                .args(["--dialect", dialect, "--config-out"])
                .arg(&config)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        // The first line is printed once the config is written.
        let mut reader = BufReader::new(demo.0.stdout.take().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        assert!(
            first.starts_with(&format!("tokend-emulator: {name} provider listening on")),
            "{first}"
        );
        // What `tokend --check` does, in process (this crate has no tokend binary).
        let env = tokend::config::Environment {
            xdg_runtime_dir: Some(dir.path().to_owned()),
            ..tokend::config::Environment::from_process()
        };
        let checked = tokend::config::load(&config, &env)
            .unwrap_or_else(|e| panic!("{dialect}: tokend refuses the config: {e}"));
        assert!(
            checked.warnings.is_empty(),
            "{dialect}: {:?}",
            checked.warnings
        );
        // Stopped before its pipe closes, so it never writes to a closed pipe.
        drop(demo);
        drop(reader);
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_tokend-emulator"))
        .args(["--dialect", "trakt", "--quirks", "github"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--quirks is for --dialect rfc8628 only")
    );
}
