//! The restore of a session the store refused at start: the session waits
//! for the store with no timer of its own, and a token request tries it
//! (spaced) before it answers with the store's problem. And the other
//! requests that make the retry loop probe at once during an outage: a
//! status request (which waits for the probe), and a token request for a
//! session whose tokens are not saved.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::Gate;
use crate::broker::SessionPhase;
use crate::broker::clock::OffsetClock;
use crate::broker::{Broker, BrokerError, Caller};
use crate::store::{ChangeFeed, MemoryStore, Store, StoreError, StoredSession};

/// A memory store that can be locked, counting loads, with change notices
/// the test sends (as the Secret Service's). Also `reload_added`'s store
/// that goes down during a reload.
#[derive(Debug, Default)]
pub(super) struct LockableStore {
    pub(super) inner: MemoryStore,
    pub(super) locked: AtomicBool,
    loads: AtomicUsize,
    lists: AtomicUsize,
    notices: Mutex<Option<mpsc::UnboundedReceiver<()>>>,
    /// Where making the change feed blocks while held (a session bus that
    /// accepts the connection and answers nothing).
    feed: Gate,
}

impl LockableStore {
    /// The store's error while it is locked.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        if self.locked.load(Ordering::SeqCst) {
            return Err(StoreError::Locked {
                store: "test store",
                reason: "store locked: unlock your keyring".into(),
            });
        }
        Ok(())
    }
}

impl Store for LockableStore {
    fn name(&self) -> &'static str {
        "test store"
    }
    fn load(&self, provider: &str) -> Result<Option<StoredSession>, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.load(provider)
    }
    fn save(&self, provider: &str, session: &StoredSession) -> Result<(), StoreError> {
        self.check()?;
        self.inner.save(provider, session)
    }
    fn delete(&self, provider: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.delete(provider)
    }
    fn list(&self) -> Result<Vec<String>, StoreError> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.list()
    }
    fn change_feed(&self) -> Option<ChangeFeed> {
        self.feed.pass();
        let notices = self.notices.lock().unwrap().take()?;
        Some(Box::pin(futures_util::stream::unfold(
            notices,
            |mut notices| async move { notices.recv().await.map(|()| ((), notices)) },
        )))
    }
}

fn config(dir: &std::path::Path) -> crate::config::Config {
    super::config_in(
        dir,
        "[daemon]\nsocket = \"/run/t/t.sock\"\nstore = \"memory\"\n\
         [providers.demo]\ndevice_authorization_endpoint = \"http://127.0.0.1:9/device\"\n\
         token_endpoint = \"http://127.0.0.1:9/token\"\nclient_id = \"cid\"\n",
    )
}

#[tokio::test]
async fn a_locked_store_at_start_is_retried_on_token_requests_spaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LockableStore::default());
    let clock = Arc::new(OffsetClock::new());
    let broker = broker_with_a_record(dir.path(), &store, clock.clone());
    store.locked.store(true, Ordering::SeqCst);
    let health = &broker.inner.shared.store_health;
    broker.start(None).await;
    let caller = Caller::uid(1000);
    let loads = || store.loads.load(Ordering::SeqCst);
    // The store could not even list: no record was read, and the session
    // waits for the store with nothing scheduled.
    assert_eq!(loads(), 0);
    assert!(broker.inner.shared.scheduler.is_empty());
    let status = &broker.status(&caller, Some("demo")).unwrap()[0];
    assert_eq!(status.phase, SessionPhase::LoggedOut);
    // The store's problem is the store's, said once, not the session's.
    assert!(status.last_error.is_none(), "{status:?}");
    let store_status = broker.store_status();
    let outage = store_status.outage.expect("the store is unavailable");
    assert!(outage.reason.contains("unlock your keyring"), "{outage:?}");

    // The first request tries; the store error is the answer, not "log
    // in" (which would start a second session).
    let err = broker
        .token(&caller, "demo", Duration::ZERO)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BrokerError::Store {
                source: StoreError::Locked { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(loads(), 1);
    // Requests right after it do not hit the store again.
    store.locked.store(false, Ordering::SeqCst);
    let err = broker
        .token(&caller, "demo", Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Store { .. }), "{err}");
    assert_eq!(loads(), 1);

    // Past the spacing, a request restores the session and is served.
    clock.advance(Duration::from_secs(6));
    let token = broker.token(&caller, "demo", Duration::ZERO).await.unwrap();
    assert_eq!(token.secret.expose(), "at-stored");
    let status = &broker.status(&caller, Some("demo")).unwrap()[0];
    assert_eq!(status.phase, SessionPhase::Active);
    assert!(status.last_error.is_none(), "{status:?}");
    // The read told the retry loop the store works: it says so at once.
    let mut state = health.subscribe();
    tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(crate::broker::StoreState::is_available),
    )
    .await
    .expect("the store is available again")
    .unwrap();
    assert_eq!(loads(), 2);
    broker.shutdown(Duration::from_secs(1)).await;
}

