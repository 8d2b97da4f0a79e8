//! The status printer's and `--check`'s output, as a person and a script read it.

use super::*;

const NOW: i64 = 1_790_000_000;

fn provider(name: &str, state: &str) -> ProviderStatus {
    ProviderStatus {
        name: name.into(),
        dialect: "rfc8628".into(),
        state: state.into(),
        expires_at: None,
        last_refresh: None,
        next_refresh: None,
        last_error: None,
        scopes: vec![],
        login: None,
        saved: true,
        hosts: Vec::new(),
        username: None,
        login_needed_by: None,
        git_auth: None,
    }
}

fn active() -> ProviderStatus {
    ProviderStatus {
        expires_at: Some(NOW + 3_130),
        last_refresh: Some(NOW - 480),
        next_refresh: Some(NOW + 2_520),
        scopes: vec!["repo".into(), "read:org".into()],
        last_error: Some("token endpoint: HTTP 503".into()),
        ..provider("github", "active")
    }
}

fn pending() -> ProviderStatus {
    ProviderStatus {
        login: Some(LoginPrompt {
            user_code: "WDJB-MJHT".into(),
            verification_uri: "https://example.test/device".into(),
            verification_uri_complete: None,
            expires_in: 840,
            message: None,
        }),
        ..provider("trakt", "login_pending")
    }
}

fn printed(layout: Layout, providers: &[ProviderStatus]) -> String {
    printed_with_store(layout, providers, None).0
}

/// The output and the notes (stderr).
fn printed_with_store(
    layout: Layout,
    providers: &[ProviderStatus],
    store: Option<&StoreStatus>,
) -> (String, String) {
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let mut printer = Printer::new(&mut out, layout, NOW);
    for p in providers {
        printer.provider(p).unwrap();
    }
    let daemon = DaemonNotes {
        store: store.cloned(),
        config: None,
    };
    printer.finish(&daemon, &mut notes).unwrap();
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(notes).unwrap(),
    )
}

fn locked() -> StoreStatus {
    StoreStatus {
        state: "unavailable".into(),
        name: "Secret Service".into(),
        reason: Some("Secret Service is locked: store locked: unlock your keyring".into()),
        since: Some(NOW - 300),
    }
}

#[test]
fn an_unavailable_store_is_one_line_under_the_table() {
    let providers = [provider("a", "logged_out"), provider("b", "logged_out")];
    let (text, notes) = printed_with_store(Layout::Table, &providers, Some(&locked()));
    assert!(notes.is_empty());
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("unlock your keyring"))
            .count(),
        1,
        "{text}"
    );
    assert!(
        text.ends_with(
            "\nstore: unavailable since 2026-09-21 14:08:20 UTC (5m ago): \
             Secret Service is locked: store locked: unlock your keyring (retrying)\n"
        ),
        "{text}"
    );
    // JSON: the array as before on stdout, the line on stderr.
    let (json, notes) = printed_with_store(Layout::Json, &providers, Some(&locked()));
    assert_eq!(json, serde_json::to_string(&providers).unwrap() + "\n");
    assert!(notes.starts_with("store: unavailable since "), "{notes}");
    // A store that works is not mentioned.
    let available = StoreStatus {
        state: "available".into(),
        reason: None,
        since: None,
        ..locked()
    };
    let (text, notes) = printed_with_store(Layout::Details, &providers[..1], Some(&available));
    assert!(!text.contains("store") && notes.is_empty(), "{text}");
}

#[test]
fn overview_is_a_table_with_notes_under_their_rows() {
    let text = printed(Layout::Table, &[active(), pending()]);
    assert_eq!(
        text,
        "\
NAME              DIALECT     STATE           EXPIRES       LAST REFRESH  NEXT REFRESH
github            rfc8628     active          in 52m 10s    8m ago        in 42m
  last error: token endpoint: HTTP 503
trakt             rfc8628     login_pending   -             -             -
  login pending — enter WDJB-MJHT at https://example.test/device (the code expires in 14m)
"
    );
}

#[test]
fn a_long_name_pushes_its_row_only() {
    let long = provider("a-provider-name-longer-than-sixteen", "active");
    let text = printed(Layout::Table, &[long, provider("b", "logged_out")]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1],
        "a-provider-name-longer-than-sixteen  rfc8628     active          -             -             -"
    );
    assert_eq!(
        lines[2],
        "b                 rfc8628     logged_out      -             -             -"
    );
}

