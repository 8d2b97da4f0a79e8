//! The RFC 8628 emulator's quirk modes over real HTTP: each changes exactly
//! what it claims (GitHub's form answers, 200 errors and `slow_down`
//! interval; Google's `verification_url` and 428; Microsoft's `message` and
//! `authorization_declined`; Azure AD v1's string numbers; Auth0's
//! `expired_token` once, then `invalid_grant`), and the default changes
//! nothing.

use crate::http::{FORM, SECOND, http, json, post, start, text};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::Value;
use tokend_emulator::{DEVICE_CODE_GRANT, FormAnswers, Rfc8628Options, Rfc8628Quirks};

/// Sends and returns status, headers and the raw body.
async fn raw(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn rfc8628_quirk_modes_change_what_they_claim() {
    let http = http();
    let device_answer = |quirks: Rfc8628Quirks, accept_json: bool| {
        let http = http.clone();
        async move {
            let emu = start(Rfc8628Options {
                client_id: "cid".into(),
                interval: SECOND,
                quirks,
                ..Rfc8628Options::default()
            })
            .await;
            let mut request = post(
                &http,
                emu.device_authorization_endpoint(),
                &[("client_id", "cid")],
            );
            if accept_json {
                request = request.header(ACCEPT, "application/json");
            }
            let (status, headers, body) = raw(request).await;
            assert_eq!(status, 200);
            (
                emu,
                headers[CONTENT_TYPE].to_str().unwrap().to_owned(),
                body,
            )
        }
    };
    // GitHub: form unless Accept JSON.
    let (_, content_type, body) = device_answer(Rfc8628Quirks::github(), false).await;
    assert!(content_type.starts_with(FORM), "{content_type}");
    assert!(
        body.contains("device_code=") && body.contains("interval=1"),
        "{body}"
    );
    let (emu, content_type, body) = device_answer(Rfc8628Quirks::github(), true).await;
    assert_eq!(content_type, "application/json");
    let code: Value = serde_json::from_str(&body).unwrap();
    let poll = [
        ("grant_type", DEVICE_CODE_GRANT),
        ("device_code", &text(&code, "device_code")),
        ("client_id", "cid"),
    ];
    let (status, _, answer) =
        json(post(&http, emu.token_endpoint(), &poll).header(ACCEPT, "application/json")).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (200, Some("authorization_pending"))
    );
    let (status, _, answer) =
        json(post(&http, emu.token_endpoint(), &poll).header(ACCEPT, "application/json")).await;
    assert_eq!(
        (
            status,
            answer["error"].as_str(),
            answer["interval"].as_u64()
        ),
        (200, Some("slow_down"), Some(6))
    );
    // Always form, whatever Accept says.
    let forced = Rfc8628Quirks {
        form_answers: FormAnswers::Always,
        ..Rfc8628Quirks::default()
    };
    assert!(device_answer(forced, true).await.1.starts_with(FORM));
    // Google: verification_url, pending as 428.
    let (emu, _, body) = device_answer(Rfc8628Quirks::google(), true).await;
    let code: Value = serde_json::from_str(&body).unwrap();
    assert!(
        code.get("verification_uri").is_none() && code.get("verification_uri_complete").is_none()
    );
    assert_eq!(code["verification_url"], emu.verification_uri().as_str());
    let poll = [
        ("grant_type", DEVICE_CODE_GRANT),
        ("device_code", &text(&code, "device_code")),
        ("client_id", "cid"),
    ];
    assert_eq!(json(post(&http, emu.token_endpoint(), &poll)).await.0, 428);
    // Microsoft: message; a denial is authorization_declined.
    let (emu, _, body) = device_answer(Rfc8628Quirks::microsoft(), true).await;
    let code: Value = serde_json::from_str(&body).unwrap();
    assert!(text(&code, "message").contains(&text(&code, "user_code")));
    emu.deny(&text(&code, "user_code")).unwrap();
    let poll = [
        ("grant_type", DEVICE_CODE_GRANT),
        ("device_code", &text(&code, "device_code")),
        ("client_id", "cid"),
    ];
    let (status, _, answer) = json(post(&http, emu.token_endpoint(), &poll)).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("authorization_declined"))
    );
    // Azure AD v1: numbers as strings.
    let (_, _, body) = device_answer(Rfc8628Quirks::azure_ad_v1(), true).await;
    let code: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (code["expires_in"].as_str(), code["interval"].as_str()),
        (Some("600"), Some("1"))
    );
    // Default: none of it.
    let (_, content_type, body) = device_answer(Rfc8628Quirks::default(), false).await;
    assert_eq!(content_type, "application/json");
    let code: Value = serde_json::from_str(&body).unwrap();
    assert!(code["expires_in"].is_u64() && code.get("message").is_none());
}

/// Auth0: an expired device code is answered `expired_token` once, then
/// `invalid_grant` at every later poll; without the quirk, `expired_token`
/// each time.
#[tokio::test]
async fn auth0_answers_an_expired_code_once() {
    let http = http();
    for (quirks, answers) in [
        (
            Rfc8628Quirks::auth0(),
            ["expired_token", "invalid_grant", "invalid_grant"],
        ),
        (
            Rfc8628Quirks::default(),
            ["expired_token", "expired_token", "expired_token"],
        ),
    ] {
        let emu = start(Rfc8628Options {
            client_id: "cid".into(),
            interval: SECOND,
            quirks,
            ..Rfc8628Options::default()
        })
        .await;
        let (status, _, code) = json(post(
            &http,
            emu.device_authorization_endpoint(),
            &[("client_id", "cid")],
        ))
        .await;
        assert_eq!(status, 200);
        let poll = [
            ("grant_type", DEVICE_CODE_GRANT),
            ("device_code", &text(&code, "device_code")),
            ("client_id", "cid"),
        ];
        emu.expire_device_codes();
        for expected in answers {
            emu.advance(SECOND);
            let (status, _, answer) = json(post(&http, emu.token_endpoint(), &poll)).await;
            assert_eq!((status, answer["error"].as_str()), (400, Some(expected)));
        }
    }
}
