//! A keyring that is locked, missing, late or restarted.

use super::*;

#[test]
fn locked_collection_is_locked_and_keeps_the_old_record() {
    let bus = PrivateBus::start();
    let Some(keyring) =
        TestKeyring::start_or_skip(&bus, "locked_collection_is_locked_and_keeps_the_old_record")
    else {
        return;
    };
    let mut store = StoreChild::on(&bus);
    let (old, new) = (session("rt-old"), session("rt-new"));
    assert_eq!(store.save("github", &old), Reply::Done);

    keyring.lock_default_collection();
    // gnome-keyring cannot show an unlock prompt here (no prompter on the
    // bus): every operation must fail as Locked, promptly, without a panic.
    for reply in [
        store.load("github"),
        store.save("github", &new),
        store.save("trakt", &new),
        store.delete("github"),
        store.list(),
    ] {
        let (kind, message) = reply.expect_error(&["rt-old", "rt-new"]);
        assert_eq!(kind, "Locked", "{message}");
        assert!(message.contains("unlock your keyring"), "{message}");
    }

    // Once unlocked, the same store works, and the failed save and delete
    // left the old record as it was.
    keyring.unlock_default_collection();
    assert_eq!(store.load("github"), loaded(&old));
    assert_eq!(store.list(), listed(&["github"]));
    assert_eq!(store.save("github", &new), Reply::Done);
    assert_eq!(store.load("github"), loaded(&new));
}

/// A Secret Service with no default collection (`KeePassXC` before a
/// database is open, a default keyring deleted in Seahorse) is a store that
/// cannot be used, not an empty one: keyring's search found nothing there,
/// and every session became "login required" with nothing said of the
/// store. Once a collection is the default, it works.
#[test]
fn no_default_collection_is_a_store_that_cannot_be_used() {
    let bus = PrivateBus::start();
    let Some(keyring) =
        TestKeyring::start_or_skip(&bus, "no_default_collection_is_a_store_that_cannot_be_used")
    else {
        return;
    };
    let mut store = StoreChild::on(&bus);
    keyring.delete_default_collection();
    let record = session("rt-homeless");
    for reply in [
        store.load("github"),
        store.list(),
        store.save("github", &record),
        store.delete("github"),
    ] {
        let (kind, message) = reply.expect_error(&["rt-homeless"]);
        assert_eq!(kind, "Unavailable", "{message}");
        assert!(message.contains("no default collection"), "{message}");
    }

    keyring.make_session_collection_the_default();
    assert_eq!(store.list(), listed(&[]));
    assert_eq!(store.save("github", &record), Reply::Done);
    assert_eq!(store.load("github"), loaded(&record));
}

#[test]
fn bus_without_secret_service_is_unavailable() {
    // No keyring on this bus: runs whether or not gnome-keyring is installed.
    let bus = PrivateBus::start();
    let mut store = StoreChild::on(&bus);
    let record = session("rt-nowhere");
    for reply in [
        store.call(&Request::Connect),
        store.load("github"),
        store.save("github", &record),
        store.delete("github"),
        store.list(),
    ] {
        let (kind, message) = reply.expect_error(&["rt-nowhere"]);
        assert_eq!(kind, "Unavailable", "{message}");
        assert!(
            message.contains(
                "no Secret Service on the session bus: install/start gnome-keyring or \
                 KeePassXC, or set store = \"encrypted-file\" (with a store key)"
            ),
            "{message}"
        );
    }
}

#[test]
fn no_session_bus_is_unavailable() {
    let bus = PrivateBus::start();
    let missing = format!("unix:path={}", bus.dir().join("no-such-socket").display());
    let mut command = bus.command(std::env::current_exe().expect("the test binary"));
    command.env("DBUS_SESSION_BUS_ADDRESS", missing);
    let mut store = StoreChild::with_address(command);
    let (kind, message) = store.load("github").expect_error(&[]);
    assert_eq!(kind, "Unavailable", "{message}");
    assert!(message.contains("session bus"), "{message}");
    assert!(message.contains("store = \"encrypted-file\""), "{message}");
}

