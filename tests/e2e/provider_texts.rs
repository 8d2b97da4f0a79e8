//! The texts a provider's answers carry, where they go further than the
//! answer: tokens into headers, one-line answers and D-Bus strings (which
//! may hold no NUL: the bus daemon drops a peer that sends one), scopes
//! into `status` and D-Bus properties, a login's message onto the
//! person's screen. A provider, or a proxy in front of it, that sends a
//! control character, a megabyte of scopes or a message quoting a page
//! tokend refused must not break tokend for every provider, nor undo what
//! tokend refused.

use crate::support;

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, LoginRun, stdout, token};
use support::flows::NAME;
use support::provider::{Provider, fast, json_answer};
use tokend_emulator::{Endpoint, Fault};

/// A refreshed access token with a NUL inside is refused as a malformed
/// answer: handed out over D-Bus it made the bus daemon drop tokend, which
/// then stopped, its other sessions lost with a memory store. (A new
/// refresh token beside it would be kept: see `garbled_answers`.)
#[test]
fn a_control_character_in_an_access_token_changes_nothing() {
    crate::malformed_answers::a_bad_refresh_answer_changes_nothing(
        |_| json_answer(r#"{"access_token":"AT\u0000x","token_type":"Bearer","expires_in":3600}"#),
        "`access_token` in the token answer has a control character",
    );
}

/// A form-encoded token answer (GitHub's, without `Accept`) that ends in a
/// line break: the token is handed out without it, not as a token every
/// tokenctl verb refuses while `status` says all is well.
#[test]
fn a_token_answer_ending_in_a_line_break_is_handed_out_without_it() {
    let provider = Provider::start(fast());
    let daemon = Daemon::start(&provider.config(NAME));
    support::daemon::login(&daemon, NAME, |code| {
        provider.approve(code).unwrap();
    });
    provider.inject(
        Endpoint::Token,
        Fault::Body {
            status: 200,
            content_type: Some("application/x-www-form-urlencoded".into()),
            body: bytes::Bytes::from_static(
                b"token_type=bearer&scope=repo&expires_in=28800&refresh_token=ghr_1&access_token=gho_abc\r\n",
            ),
        },
        1,
    );
    assert_eq!(token(&daemon, NAME, &["--min-valid", "3700"]), "gho_abc");
}

/// Granted scopes with a NUL in them, and more of them than anyone grants:
/// the NUL is a separator and the list is cut, so the D-Bus property, read
/// by busctl, and `status` go on working.
#[test]
fn scopes_with_a_nul_and_too_many_of_them_leave_the_bus_and_status_working() {
    let bus = PrivateBus::start();
    let provider = Provider::start(fast());
    let daemon = Daemon::start_with(&provider.config(NAME), DaemonOptions::on_session_bus(&bus));
    let many: Vec<String> = (0..400).map(|i| format!("scope{i:03}-padding")).collect();
    let answer = format!(
        r#"{{"access_token":"at_scopes","token_type":"Bearer","expires_in":3600,"refresh_token":"rt_scopes","scope":"repo\u0000gist {}"}}"#,
        many.join(" ")
    );
    provider.inject(Endpoint::Token, json_answer(&answer), 1);
    let run = LoginRun::start(&daemon.socket, NAME);
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}");

    let property = bus
        .command("busctl")
        .arg(format!("--address={}", bus.address()))
        .args([
            "get-property",
            "org.tokend.Broker1",
            "/org/tokend/Broker1/providers/demo",
            "org.tokend.Provider1",
            "Scopes",
        ])
        .output()
        .expect("run busctl");
    let text = String::from_utf8_lossy(&property.stdout);
    assert!(
        property.status.success() && text.starts_with("as ") && text.contains("\"repo\" \"gist\""),
        "{text} {}",
        String::from_utf8_lossy(&property.stderr)
    );
    // busctl writes the `…` that marks the cut in octal.
    assert!(
        text.trim_end().ends_with(r#""\342\200\246""#),
        "the cut list is marked: {text}"
    );
    assert!(text.len() < 5000, "{}", text.len());
    // tokend is still on the bus, and still answers.
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&daemon.tokenctl(&["--json", "status", NAME]))).unwrap();
    assert_eq!(status[0]["scopes"][0], "repo", "{status}");
    assert_eq!(status[0]["scopes"][1], "gist", "{status}");
}

