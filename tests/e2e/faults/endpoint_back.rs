//! A token endpoint that answers again after an outage: the sessions whose
//! refreshes failed there retry at once, not each after its own backoff.

use super::*;

/// Four sessions of one endpoint; through a 503 outage three of them fail
/// three times in a row (a caller's request, then two background
/// retries), their next retries planned 10 to 20 s ahead. The provider
/// answers again and the fourth's refresh, asked for by a caller,
/// succeeds: the three refresh before the retries they had planned, with
/// no request for them, and the log says so once for the endpoint. (They
/// waited out their backoffs: after a 3-minute outage of 300 sessions,
/// half still read `expired` a minute after the provider was back.)
#[test]
fn sessions_retry_at_once_when_their_endpoint_answers_again() {
    let provider = Provider::start(fast());
    let names = ["a", "b", "c", "d"];
    let providers: String = names.iter().map(|n| provider.config(n)).collect();
    let (_store, sessions, daemon) = seeded(&provider, &providers, Duration::from_secs(600));
    // 503s without `Retry-After`: no wait asked holds the first refresh
    // after the outage (the emulator's outage asks for 1 s).
    provider.inject(Endpoint::Token, Fault::Status(503), 1000);
    let failing = &sessions[1..];
    for session in failing {
        token_fails_unavailable(&daemon, &session.name);
    }
    for session in failing {
        daemon.wait_for_log(
            3,
            &[&format!(
                "provider={} event=\"refresh_failed\"",
                session.name
            )],
        );
    }
    let planned: Vec<u64> = failing
        .iter()
        .map(|session| {
            status(&daemon, &session.name)["next_refresh"]
                .as_u64()
                .expect("a planned retry")
        })
        .collect();
    provider.clear_faults();
    let fresh = token(&daemon, "a", &["--min-valid", "1200"]);
    assert!(provider.is_valid_access_token(&fresh));
    for (session, planned) in failing.iter().zip(planned) {
        let refreshed = provider.wait_for_first(|r| {
            r.outcome == "refreshed"
                && r.field("refresh_token") == Some(session.refresh_token.as_str())
        });
        let at = refreshed
            .at_system
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            at < planned,
            "{} refreshed at {at}, its retry planned at {planned}: it waited its backoff out",
            session.name
        );
    }
    let said = daemon.wait_for_log(1, &["event=\"endpoint_answers\""]);
    assert!(
        said[0].contains("3 session(s) whose refreshes failed there retry within a second"),
        "{}",
        said[0]
    );
    provider.assert_no_violations();
}
