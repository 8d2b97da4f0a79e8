//! Injected faults of the provider emulator, seen from a real HTTP client:
//! each does what it claims, and none leaves state behind.

use std::time::Duration;

use crate::http::{SECOND, http, json, post, public, raw_post, read_all, start, text};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use tokend_emulator::{DEVICE_CODE_GRANT, Endpoint, Fault};

#[tokio::test]
async fn answer_faults_replace_one_answer_each_and_change_nothing() {
    let emu = start(public(SECOND)).await;
    let http = http();
    let (_, _, code) = json(post(
        &http,
        emu.device_authorization_endpoint(),
        &[("client_id", "cid")],
    ))
    .await;
    emu.approve(&text(&code, "user_code")).unwrap();
    let body = Fault::Body {
        status: 400,
        content_type: None,
        body: "oops".into(),
    };
    for fault in [
        Fault::Status(503),
        Fault::Html(200),
        body,
        Fault::Redirect("http://127.0.0.1:9/elsewhere".into()),
    ] {
        emu.inject(Endpoint::Token, fault, 1);
    }
    let device_code = text(&code, "device_code");
    let poll = || {
        post(
            &http,
            emu.token_endpoint(),
            &[
                ("grant_type", DEVICE_CODE_GRANT),
                ("device_code", &device_code),
                ("client_id", "cid"),
            ],
        )
    };
    let answers = [
        (503, "text/plain; charset=utf-8"),
        (200, "text/html; charset=utf-8"),
        (400, ""),
        (307, "text/plain; charset=utf-8"),
    ];
    for (status, content_type) in answers {
        let response = poll().send().await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        let ct = response
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(ct.unwrap_or_default(), content_type);
        if status == 307 {
            assert_eq!(response.headers()[LOCATION], "http://127.0.0.1:9/elsewhere");
        }
        let text = response.text().await.unwrap();
        assert!(status != 200 || text.contains("<html"), "{text}");
    }
    // The faults stood in for the provider: the code is still unused.
    let (status, _, tokens) = json(poll()).await;
    assert_eq!(status, 200, "{tokens}");
    let outcomes: Vec<_> = emu.requests().into_iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            "issued",
            "fault:status",
            "fault:html",
            "fault:body",
            "fault:redirect",
            "granted"
        ]
    );
    emu.assert_no_violations();
}

#[tokio::test]
async fn body_faults_are_too_long_endless_or_dripping() {
    let emu = start(public(SECOND)).await;
    let http = http();
    let discovery = emu.endpoint_url(Endpoint::Discovery).unwrap();
    emu.inject(Endpoint::Discovery, Fault::Huge(1 << 20), 1);
    emu.inject(Endpoint::Discovery, Fault::Endless, 1);
    emu.inject(
        Endpoint::Discovery,
        Fault::Drip(Duration::from_millis(5)),
        1,
    );

    let response = http.get(discovery.clone()).send().await.unwrap();
    assert_eq!(response.headers()[CONTENT_LENGTH], "1048576");
    assert_eq!(response.bytes().await.unwrap().len(), 1 << 20);

    let mut response = http.get(discovery.clone()).send().await.unwrap();
    assert!(response.headers().get(CONTENT_LENGTH).is_none());
    let mut read = 0;
    while read < 4 << 20 {
        read += response
            .chunk()
            .await
            .unwrap()
            .expect("an endless body does not end")
            .len();
    }
    drop(response);

    let mut response = http.get(discovery.clone()).send().await.unwrap();
    let mut read = 0;
    while read < 3 {
        read += response
            .chunk()
            .await
            .unwrap()
            .expect("a dripping body does not end")
            .len();
    }
    drop(response);
    let outcomes: Vec<_> = emu.requests().into_iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, ["fault:huge", "fault:endless", "fault:drip"]);
    // And the endpoint works again.
    assert_eq!(json(http.get(discovery)).await.0, 200);
}

#[tokio::test]
async fn connection_faults_hang_close_or_reset() {
    let emu = start(public(SECOND)).await;
    let http = http();
    emu.inject(Endpoint::Token, Fault::Hang, 1);
    emu.inject(Endpoint::Token, Fault::Close, 1);
    emu.inject(Endpoint::Token, Fault::ResetMidBody, 2);

    let hung = post(&http, emu.token_endpoint(), &[])
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(hung.unwrap_err().is_timeout());
    let closed = post(&http, emu.token_endpoint(), &[]).send().await;
    assert!(closed.is_err(), "{closed:?}");

    let response = post(&http, emu.token_endpoint(), &[]).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "the body is cut short");
    let mut raw = raw_post(&emu, emu.token_endpoint().path()).await;
    let (received, end) = read_all(&mut raw).await;
    let received = String::from_utf8_lossy(&received);
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    assert!(received.contains("content-length: 1024"), "{received}");
    assert!(
        received.ends_with("{\"access_token\":\"at_cut_"),
        "{received}"
    );
    assert_eq!(end.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);

    let records = emu.requests();
    let seen: Vec<_> = records
        .iter()
        .map(|r| (r.outcome.as_str(), r.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("fault:hang", None),
            ("fault:close", None),
            ("fault:reset", Some(200)),
            ("fault:reset", Some(200))
        ]
    );
}

#[tokio::test]
async fn delays_outages_and_peak_concurrency() {
    let emu = start(public(SECOND)).await;
    let http = http();
    emu.inject(
        Endpoint::DeviceAuthorization,
        Fault::Delay(Duration::from_millis(100)),
        1,
    );
    let (status, _, _) = json(post(
        &http,
        emu.device_authorization_endpoint(),
        &[("client_id", "cid")],
    ))
    .await;
    assert_eq!(status, 200);
    let record = &emu.requests()[0];
    assert_eq!(record.outcome, "issued");
    assert!(
        record.detail.as_deref().unwrap().contains("delayed 100 ms"),
        "{record}"
    );

    emu.set_unavailable(true);
    assert_eq!(json(http.get(emu.userinfo_endpoint())).await.0, 503);
    emu.set_unavailable(false);
    assert_eq!(json(http.get(emu.userinfo_endpoint())).await.0, 401);

    // Three token requests held open at once.
    emu.inject(Endpoint::Token, Fault::Hang, 3);
    let held: Vec<_> = (0..3)
        .map(|_| tokio::spawn(post(&http, emu.token_endpoint(), &[]).send()))
        .collect();
    emu.wait_for(|r| r.iter().filter(|r| r.outcome == "fault:hang").count() == 3)
        .await;
    assert_eq!(emu.max_concurrent_token_requests(), 3);
    for request in held {
        request.abort();
    }
}

#[tokio::test]
async fn shutdown_ends_hanging_connections() {
    let emu = start(public(SECOND)).await;
    emu.inject(Endpoint::Token, Fault::Hang, 1);
    let mut stream = raw_post(&emu, "/token").await;
    emu.wait_for(|r| r.len() == 1).await;
    emu.shutdown().await;
    let (received, _) = read_all(&mut stream).await;
    assert!(
        received.is_empty(),
        "no answer, only the end of the connection"
    );
}
