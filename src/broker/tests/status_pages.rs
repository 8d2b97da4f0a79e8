//! Paging through the statuses: every visible provider once, in name order,
//! whatever the page length, and nothing of the others.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::clock::OffsetClock;
use crate::broker::{Broker, BrokerError, BrokerParts, Caller};
use crate::provider::HttpClient;
use crate::store::MemoryStore;

const OWNER: u32 = 1000;
const GUEST: u32 = 2000;

/// A broker with `count` providers `p000..`; every third one is shared
/// with [`GUEST`].
fn broker(dir: &std::path::Path, count: usize) -> Broker {
    let mut text = String::from("[daemon]\nsocket = \"/run/t/t.sock\"\nstore = \"memory\"\n");
    // Written out of order: the pages come in name order anyway.
    for i in (0..count).rev() {
        let _ = write!(
            text,
            "[providers.p{i:03}]\ndevice_authorization_endpoint = \"http://127.0.0.1:9/device\"\n\
             token_endpoint = \"http://127.0.0.1:9/token\"\nclient_id = \"cid\"\n"
        );
        if i % 3 == 0 {
            let _ = writeln!(text, "allow_users = [{GUEST}]");
        }
    }
    let config = super::config_in(dir, &text);
    Broker::new(
        &config.daemon,
        config.providers.clone(),
        BrokerParts {
            store: Arc::new(MemoryStore::default()),
            clock: Arc::new(OffsetClock::new()),
            http: HttpClient::new(Duration::from_secs(5)).unwrap(),
            owner_uid: OWNER,
        },
    )
}

fn names(broker: &Broker, uid: u32, page_len: usize) -> Vec<Vec<String>> {
    broker
        .status_pages(&Caller::uid(uid), None, page_len)
        .unwrap()
        .map(|page| page.into_iter().map(|p| p.name).collect())
        .collect()
}

#[test]
fn pages_hold_every_visible_provider_once_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path(), 10);
    let all: Vec<String> = (0..10).map(|i| format!("p{i:03}")).collect();
    for page_len in [1, 3, 5, 10, 11, 1000] {
        let pages = names(&broker, OWNER, page_len);
        assert!(pages.iter().all(|p| !p.is_empty() && p.len() <= page_len));
        assert_eq!(pages.concat(), all, "page length {page_len}");
    }
    // Page length 0 is taken as 1, not as "no pages".
    assert_eq!(names(&broker, OWNER, 0).concat(), all);
}

#[test]
fn a_caller_pages_through_only_what_it_may_see() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path(), 10);
    let shared = ["p000", "p003", "p006", "p009"];
    for page_len in [1, 2, 4, 100] {
        assert_eq!(names(&broker, GUEST, page_len).concat(), shared);
    }
    assert!(names(&broker, 3000, 2).is_empty());
}

#[test]
fn a_named_provider_is_one_page_or_the_unknown_answer() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path(), 4);
    let pages = names_of(&broker, GUEST, "p003");
    assert_eq!(pages, [["p003"]]);
    for (uid, name) in [(GUEST, "p001"), (OWNER, "nope")] {
        let error = broker
            .status_pages(&Caller::uid(uid), Some(name), 10)
            .unwrap_err();
        assert!(
            matches!(error, BrokerError::UnknownProvider { .. }),
            "{error:?}"
        );
    }
}

fn names_of(broker: &Broker, uid: u32, name: &str) -> Vec<Vec<String>> {
    broker
        .status_pages(&Caller::uid(uid), Some(name), 10)
        .unwrap()
        .map(|page| page.into_iter().map(|p| p.name).collect())
        .collect()
}
