use std::time::{Instant, SystemTime};

use bytes::Bytes;
use hyper::HeaderMap;

use super::*;
use crate::wire::wire_seconds;

const FORM: &str = "application/x-www-form-urlencoded";

fn dialect(options: Rfc8628Options) -> (Rfc8628, Authority) {
    let authority = Authority::new(options.policy());
    (Rfc8628::new(options, "http://127.0.0.1:9"), authority)
}

fn post(path: &str, content_type: &str, body: &str) -> Received {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", content_type.parse().unwrap());
    Received {
        method: Method::POST,
        path: path.into(),
        query: None,
        headers,
        body: Bytes::from(body.to_owned()),
        at: Instant::now(),
        at_system: SystemTime::now(),
    }
}

fn send(dialect: &Rfc8628, authority: &mut Authority, request: &Received) -> Reply {
    dialect.answer(request, dialect.endpoint(&request.path), authority)
}

#[test]
fn routes_with_and_without_prefix() {
    let (plain, _) = dialect(Rfc8628Options::default());
    assert_eq!(
        plain.endpoint("/device/code"),
        Endpoint::DeviceAuthorization
    );
    assert_eq!(plain.endpoint("/device"), Endpoint::Approval);
    assert_eq!(plain.endpoint("/device/approve"), Endpoint::Approval);
    assert_eq!(plain.endpoint("/token"), Endpoint::Token);
    assert_eq!(plain.endpoint("/nope"), Endpoint::Unknown);
    let (prefixed, _) = dialect(Rfc8628Options {
        path_prefix: "/realms/test/".into(),
        ..Default::default()
    });
    assert_eq!(prefixed.endpoint("/realms/test/token"), Endpoint::Token);
    assert_eq!(prefixed.endpoint("/token"), Endpoint::Unknown);
    let reply = prefixed.discovery();
    let doc = reply.json_body();
    assert_eq!(doc["issuer"], "http://127.0.0.1:9/realms/test");
    assert_eq!(
        doc["token_endpoint"],
        "http://127.0.0.1:9/realms/test/token"
    );
    assert_eq!(
        doc["device_authorization_endpoint"],
        "http://127.0.0.1:9/realms/test/device/code"
    );
}

#[test]
fn device_authorization_answer() {
    let (d, mut a) = dialect(Rfc8628Options::default());
    let reply = send(
        &d,
        &mut a,
        &post(
            "/device/code",
            FORM,
            "client_id=tokend-test&scope=a+b&device_os=linux",
        ),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header_value(&hyper::header::CACHE_CONTROL),
        Some("no-store")
    );
    let body = reply.json_body();
    let user_code = body["user_code"].as_str().unwrap();
    assert_eq!(body["verification_uri"], "http://127.0.0.1:9/device");
    assert_eq!(
        body["verification_uri_complete"],
        format!("http://127.0.0.1:9/device?user_code={user_code}")
    );
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["interval"], 5);
    let code = &a.codes(Instant::now())[0];
    assert_eq!(code.scope.as_deref(), Some("a b"));
    assert_eq!(code.params, [("device_os".to_owned(), "linux".to_owned())]);

    let (d, mut a) = dialect(Rfc8628Options {
        send_interval: false,
        send_verification_uri_complete: false,
        allowed_scopes: Some(vec!["a".into()]),
        ..Default::default()
    });
    let body = send(
        &d,
        &mut a,
        &post("/device/code", FORM, "client_id=tokend-test"),
    )
    .json_body();
    assert!(body.get("interval").is_none() && body.get("verification_uri_complete").is_none());
    let reply = send(
        &d,
        &mut a,
        &post("/device/code", FORM, "client_id=tokend-test&scope=a+z"),
    );
    assert_eq!(reply.json_body()["error"], "invalid_scope");

    // GitHub and Microsoft send no complete URI: the person types the code.
    for quirks in [Rfc8628Quirks::github(), Rfc8628Quirks::microsoft()] {
        let (d, mut a) = dialect(Rfc8628Options {
            quirks,
            ..Default::default()
        });
        let reply = send(
            &d,
            &mut a,
            &post("/device/code", FORM, "client_id=tokend-test"),
        );
        // GitHub's is form-encoded here (no `Accept: application/json`).
        let body = String::from_utf8_lossy(reply.body.bytes().unwrap()).into_owned();
        assert!(!body.contains("verification_uri_complete"), "{body}");
        assert!(body.contains("verification_uri"), "{body}");
    }
}

#[test]
fn token_endpoint_refuses_what_the_rfc_forbids() {
    let (d, mut a) = dialect(Rfc8628Options::default());
    let json = post(
        "/token",
        "application/json",
        r#"{"grant_type":"refresh_token","refresh_token":"x","client_id":"tokend-test"}"#,
    );
    let reply = send(&d, &mut a, &json);
    assert_eq!(
        (reply.status, reply.outcome.as_str()),
        (400, "invalid_request")
    );
    assert_eq!(reply.violations.len(), 1);
    let reply = send(
        &d,
        &mut a,
        &post("/token", FORM, "grant_type=password&client_id=tokend-test"),
    );
    assert_eq!(reply.json_body()["error"], "unsupported_grant_type");
    assert_eq!(reply.violations.len(), 1);
    let reply = send(
        &d,
        &mut a,
        &post(
            "/token",
            FORM,
            &format!("grant_type={DEVICE_CODE_GRANT}&client_id=tokend-test"),
        ),
    );
    assert_eq!(reply.json_body()["error"], "invalid_request");
    let reply = send(
        &d,
        &mut a,
        &post(
            "/token",
            FORM,
            "grant_type=refresh_token&refresh_token=x&client_id=nobody",
        ),
    );
    assert_eq!(
        (reply.status, reply.outcome.as_str()),
        (401, "invalid_client")
    );
    let mut get = post("/token", FORM, "");
    get.method = Method::GET;
    assert_eq!(send(&d, &mut a, &get).status, 405);
}

