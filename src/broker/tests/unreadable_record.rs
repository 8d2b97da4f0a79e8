//! A stored record that could not be read for its own sake (here: a file
//! tokend's user may not read) leaves its session unreadable, not logged
//! out, and is read again: for a `token` request and a `status` request
//! (each at most once per 5 s), and at the store's change notices, so that
//! mending the cause brings the session back without a restart. A logout
//! still deletes it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use crate::broker::clock::OffsetClock;
use crate::broker::{Broker, BrokerError, BrokerEvent, Caller, SessionPhase};
use crate::store::{ChangeFeed, MemoryStore, Store, StoreError, StoredSession};

/// A memory store whose one record can be made unreadable, telling each
/// load, with change notices the test sends (when it takes the feed).
#[derive(Debug, Default)]
struct MendableStore {
    inner: MemoryStore,
    unreadable: AtomicBool,
    loads: AtomicUsize,
    loaded: Mutex<Option<mpsc::UnboundedSender<()>>>,
    notices: Mutex<Option<mpsc::UnboundedReceiver<()>>>,
}

impl MendableStore {
    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
}

fn not_ours() -> StoreError {
    StoreError::Corrupt {
        store: "test store",
        provider: "demo".into(),
        reason: "cannot read demo.session: Permission denied; give it back to the user tokend \
                 runs as"
            .into(),
    }
}

impl Store for MendableStore {
    fn name(&self) -> &'static str {
        "test store"
    }
    fn load(&self, provider: &str) -> Result<Option<StoredSession>, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let result = if self.unreadable.load(Ordering::SeqCst) {
            Err(not_ours())
        } else {
            self.inner.load(provider)
        };
        if let Some(loaded) = self.loaded.lock().unwrap().as_ref() {
            let _ = loaded.send(());
        }
        result
    }
    fn save(&self, provider: &str, session: &StoredSession) -> Result<(), StoreError> {
        self.inner.save(provider, session)
    }
    fn delete(&self, provider: &str) -> Result<(), StoreError> {
        self.inner.delete(provider)
    }
    fn list(&self) -> Result<Vec<String>, StoreError> {
        self.inner.list()
    }
    fn change_feed(&self) -> Option<ChangeFeed> {
        let notices = self.notices.lock().unwrap().take()?;
        Some(Box::pin(futures_util::stream::unfold(
            notices,
            |mut notices| async move { notices.recv().await.map(|()| ((), notices)) },
        )))
    }
}

/// A broker (not started) whose provider `demo` has a record in `store`,
/// unreadable.
fn broker_with_an_unreadable_record(
    dir: &std::path::Path,
    store: &Arc<MendableStore>,
    clock: Arc<OffsetClock>,
) -> Broker {
    let config = super::config_in(
        dir,
        "[daemon]\nsocket = \"/run/t/t.sock\"\nstore = \"memory\"\n\
         [providers.demo]\ndevice_authorization_endpoint = \"http://127.0.0.1:9/device\"\n\
         token_endpoint = \"http://127.0.0.1:9/token\"\nclient_id = \"cid\"\n",
    );
    let record = super::stored_record(&config, SystemTime::now() + Duration::from_secs(3600));
    store.inner.save("demo", &record).unwrap();
    store.unreadable.store(true, Ordering::SeqCst);
    super::broker_for(&config, store.clone(), clock)
}

fn phase(broker: &Broker) -> SessionPhase {
    broker.status(&Caller::uid(1000), Some("demo")).unwrap()[0].phase
}

