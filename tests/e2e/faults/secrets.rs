//! Secrets kept out of every message (the `token` caller's error,
//! `status`, the log): what a provider echoes of the request, in an error
//! or in a success answer, and a credential in an endpoint's query.

use super::*;

/// What a user and an administrator see after `out`: its stderr, the JSON
/// `status` of `demo`, and the daemon's log.
fn everything_said(daemon: &Daemon, out: &std::process::Output) -> String {
    let status = daemon.tokenctl(&["--json", "status", "demo"]);
    format!("{}{}{}", stderr(out), stdout(&status), daemon.log())
}

/// A provider that echoes the request in its error text (a debugging
/// proxy, a framework's error page) gets the refresh token, the device
/// code and the client secret back into no message: not the `token`
/// caller's error, not `status`, not the log. A 503 (the session kept)
/// and a 400 `invalid_grant` (the session ended) alike, then a login whose
/// poll is echoed.
#[test]
fn secrets_a_provider_echoes_reach_no_message() {
    const CLIENT_SECRET: &str = "s3cr3t-client/value+1";
    use tokend_emulator::ClientAuthMode;
    let post = || ClientAuthMode::SecretPost(CLIENT_SECRET.into());
    let basic = || ClientAuthMode::SecretBasic(CLIENT_SECRET.into());
    for (http_status, client_auth, auth_key) in [
        (503, post(), "client_secret_post"),
        (400, post(), "client_secret_post"),
        // The secret goes in the Authorization header, which is echoed too.
        (503, basic(), "client_secret_basic"),
    ] {
        let provider = Provider::start(tokend_emulator::Rfc8628Options {
            client_auth,
            ..fast()
        });
        let config = provider.config_with(
            "demo",
            &format!("client_secret = \"{CLIENT_SECRET}\"\nclient_auth = \"{auth_key}\""),
        );
        let (_store, sessions, daemon) = seeded(&provider, &config, Duration::from_secs(3600));
        let session = &sessions[0];
        let out = refresh_meeting(&provider, &daemon, Fault::EchoRequest(http_status));
        assert!(!out.status.success());
        let encoded: String =
            url::form_urlencoded::byte_serialize(CLIENT_SECRET.as_bytes()).collect();
        // The Basic credentials as sent: base64 of the id and the secret.
        let requests = provider.requests();
        let header = requests.iter().find_map(|r| r.header("authorization"));
        let credentials = header.and_then(|h| h.strip_prefix("Basic "));
        assert_eq!(credentials.is_some(), auth_key == "client_secret_basic");
        let said = everything_said(&daemon, &out);
        assert!(
            said.contains("[redacted]"),
            "HTTP {http_status}: the echo was not seen: {said}"
        );
        let secrets = [session.refresh_token.as_str(), CLIENT_SECRET, &encoded];
        for secret in secrets.into_iter().chain(credentials) {
            assert!(
                !said.contains(secret),
                "HTTP {http_status}, {auth_key}: a secret in a message: {said}"
            );
        }
    }

    // A login whose poll is echoed: the device code stays out too.
    let provider = Provider::start(fast());
    provider.inject(Endpoint::Token, Fault::EchoRequest(400), 1);
    let daemon = Daemon::start(&provider.config("demo"));
    let (done, err, code) = support::daemon::LoginRun::start(&daemon.socket, "demo").finish();
    assert_ne!(code, 0, "{done} {err}");
    let polled = provider.requests();
    let device_code = polled
        .iter()
        .find_map(|r| r.field("device_code"))
        .expect("a poll");
    let said = format!("{done}{err}{}", daemon.log());
    assert!(said.contains("[redacted]"), "{said}");
    assert!(
        !said.contains(device_code),
        "the device code in a message: {said}"
    );
}

/// A credential in a configured endpoint's query (`?subscription-key=…`,
/// as API gateways ask) is not shown in the messages that name the
/// endpoint: the `token` caller's error, `status`, the log.
#[test]
fn a_credential_in_an_endpoints_query_is_not_shown() {
    let (provider, _store, daemon) = keyed_endpoint();
    let out = refresh_meeting(&provider, &daemon, Fault::Status(503));
    assert_eq!(
        out.status.code(),
        Some(EXIT_UNAVAILABLE),
        "{}",
        stderr(&out)
    );
    let said = everything_said(&daemon, &out);
    assert!(
        said.contains("subscription-key=[redacted]&api-version=2"),
        "{said}"
    );
    assert!(!said.contains(KEY), "the key in a message: {said}");
}

/// An answer kept with a warning in the log (a new refresh token beside an
/// expiry past belief): the line names the endpoint without its query.
#[test]
fn a_credential_in_an_endpoints_query_is_not_logged() {
    let (provider, _store, daemon) = keyed_endpoint();
    let unbelievable = r#"{"access_token":"at-kept","token_type":"Bearer","expires_in":-1,"refresh_token":"rt-kept"}"#;
    let out = refresh_meeting(&provider, &daemon, json_answer(unbelievable));
    assert!(out.status.success(), "{}", stderr(&out));
    let said = everything_said(&daemon, &out);
    assert!(said.contains("expiry taken as unknown"), "{said}");
    assert!(!said.contains(KEY), "the key in a log line: {said}");
}

