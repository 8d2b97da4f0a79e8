//! The RFC 8628 provider emulator, driven over real HTTP on 127.0.0.1: the
//! protocol, tokend's own client against it, the approval page and the demo
//! binary. Faults are in `emulator_faults.rs`.
//!
//! Waiting is event-driven (`wait_for*`), and no test sleeps: the poll
//! intervals the protocol demands of a client pass by advancing the
//! emulator's clock.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::http::{SECOND, http, json, post, public, start, text};
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::Value;
use tokend::config::{ClientAuth, EndpointSource};
use tokend::provider::{self, ClientIdentity, HttpClient, PollOutcome, Provider};
use tokend::secret::Secret;
use tokend_emulator::{ClientAuthMode, DEVICE_CODE_GRANT, Emulator, Rfc8628Options};

/// A whole device login over HTTP: code, pending poll, approval, tokens,
/// and a second poll that finds the code used. Returns the device code and
/// the token answer.
async fn device_login(emu: &Emulator, http: &reqwest::Client) -> (String, Value) {
    let (status, headers, code) = json(post(
        http,
        emu.device_authorization_endpoint(),
        &[("client_id", "cid"), ("scope", "read write")],
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers[CONTENT_TYPE], "application/json");
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    let user_code = text(&code, "user_code");
    assert_eq!(code["verification_uri"], emu.verification_uri().as_str());
    assert_eq!(code["interval"], 1);
    let device_code = text(&code, "device_code");
    let poll = [
        ("grant_type", DEVICE_CODE_GRANT),
        ("device_code", device_code.as_str()),
        ("client_id", "cid"),
    ];
    let (status, _, answer) = json(post(http, emu.token_endpoint(), &poll)).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("authorization_pending"))
    );

    assert_eq!(emu.wait_for_device_code().await.user_code, user_code);
    emu.approve(&user_code).unwrap();
    emu.advance(SECOND); // the interval a client must wait
    let (status, headers, tokens) = json(post(http, emu.token_endpoint(), &poll)).await;
    assert_eq!(status, 200);
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    assert_eq!(
        (tokens["token_type"].as_str(), tokens["expires_in"].as_u64()),
        (Some("Bearer"), Some(3600))
    );
    assert_eq!(tokens["scope"], "read write");

    emu.advance(SECOND);
    let (status, _, answer) = json(post(http, emu.token_endpoint(), &poll)).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant")),
        "a device code is single-use"
    );
    (device_code, tokens)
}

#[tokio::test]
async fn login_refresh_rotation_and_replay() {
    let emu = start(public(SECOND)).await;
    let http = http();
    let (device_code, tokens) = device_login(&emu, &http).await;
    let (at1, rt1) = (
        text(&tokens, "access_token"),
        text(&tokens, "refresh_token"),
    );

    let (status, _, me) = json(http.get(emu.userinfo_endpoint()).bearer_auth(&at1)).await;
    assert_eq!((status, me["client_id"].as_str()), (200, Some("cid")));

    let refresh = |token: &str| {
        post(
            &http,
            emu.token_endpoint(),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("client_id", "cid"),
            ],
        )
    };
    let (status, _, tokens) = json(refresh(&rt1)).await;
    assert_eq!(status, 200);
    let (at2, rt2) = (
        text(&tokens, "access_token"),
        text(&tokens, "refresh_token"),
    );
    assert_ne!(rt1, rt2, "rotation hands out a new refresh token");
    assert!(emu.is_valid_access_token(&at1) && emu.is_valid_access_token(&at2));

    // A replay of the rotated token revokes the whole login.
    let (status, _, answer) = json(refresh(&rt1)).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(!emu.is_valid_access_token(&at2));
    let response = http
        .get(emu.userinfo_endpoint())
        .bearer_auth(&at2)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let (status, _, _) = json(refresh(&rt2)).await;
    assert_eq!(
        status, 400,
        "descendants of the replayed token are dead too"
    );

    let outcomes: Vec<String> = emu.requests().into_iter().map(|r| r.outcome).collect();
    let expected = [
        "issued",
        "pending",
        "granted",
        "invalid_grant",
        "accepted",
        "refreshed",
        "invalid_grant",
        "invalid_token",
        "invalid_grant",
    ];
    assert_eq!(outcomes, expected);
    assert_eq!(emu.refresh_count(), 3);
    let replay = &emu.requests()[6];
    assert_eq!(replay.field("refresh_token"), Some(rt1.as_str()));
    assert_eq!(replay.violations.len(), 1, "{replay:?}");
    assert!(
        !format!("{replay:?}").contains(&rt1),
        "Debug hides token values"
    );
    assert_eq!(emu.poll_times().len(), 3);
    let violations = emu.violations();
    assert_eq!(violations.len(), 2, "{violations:#?}");
    assert!(violations[0].contains("kept polling"), "{violations:#?}");
    assert!(
        violations[1].contains("reused a rotated refresh token"),
        "{violations:#?}"
    );
    assert!(
        violations
            .iter()
            .all(|v| !v.contains(&rt1) && !v.contains(&device_code))
    );
}

