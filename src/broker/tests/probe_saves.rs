//! A store that takes one session's save and refuses another's store-wide
//! (a full disk: a record is rewritten over its spare, a new one cannot be
//! made) is one outage, not one per probe, and the save it takes is made:
//! the probe saves every unsaved session, those whose saves failed least
//! first, and counts the store as back only when all are saved.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{broker_for, config_in, fast_emulator};
use crate::broker::store_health::StoreState;
use crate::broker::{Caller, Freshness, SystemClock, TokenFingerprint};
use crate::store::{MemoryStore, Store, StoreError, StoredSession};

/// The memory store, but the saves of the providers in `full` fail
/// store-wide; says how many saves of `a` and of `b` it was asked for.
#[derive(Debug)]
struct FullDisk {
    inner: MemoryStore,
    full: Mutex<Vec<&'static str>>,
    saves: watch::Sender<(usize, usize)>,
}

impl Store for FullDisk {
    fn name(&self) -> &'static str {
        "test store"
    }
    fn load(&self, provider: &str) -> Result<Option<StoredSession>, StoreError> {
        self.inner.load(provider)
    }
    fn save(&self, provider: &str, session: &StoredSession) -> Result<(), StoreError> {
        self.saves.send_modify(|(a, b)| match provider {
            "a" => *a += 1,
            _ => *b += 1,
        });
        if self.full.lock().unwrap().contains(&provider) {
            return Err(StoreError::Failed {
                store: "test store",
                reason: "No space left on device".into(),
            });
        }
        self.inner.save(provider, session)
    }
    fn delete(&self, provider: &str) -> Result<(), StoreError> {
        self.inner.delete(provider)
    }
    fn list(&self) -> Result<Vec<String>, StoreError> {
        self.inner.list()
    }
}

#[tokio::test]
async fn a_store_that_refuses_one_sessions_save_is_one_outage() {
    let emulator = fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("[daemon]\nsocket = \"/run/t/t.sock\"\nstore = \"memory\"\n");
    for name in ["a", "b"] {
        let _ = write!(
            text,
            "[providers.{name}]\ndevice_authorization_endpoint = \"{}\"\n\
             token_endpoint = \"{}\"\nclient_id = \"tokend-test\"\n",
            emulator.device_authorization_endpoint(),
            emulator.token_endpoint()
        );
    }
    let config = config_in(dir.path(), &text);
    let (saves, mut save_counts) = watch::channel((0, 0));
    let store = Arc::new(FullDisk {
        inner: MemoryStore::new(),
        full: Mutex::new(Vec::new()),
        saves,
    });
    let broker = broker_for(&config, store.clone(), Arc::new(SystemClock));
    let health = Arc::clone(&broker.inner.shared.store_health);
    health.set_retry(Duration::from_millis(50), Duration::from_millis(100));
    broker.start(None).await;
    let caller = Caller::uid(1000);
    let mut tokens = Vec::new();
    for name in ["a", "b"] {
        let mut login = broker.login(&caller, name).await.unwrap();
        let prompt = login.prompt().await.unwrap().expect("a prompt");
        emulator.approve(&prompt.user_code).unwrap();
        login.outcome().await.unwrap();
        tokens.push(
            broker
                .token(&caller, name, Freshness::Default)
                .await
                .unwrap(),
        );
    }
    // Every change of the store's state from here on: `true` for available.
    let mut changes = broker.store_changes();
    changes.mark_unchanged();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let watcher = tokio::spawn({
        let seen = Arc::clone(&seen);
        async move {
            while changes.changed().await.is_ok() {
                let available = matches!(*changes.borrow_and_update(), StoreState::Available);
                seen.lock().unwrap().push(available);
            }
        }
    });

    // The disk fills: neither refresh can be saved (the outage begins);
    // both wait in memory. Then a's record can be written again (over its
    // spare), b's still cannot.
    *store.full.lock().unwrap() = vec!["a", "b"];
    let (a_before, b_before) = *save_counts.borrow_and_update();
    for (name, token) in [("b", &tokens[1]), ("a", &tokens[0])] {
        let refused = Freshness::Replacing(TokenFingerprint::of(token.secret.expose()));
        broker.token(&caller, name, refused).await.unwrap();
    }
    assert!(!health.is_available());
    *store.full.lock().unwrap() = vec!["b"];
    // The probes save a, and keep trying b.
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (a, b) = *save_counts.borrow_and_update();
            if a > a_before && b >= b_before + 4 {
                return;
            }
            save_counts.changed().await.unwrap();
        }
    })
    .await
    .expect("a saved and b's save tried by the probes");
    let saved_flags: Vec<(String, bool)> = broker
        .status(&caller, None)
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.saved))
        .collect();
    assert_eq!(
        saved_flags,
        [("a".to_owned(), true), ("b".to_owned(), false)]
    );
    assert!(!health.is_available());
    watcher.abort();
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the outage was seen");
    assert!(!seen.contains(&true), "the store flapped back: {seen:?}");
    broker.shutdown(Duration::from_secs(1)).await;
}