#[tokio::test]
async fn a_token_request_reads_it_again_spaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MendableStore::default());
    let clock = Arc::new(OffsetClock::new());
    let broker = broker_with_an_unreadable_record(dir.path(), &store, clock.clone());
    broker.start(None).await;
    let caller = Caller::uid(1000);
    assert_eq!(store.loads(), 1);
    let status = &broker.status(&caller, Some("demo")).unwrap()[0];
    assert_eq!(status.phase, SessionPhase::Unreadable);
    let said = status.last_error.as_deref().unwrap();
    assert!(said.contains("Permission denied"), "{said}");
    // Its record's trouble, not "log in" (which would replace it).
    let err = broker.token(&caller, "demo", Duration::ZERO).await;
    assert!(
        matches!(&err, Err(BrokerError::Store { source, .. }) if *source == not_ours()),
        "{err:?}"
    );

    // Mended. A request within 5 s of the last reading reads nothing.
    store.unreadable.store(false, Ordering::SeqCst);
    let err = broker.token(&caller, "demo", Duration::ZERO).await;
    assert!(matches!(err, Err(BrokerError::Store { .. })), "{err:?}");
    assert_eq!(store.loads(), 1, "read again within the spacing");
    // Once 5 s have passed, the request reads it, and gets its token.
    clock.advance(Duration::from_secs(5));
    let token = broker.token(&caller, "demo", Duration::ZERO).await.unwrap();
    assert_eq!(token.secret.expose(), "at-stored");
    assert_eq!(store.loads(), 2);
    assert_eq!(phase(&broker), SessionPhase::Active);
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_status_request_reads_it_again_for_a_caller_who_may_see_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MendableStore::default());
    let clock = Arc::new(OffsetClock::new());
    let broker = broker_with_an_unreadable_record(dir.path(), &store, clock.clone());
    broker.start(None).await;
    store.unreadable.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(5));
    // A caller with no role on it reads nothing.
    broker.reread_records(&Caller::uid(2000), None).await;
    broker
        .reread_records(&Caller::uid(2000), Some("demo"))
        .await;
    assert_eq!(store.loads(), 1);
    assert_eq!(phase(&broker), SessionPhase::Unreadable);
    broker.reread_records(&Caller::uid(1000), None).await;
    assert_eq!(store.loads(), 2);
    assert_eq!(phase(&broker), SessionPhase::Active);
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_stores_change_notice_reads_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MendableStore::default());
    let (notify, notices) = mpsc::unbounded_channel();
    *store.notices.lock().unwrap() = Some(notices);
    let (loaded, mut loads) = mpsc::unbounded_channel();
    *store.loaded.lock().unwrap() = Some(loaded);
    let broker = broker_with_an_unreadable_record(dir.path(), &store, Arc::new(OffsetClock::new()));
    let mut events = broker.subscribe();
    broker.start(None).await;
    loads.recv().await.expect("the start's reading");
    // The feed is taken, and the record read once more (a cause mended
    // before the watch began is not missed): still unreadable.
    loads
        .recv()
        .await
        .expect("the reading once the store is watched");
    assert_eq!(phase(&broker), SessionPhase::Unreadable);

    store.unreadable.store(false, Ordering::SeqCst);
    notify.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(BrokerEvent::StateChanged { provider }) = events.recv().await
                && provider == "demo"
            {
                break;
            }
        }
    })
    .await
    .expect("the session back at the notice");
    assert_eq!(phase(&broker), SessionPhase::Active);
    let token = broker
        .token(&Caller::uid(1000), "demo", Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(token.secret.expose(), "at-stored");
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_logout_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MendableStore::default());
    let broker = broker_with_an_unreadable_record(dir.path(), &store, Arc::new(OffsetClock::new()));
    broker.start(None).await;
    let caller = Caller::uid(1000);
    let outcome = broker.logout(&caller, "demo").await.unwrap();
    assert!(outcome.had_tokens, "a stored session to forget");
    assert!(store.inner.load("demo").unwrap().is_none(), "deleted");
    assert_eq!(phase(&broker), SessionPhase::LoggedOut);
    let err = broker.token(&caller, "demo", Duration::ZERO).await;
    assert!(
        matches!(err, Err(BrokerError::LoginRequired { .. })),
        "{err:?}"
    );
    broker.shutdown(Duration::from_secs(1)).await;
}
