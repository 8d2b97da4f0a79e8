//! No refresh storms: hundreds of tokens expiring in the same few seconds
//! are refreshed spread out, never more at once per token endpoint than
//! `max_concurrent_refreshes`, each before it expires; and callers are
//! never handed an expired token meanwhile. Real `tokend`, real HTTP.
//! (`cargo bench --bench scale -- storm` does the same with 10,000.)

use crate::support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::daemon::Daemon;
use support::file_store::FileStore;
use support::provider::{Provider, fast};
use tokend_emulator::{Endpoint, Fault};

const SESSIONS: usize = 300;
const BOUND: usize = 4;

#[test]
fn hundreds_of_tokens_due_together_are_refreshed_in_time_within_the_bound() {
    let provider = Provider::start(fast());
    let providers: String = (0..SESSIONS)
        .map(|i| provider.config(&format!("s{i:03}")))
        .collect();
    let store = FileStore::new();
    // Every access token expires 20 to 22 s from now.
    let seeded = store.seed(&provider, &providers, |i| {
        Duration::from_secs(20) + Duration::from_millis(2000 * i as u64 / SESSIONS as u64)
    });
    // Each refresh takes a while at the provider, so that requests overlap
    // unless something bounds them.
    provider.inject(
        Endpoint::Token,
        Fault::Delay(Duration::from_millis(20)),
        SESSIONS,
    );
    let mut options = store.options();
    options.daemon_keys = format!("max_concurrent_refreshes = {BOUND}\n");
    let daemon = Daemon::start_with(&providers, options);

    // A caller asks for tokens all through the storm; each one it gets is
    // unexpired (by the answer's own expiry) and accepted by the provider.
    let stream = UnixStream::connect(&daemon.socket).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let done = |provider: &Provider| {
        provider
            .requests()
            .iter()
            .filter(|r| r.outcome == "refreshed")
            .count()
    };
    let mut served = 0;
    // Bounded: a few passes over every session, or until all have refreshed.
    for round in 0..20 {
        for session in &seeded {
            let request = format!(
                "{{\"op\":\"token\",\"provider\":\"{}\",\"min_valid\":1}}\n",
                session.name
            );
            writer.write_all(request.as_bytes()).unwrap();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let answer: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(answer["ok"], true, "{answer}");
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert!(
                answer["expires_at"].as_u64().unwrap() > now,
                "round {round}: an expired token was served: {answer}"
            );
            assert!(
                provider.is_valid_access_token(answer["access_token"].as_str().unwrap()),
                "round {round}: the provider refuses a served token"
            );
            served += 1;
        }
        if done(&provider) >= SESSIONS {
            break;
        }
    }
    assert!(served >= SESSIONS);
    let requests = provider.wait_for_count(SESSIONS, |r| r.outcome == "refreshed");

    let expiry: HashMap<&str, SystemTime> = seeded
        .iter()
        .map(|s| (s.refresh_token.as_str(), s.expires_at))
        .collect();
    let refreshes: Vec<_> = requests.iter().filter(|r| r.is_refresh()).collect();
    assert_eq!(refreshes.len(), SESSIONS, "one refresh per session");
    for request in &refreshes {
        let due = expiry[request.field("refresh_token").unwrap()];
        assert!(request.at_system < due, "refreshed after expiry: {request}");
    }
    // Spread, not all at once: the refreshes span more than a second.
    let first = refreshes.iter().map(|r| r.at).min().unwrap();
    let last = refreshes.iter().map(|r| r.at).max().unwrap();
    assert!(last - first > Duration::from_secs(1), "{:?}", last - first);
    let peak = provider.max_concurrent_token_requests();
    assert!(peak <= BOUND, "{peak} refreshes at once, bound {BOUND}");
    provider.assert_no_violations();
}
