//! A keyring locked while tokend runs: a refresh's rotated refresh token
//! waits in memory and is saved once the keyring is unlocked, seen by
//! `tokenctl status` or from the Secret Service's own announcement; and
//! its unlock prompt, asked for once however many saves look, and never
//! waited for.

use super::*;
use crate::support::child_lines::bus_stub;

/// A keyring locked while tokend runs: a refresh's rotated refresh token
/// cannot be saved and waits in memory. Right after the keyring is
/// unlocked, `tokenctl status` shows the keyring working and the tokens
/// saved: the status has the retry loop probe now (its own probe is 15–30 s
/// away) and waits for it. A restart then presents the rotated token.
#[test]
fn the_status_after_an_unlock_shows_the_keyring_working_and_the_tokens_saved() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(&bus, "the_status_after_an_unlock") else {
        return;
    };
    refresh_while_locked_then_unlock(&bus, &keyring, Seen::ByStatus, || {}, || {});
}

/// The same with an unlock prompt nobody answers, the keyring unlocked
/// another way (the keyring's own window, Seahorse: here gnome-keyring's
/// unlock call) and the prompt left open. tokend asks for the prompt and
/// does not wait for it; keyring's store alone would wait for it holding
/// the lock of every later call, and the store stayed down until a restart.
/// And nobody asks for the status or a token: tokend notices the unlock
/// from the Secret Service's own announcement and saves the rotated token
/// at once (its scheduled probe is 15–30 s away, and would say so).
#[test]
fn an_unanswered_unlock_prompt_holds_nothing_and_an_unlock_elsewhere_is_seen() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(&bus, "an_unanswered_unlock_prompt") else {
        return;
    };
    // A prompter that begins every prompt and answers none.
    let prompter = bus_stub(&bus, "silent_prompter.py", &[]);
    refresh_while_locked_then_unlock(
        &bus,
        &keyring,
        Seen::ByNotice,
        // The store is down at once, having asked for the prompt...
        || drop(prompter.wait_for("prompt")),
        // ...and for no other during the outage.
        || {
            let later = prompter.taken_now();
            assert!(
                !later.iter().any(|line| line == "prompt"),
                "a second unlock prompt: {later:?}"
            );
        },
    );
}

/// Sessions refreshed together while the keyring is locked: each save
/// looks at the lock at the same moment, and between them they ask for one
/// unlock prompt, not one each (a stack of dialogs on the person's screen).
#[test]
fn saves_at_once_on_a_locked_keyring_ask_for_one_unlock_prompt() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(&bus, "saves_at_once_on_a_locked_keyring")
    else {
        return;
    };
    let prompter = bus_stub(&bus, "silent_prompter.py", &[]);
    let provider = Provider::rfc8628();
    let providers: String = (0..8).map(|i| provider.config(&format!("p{i}"))).collect();
    let seeded = keyring.seed(&provider, &providers, Duration::from_secs(4 * 3600));
    let daemon = Daemon::start_with(&providers, DaemonOptions::with_keyring_on(&bus));
    keyring.lock_default_collection();
    let start = std::sync::Barrier::new(seeded.len());
    std::thread::scope(|scope| {
        for session in &seeded {
            let (start, socket) = (&start, &daemon.socket);
            scope.spawn(move || {
                let mut client = Client::connect(socket).expect("connect");
                start.wait();
                client
                    .token_replacing(&session.name, &session.access_token)
                    .expect("a new token, from memory");
            });
        }
    });
    // Every save has looked (each answer came after its save failed).
    drop(prompter.wait_for("prompt"));
    let asked = daemon.wait_for_log(1, &["asked the Secret Service for its unlock prompt"]);
    assert_eq!(asked.len(), 1, "{asked:?}");
}

/// How the test sees tokend notice that the keyring was unlocked.
#[derive(Clone, Copy)]
enum Seen {
    /// `tokenctl status` right after the unlock (it has the store probed).
    ByStatus,
    /// Nothing asked: the daemon's log says the store works again, noticed
    /// when the Secret Service announced the change.
    ByNotice,
}

/// A session seeded in `keyring` and tokend on it; the keyring locked; a
/// refresh, served from memory, whose rotated refresh token cannot be
/// saved (then `while_locked`); the keyring unlocked, the recovery `seen`,
/// and `tokenctl status` showing the keyring working and the token saved
/// (then `after_unlock`); a restart refreshing with the saved token, which
/// the provider has not seen rotated away.
fn refresh_while_locked_then_unlock(
    bus: &PrivateBus,
    keyring: &TestKeyring,
    seen: Seen,
    while_locked: impl FnOnce(),
    after_unlock: impl FnOnce(),
) {
    let provider = Provider::rfc8628();
    let providers = provider.config("demo");
    let seeded = keyring.seed(&provider, &providers, Duration::from_secs(4 * 3600));
    let mut daemon = Daemon::start_with(&providers, DaemonOptions::with_keyring_on(bus));
    let stored = &seeded[0].access_token;
    assert_eq!(token(&daemon, "demo", &["--min-valid", "0"]), *stored);

    keyring.lock_default_collection();
    let mut client = Client::connect(&daemon.socket).expect("connect");
    let refreshed = client
        .token_replacing("demo", stored)
        .expect("a new token, from memory");
    assert_ne!(refreshed.access_token.expose(), stored.as_str());
    daemon.wait_for_log(1, UNAVAILABLE);
    while_locked();
    if let Seen::ByNotice = seen {
        // The announcement is seen only once the feed's watches are live:
        // an unlock before them is noticed at the scheduled probe (it was,
        // once, with sixteen tests at a time).
        daemon.wait_for_log(1, WATCHING);
    }

    keyring.unlock_default_collection();
    if let Seen::ByNotice = seen {
        let back = daemon.wait_for_log(1, AVAILABLE);
        assert!(
            back[0].contains("noticed=\"store_change\""),
            "not noticed from the announcement: {back:?}"
        );
    }
    let out = daemon.tokenctl(&["--json", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("status JSON");
    assert_eq!(all[0]["saved"], true, "{all:?}\n{}", daemon.log());
    assert!(
        !stderr(&out).contains("unlock your keyring"),
        "the status still shows the outage: {}",
        stderr(&out)
    );
    assert_eq!(count(&daemon, AVAILABLE), 1, "{}", daemon.log());
    // The recovery says the save it made (the probe's), not "saved 0".
    let recovered = daemon.wait_for_log(1, &["after the store came back"]);
    assert!(recovered[0].contains("saved 1"), "{recovered:?}");
    after_unlock();

    daemon.stop();
    daemon.restart();
    let mut client = Client::connect(&daemon.socket).expect("connect");
    client
        .token_replacing("demo", refreshed.access_token.expose())
        .expect("refreshed after the restart");
    provider.assert_no_violations();
}
