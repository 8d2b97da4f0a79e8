//! A token endpoint failing for many sessions is said once for the
//! endpoint: the first session's lines in full, the others' at debug
//! level, summed up by `endpoint_failing` and `endpoint_answers`.

use super::*;

/// Five sessions of one endpoint fail through a 503 outage, each once at
/// a caller's request. The first says its warning; the second brings one
/// `endpoint_failing` warning for the endpoint, and its own line and the
/// three after it go to debug level. When the endpoint answers again (a
/// sixth session's refresh works), the
/// `endpoint_answers` line says how the outage went and how many lines
/// went to debug level. (300 sessions through a 3-minute outage wrote
/// some 1,200 near-identical warnings.)
#[test]
fn an_outage_of_many_sessions_is_said_once_for_the_endpoint() {
    let provider = Provider::start(fast());
    // `f` does not fail: its refresh is the answer after the outage.
    let names = ["a", "b", "c", "d", "e", "f"];
    let providers: String = names.iter().map(|n| provider.config(n)).collect();
    let (_store, sessions, daemon) = seeded(&provider, &providers, Duration::from_secs(600));
    let names = &names[..5];
    provider.inject(Endpoint::Token, Fault::Status(503), 1000);
    for session in &sessions[..5] {
        token_fails_unavailable(&daemon, &session.name);
        daemon.wait_for_log(
            1,
            &[&format!(
                "provider={} event=\"refresh_failed\"",
                session.name
            )],
        );
    }
    let leader = daemon.wait_for_log(1, &["provider=a event=\"refresh_failed\""]);
    assert!(leader[0].contains("WARN"), "{}", leader[0]);
    for name in &names[1..] {
        let line =
            &daemon.wait_for_log(1, &[&format!("provider={name} event=\"refresh_failed\"")])[0];
        assert!(
            line.contains("DEBUG") && line.contains("`endpoint_failing` lines count this one"),
            "{line}"
        );
    }
    let endpoint = daemon.wait_for_log(1, &["event=\"endpoint_failing\""]);
    assert!(endpoint[0].contains("WARN"), "{}", endpoint[0]);
    assert!(
        endpoint[0].contains("for more than one session ("),
        "{}",
        endpoint[0]
    );
    provider.clear_faults();
    let fresh = token(&daemon, "f", &["--min-valid", "1200"]);
    assert!(provider.is_valid_access_token(&fresh));
    let back = &daemon.wait_for_log(1, &["event=\"endpoint_answers\""])[0];
    // Background retries may add failures: the sessions are five however
    // many there were, and c, d and e at least went to debug level after
    // the endpoint's first line.
    assert!(back.contains("of 5 session(s);"), "{back}");
    assert!(
        back.contains("logged at debug level since the last `endpoint_failing` line"),
        "{back}"
    );
    assert!(
        back.contains("5 session(s) whose refreshes failed there retry within a second"),
        "{back}"
    );
    let warnings = daemon
        .log()
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("event=\"refresh_failed\""))
        .count();
    assert_eq!(warnings, 1, "only the first session's line is a warning");
    provider.assert_no_violations();
}
