//! Records in the keyring: saved, replaced, listed, found by their
//! attributes, unreadable or duplicated, and removed.

use super::*;
use crate::support::file_store::walk;

#[test]
fn round_trip_save_load_list_delete() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(&bus, "round_trip_save_load_list_delete") else {
        return;
    };
    let mut store = StoreChild::on(&bus);
    let (github, trakt) = (session("rt-github-1"), session("rt-trakt-1"));
    assert_eq!(store.call(&Request::Connect), Reply::Done);

    assert_eq!(store.load("github"), Reply::Loaded { session: None });
    assert_eq!(store.list(), listed(&[]));
    assert_eq!(store.save("github", &github), Reply::Done);
    assert_eq!(store.save("trakt", &trakt), Reply::Done);
    assert_eq!(store.load("github"), loaded(&github));
    assert_eq!(store.load("trakt"), loaded(&trakt));
    assert_eq!(store.list(), listed(&["github", "trakt"]));

    assert_eq!(store.delete("github"), Reply::Done);
    assert_eq!(store.load("github"), Reply::Loaded { session: None });
    // Logging out twice is not an error.
    assert_eq!(store.delete("github"), Reply::Done);
    assert_eq!(store.list(), listed(&["trakt"]));
    assert_eq!(store.load("trakt"), loaded(&trakt));

    // gnome-keyring encrypts its files: no token is on disk in the clear.
    for entry in walk(keyring.root()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        for token in ["rt-github-1", "rt-trakt-1", "at-of-rt-trakt-1"] {
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "{token} is in the clear in {}",
                entry.display()
            );
        }
    }
}

#[test]
fn save_replaces_the_item() {
    let bus = PrivateBus::start();
    let Some(_keyring) = TestKeyring::start_or_skip(&bus, "save_replaces_the_item") else {
        return;
    };
    let mut store = StoreChild::on(&bus);
    let (first, second) = (session("rt-first"), session("rt-second"));

    assert_eq!(store.save("github", &first), Reply::Done);
    assert_eq!(store.save("github", &second), Reply::Done);
    assert_eq!(store.load("github"), loaded(&second));

    let (items, _) = search_tokend_items(&bus);
    assert_eq!(items.len(), 1, "one item per provider: {items:?}");
    assert!(!items[0].secret.contains("rt-first"));
}

#[test]
fn item_has_tokend_attributes_and_label() {
    let bus = PrivateBus::start();
    let Some(_keyring) = TestKeyring::start_or_skip(&bus, "item_has_tokend_attributes_and_label")
    else {
        return;
    };
    let mut store = StoreChild::on(&bus);
    let record = session("rt-attributes");
    assert_eq!(store.save("github", &record), Reply::Done);

    // libsecret, not our code, reads it back.
    let (items, attributes) = search_tokend_items(&bus);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].label, "tokend: github refresh token");
    assert_eq!(items[0].schema, SCHEMA);
    let mut attributes = attributes;
    attributes.sort();
    assert_eq!(
        attributes,
        [
            format!("attribute.service = {SERVICE}"),
            format!("attribute.{PROVIDER_ATTRIBUTE} = github"),
            "attribute.username = github".to_owned(),
        ]
    );
    // The secret is exactly the record.
    let secret = StoredSession::from_bytes(items[0].secret.as_bytes()).expect("a record");
    assert_eq!(secret, record);
}

/// The store checks an item's descriptive attributes once per process; a
/// logout's delete must make the next login's new item get them again.
#[test]
fn an_item_created_again_after_a_logout_is_described_again() {
    let bus = PrivateBus::start();
    let Some(_keyring) = TestKeyring::start_or_skip(
        &bus,
        "an_item_created_again_after_a_logout_is_described_again",
    ) else {
        return;
    };
    let mut store = StoreChild::on(&bus);
    assert_eq!(store.save("github", &session("rt-before")), Reply::Done);
    assert_eq!(store.save("github", &session("rt-refreshed")), Reply::Done);
    assert_eq!(store.delete("github"), Reply::Done);
    assert_eq!(store.save("github", &session("rt-after")), Reply::Done);

    let (items, attributes) = search_tokend_items(&bus);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].schema, SCHEMA, "the new item has no schema");
    assert!(
        attributes.contains(&format!("attribute.{PROVIDER_ATTRIBUTE} = github")),
        "the new item lacks {PROVIDER_ATTRIBUTE}: {attributes:?}"
    );
    assert!(items[0].secret.contains("rt-after"));
}

