use super::*;

/// A device answer echoing the request (its client secret) into the
/// words shown to the person: taken out of each.
#[test]
fn a_device_answer_is_shown_without_the_requests_secrets() {
    let secret = "cs-echoed-secret";
    let answer = DeviceAuthorization {
        device_code: Secret::from("dc"),
        user_code: secret.to_owned(),
        verification_uri: Some(format!("http://127.0.0.1/?client_secret={secret}")),
        verification_uri_complete: Some(format!("http://127.0.0.1/?c={secret}&u=1")),
        expires_in: Duration::from_secs(600),
        interval: None,
        message: Some(format!("Go there: client_secret={secret}")),
    }
    .without_secrets(&[secret]);
    let shown = format!(
        "{} {:?} {:?} {:?}",
        answer.user_code, answer.verification_uri, answer.verification_uri_complete, answer.message
    );
    assert!(!shown.contains(secret), "{shown}");
    assert!(
        shown.contains("http://127.0.0.1/?client_secret="),
        "{shown}"
    );
}

/// A provider's words on a refused or expired login (shown to the
/// person, in `status` and the log) lose the request's secrets a provider
/// or proxy echoed into them, as every other outcome's do.
#[test]
fn a_denied_or_expired_logins_words_are_shown_without_the_secrets() {
    let secret = "dc-echoed-device-code";
    let said = format!("denied: device_code={secret}");
    for outcome in [
        PollOutcome::Denied {
            message: said.clone(),
        },
        PollOutcome::Expired {
            message: said.clone(),
        },
    ] {
        let shown = match outcome.without_secrets(&[secret]) {
            PollOutcome::Denied { message } | PollOutcome::Expired { message } => message,
            other => panic!("{other:?}"),
        };
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.starts_with("denied: device_code="), "{shown}");
    }
}

/// Delay-seconds and HTTP-dates (from the answer's time), capped;
/// anything else is no `Retry-After`.
#[test]
fn retry_after_values() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
    let read = |v| HttpResponse::read_retry_after(v, now);
    assert_eq!(read("120"), Some(Duration::from_secs(120)));
    assert_eq!(read(" 0 "), Some(Duration::ZERO));
    assert_eq!(
        read("Sun, 06 Nov 1994 08:59:37 GMT"),
        Some(Duration::from_secs(600))
    );
    // A date already passed: come back at once.
    assert_eq!(read("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
    assert_eq!(read("86400000"), Some(MAX_RETRY_AFTER));
    assert_eq!(read("-5"), None);
    assert_eq!(read("soon"), None);
}

/// The query values a request must not show are those whose key names
/// a credential, an Azure Function's `code` among them.
#[test]
fn query_credentials_are_secrets() {
    let request = HttpRequest {
        url: Url::parse(
            "https://fn.example/api/token?code=FN-KEY&subscription-key=GW-KEY&api-version=2&pwd=PW-1&passphrase=PW-2",
        )
        .unwrap(),
        body: RequestBody::Form(Vec::new()),
        basic_auth: None,
        headers: Vec::new(),
    };
    let secrets = secret_texts(&request);
    assert_eq!(secrets, ["FN-KEY", "GW-KEY", "PW-1", "PW-2"]);
    assert_eq!(
        endpoint_for_log(&request.url),
        "https://fn.example/api/token"
    );
}

/// The `Authorization: Basic` value (base64 of `id:secret`) is a secret
/// as the password is: a provider or proxy that echoes the request's
/// headers shows it, and base64 hides nothing.
#[test]
fn the_basic_authorization_value_is_a_secret() {
    let request = HttpRequest {
        url: Url::parse("https://idp.example/token").unwrap(),
        body: RequestBody::Form(Vec::new()),
        basic_auth: Some(("cid".to_owned(), Secret::from("cs-secret"))),
        headers: Vec::new(),
    };
    let secrets = secret_texts(&request);
    // base64 of "cid:cs-secret".
    assert_eq!(secrets, ["cs-secret", "Y2lkOmNzLXNlY3JldA=="]);
}

/// The texts of `request`'s secrets, in order.
fn secret_texts(request: &HttpRequest) -> Vec<String> {
    request
        .secrets()
        .iter()
        .map(|s| s.as_ref().to_owned())
        .collect()
}