/// A broker on `store`, with one provider whose record is in the store,
/// and its retry loop slowed to an hour: only requests make it probe.
fn broker_with_a_record(
    dir: &std::path::Path,
    store: &Arc<LockableStore>,
    clock: Arc<OffsetClock>,
) -> Broker {
    let config = config(dir);
    let record = super::stored_record(&config, SystemTime::now() + Duration::from_secs(3600));
    store.save("demo", &record).unwrap();
    let broker = super::broker_for(&config, store.clone(), clock);
    let health = &broker.inner.shared.store_health;
    health.set_retry(Duration::from_secs(3600), Duration::from_secs(3600));
    broker
}

#[tokio::test]
async fn a_status_request_sees_a_store_that_works_again_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LockableStore::default());
    let broker = broker_with_a_record(dir.path(), &store, Arc::new(OffsetClock::new()));
    store.locked.store(true, Ordering::SeqCst);
    broker.start(None).await;
    assert!(!broker.store_status().is_available());

    // Unlocked. A caller with no role on any provider learns nothing of
    // the store and makes no probe (it could make the keyring prompt).
    store.locked.store(false, Ordering::SeqCst);
    broker.recheck_store(&Caller::uid(2000)).await;
    assert!(!broker.store_status().is_available());

    // The owner's status request probes and waits for the probe: the
    // answer built next shows the store as it is now, not an hour later.
    broker.recheck_store(&Caller::uid(1000)).await;
    assert!(broker.store_status().is_available());
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn status_requests_probe_a_store_that_is_still_down_once_per_spacing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LockableStore::default());
    let broker = broker_with_a_record(dir.path(), &store, Arc::new(OffsetClock::new()));
    store.locked.store(true, Ordering::SeqCst);
    broker.start(None).await;
    let lists = || store.lists.load(Ordering::SeqCst);
    let at_start = lists();
    let owner = Caller::uid(1000);
    broker.recheck_store(&owner).await;
    assert_eq!(lists(), at_start + 1, "one probe, waited for");
    // A monitor asking in a loop: no more probes within the spacing.
    for _ in 0..20 {
        broker.recheck_store(&owner).await;
    }
    assert_eq!(lists(), at_start + 1);
    assert!(!broker.store_status().is_available());
    broker.shutdown(Duration::from_secs(1)).await;
}

