//! The order of a record's store writes, with the encrypted file store
//! slowed on purpose: a save held in the store while newer writes are made
//! must not land after them (issue: a logout undone at the next start).

use std::sync::Arc;
use std::time::Duration;

use tokend_emulator::Emulator;
use tokio::sync::watch;

use super::{Gate, Held, broker_on_emulator};
use crate::broker::SessionPhase;
use crate::broker::{Broker, BrokerError, Caller, StoreState, SystemClock};
use crate::store::{EncryptedFileStore, Store, StoreError, StoreKey, StoredSession};

/// The encrypted file store, whose saves can be held: a held save waits in
/// the store (on its blocking thread) until released, as a keyring waiting
/// for an unlock prompt or a slow disk does.
#[derive(Debug)]
pub(super) struct SlowedStore {
    inner: EncryptedFileStore,
    saves: Gate,
    /// Saves that entered the store, and saves that left it.
    pub(super) entered: watch::Sender<usize>,
    pub(super) finished: watch::Sender<usize>,
}

impl SlowedStore {
    pub(super) fn new(inner: EncryptedFileStore) -> Self {
        Self {
            inner,
            saves: Gate::default(),
            entered: watch::Sender::new(0),
            finished: watch::Sender::new(0),
        }
    }

    /// Holds saves until the guard is dropped.
    pub(super) fn hold_saves(&self) -> Held<'_> {
        self.saves.hold()
    }
}

impl Store for SlowedStore {
    fn name(&self) -> &'static str {
        "slowed encrypted file store"
    }
    fn load(&self, provider: &str) -> Result<Option<StoredSession>, StoreError> {
        self.inner.load(provider)
    }
    fn save(&self, provider: &str, session: &StoredSession) -> Result<(), StoreError> {
        self.entered.send_modify(|n| *n += 1);
        self.saves.pass();
        let result = self.inner.save(provider, session);
        self.finished.send_modify(|n| *n += 1);
        result
    }
    fn delete(&self, provider: &str) -> Result<(), StoreError> {
        self.inner.delete(provider)
    }
    fn list(&self) -> Result<Vec<String>, StoreError> {
        self.inner.list()
    }
}

pub(super) fn key() -> StoreKey {
    StoreKey::from_bytes(&[7; 32]).unwrap()
}

/// A login's save is held in the store, past the store's timeout; a
/// logout cancels the login; then the held save completes. The logout's
/// delete, made last, must be what the store ends with, and a restart must
/// find the session logged out.
///
/// The save that times out makes the store unavailable, so the logout's
/// delete is not tried then (the logout says the store failed): the
/// store's recovery makes it, while the save is still held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_held_in_the_store_cannot_undo_a_later_logout() {
    let emulator = super::fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("sessions");
    let store = Arc::new(SlowedStore::new(EncryptedFileStore::new(&records, key())));
    // A store timeout shorter than any the config takes (5 s at least):
    // the held save must outlast it, and the test waits it out.
    let mut config = super::demo_config(&emulator, dir.path(), "");
    config.daemon.store_timeout = Duration::from_millis(500);
    let broker = super::broker_for(&config, store.clone(), Arc::new(SystemClock));
    broker.start(None).await;
    let caller = Caller::uid(1000);

    let held = store.hold_saves();
    let mut login = broker.login(&caller, "demo").await.unwrap();
    let prompt = login.prompt().await.unwrap().expect("a prompt");
    emulator.approve(&prompt.user_code).unwrap();
    // The login's save is in the store now, held.
    store
        .entered
        .subscribe()
        .wait_for(|n| *n >= 1)
        .await
        .unwrap();

    let logged_out = broker.logout(&caller, "demo").await;
    assert!(
        matches!(logged_out, Err(BrokerError::RecordNotDeleted { .. })),
        "{logged_out:?}"
    );
    // The recovery lists the records (the store answers that) and makes
    // the delete; the held save is still in the store.
    let writes = broker.inner.shared.record_writes.slot("demo");
    let mut made = writes.writes_made();
    let health = &broker.inner.shared.store_health;
    health.nudge();
    made.wait_for(|n| *n >= 2).await.unwrap();
    drop(held);
    store
        .finished
        .subscribe()
        .wait_for(|n| *n >= 1)
        .await
        .unwrap();
    health
        .subscribe()
        .wait_for(StoreState::is_available)
        .await
        .unwrap();

    let on_disk = EncryptedFileStore::new(&records, key());
    assert!(
        on_disk.load("demo").unwrap().is_none(),
        "the late save of the cancelled login brought the session back"
    );
    broker.shutdown(Duration::from_secs(1)).await;
    let restarted = broker_after_restart(&emulator, dir.path(), &records).await;
    let status = &restarted.status(&caller, Some("demo")).unwrap()[0];
    assert_eq!(status.phase, SessionPhase::LoggedOut);
    restarted.shutdown(Duration::from_secs(1)).await;
}

async fn broker_after_restart(
    emulator: &Emulator,
    dir: &std::path::Path,
    records: &std::path::Path,
) -> Broker {
    let broker = broker_on_emulator(
        emulator,
        dir,
        Arc::new(EncryptedFileStore::new(records, key())),
    );
    broker.start(None).await;
    broker
}
