//! A reload that waits for a replaced session's refresh (it must finish
//! before the new session takes the tokens over) publishes the providers
//! it adds only then; a request for such a provider meanwhile waits for
//! the reload instead of being told the provider is not configured.

use crate::support;

use std::time::Duration;

use support::daemon::{Daemon, login, spawn_tokenctl, stderr, stdout};
use support::provider::Provider;
use tokend_emulator::{Endpoint, Fault};

#[test]
fn a_provider_a_reload_adds_is_known_while_the_reload_waits_for_a_refresh() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    // A refresh the provider answers only after 4 s, under way.
    provider.set_access_token_lifetime(Duration::from_secs(7200));
    provider.inject(Endpoint::Token, Fault::Delay(Duration::from_secs(4)), 1);
    let refreshing = spawn_tokenctl(&daemon.socket, &["token", "demo", "--min-valid", "3700"]);
    daemon.wait_for_log(1, &["refresh_sent"]);
    // demo's table changes (the reload waits for its refresh) and `new`
    // is added.
    daemon.write_config(&format!(
        "{}scopes = [\"more\"]\n{}",
        provider.config("demo"),
        provider.config("new")
    ));
    support::process::signal(daemon.pid(), rustix::process::Signal::HUP);
    daemon.wait_for_log(1, &["reload_applying"]);
    let out = daemon.tokenctl(&["--json", "login", "new", "--no-wait"]);
    assert!(out.status.success(), "{} {}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("user_code"), "{}", stdout(&out));
    let refreshed = refreshing.wait_with_output().unwrap();
    assert!(refreshed.status.success(), "{}", stderr(&refreshed));
}