#[tokio::test]
async fn polling_too_fast_is_slowed_down_and_recorded() {
    let emu = start(public(SECOND)).await;
    let http = http();
    let (_, _, code) = json(post(
        &http,
        emu.device_authorization_endpoint(),
        &[("client_id", "cid")],
    ))
    .await;
    let device_code = text(&code, "device_code");
    let poll = [
        ("grant_type", DEVICE_CODE_GRANT),
        ("device_code", &device_code),
        ("client_id", "cid"),
    ];
    let (_, _, first) = json(post(&http, emu.token_endpoint(), &poll)).await;
    let (status, _, second) = json(post(&http, emu.token_endpoint(), &poll)).await;
    assert_eq!(first["error"], "authorization_pending");
    assert_eq!((status, second["error"].as_str()), (400, Some("slow_down")));
    assert_eq!(
        emu.device_codes()[0].interval,
        Duration::from_secs(6),
        "RFC 8628 §3.5: +5 s"
    );
    let violations = emu.violations();
    assert_eq!(violations.len(), 1);
    assert!(violations[0].contains("RFC 8628 §3.5"), "{violations:?}");

    // Told to slow down without polling too fast: not a violation.
    emu.slow_down_next_polls(1);
    let (_, _, code) = json(post(
        &http,
        emu.device_authorization_endpoint(),
        &[("client_id", "cid")],
    ))
    .await;
    let device_code = text(&code, "device_code");
    let poll = [
        ("grant_type", DEVICE_CODE_GRANT),
        ("device_code", &device_code),
        ("client_id", "cid"),
    ];
    let (_, _, answer) = json(post(&http, emu.token_endpoint(), &poll)).await;
    assert_eq!(answer["error"], "slow_down");
    assert_eq!(emu.violations().len(), 1);
    assert_eq!(emu.poll_times().len(), 3);
}

