//! tokend's items in a keyring that is not the default, locked while
//! tokend runs: the same outage as a locked default keyring, which ends
//! at its unlock.

use super::*;
use crate::support::child_lines::bus_stub;
use crate::support::keyring::LOGIN;

/// A session in `login` (renamed "Work Laptop" in Seahorse; its path stays
/// `login`), another keyring made the default, then `login` locked, with a
/// prompter that shows prompts and answers none. The look at the default
/// keyring alone found nothing locked, so the save of a refresh's rotated
/// refresh token went to keyring's store, which asked for `login`'s unlock
/// prompt and waited for it holding every later call: the token request
/// waited 30 s, the store was down as not answering, and stayed down
/// after the unlock until a restart, which then presented a rotated-away
/// refresh token. Now the request is answered at once from memory, the
/// store is down as locked (naming the keyring by its label), tokend asks
/// for the unlock prompt once without waiting for it, and the unlock
/// (elsewhere: the prompt is left open) is noticed from the Secret
/// Service's announcement and the token saved; a restart refreshes with it.
#[test]
fn a_locked_keyring_that_is_not_the_default_is_an_outage_its_unlock_ends() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(
        &bus,
        "a_locked_keyring_that_is_not_the_default_is_an_outage_its_unlock_ends",
    ) else {
        return;
    };
    let prompter = bus_stub(&bus, "silent_prompter.py", &[]);
    let provider = Provider::rfc8628();
    let providers = provider.config("demo");
    // Less life than the request below asks for: it makes a refresh (the
    // provider's tokens live an hour).
    let seeded = keyring.seed(&provider, &providers, Duration::from_secs(3000));
    keyring.set_keyring_label(LOGIN, "Work Laptop");
    let spare = keyring.create_keyring("Spare");
    keyring.make_default(&spare);
    let mut daemon = Daemon::start_with(&providers, DaemonOptions::with_keyring_on(&bus));
    let stored = &seeded[0].access_token;
    assert_eq!(token(&daemon, "demo", &["--min-valid", "0"]), *stored);

    keyring.lock_keyring(LOGIN);
    let out = daemon.tokenctl(&["token", "demo", "--min-valid", "3590"]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), daemon.log());
    let refreshed = stdout(&out).trim().to_owned();
    assert_ne!(refreshed, *stored);
    let locked = "store locked: unlock your keyring `Work Laptop`, which holds tokend's items";
    let down = daemon.wait_for_log(1, UNAVAILABLE);
    assert!(down[0].contains(locked), "{down:?}");
    let out = daemon.tokenctl(&["status"]);
    let text = stdout(&out);
    let store = text
        .lines()
        .find(|l| l.starts_with("store: "))
        .unwrap_or("");
    assert!(store.contains(locked), "{text}");
    assert!(!text.contains("no answer within"), "{text}");
    assert!(text.contains("not saved"), "{text}");
    // tokend's own prompt, asked for once.
    drop(prompter.wait_for("prompt"));
    daemon.wait_for_log(1, WATCHING);

    keyring.unlock_keyring(LOGIN);
    let back = daemon.wait_for_log(1, AVAILABLE);
    assert!(
        back[0].contains("noticed=\"store_change\""),
        "not noticed from the announcement: {back:?}"
    );
    let recovered = daemon.wait_for_log(1, &["after the store came back"]);
    assert!(recovered[0].contains("saved 1"), "{recovered:?}");
    let out = daemon.tokenctl(&["--json", "status"]);
    let all: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("status JSON");
    assert_eq!(all[0]["saved"], true, "{all:?}\n{}", daemon.log());
    assert!(
        stderr(&out).is_empty(),
        "an outage still shown: {}",
        stderr(&out)
    );
    let later = prompter.taken_now();
    assert!(
        !later.iter().any(|line| line == "prompt"),
        "a second unlock prompt: {later:?}"
    );
    assert!(!keyring.is_keyring_locked(&spare));

    daemon.stop();
    assert!(
        !daemon.log().contains("unsaved_at_stop"),
        "{}",
        daemon.log()
    );
    daemon.restart();
    let mut client = Client::connect(&daemon.socket).expect("connect");
    client
        .token_replacing("demo", &refreshed)
        .expect("refreshed after the restart, with the saved refresh token");
    provider.assert_no_violations();
}

/// The same keyring locked when tokend starts: its sessions wait for it,
/// as for a locked default keyring (a token request says to unlock it, by
/// its label), and its unlock restores them, no restart needed. Before,
/// each was "unreadable" (an item in a locked keyring other than the
/// default) until tokend was restarted after the unlock.
#[test]
fn a_start_with_that_keyring_locked_waits_for_its_unlock() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(
        &bus,
        "a_start_with_that_keyring_locked_waits_for_its_unlock",
    ) else {
        return;
    };
    let _prompter = bus_stub(&bus, "silent_prompter.py", &[]);
    let provider = Provider::rfc8628();
    let providers = provider.config("demo");
    let seeded = keyring.seed(&provider, &providers, Duration::from_secs(4 * 3600));
    keyring.set_keyring_label(LOGIN, "Work Laptop");
    let spare = keyring.create_keyring("Spare");
    keyring.make_default(&spare);
    keyring.lock_keyring(LOGIN);
    let daemon = Daemon::start_with(&providers, DaemonOptions::with_keyring_on(&bus));
    let locked = "store locked: unlock your keyring `Work Laptop`";
    let down = daemon.wait_for_log(1, UNAVAILABLE);
    assert!(down[0].contains(locked), "{down:?}");
    let out = daemon.tokenctl(&["token", "demo", "--min-valid", "0"]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    assert!(stderr(&out).contains(locked), "{}", stderr(&out));
    daemon.wait_for_log(1, WATCHING);

    keyring.unlock_keyring(LOGIN);
    daemon.wait_for_log(
        1,
        &["after the store came back: restored 1 stored session(s)"],
    );
    assert_eq!(
        token(&daemon, "demo", &["--min-valid", "0"]),
        seeded[0].access_token
    );
    assert_eq!(provider.refresh_count(), 0, "restored, not refreshed");
}