#[test]
fn keyring_started_after_the_store_is_found() {
    let bus = PrivateBus::start();
    if !TestKeyring::is_installed() {
        let _ = TestKeyring::start_or_skip(&bus, "keyring_started_after_the_store_is_found");
        return;
    }
    let mut store = StoreChild::on(&bus);
    let (kind, _) = store.load("github").expect_error(&[]);
    assert_eq!(kind, "Unavailable");

    // The daemon started before the keyring: the next call connects anew.
    let _keyring = TestKeyring::start(&bus);
    let record = session("rt-late");
    assert_eq!(store.save("github", &record), Reply::Done);
    assert_eq!(store.load("github"), loaded(&record));
}

#[test]
fn keyring_restart_is_survived() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(&bus, "keyring_restart_is_survived") else {
        return;
    };
    let mut store = StoreChild::on(&bus);
    let record = session("rt-before-restart");
    assert_eq!(store.save("github", &record), Reply::Done);

    // A new keyring daemon (with empty keyrings): the store's session with
    // the old one is gone, and the store must notice and reconnect.
    drop(keyring);
    let _keyring = TestKeyring::start(&bus);
    assert_eq!(store.load("github"), Reply::Loaded { session: None });
    assert_eq!(store.save("github", &record), Reply::Done);
    assert_eq!(store.load("github"), loaded(&record));
}

/// A copy of a provider's item in another keyring, left locked (an old
/// `login.keyring` restored beside the new one): keyring's store would ask
/// to unlock that keyring and wait, and the whole store was "locked:
/// unlock your keyring" while the default was unlocked. Now the listing
/// goes on, that provider's read and save say which keyring holds its
/// locked item, by the label Seahorse shows ("Old Laptop", whose path is
/// an escaped form of it), and the others carry on.
#[test]
fn a_locked_item_in_another_keyring_is_that_providers_trouble() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(
        &bus,
        "a_locked_item_in_another_keyring_is_that_providers_trouble",
    ) else {
        return;
    };
    let mut store = StoreChild::on(&bus);
    let (github, gitlab) = (session("rt-github"), session("rt-gitlab"));
    assert_eq!(store.save("github", &github), Reply::Done);
    assert_eq!(store.save("gitlab", &gitlab), Reply::Done);
    keyring.lock_away_in_another_keyring(
        "Old Laptop",
        "github",
        &session("rt-old-copy").to_bytes(),
    );

    assert_eq!(store.list(), listed(&["github", "gitlab"]));
    assert_eq!(store.load("gitlab"), loaded(&gitlab));
    assert_eq!(store.save("gitlab", &session("rt-gitlab-2")), Reply::Done);
    for (reply, kind) in [
        (store.load("github"), "Corrupt"),
        (
            store.save("github", &session("rt-github-2")),
            "Unchangeable",
        ),
    ] {
        let (found, message) = reply.expect_error(&["rt-github", "rt-old-copy"]);
        assert_eq!(found, kind, "{message}");
        assert!(message.contains("locked keyring `Old Laptop`"), "{message}");
        assert!(!message.contains("unlock your keyring"), "{message}");
    }
    // A logout deletes the item it can and says which one it cannot,
    // as that provider's trouble: the store goes on for the others.
    let (kind, message) = store
        .delete("github")
        .expect_error(&["rt-github", "rt-old-copy"]);
    assert_eq!(kind, "Unchangeable", "{message}");
    assert!(message.contains("locked keyring `Old Laptop`"), "{message}");
    assert_eq!(store.save("gitlab", &session("rt-gitlab-3")), Reply::Done);
    assert_eq!(store.save("slack", &session("rt-slack")), Reply::Done);
    // The locked copy is named when gnome-keyring still shows its
    // attributes; once it has written the locked keyring out it shows only
    // their hashes, and the listing cannot name it (and says so in the
    // log): either way the others are listed.
    let reply = store.list();
    let Reply::Listed { providers } = &reply else {
        panic!("{reply:?}");
    };
    let others: Vec<&str> = providers
        .iter()
        .map(String::as_str)
        .filter(|p| *p != "github")
        .collect();
    assert_eq!(others, ["gitlab", "slack"], "{providers:?}");
}