#[test]
fn unreadable_record_is_corrupt_and_logout_removes_it() {
    let bus = PrivateBus::start();
    let Some(_keyring) =
        TestKeyring::start_or_skip(&bus, "unreadable_record_is_corrupt_and_logout_removes_it")
    else {
        return;
    };
    // Garbage under tokend's attributes, written by someone else.
    let garbage: [(&str, &[u8]); 2] = [
        // Cut short: not JSON.
        (
            "github",
            br#"{"version":1,"identity":"x","refresh_token":"rt-leak-one"#,
        ),
        // Well-formed, from a future version.
        (
            "trakt",
            br#"{"version":99,"identity":"x","refresh_token":"rt-leak-two","obtained_at":1}"#,
        ),
    ];
    for (provider, secret) in garbage {
        let output = secret_tool(
            &bus,
            &[
                "store",
                "--label=not tokend's",
                "service",
                SERVICE,
                "username",
                provider,
            ],
            secret,
        );
        assert!(output.status.success(), "secret-tool store: {output:?}");
    }

    let mut store = StoreChild::on(&bus);
    // The damaged one is to be removed; the newer one is not damaged, and
    // the version that wrote it reads it (a login here replaces it).
    for (provider, advice) in [
        ("github", "tokenctl logout github"),
        ("trakt", "written by a newer tokend"),
    ] {
        let reply = store.load(provider);
        let (kind, message) = reply.expect_error(&["rt-leak-one", "rt-leak-two"]);
        assert_eq!(kind, "Corrupt", "{message}");
        assert!(message.contains(advice), "{message}");
    }
    assert_eq!(store.list(), listed(&["github", "trakt"]));
    assert_eq!(store.delete("github"), Reply::Done);
    assert_eq!(store.load("github"), Reply::Loaded { session: None });
    // A save over garbage replaces it.
    let record = session("rt-fresh");
    assert_eq!(store.save("trakt", &record), Reply::Done);
    assert_eq!(store.load("trakt"), loaded(&record));
}

#[test]
fn duplicate_items_are_reported_and_logout_removes_all() {
    let bus = PrivateBus::start();
    let Some(_keyring) =
        TestKeyring::start_or_skip(&bus, "duplicate_items_are_reported_and_logout_removes_all")
    else {
        return;
    };
    let mut store = StoreChild::on(&bus);
    assert_eq!(store.save("github", &session("rt-one")), Reply::Done);
    // Another item that also matches service + username (its extra attribute
    // keeps gnome-keyring from replacing ours).
    let output = secret_tool(
        &bus,
        &[
            "store",
            "--label=copy",
            "service",
            SERVICE,
            "username",
            "github",
            "origin",
            "backup",
        ],
        br#"{"refresh_token":"rt-two"}"#,
    );
    assert!(output.status.success(), "secret-tool store: {output:?}");

    let reply = store.load("github");
    let (kind, message) = reply.expect_error(&["rt-one", "rt-two"]);
    // That provider's problem, not the store's.
    assert_eq!(kind, "Corrupt", "{message}");
    assert!(message.contains("tokenctl logout github"), "{message}");
    assert_eq!(store.delete("github"), Reply::Done);
    assert_eq!(search_tokend_items(&bus).0.len(), 0);
    assert_eq!(store.load("github"), Reply::Loaded { session: None });
}

/// The listing at a restore reads every item's attributes and spares the
/// first save of an item it saw described the look for them; an item it
/// saw without them (written by keyring alone: an older tokend, a crash
/// between the two calls) still gets them at that save.
#[test]
fn a_listed_item_without_its_description_is_described_at_its_save() {
    let bus = PrivateBus::start();
    let Some(_keyring) = TestKeyring::start_or_skip(
        &bus,
        "a_listed_item_without_its_description_is_described_at_its_save",
    ) else {
        return;
    };
    let output = secret_tool(
        &bus,
        &[
            "store",
            "--label=tokend: github refresh token",
            "service",
            SERVICE,
            "username",
            "github",
        ],
        &session("rt-bare").to_bytes(),
    );
    assert!(output.status.success(), "secret-tool store: {output:?}");
    let mut store = StoreChild::on(&bus);
    assert_eq!(store.list(), listed(&["github"]));
    assert_eq!(store.save("github", &session("rt-saved")), Reply::Done);

    let (items, attributes) = search_tokend_items(&bus);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].schema, SCHEMA, "the item was not described");
    assert!(
        attributes.contains(&format!("attribute.{PROVIDER_ATTRIBUTE} = github")),
        "the item lacks {PROVIDER_ATTRIBUTE}: {attributes:?}"
    );
    assert!(items[0].secret.contains("rt-saved"));
}

/// Described means both descriptive attributes: an item the listing sees
/// with tokend's provider attribute but no `xdg:schema` (written by
/// another tool) is not taken as described, and gets the schema at its
/// save, as one without either does.
#[test]
fn a_listed_item_with_its_provider_but_no_schema_is_described_at_its_save() {
    let bus = PrivateBus::start();
    let Some(_keyring) = TestKeyring::start_or_skip(
        &bus,
        "a_listed_item_with_its_provider_but_no_schema_is_described_at_its_save",
    ) else {
        return;
    };
    let output = secret_tool(
        &bus,
        &[
            "store",
            "--label=tokend: github refresh token",
            "service",
            SERVICE,
            "username",
            "github",
            PROVIDER_ATTRIBUTE,
            "github",
        ],
        &session("rt-no-schema").to_bytes(),
    );
    assert!(output.status.success(), "secret-tool store: {output:?}");
    let mut store = StoreChild::on(&bus);
    assert_eq!(store.list(), listed(&["github"]));
    assert_eq!(store.save("github", &session("rt-saved")), Reply::Done);

    let (items, _) = search_tokend_items(&bus);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].schema, SCHEMA, "the item was not described");
    assert!(items[0].secret.contains("rt-saved"));
}