/// A login whose provider's page was refused (a user name before the host
/// hides where it leads) shows the config's page, and not the provider's
/// message either, which quoted the refused page.
#[test]
fn a_message_quoting_a_refused_page_is_not_shown() {
    const REFUSED: &str = "https://login.example.com@evil.example/device";
    let answer = format!(
        r#"{{"device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"{REFUSED}","message":"To sign in, open {REFUSED} and enter the code ABCD-EFGH.","expires_in":300,"interval":1}}"#
    );
    let provider = Provider::start(fast());
    provider.inject(Endpoint::DeviceAuthorization, json_answer(&answer), 1);
    let daemon = Daemon::start(&provider.config_with(
        NAME,
        "verification_uri = \"https://login.example.com/device\"",
    ));
    let run = LoginRun::start(&daemon.socket, NAME);
    assert_eq!(
        run.prompt["verification_uri"], "https://login.example.com/device",
        "{}",
        run.prompt
    );
    assert!(run.prompt["message"].is_null(), "{}", run.prompt);
    assert!(!run.prompt.to_string().contains("evil"), "{}", run.prompt);
}

/// A refusal whose words quote the access token the session holds (`token
/// … is not a refresh token`, as a provider confused about which token it
/// got says): that token is taken out of the caller's error, the log and
/// status, as the request's own secrets are. It was shown in all three.
#[test]
fn a_refusal_quoting_the_sessions_access_token_does_not_show_it() {
    let provider = Provider::start(fast());
    let daemon = Daemon::start(&provider.config(NAME));
    let held = support::daemon::login(&daemon, NAME, |code| {
        provider.approve(code).unwrap();
    });
    let body = format!(
        r#"{{"error":"invalid_request","error_description":"token {held} is not a refresh token"}}"#
    );
    provider.inject(
        Endpoint::Token,
        Fault::Body {
            status: 400,
            content_type: Some("application/json".into()),
            body: bytes::Bytes::from(body),
        },
        1,
    );
    let out = daemon.tokenctl(&["token", NAME, "--min-valid", "3700"]);
    let err = support::daemon::stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("token [redacted] is not a refresh token"),
        "{err}"
    );
    let status = stdout(&daemon.tokenctl(&["--json", "status", NAME]));
    assert!(status.contains("[redacted]"), "{status}");
    daemon.wait_for_log(1, &["refresh failed"]);
    for (what, text) in [("error", &err), ("status", &status), ("log", &daemon.log())] {
        assert!(!text.contains(&held), "the access token in the {what}");
    }
}

/// A poll answered with a 403 that carries no OAuth error but words (taken
/// as pending, and its words shown as the polls' trouble) that echo the
/// device code: the code is taken out of the trouble the login shows, of
/// the expired login's error and of the log, as from every other poll
/// answer's words.
#[test]
fn a_pending_poll_answer_echoing_the_device_code_does_not_show_it() {
    const DEVICE_CODE: &str = "dc-echoed-5e1f0c";
    let provider = Provider::start(fast());
    provider.inject(
        Endpoint::DeviceAuthorization,
        json_answer(&format!(
            r#"{{"device_code":"{DEVICE_CODE}","user_code":"ABCD-EFGH","verification_uri":"https://login.example.com/device","expires_in":4,"interval":1}}"#
        )),
        1,
    );
    provider.inject(
        Endpoint::Token,
        Fault::Body {
            status: 403,
            content_type: Some("application/json".into()),
            body: bytes::Bytes::from(format!(
                r#"{{"message":"device code {DEVICE_CODE} is not allowed from here"}}"#
            )),
        },
        100,
    );
    let daemon = Daemon::start(&provider.config(NAME));
    let mut run = LoginRun::start(&daemon.socket, NAME);
    let polling = run.next_event();
    let trouble = polling["trouble"].as_str().expect("a reason").to_owned();
    assert!(trouble.contains("device code [redacted]"), "{trouble}");
    let (done, err, code) = run.finish();
    assert_eq!(code, support::flows::EXIT_LOGIN_FAILED, "{done} {err}");
    assert!(err.contains("[redacted]"), "{err}");
    for (what, text) in [
        ("trouble", &trouble),
        ("done", &done.to_string()),
        ("error", &err),
        ("log", &daemon.log()),
    ] {
        assert!(!text.contains(DEVICE_CODE), "the device code in the {what}");
    }
}
