//! OpenID Connect discovery (`issuer = "..."`) as providers answer it:
//! endpoints refused by the URL rule, a redirect, a rate limit.

use crate::support;

use support::daemon::{Daemon, stderr};
use support::provider::Provider;
use tokend_emulator::{Endpoint, Fault};

/// tokenctl's exit status for a provider unavailable for now.
const EXIT_UNAVAILABLE: i32 = 6;
/// tokenctl's exit status for a login failed at the provider, for good.
const EXIT_LOGIN_FAILED: i32 = 8;

/// tokend with one provider, `oidc`, found by discovery at `issuer`.
fn oidc(issuer: &impl std::fmt::Display) -> Daemon {
    Daemon::start(&format!(
        "[providers.oidc]\nissuer = \"{issuer}\"\nclient_id = \"tokend-test\"\n"
    ))
}

/// OpenID discovery: endpoints the document names in plain http on a host
/// that is not loopback are refused, naming the key and the rule.
#[test]
fn a_discovered_cleartext_endpoint_is_refused() {
    let provider = Provider::rfc8628();
    let issuer = provider.issuer();
    let daemon = oidc(&issuer);
    let document = serde_json::json!({
        "issuer": issuer.as_str().trim_end_matches('/'),
        "device_authorization_endpoint": "http://idp.example/device",
        "token_endpoint": "https://idp.example/token",
    });
    provider.inject(
        Endpoint::Discovery,
        Fault::Body {
            status: 200,
            content_type: Some("application/json".into()),
            body: document.to_string().into(),
        },
        1,
    );
    let out = daemon.tokenctl(&["login", "oidc"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("the discovered `device_authorization_endpoint` http://idp.example/device")
            && err.contains("https://, or http:// only to a loopback address"),
        "{err}"
    );
}

/// OpenID discovery answered with a redirect (tokend follows none): the
/// error says where it points, which is likely the issuer to configure.
#[test]
fn a_redirected_discovery_names_the_target() {
    let provider = Provider::rfc8628();
    let issuer = provider.issuer();
    let daemon = oidc(&issuer);
    let moved = "https://idp.example/realms/moved/.well-known/openid-configuration";
    provider.inject(Endpoint::Discovery, Fault::Redirect(moved.into()), 1);
    let out = daemon.tokenctl(&["login", "oidc"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(EXIT_LOGIN_FAILED), "{err}");
    assert!(
        err.contains("HTTP 307") && err.contains(&format!("redirecting to {moved}")),
        "{err}"
    );
}

/// OpenID discovery answered "later" (429 with `Retry-After`): said as
/// the provider's wait, as from any endpoint. It read "OpenID discovery
/// failed: HTTP 429", and a session restored at start asked again within
/// seconds, against the wait.
#[test]
fn a_rate_limited_discovery_says_the_wait_asked_for() {
    let provider = Provider::rfc8628();
    let issuer = provider.issuer();
    let daemon = oidc(&issuer);
    provider.inject(
        Endpoint::Discovery,
        Fault::RetryAfter {
            status: 429,
            retry_after: "600".into(),
        },
        1,
    );
    let out = daemon.tokenctl(&["login", "oidc"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(EXIT_UNAVAILABLE), "{err}");
    assert!(
        err.contains("is unavailable (HTTP 429)")
            && err.contains("it asks to be retried in 600 s")
            && err.contains("/.well-known/openid-configuration"),
        "{err}"
    );
}

/// A discovery answered 404 with the server's words (Keycloak's answer
/// for a realm it does not have): the words are said, as the request
/// carried no secret; "HTTP 404 (32 bytes of application/json)" hid the
/// typo in the issuer. Its exit status is a failed login's (8), which a
/// script does not retry: it was "unavailable for now" (6).
#[test]
fn a_discovery_refused_says_the_servers_words() {
    let provider = Provider::rfc8628();
    let issuer = provider.issuer();
    let daemon = oidc(&issuer);
    provider.inject(
        Endpoint::Discovery,
        Fault::Body {
            status: 404,
            content_type: Some("application/json".into()),
            body: r#"{"error":"Realm does not exist"}"#.into(),
        },
        1,
    );
    let out = daemon.tokenctl(&["login", "oidc"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(EXIT_LOGIN_FAILED), "{err}");
    assert!(
        err.contains("HTTP 404") && err.contains("\"Realm does not exist\""),
        "{err}"
    );
}

/// An endpoint the discovery document named that is not found there (the
/// document since mended: a realm moved, a proxy's host name fixed) has
/// the document read again at the next use: the endpoints it named at
/// first were kept until a restart, every refresh failing, a reload
/// changing nothing.
#[test]
fn an_endpoint_not_found_has_the_document_read_again() {
    let provider = Provider::rfc8628();
    let issuer = provider.issuer();
    let daemon = oidc(&issuer);
    let wrong = serde_json::json!({
        "issuer": issuer.as_str().trim_end_matches('/'),
        "device_authorization_endpoint": provider.device_authorization_endpoint().as_str(),
        "token_endpoint": format!("{}/moved", provider.token_endpoint()),
    });
    provider.inject(
        Endpoint::Discovery,
        Fault::Body {
            status: 200,
            content_type: Some("application/json".into()),
            body: wrong.to_string().into(),
        },
        1,
    );
    let out = daemon.tokenctl(&["login", "oidc"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/moved"), "{}", stderr(&out));
    // The document, read again, names the endpoint that is there.
    let token = support::daemon::login(&daemon, "oidc", |code| {
        provider.approve(code).unwrap();
    });
    assert!(provider.is_valid_access_token(&token));

    // A refresh meets a 404; the document cannot be read when it is read
    // again (503): the endpoints it named before serve on, and the next
    // refresh works.
    let not_found = Fault::Body {
        status: 404,
        content_type: None,
        body: "".into(),
    };
    provider.inject(Endpoint::Token, not_found, 1);
    let mut client = tokend::client::Client::connect(&daemon.socket).unwrap();
    let kept = client.token_replacing("oidc", &token).unwrap();
    assert_eq!(kept.access_token.expose(), token.as_str());
    provider.inject(
        Endpoint::Discovery,
        Fault::RetryAfter {
            status: 503,
            retry_after: "1".into(),
        },
        1,
    );
    // Refreshes a request asks for after a failure are 5 s apart.
    std::thread::sleep(std::time::Duration::from_millis(5500));
    let renewed = support::daemon::refresh_now(&daemon, "oidc");
    assert!(provider.is_valid_access_token(&renewed));
    let discoveries = provider
        .requests()
        .iter()
        .filter(|r| r.endpoint == Endpoint::Discovery)
        .count();
    assert_eq!(discoveries, 3, "the first, the mended, the one that failed");
}
