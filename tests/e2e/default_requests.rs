//! A default `token` request (no `--min-valid`) past its token's refresh
//! margin, through the real `tokend` and `tokenctl`: it gets the token that
//! still works rather than wait on a provider that hangs.

use crate::support;

use std::time::{Duration, Instant};

use support::daemon::{Daemon, stderr, stdout};
use support::file_store::FileStore;
use support::provider::{Provider, fast};
use tokend_emulator::{Endpoint, Fault};

/// The provider's token endpoint hangs: the background refresh, due at
/// half the token's 20 s life at the latest, stays out. A default request
/// made then gets the token that still works, while the refresh still
/// hangs (before: the request waited for the refresh, which ended at the
/// HTTP timeout, 30 s, after the token had expired: an error).
#[test]
fn a_default_request_gets_the_valid_token_while_the_refresh_hangs() {
    let provider = Provider::start(fast());
    let store = FileStore::new();
    let config = provider.config("demo");
    let seeded = store.seed(&provider, &config, |_| Duration::from_secs(20));
    provider.inject(Endpoint::Token, Fault::Hang, 10);
    let daemon = Daemon::start_with(&config, store.options());

    // The background refresh arrives at the provider and hangs there.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !provider
        .requests()
        .iter()
        .any(tokend_emulator::RecordedRequest::is_refresh)
    {
        assert!(Instant::now() < deadline, "no refresh\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = daemon.tokenctl(&["token", "demo"]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), daemon.log());
    assert_eq!(stdout(&out).trim_end(), seeded[0].access_token);
    // The refresh is still out: no answer has come.
    assert!(
        provider
            .requests()
            .iter()
            .filter(|r| r.is_refresh())
            .all(|r| r.outcome == "fault:hang"),
        "{:?}",
        provider.requests()
    );
    assert!(
        !daemon.log().contains("access token refreshed"),
        "{}",
        daemon.log()
    );
    // The hanging connection ends with the emulator, so the daemon's stop
    // has no refresh in flight to wait for.
    drop(provider);
}