#[test]
fn poll_grant_and_userinfo() {
    let (d, mut a) = dialect(Rfc8628Options::default());
    let issued = send(
        &d,
        &mut a,
        &post("/device/code", FORM, "client_id=tokend-test"),
    )
    .json_body();
    let poll = format!(
        "grant_type={}&device_code={}&client_id=tokend-test",
        url::form_urlencoded::byte_serialize(DEVICE_CODE_GRANT.as_bytes()).collect::<String>(),
        issued["device_code"].as_str().unwrap()
    );
    let reply = send(&d, &mut a, &post("/token", FORM, &poll));
    assert_eq!(reply.json_body()["error"], "authorization_pending");
    a.approve(issued["user_code"].as_str().unwrap(), Instant::now())
        .unwrap();
    let mut later = post("/token", FORM, &poll);
    later.at += Duration::from_secs(5);
    let reply = send(&d, &mut a, &later);
    assert_eq!((reply.status, reply.outcome.as_str()), (200, "granted"));
    let tokens = reply.json_body();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert!(tokens["refresh_token"].is_string());
    assert!(
        tokens.get("scope").is_none(),
        "no scope asked, none granted"
    );

    let mut userinfo = post("/userinfo", FORM, "");
    userinfo.method = Method::GET;
    let reply = send(&d, &mut a, &userinfo);
    assert_eq!((reply.status, reply.outcome.as_str()), (401, "no_token"));
    let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    userinfo
        .headers
        .insert("authorization", bearer.parse().unwrap());
    let reply = send(&d, &mut a, &userinfo);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json_body()["client_id"], "tokend-test");
    a.revoke_all();
    let reply = send(&d, &mut a, &userinfo);
    assert_eq!(
        (reply.status, reply.detail.as_deref()),
        (401, Some("revoked"))
    );
    assert!(
        reply
            .header_value(&hyper::header::WWW_AUTHENTICATE)
            .unwrap()
            .contains("invalid_token")
    );
}

#[test]
fn wire_seconds_round_up() {
    assert_eq!(wire_seconds(Duration::from_millis(1500)), 2);
    assert_eq!(wire_seconds(Duration::from_secs(3)), 3);
}

/// Fractional durations are sent as they are (as strings with
/// `string_numbers`); a byte order mark starts refresh answers only, or
/// every answer.
#[test]
fn fractional_seconds_and_byte_order_marks() {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let body = |reply: &Reply| reply.body.bytes().expect("a complete body").clone();
    let json = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();
    for (quirks, marked_login) in [
        (
            Rfc8628Quirks {
                fractional_seconds: true,
                byte_order_marks: ByteOrderMarks::Refreshes,
                ..Rfc8628Quirks::default()
            },
            false,
        ),
        (
            Rfc8628Quirks {
                fractional_seconds: true,
                string_numbers: true,
                byte_order_marks: ByteOrderMarks::Always,
                ..Rfc8628Quirks::default()
            },
            true,
        ),
    ] {
        let strings = quirks.string_numbers;
        let number = |n: f64| {
            if strings {
                serde_json::Value::from(n.to_string())
            } else {
                serde_json::Value::from(n)
            }
        };
        let (d, mut a) = dialect(Rfc8628Options {
            interval: Duration::from_millis(1500),
            device_code_lifetime: Duration::from_millis(599_900),
            access_token_lifetime: Duration::from_millis(3_599_500),
            quirks,
            ..Rfc8628Options::default()
        });
        let device = send(
            &d,
            &mut a,
            &post("/device/code", FORM, "client_id=tokend-test"),
        );
        let device_body = body(&device);
        assert_eq!(device_body.starts_with(BOM), marked_login);
        let issued = json(device_body.strip_prefix(BOM).unwrap_or(&device_body));
        assert_eq!(issued["interval"], number(1.5));
        assert_eq!(issued["expires_in"], number(599.9));
        a.approve(issued["user_code"].as_str().unwrap(), Instant::now())
            .unwrap();
        let poll = format!(
            "grant_type={}&device_code={}&client_id=tokend-test",
            url::form_urlencoded::byte_serialize(DEVICE_CODE_GRANT.as_bytes()).collect::<String>(),
            issued["device_code"].as_str().unwrap()
        );
        let mut later = post("/token", FORM, &poll);
        later.at += Duration::from_secs(2);
        let granted = send(&d, &mut a, &later);
        assert_eq!(granted.outcome, "granted");
        let granted_body = body(&granted);
        assert_eq!(granted_body.starts_with(BOM), marked_login);
        let tokens = json(granted_body.strip_prefix(BOM).unwrap_or(&granted_body));
        assert_eq!(tokens["expires_in"], number(3599.5));
        let refresh = format!(
            "grant_type=refresh_token&refresh_token={}&client_id=tokend-test",
            tokens["refresh_token"].as_str().unwrap()
        );
        let refreshed = send(&d, &mut a, &post("/token", FORM, &refresh));
        assert_eq!(refreshed.outcome, "refreshed");
        let refreshed_body = body(&refreshed);
        let tokens = json(refreshed_body.strip_prefix(BOM).expect("a marked refresh"));
        assert_eq!(tokens["expires_in"], number(3599.5));
    }
}
