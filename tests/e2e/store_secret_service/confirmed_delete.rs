//! A Secret Service that asks the person to confirm each delete, as
//! KeePassXC does by default: the store shows the prompt and does not wait
//! for it (keyring's delete waited, holding every store call behind it),
//! and counts the record deleted only once no item is left (a Cancel that
//! KeePassXC reports as completed left the item, and the session came
//! back at the next start).

use std::io::Write as _;
use std::process::{ChildStdin, Stdio};

use super::*;
use crate::support::child_lines::Lines;

/// `support/confirming_secret_service.py` on `bus`, holding an item for
/// each of `providers`, and its stdin (where the person's answers go).
fn confirming_service(bus: &PrivateBus, providers: &[&str]) -> (Lines, ChildStdin) {
    let mut child = bus
        .command("/usr/bin/python3")
        .arg(format!(
            "{}/tests/e2e/support/confirming_secret_service.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(bus.address())
        .args(providers)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run confirming_secret_service.py (python3-jeepney): {e}"));
    let stdin = child.stdin.take().unwrap();
    let service = Lines::of(child);
    service.wait_for("ready");
    (service, stdin)
}

/// The person answers every open prompt (`confirm` or `cancel`).
fn answer(service: &Lines, stdin: &mut ChildStdin, answer: &str) {
    writeln!(stdin, "{answer}").unwrap();
    service.wait_for("ok");
}

#[test]
fn a_delete_the_keyring_asks_to_confirm_is_done_once_confirmed() {
    let bus = PrivateBus::start();
    let (service, mut person) = confirming_service(&bus, &["github"]);
    let mut store = StoreChild::on(&bus);

    // The prompt is shown, and the delete answers at once: the prompt is
    // still open (keyring's delete waited here until the call timed out).
    let (kind, message) = store.delete("github").expect_error(&[]);
    assert_eq!(kind, "Unconfirmed", "{message}");
    assert!(
        message.contains("asks you to confirm deleting the item of `github`"),
        "{message}"
    );
    service.wait_for("delete github");
    service.wait_for("prompt");

    // Asked again before the person answered: no second dialog.
    let (kind, _) = store.delete("github").expect_error(&[]);
    assert_eq!(kind, "Unconfirmed");
    answer(&service, &mut person, "confirm");
    assert_eq!(
        service.taken_now(),
        Vec::<String>::new(),
        "a second prompt was asked for"
    );
    // Confirmed: the retry finds no item, and asks nothing.
    assert_eq!(store.delete("github"), Reply::Done);
    assert_eq!(store.load("github"), Reply::Loaded { session: None });
    assert_eq!(service.taken_now(), Vec::<String>::new());
}

#[test]
fn a_delete_the_person_cancelled_is_not_counted_as_done() {
    let bus = PrivateBus::start();
    let (service, mut person) = confirming_service(&bus, &["github", "trakt"]);
    let mut store = StoreChild::on(&bus);

    let (kind, _) = store.delete("github").expect_error(&[]);
    assert_eq!(kind, "Unconfirmed");
    service.wait_for("prompt");
    // Cancel, reported as completed and not dismissed, as some KeePassXC
    // versions do: the item is still there, so the record is not deleted.
    answer(&service, &mut person, "cancel");
    let (kind, _) = store.delete("github").expect_error(&[]);
    assert_eq!(kind, "Unconfirmed");
    assert_eq!(store.list(), listed(&["github", "trakt"]));
    // Another provider's record is its own: deleted as asked.
    let (kind, _) = store.delete("trakt").expect_error(&[]);
    assert_eq!(kind, "Unconfirmed");
    service.wait_for("delete trakt");
    answer(&service, &mut person, "confirm");
    assert_eq!(store.delete("trakt"), Reply::Done);
    assert_eq!(store.list(), listed(&["github"]));
}

/// A save of the provider (a new login after the logout) while the
/// logout's delete still waits for its confirmation dismisses that prompt:
/// a "yes" given after the save would delete the new session's record.
#[test]
fn a_save_dismisses_the_delete_still_waiting() {
    let bus = PrivateBus::start();
    let (service, mut person) = confirming_service(&bus, &["github"]);
    let mut store = StoreChild::on(&bus);
    let (kind, _) = store.delete("github").expect_error(&[]);
    assert_eq!(kind, "Unconfirmed");
    service.wait_for("prompt");
    // This Secret Service keeps no secrets (it does not write the item):
    // the save's own outcome is not what is tested, its dismissal is.
    let _ = store.save("github", &session("rt-new-login"));
    service.wait_for("dismiss");
    answer(&service, &mut person, "confirm");
    assert_eq!(store.list(), listed(&["github"]));
}
