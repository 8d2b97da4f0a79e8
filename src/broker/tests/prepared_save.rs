//! A refresh's store write made ready while the provider answers (the
//! encrypted file store creates its temporary file then, when it has no
//! spare), through the broker with a real emulator and a real file store:
//! the save that follows writes through that file, a later one through the
//! spare, and a refresh that fails leaves no file behind.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokend_emulator::{Emulator, Endpoint, Fault};
use tokio::sync::watch;

use super::{broker_on_emulator, fast_emulator, log_in_demo};
use crate::broker::{Broker, Caller};
use crate::store::{EncryptedFileStore, PreparedSave, Store, StoreError, StoreKey, StoredSession};

/// The encrypted file store, counting what the broker asks of it.
#[derive(Debug)]
struct CountingStore {
    inner: EncryptedFileStore,
    /// Preparations made.
    prepared: AtomicUsize,
    /// Prepared saves whose record ended up in the very file prepared.
    through_prepared_file: AtomicUsize,
    /// Saves of any kind that completed.
    saves: watch::Sender<usize>,
}

impl Store for CountingStore {
    fn name(&self) -> &'static str {
        "counting encrypted file store"
    }
    fn load(&self, provider: &str) -> Result<Option<StoredSession>, StoreError> {
        self.inner.load(provider)
    }
    fn save(&self, provider: &str, session: &StoredSession) -> Result<(), StoreError> {
        let result = self.inner.save(provider, session);
        self.saves.send_modify(|n| *n += 1);
        result
    }
    fn prepares_saves(&self) -> bool {
        self.inner.prepares_saves()
    }
    fn prepare_save(&self, provider: &str) -> PreparedSave {
        self.prepared.fetch_add(1, Ordering::SeqCst);
        self.inner.prepare_save(provider)
    }
    fn save_prepared(
        &self,
        provider: &str,
        session: &StoredSession,
        prepared: PreparedSave,
    ) -> Result<(), StoreError> {
        let made = prepared
            .temp_path()
            .map(|path| std::fs::metadata(path).unwrap().ino());
        let result = self.inner.save_prepared(provider, session, prepared);
        let record = self.inner.file_of(provider).unwrap();
        if made.is_some() && made == std::fs::metadata(record).ok().map(|m| m.ino()) {
            self.through_prepared_file.fetch_add(1, Ordering::SeqCst);
        }
        self.saves.send_modify(|n| *n += 1);
        result
    }
    fn delete(&self, provider: &str) -> Result<(), StoreError> {
        self.inner.delete(provider)
    }
    fn list(&self) -> Result<Vec<String>, StoreError> {
        self.inner.list()
    }
}

/// A broker on `emulator` whose provider `demo` is logged in, over a
/// counting file store in `dir`; and the store.
async fn logged_in(emulator: &Emulator, dir: &Path) -> (Broker, Arc<CountingStore>) {
    let store = Arc::new(CountingStore {
        inner: EncryptedFileStore::new(dir, StoreKey::from_bytes(&[9; 32]).unwrap()),
        prepared: AtomicUsize::new(0),
        through_prepared_file: AtomicUsize::new(0),
        saves: watch::Sender::new(0),
    });
    let broker = broker_on_emulator(emulator, dir, store.clone());
    broker.start(None).await;
    log_in_demo(&broker, emulator).await;
    assert_eq!(*store.saves.borrow(), 1, "the login's save");
    assert_eq!(
        store.prepared.load(Ordering::SeqCst),
        0,
        "a login prepares nothing"
    );
    // The login's save made the record's spare, which every later save
    // writes in place; without it (a record an older version saved) a
    // refresh's save needs a new file, made while the provider answers.
    std::fs::remove_file(store.inner.directory().join(".demo.spare")).unwrap();
    (broker, store)
}

#[tokio::test]
async fn a_refresh_saves_through_the_file_made_while_the_provider_answered() {
    let emulator = fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (broker, store) = logged_in(&emulator, dir.path()).await;
    // A request for two hours of life refreshes first (the login's token
    // lives one); the new token lives 3 s, too short for the request, and
    // is refreshed in the background before it expires.
    emulator.set_access_token_lifetime(Duration::from_secs(3));
    let short = broker
        .token(&Caller::uid(1000), "demo", Duration::from_secs(2 * 3600))
        .await;
    assert!(short.is_err(), "{short:?}");
    assert_eq!(*store.saves.borrow(), 2);
    assert_eq!(store.prepared.load(Ordering::SeqCst), 1);
    assert_eq!(store.through_prepared_file.load(Ordering::SeqCst), 1);
    // The login's record file stayed behind as the spare.
    let spare = ".demo.spare";
    assert_eq!(store.inner.file_names(), [spare, "demo.session"]);
    // The next refresh (the background's, of the 3-second token; its
    // token lives long) writes the spare in place: nothing to prepare,
    // and the record is the spare's file.
    let spare_file = std::fs::metadata(store.inner.directory().join(spare))
        .unwrap()
        .ino();
    emulator.set_access_token_lifetime(Duration::from_secs(4 * 3600));
    let mut saves = store.saves.subscribe();
    tokio::time::timeout(Duration::from_secs(30), saves.wait_for(|n| *n >= 3))
        .await
        .expect("the background refresh's save")
        .unwrap();
    assert_eq!(*store.saves.borrow(), 3);
    assert_eq!(store.prepared.load(Ordering::SeqCst), 2);
    assert_eq!(store.through_prepared_file.load(Ordering::SeqCst), 1);
    let record = store.inner.file_of("demo").unwrap();
    assert_eq!(std::fs::metadata(record).unwrap().ino(), spare_file);
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_failed_refresh_leaves_no_prepared_file() {
    let emulator = fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (broker, store) = logged_in(&emulator, dir.path()).await;
    emulator.inject(Endpoint::Token, Fault::Status(503), 1);
    let refused = broker
        .token(&Caller::uid(1000), "demo", Duration::from_secs(2 * 3600))
        .await;
    assert!(refused.is_err(), "{refused:?}");
    // The preparation runs, then is undone, in the background (it may not
    // have started when the failure is answered); a stop waits for both.
    broker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(store.prepared.load(Ordering::SeqCst), 1);
    assert_eq!(store.inner.file_names(), ["demo.session"]);
    assert_eq!(*store.saves.borrow(), 1, "nothing saved after the login");
}

/// A store that is down gets no preparation: the save is not tried during
/// an outage, and against a hung store each preparation would pin one more
/// blocking thread, outside the cap on calls that never returned.
#[tokio::test]
async fn a_store_that_is_down_gets_no_preparation() {
    let emulator = fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (broker, store) = logged_in(&emulator, dir.path()).await;
    broker
        .inner
        .shared
        .store_health
        .failed(&StoreError::Failed {
            store: "counting encrypted file store",
            reason: "no answer within 30 s".into(),
        });
    emulator.set_access_token_lifetime(Duration::from_secs(4 * 3600));
    broker
        .token(&Caller::uid(1000), "demo", Duration::from_secs(2 * 3600))
        .await
        .unwrap();
    broker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(store.prepared.load(Ordering::SeqCst), 0);
}
