//! tokend's items in a keyring that is not the default, locked while
//! tokend runs.

use super::*;
use crate::support::child_lines::bus_stub;
use crate::support::keyring::LOGIN;

/// tokend's item in `login` (renamed "Work Laptop" in Seahorse: its path
/// stays `login`), another keyring made the default, then `login` locked,
/// with a prompter that shows prompts and answers none. The look at the
/// default keyring alone found nothing locked, and keyring's store asked
/// for `login`'s unlock prompt and waited for it holding every later call:
/// the store stayed down until a restart, unlocked or not. Now a read and
/// a save of that provider fail at once as locked, naming the keyring by
/// the label Seahorse shows; tokend asks for its unlock prompt once and
/// does not wait for it; a new provider's item goes to the default
/// keyring meanwhile; and once `login` is unlocked (elsewhere: the prompt
/// is left open) the same store reads and saves it.
#[test]
fn a_locked_keyring_holding_the_item_is_locked_whichever_is_the_default() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(
        &bus,
        "a_locked_keyring_holding_the_item_is_locked_whichever_is_the_default",
    ) else {
        return;
    };
    let prompter = bus_stub(&bus, "silent_prompter.py", &[]);
    let mut store = StoreChild::on(&bus);
    let (old, new) = (session("rt-old"), session("rt-new"));
    assert_eq!(store.save("github", &old), Reply::Done);
    keyring.set_keyring_label(LOGIN, "Work Laptop");
    let spare = keyring.create_keyring("Spare");
    keyring.make_default(&spare);
    keyring.lock_keyring(LOGIN);

    for reply in [store.save("github", &new), store.load("github")] {
        let (kind, message) = reply.expect_error(&["rt-old", "rt-new"]);
        assert_eq!(kind, "Locked", "{message}");
        assert!(
            message.contains("store locked: unlock your keyring `Work Laptop`"),
            "{message}"
        );
        assert!(message.contains("not the default keyring"), "{message}");
    }
    // tokend asked for the unlock prompt (the store answered, so it did
    // not wait for it)...
    drop(prompter.wait_for("prompt"));
    // ...and a new provider's item goes to the default keyring, which is
    // not locked.
    assert_eq!(store.save("gitlab", &new), Reply::Done);
    assert!(!keyring.is_keyring_locked(&spare));

    keyring.unlock_keyring(LOGIN);
    assert_eq!(store.load("github"), loaded(&old));
    assert_eq!(store.save("github", &new), Reply::Done);
    assert_eq!(store.load("github"), loaded(&new));
    assert_eq!(store.load("gitlab"), loaded(&new));
    assert_eq!(store.list(), listed(&["github", "gitlab"]));
    // One prompt in all: the failed calls did not stack dialogs.
    let later = prompter.taken_now();
    assert!(
        !later.iter().any(|line| line == "prompt"),
        "a second unlock prompt: {later:?}"
    );
}