/// The credential of [`keyed_endpoint`]'s token endpoint.
const KEY: &str = "APIKEY-SECRET-123";

/// A session valid for an hour, its token endpoint carrying [`KEY`] in
/// its query (an API gateway's `subscription-key`).
fn keyed_endpoint() -> (Provider, impl Sized, Daemon) {
    let provider = Provider::start(fast());
    let config = format!(
        "[providers.demo]\ndevice_authorization_endpoint = \"{}\"\ntoken_endpoint = \"{}?subscription-key={KEY}&api-version=2\"\nclient_id = \"tokend-test\"\n",
        provider.device_authorization_endpoint(),
        provider.token_endpoint(),
    );
    let (store, _sessions, daemon) = seeded(&provider, &config, Duration::from_secs(3600));
    (provider, store, daemon)
}

/// A success answer that echoes the request (a debugging proxy, a broken
/// server) into its scope, token type and expiry: the refresh token the
/// request carried reaches neither the token's caller, nor `status` (which
/// use-only callers see), nor the log. The scope and type were passed on
/// as sent, and the warning about the expiry quoted it.
#[test]
fn a_success_answer_echoing_the_request_shows_none_of_its_secrets() {
    let (provider, _store, session, daemon) = one_session();
    let rt = &session.refresh_token;
    let body = format!(
        r#"{{"access_token":"at-echoed","token_type":"Bearer {rt}","expires_in":"{rt}","refresh_token":"rt-echoed","scope":"openid refresh_token={rt}"}}"#
    );
    let out = refresh_meeting(&provider, &daemon, json_answer(&body));
    assert!(out.status.success(), "{}", stderr(&out));
    let answer = token_json(&daemon, "demo", &[]);
    assert_eq!(answer["access_token"], "at-echoed", "{answer}");
    let said = format!("{}{answer}", everything_said(&daemon, &out));
    assert!(said.contains("expiry taken as unknown"), "{said}");
    assert!(
        !said.contains(rt.as_str()),
        "the refresh token shown: {said}"
    );
}

/// A success answer that puts its own new tokens in other fields (the
/// refresh token as the scope and as `expires_in`): neither reaches
/// `status` (which use-only callers see) nor the log. The scope was shown
/// as sent and the warning about the expiry quoted it.
#[test]
fn a_success_answer_quoting_its_own_tokens_shows_none_of_them() {
    const ACCESS: &str = "at-own-answer-0123456789";
    const REFRESH: &str = "rt-own-answer-9876543210";
    let (provider, _store, _session, daemon) = one_session();
    let body = format!(
        r#"{{"access_token":"{ACCESS}","token_type":"Bearer","expires_in":"{REFRESH}","refresh_token":"{REFRESH}","scope":"openid {REFRESH} {ACCESS}"}}"#
    );
    let out = refresh_meeting(&provider, &daemon, json_answer(&body));
    assert!(out.status.success(), "{}", stderr(&out));
    let said = everything_said(&daemon, &out);
    assert!(said.contains("expiry taken as unknown"), "{said}");
    assert!(said.contains("[redacted]"), "{said}");
    for secret in [ACCESS, REFRESH] {
        assert!(!said.contains(secret), "a token shown: {said}");
    }
}

/// A refusal that quotes the refresh token sent, spelled as other
/// encoders and frameworks spell it (lower-case percent-encoding, base64,
/// folded into two lines, upper-cased, its start alone): none of it
/// reaches the `token` caller's error, `status` or the log. Only the
/// exact token and its upper-case percent-encoding were taken out.
#[test]
fn a_refresh_token_spelled_otherwise_reaches_no_message() {
    use base64::Engine as _;
    use std::fmt::Write as _;
    let (provider, _store, session, daemon) = one_session();
    let rt = session.refresh_token.as_str();
    let lower_hex = rt.bytes().fold(String::new(), |mut spelled, b| {
        let _ = write!(spelled, "%{b:02x}");
        spelled
    });
    let base64 = base64::engine::general_purpose::STANDARD.encode(rt);
    let (head, tail) = rt.split_at(rt.len() / 2);
    let folded = format!("{head}\\n{tail}");
    let upper = rt.to_uppercase();
    let start = &rt[..12];
    let description = format!(
        "bad token {lower_hex}; as base64 {base64}; folded {folded}; loud {upper}; starting {start} is revoked"
    );
    let body = format!(r#"{{"error":"invalid_request","error_description":"{description}"}}"#);
    let fault = Fault::Body {
        status: 400,
        content_type: Some("application/json".into()),
        body: bytes::Bytes::from(body),
    };
    let out = refresh_meeting(&provider, &daemon, fault);
    assert!(!out.status.success());
    daemon.wait_for_log(1, &["refresh failed"]);
    let said = everything_said(&daemon, &out);
    assert!(said.contains("bad token [redacted]"), "{said}");
    for spelled in [
        rt,
        &lower_hex,
        &base64[..base64.len() - 3],
        head,
        tail,
        &upper,
        start,
    ] {
        assert!(!said.contains(spelled), "{spelled:?} shown: {said}");
    }
}
