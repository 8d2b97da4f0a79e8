//! A locked keyring whose unlock prompt nobody answers, unlocked another
//! way (the keyring's own window, Seahorse: here gnome-keyring's unlock
//! call), with the prompt left open. tokend asks for the prompt and does
//! not wait for it: the store is down at once (tokens in memory served),
//! and the unlock is seen at the next probe. keyring's store alone would
//! wait for the prompt holding the lock of every later call, so the store
//! stayed down until a restart, and a rotated refresh token went unsaved.

use crate::support;

use std::process::Stdio;
use std::time::Duration;

use support::bus::PrivateBus;
use support::child_lines::Lines;
use support::daemon::{Daemon, DaemonOptions, stderr, stdout, token};
use support::keyring::TestKeyring;
use support::provider::Provider;
use tokend::client::Client;

const UNAVAILABLE: &[&str] = &["event=\"store_unavailable\""];

/// A prompter that begins every prompt and answers none (see the script).
fn silent_prompter(bus: &PrivateBus) -> Lines {
    let prompter = Lines::of(
        bus.command("/usr/bin/python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/e2e/support/silent_prompter.py"
            ))
            .arg(bus.address())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run the prompter (python3-jeepney)"),
    );
    prompter.wait_for("ready");
    prompter
}

#[test]
fn an_unanswered_unlock_prompt_holds_nothing_and_an_unlock_elsewhere_is_seen() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(&bus, "an_unanswered_unlock_prompt") else {
        return;
    };
    let prompter = silent_prompter(&bus);
    let provider = Provider::rfc8628();
    let providers = provider.config("demo");
    let seeded = keyring.seed(&provider, &providers, Duration::from_secs(4 * 3600));
    let mut daemon = Daemon::start_with(&providers, DaemonOptions::with_keyring_on(&bus));
    let stored = &seeded[0].access_token;
    assert_eq!(token(&daemon, "demo", &["--min-valid", "0"]), *stored);

    // A refresh whose save finds the keyring locked: the new token comes
    // from memory, the store is down, and the unlock prompt was asked for.
    keyring.lock_default_collection();
    let mut client = Client::connect(&daemon.socket).expect("connect");
    let refreshed = client
        .token_replacing("demo", stored)
        .expect("a new token, from memory");
    assert_ne!(refreshed.access_token.expose(), stored.as_str());
    daemon.wait_for_log(1, UNAVAILABLE);
    prompter.wait_for("prompt");

    // Unlocked elsewhere, the prompt still open: the status (which has the
    // store probed) shows the store working and the rotated token saved.
    keyring.unlock_default_collection();
    let out = daemon.tokenctl(&["--json", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("status JSON");
    assert_eq!(all[0]["saved"], true, "{all:?}\n{}", daemon.log());
    assert!(
        !stderr(&out).contains("unlock your keyring"),
        "the status still shows the outage: {}",
        stderr(&out)
    );
    // One prompt for the whole outage: the probes asked for no other.
    let later = prompter.taken_now();
    assert!(
        !later.iter().any(|line| line == "prompt"),
        "a second unlock prompt: {later:?}"
    );

    // What was saved is the rotated refresh token: a restart refreshes
    // with it, and the provider sees no reuse of a rotated-away one.
    daemon.stop();
    daemon.restart();
    let mut client = Client::connect(&daemon.socket).expect("connect");
    client
        .token_replacing("demo", refreshed.access_token.expose())
        .expect("refreshed after the restart");
    provider.assert_no_violations();
}