/// A login whose save met a locked store: the tokens are served from
/// memory, unsaved. Once the store is unlocked, the next token request for
/// that session has the retry loop probe at once, which saves them (the
/// loop's own probe is an hour away here).
#[tokio::test]
async fn a_token_request_for_unsaved_tokens_has_them_saved_once_the_store_works() {
    let emulator = super::fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LockableStore::default());
    let broker = super::broker_on_emulator(&emulator, dir.path(), store.clone());
    let health = Arc::clone(&broker.inner.shared.store_health);
    health.set_retry(Duration::from_secs(3600), Duration::from_secs(3600));
    broker.start(None).await;
    let caller = Caller::uid(1000);

    store.locked.store(true, Ordering::SeqCst);
    let mut login = broker.login(&caller, "demo").await.unwrap();
    let prompt = login.prompt().await.unwrap().expect("a prompt");
    emulator.approve(&prompt.user_code).unwrap();
    let _ = login.outcome().await;
    assert!(!health.is_available());
    let status = &broker.status(&caller, Some("demo")).unwrap()[0];
    assert!(!status.saved, "{status:?}");
    assert!(store.inner.load("demo").unwrap().is_none());

    store.locked.store(false, Ordering::SeqCst);
    broker.token(&caller, "demo", Duration::ZERO).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        health
            .subscribe()
            .wait_for(crate::broker::StoreState::is_available),
    )
    .await
    .expect("the request had the store probed")
    .unwrap();
    let status = &broker.status(&caller, Some("demo")).unwrap()[0];
    assert!(status.saved, "{status:?}");
    assert!(store.inner.load("demo").unwrap().is_some());
    broker.shutdown(Duration::from_secs(1)).await;
}

/// The store's change notices (the Secret Service announcing an unlock)
/// make the retry loop probe at once, the loop's own probe being an hour
/// away: a notice while the store is still locked costs one probe and
/// keeps the watch, the next one after the unlock ends the outage, and the
/// log says how it was noticed.
#[tokio::test]
async fn the_stores_change_notices_make_the_retry_loop_probe_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LockableStore::default());
    let (notify, notices) = mpsc::unbounded_channel();
    *store.notices.lock().unwrap() = Some(notices);
    let broker = broker_with_a_record(dir.path(), &store, Arc::new(OffsetClock::new()));
    store.locked.store(true, Ordering::SeqCst);
    broker.start(None).await;
    let health = Arc::clone(&broker.inner.shared.store_health);
    assert!(!health.is_available());
    let lists = || store.lists.load(Ordering::SeqCst);
    let at_start = lists();
    let mut probes = health.probes();

    // A burst of notices (a keyring changing) while the store is still
    // locked: the probes that follow fail, and the loop waits on.
    for _ in 0..5 {
        notify.send(()).unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), probes.changed())
        .await
        .expect("a notice made the loop probe")
        .unwrap();
    assert_eq!(lists(), at_start + 1);
    assert!(!health.is_available());

    // Unlocked, announced: the store is back and the session restored.
    store.locked.store(false, Ordering::SeqCst);
    notify.send(()).unwrap();
    // (The probe is counted once the sessions that waited are restored.)
    tokio::time::timeout(
        Duration::from_secs(30),
        probes.wait_for(|_| health.is_available()),
    )
    .await
    .expect("the notice after the unlock ended the outage")
    .unwrap();
    let status = &broker.status(&Caller::uid(1000), Some("demo")).unwrap()[0];
    assert_eq!(status.phase, SessionPhase::Active, "{status:?}");
    // Two probes: the burst's five notices, all come before the loop woke,
    // were taken by one; neither a request nor the schedule (an hour away)
    // probed.
    assert_eq!(lists() - at_start, 2);
    broker.shutdown(Duration::from_secs(1)).await;
}

/// A change feed that does not come (its bus connection answers nothing)
/// holds nothing: the retry loop still probes when a request asks.
#[tokio::test]
async fn a_change_feed_slow_to_come_holds_no_probe() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LockableStore::default());
    let release = store.feed.hold();
    let broker = broker_with_a_record(dir.path(), &store, Arc::new(OffsetClock::new()));
    store.locked.store(true, Ordering::SeqCst);
    broker.start(None).await;
    let lists = || store.lists.load(Ordering::SeqCst);
    let at_start = lists();

    store.locked.store(false, Ordering::SeqCst);
    broker.recheck_store(&Caller::uid(1000)).await;
    assert_eq!(lists(), at_start + 1, "the status's probe was not made");
    assert!(broker.store_status().is_available());
    drop(release);
    broker.shutdown(Duration::from_secs(1)).await;
}