#[tokio::test]
async fn strict_request_format_and_client_authentication() {
    let emu = start(Rfc8628Options {
        client_id: "cid".into(),
        client_auth: ClientAuthMode::SecretBasic("s3cret".into()),
        ..Default::default()
    })
    .await;
    let http = http();
    let device = emu.device_authorization_endpoint();
    let ok = post(&http, device.clone(), &[("client_id", "cid")]).basic_auth("cid", Some("s3cret"));
    assert_eq!(json(ok).await.0, 200);
    let (status, headers, answer) =
        json(post(&http, device.clone(), &[("client_id", "cid")])).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(
        headers[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let wrong_method = post(
        &http,
        device.clone(),
        &[("client_id", "cid"), ("client_secret", "s3cret")],
    );
    assert_eq!(json(wrong_method).await.0, 401);
    let wrong_secret = post(&http, device.clone(), &[]).basic_auth("cid", Some("nope"));
    assert_eq!(json(wrong_secret).await.0, 401);
    // JSON bodies are refused with invalid_request.
    let as_json = http
        .post(emu.token_endpoint())
        .basic_auth("cid", Some("s3cret"))
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"grant_type":"refresh_token","refresh_token":"x"}"#);
    let (status, _, answer) = json(as_json).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let unknown_grant = post(&http, emu.token_endpoint(), &[("grant_type", "password")])
        .basic_auth("cid", Some("s3cret"));
    assert_eq!(
        json(unknown_grant).await.2["error"],
        "unsupported_grant_type"
    );
    assert_eq!(emu.violations().len(), 5, "{:#?}", emu.violations());
    let auth: Vec<_> = emu
        .requests()
        .into_iter()
        .map(|r| format!("{:?}", r.auth))
        .collect();
    assert_eq!(
        auth,
        ["Basic", "ClientId", "SecretPost", "Basic", "Basic", "Basic"]
    );
}

/// tokend's own client, discovery included, against the emulator.
#[tokio::test]
async fn tokend_client_speaks_to_the_emulator_without_violations() {
    let secret = "s3cret: &+%";
    let emu = start(Rfc8628Options {
        client_id: "c:id".into(),
        client_auth: ClientAuthMode::SecretBasic(secret.into()),
        path_prefix: "/realms/test".into(),
        interval: SECOND,
        ..Default::default()
    })
    .await;
    let http = HttpClient::new(Duration::from_secs(10)).unwrap();
    let endpoints = provider::discovery::discover(&http, &emu.issuer())
        .await
        .unwrap();
    assert_eq!(endpoints.token, emu.token_endpoint());
    assert_eq!(
        endpoints.device_authorization,
        emu.device_authorization_endpoint()
    );
    let identity = ClientIdentity {
        client_id: "c:id".into(),
        client_secret: Some(Secret::from(secret)),
        client_auth: ClientAuth::SecretBasic,
        scopes: vec!["read".into()],
        device_params: BTreeMap::from([("device_os".into(), "linux".into())]),
    };
    let dialect = Box::new(provider::dialects::rfc8628::Rfc8628::new(identity));
    let client = Provider::new(
        dialect,
        EndpointSource::Discover {
            issuer: emu.issuer(),
        },
        http,
    );
    let prompt = client.start_device_authorization().await.unwrap();
    assert_eq!(prompt.interval, Some(SECOND));
    let issued = emu.approve(&prompt.user_code).unwrap();
    assert_eq!(
        issued.params,
        [("device_os".to_owned(), "linux".to_owned())]
    );
    let PollOutcome::Granted(grant) = client.poll(&prompt.device_code).await else {
        panic!("not granted: {:#?}", emu.requests());
    };
    let refreshed = client
        .refresh(grant.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    assert!(emu.is_valid_access_token(refreshed.access_token.expose()));
    emu.assert_no_violations();
}

#[tokio::test]
async fn approval_page_and_curl_shortcuts() {
    let emu = start(public(SECOND)).await;
    let http = http();
    let mut codes = Vec::new();
    for _ in 0..2 {
        let (_, _, code) = json(post(
            &http,
            emu.device_authorization_endpoint(),
            &[("client_id", "cid")],
        ))
        .await;
        codes.push(text(&code, "user_code"));
    }
    let complete = format!("{}?user_code={}", emu.verification_uri(), codes[0]);
    let page = http.get(&complete).send().await.unwrap();
    assert_eq!(page.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    let page = page.text().await.unwrap();
    assert!(
        page.contains(&format!("value=\"{}\"", codes[0])) && page.contains("<strong>cid</strong>")
    );

    let form = [("user_code", codes[0].as_str()), ("action", "deny")];
    let result = post(&http, emu.verification_uri(), &form)
        .send()
        .await
        .unwrap();
    assert_eq!(result.status(), 200);
    assert!(result.text().await.unwrap().contains("Access denied"));

    let approve = emu.verification_uri().join("device/approve").unwrap();
    let lower = codes[1].to_lowercase();
    let result = post(&http, approve.clone(), &[("user_code", &lower)])
        .send()
        .await
        .unwrap();
    assert_eq!(result.status(), 200);
    assert_eq!(
        result.text().await.unwrap(),
        format!("Approved {}: the device now gets its tokens.\n", codes[1])
    );
    let again = post(&http, approve, &[("user_code", &codes[1])])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let statuses: Vec<_> = emu
        .device_codes()
        .iter()
        .map(|c| c.status.to_string())
        .collect();
    assert_eq!(statuses, ["denied", "approved"]);
}

/// The demo binary, killed when dropped.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn demo_binary_serves_and_writes_a_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let mut demo = Demo(
        Command::new(env!("CARGO_BIN_EXE_tokend-emulator"))
            .args(["--interval", "1", "--client-id", "demo", "--config-out"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = demo.0.stdout.take().unwrap();
    // The reader stays alive to the end: the demo must not write to a closed pipe.
    let (first, _stdout) = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        (line, reader)
    })
    .await
    .unwrap();
    let origin = first.split_whitespace().last().expect("a URL").to_owned();
    assert!(origin.starts_with("http://127.0.0.1:"), "{first}");

    let mut env = tokend::config::Environment::from_process();
    env.runtime_directory = None;
    env.xdg_runtime_dir = Some(dir.path().to_owned());
    let loaded = tokend::config::load(&config, &env).unwrap();
    let provider = loaded.provider("demo").unwrap();
    assert_eq!(provider.client_id, "demo");
    let EndpointSource::Fixed { token, .. } = &provider.endpoints else {
        panic!("{:?}", provider.endpoints)
    };
    assert_eq!(token.as_str(), format!("{origin}/token"));

    let http = http();
    let (status, _, code) = json(post(
        &http,
        format!("{origin}/device/code").parse().unwrap(),
        &[("client_id", "demo")],
    ))
    .await;
    assert_eq!((status, code["interval"].as_u64()), (200, Some(1)));
    let approve = post(
        &http,
        format!("{origin}/device/approve").parse().unwrap(),
        &[("user_code", &text(&code, "user_code"))],
    );
    assert_eq!(approve.send().await.unwrap().status(), 200);

    let refused = Command::new(env!("CARGO_BIN_EXE_tokend-emulator"))
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("loopback"));
}