#[test]
fn one_provider_in_detail() {
    let text = printed(Layout::Details, &[active()]);
    assert_eq!(
        text,
        "\
github (rfc8628)
  state         active
  expires       2026-09-21 15:05:30 UTC (in 52m 10s)
  last refresh  2026-09-21 14:05:20 UTC (8m ago)
  next refresh  2026-09-21 14:55:20 UTC (in 42m)
  scopes        repo read:org
  last error    token endpoint: HTTP 503
"
    );
    assert!(printed(Layout::Details, &[pending()]).contains("  login  enter WDJB-MJHT at "));
    // Blocks of several providers are a blank line apart.
    let two = printed(Layout::Details, &[active(), pending()]);
    assert!(two.contains("HTTP 503\n\ntrakt (rfc8628)\n"), "{two}");
}

#[test]
fn json_is_one_array_as_before() {
    let providers = [active(), pending()];
    assert_eq!(
        printed(Layout::Json, &providers),
        serde_json::to_string(&providers).unwrap() + "\n"
    );
    assert_eq!(printed(Layout::Json, &[]), "[]\n");
}

#[test]
fn nothing_to_show_is_said() {
    assert!(printed(Layout::Table, &[]).starts_with("No providers"));
    assert!(printed(Layout::Details, &[]).starts_with("No providers"));
}

/// Output cut short (the daemon stopped mid-answer, or gave up on a
/// reader that paused) is no JSON document: the array is left open, so a
/// JSON reader fails instead of taking what came for the whole list (it
/// was closed, and `jq` read a third of the providers as all of them).
#[test]
fn json_cut_short_is_left_unclosed() {
    let mut out = Vec::new();
    let mut printer = Printer::new(&mut out, Layout::Json, NOW);
    printer.provider(&active()).unwrap();
    printer.provider(&pending()).unwrap();
    printer.abandon().unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.starts_with('[') && text.ends_with("}\n"), "{text}");
    let parsed = serde_json::from_slice::<serde_json::Value>(&out);
    assert!(
        parsed.as_ref().is_err_and(serde_json::Error::is_eof),
        "{parsed:?}"
    );
    // What came is there whole: the array closed over it reads back.
    let closed = format!("{}]", text.trim_end());
    let read: Vec<ProviderStatus> = serde_json::from_str(&closed).unwrap();
    assert_eq!(read, [active(), pending()]);
    // Nothing came: nothing is printed, as before.
    let mut out = Vec::new();
    Printer::new(&mut out, Layout::Json, NOW).abandon().unwrap();
    assert!(out.is_empty());
}

#[test]
fn a_refresh_planned_for_a_moment_gone_by_is_due_now() {
    let due = ProviderStatus {
        next_refresh: Some(NOW - 3),
        ..active()
    };
    let table = printed(Layout::Table, std::slice::from_ref(&due));
    assert!(table.contains("due now"), "{table}");
    assert!(!table.contains("3s ago"), "{table}");
    let details = printed(Layout::Details, &[due]);
    assert!(details.contains("(due now)"), "{details}");
}

/// `--check` of an active session whose refresh token's announced life
/// has ended (the daemon was stopped past it) says so: the provider will
/// refuse the next refresh. Before that moment, it is no problem.
#[test]
fn check_names_a_refresh_token_whose_announced_life_is_over() {
    let keycloak = |by: i64| ProviderStatus {
        login_needed_by: Some(by),
        ..provider("keycloak", "active")
    };
    let over = problems(&keycloak(NOW - 6), NOW);
    assert_eq!(over.len(), 1, "{over:?}");
    assert!(
        over[0].starts_with("keycloak: the refresh token's announced life ended 6s ago"),
        "{over:?}"
    );
    assert!(over[0].contains("log in again"), "{over:?}");
    assert!(problems(&keycloak(NOW + 60), NOW).is_empty());
}

/// `--check` of a session whose stored record cannot be read says that,
/// with the daemon's reason and advice, not "needs a login": a login would
/// replace a session that works again once the cause is mended.
#[test]
fn check_names_a_stored_session_that_cannot_be_read() {
    let unreadable = ProviderStatus {
        last_error: Some(
            "the stored session of `demo` in the encrypted file store is unreadable: cannot \
             read /var/lib/tokend/sessions/demo.session: Permission denied"
                .into(),
        ),
        ..provider("demo", "unreadable")
    };
    let said = problems(&unreadable, NOW);
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].starts_with("demo: its stored session cannot be read: the stored session"),
        "{said:?}"
    );
    assert!(said[0].contains("Permission denied"), "{said:?}");
    assert!(!said[0].contains("needs a login"), "{said:?}");
}
