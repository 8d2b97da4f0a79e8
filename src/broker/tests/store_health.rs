//! The store's one health state: a transition per outage however many
//! sessions meet it, per-record problems left to their sessions, and one
//! retry loop that restores every waiting session when the store is back.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::broker::SessionPhase;
use crate::broker::clock::{OffsetClock, SystemClock, unix_secs};
use crate::broker::store_health::*;
use crate::broker::watched_store::WatchedStore;
use crate::broker::{Broker, BrokerError, BrokerEvent, Caller, session_identity};
use crate::secret::Secret;
use crate::store::{MemoryStore, STORED_SESSION_VERSION, Store, StoreError, StoredSession};

fn locked() -> StoreError {
    StoreError::Locked {
        store: "test store",
        reason: "store locked: unlock your keyring".into(),
    }
}

fn corrupt(provider: &str) -> StoreError {
    StoreError::Corrupt {
        store: "test store",
        provider: provider.into(),
        reason: "modified or damaged".into(),
    }
}

#[test]
fn only_record_problems_are_left_to_the_sessions() {
    let failed = StoreError::Failed {
        store: "s",
        reason: "disk full".into(),
    };
    let unavailable = StoreError::Unavailable {
        store: "s",
        reason: "no bus".into(),
    };
    assert!(locked().is_store_wide() && failed.is_store_wide() && unavailable.is_store_wide());
    let wrong_key = StoreError::WrongKey {
        store: "s",
        provider: "p".into(),
        found: "a".into(),
        expected: "b".into(),
    };
    assert!(!corrupt("p").is_store_wide() && !wrong_key.is_store_wide());
}

#[test]
fn many_failures_are_one_transition_and_the_reason_stays_current() {
    let health = StoreHealth::new("test store", Arc::new(OffsetClock::new()));
    let mut changes = health.subscribe();
    assert!(health.is_available() && health.report().is_available());
    for _ in 0..10_000 {
        health.failed(&locked());
    }
    assert!(changes.has_changed().unwrap());
    let StoreState::Unavailable { since, .. } = *changes.borrow_and_update() else {
        panic!("unavailable");
    };
    let missing = StoreError::Unavailable {
        store: "test store",
        reason: "no Secret Service on the session bus".into(),
    };
    health.failed(&locked());
    // The same failure again: nobody is told anything.
    assert!(!changes.has_changed().unwrap());
    health.failed(&missing);
    // No second transition, but a new reason, which the watchers are told
    // (D-Bus signals `StoreError`) and the status shows; the outage's
    // start stays.
    assert!(changes.has_changed().unwrap());
    assert!(!changes.borrow_and_update().is_available());
    let outage = health.report().outage.expect("unavailable");
    assert_eq!(outage.since, since);
    assert!(outage.reason.contains("no Secret Service"));

    assert!(health.recovered(ProbeCause::Schedule).is_some());
    assert!(health.is_available() && health.error().is_none());
    assert!(health.recovered(ProbeCause::Schedule).is_none(), "once");
}

#[test]
fn requests_try_the_store_once_per_spacing_for_the_whole_daemon() {
    let health = StoreHealth::new("test store", Arc::new(OffsetClock::new()));
    let now = SystemTime::now();
    assert!(health.claim_on_demand(now));
    assert!(!health.claim_on_demand(now + Duration::from_secs(1)));
    assert!(health.claim_on_demand(now + Duration::from_secs(6)));
}

/// A store whose calls can all be made to fail store-wide, one of whose
/// records can be damaged; counts its calls.
#[derive(Debug, Default)]
struct FlakyStore {
    inner: MemoryStore,
    locked: AtomicBool,
    damaged: Mutex<Option<String>>,
    loads: AtomicUsize,
    lists: AtomicUsize,
}

impl FlakyStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.locked.load(Ordering::SeqCst) {
            return Err(locked());
        }
        Ok(())
    }
}

impl Store for FlakyStore {
    fn name(&self) -> &'static str {
        "test store"
    }
    fn load(&self, provider: &str) -> Result<Option<StoredSession>, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        if self.damaged.lock().unwrap().as_deref() == Some(provider) {
            return Err(corrupt(provider));
        }
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
}

#[test]
fn a_damaged_record_is_not_the_stores_problem_but_a_listing_is() {
    let store = Arc::new(FlakyStore::default());
    *store.damaged.lock().unwrap() = Some("p".into());
    let health = Arc::new(StoreHealth::new("test store", Arc::new(SystemClock)));
    let metrics = Arc::new(crate::broker::Metrics::default());
    let watched = WatchedStore::new(store.clone(), Arc::clone(&health), Arc::clone(&metrics));
    assert!(matches!(watched.load("p"), Err(StoreError::Corrupt { .. })));
    assert!(health.is_available());
    store.locked.store(true, Ordering::SeqCst);
    assert!(watched.list().is_err());
    assert_eq!(health.error(), Some(locked()));
    // Both failures count as store errors in the metrics, store-wide or not.
    assert_eq!(metrics.store_errors(), 2);
}

const PROVIDERS: usize = 300;

/// A broker with [`PROVIDERS`] providers, all with a record in `store`.
fn broker_with_records(dir: &std::path::Path, store: &Arc<FlakyStore>) -> Broker {
    let mut text = String::from("[daemon]\nsocket = \"/run/t/t.sock\"\nstore = \"memory\"\n");
    for i in 0..PROVIDERS {
        let _ = write!(
            text,
            "[providers.p{i:03}]\ndevice_authorization_endpoint = \"http://127.0.0.1:9/device\"\n\
             token_endpoint = \"http://127.0.0.1:9/token\"\nclient_id = \"cid\"\n"
        );
    }
    let config = super::config_in(dir, &text);
    let expires = SystemTime::now() + Duration::from_secs(3600);
    for provider in &config.providers {
        let record = StoredSession {
            version: STORED_SESSION_VERSION,
            identity: session_identity(provider),
            refresh_token: Some(Secret::from(format!("rt-{}", provider.name))),
            obtained_at: unix_secs(SystemTime::now()),
            scope: None,
            access_token: Some(Secret::from(format!("at-{}", provider.name))),
            token_type: Some("Bearer".into()),
            expires_at: Some(unix_secs(expires)),
            refresh_expires_at: None,
            ended: None,
        };
        store.inner.save(&provider.name, &record).unwrap();
    }
    super::broker_for(&config, store.clone(), Arc::new(OffsetClock::new()))
}

#[tokio::test]
async fn one_loop_restores_every_waiting_session_when_the_store_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FlakyStore::default());
    let broker = broker_with_records(dir.path(), &store);
    *store.damaged.lock().unwrap() = Some("p007".into());
    store.locked.store(true, Ordering::SeqCst);
    let health = Arc::clone(&broker.inner.shared.store_health);
    // Probes far apart: the test lets the store come back before the first.
    health.set_retry(Duration::from_millis(200), Duration::from_millis(400));
    let mut events = broker.subscribe();
    broker.start(None).await;

    // One listing failed: no record read, nothing scheduled, every session
    // waits; the store's state is said once, not per session.
    assert_eq!(store.loads.load(Ordering::SeqCst), 0);
    assert!(broker.inner.shared.scheduler.is_empty());
    let caller = Caller::uid(1000);
    let statuses = broker.status(&caller, None).unwrap();
    assert!(
        statuses
            .iter()
            .all(|s| s.phase == SessionPhase::LoggedOut && s.last_error.is_none())
    );
    assert!(!broker.store_status().is_available());

    store.locked.store(false, Ordering::SeqCst);
    // Every session but the damaged one becomes active, each announced.
    let mut restored = HashSet::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while restored.len() < PROVIDERS {
            if let Ok(BrokerEvent::StateChanged { provider }) = events.recv().await {
                restored.insert(provider);
            }
        }
    })
    .await
    .expect("every session heard of");
    assert!(health.is_available());
    // Each record was read once: the sessions had no retries of their own.
    assert_eq!(store.loads.load(Ordering::SeqCst), PROVIDERS);
    let statuses = broker.status(&caller, None).unwrap();
    for status in &statuses {
        if status.name == "p007" {
            // Its record's own trouble, said as such: not logged out.
            assert_eq!(status.phase, SessionPhase::Unreadable);
            assert!(status.last_error.as_deref().unwrap().contains("damaged"));
        } else {
            assert_eq!(status.phase, SessionPhase::Active, "{status:?}");
        }
    }
    let token = broker.token(&caller, "p299", Duration::ZERO).await.unwrap();
    assert_eq!(token.secret.expose(), "at-p299");
    let err = broker
        .token(&caller, "p007", Duration::ZERO)
        .await
        .unwrap_err();
    // The record's trouble, not "log in" (which would replace it).
    assert!(
        matches!(&err, BrokerError::Store { source, .. } if !source.is_store_wide()),
        "{err}"
    );
    broker.shutdown(Duration::from_secs(1)).await;
}

#[test]
fn a_new_reason_during_an_outage_is_not_a_new_outage() {
    // The outage's one line is its first failure's; a later failure with
    // another reason keeps the reason current without a second line (the
    // journal's count of `store_unavailable` counts outages).
    let health = StoreHealth::new("test store", Arc::new(OffsetClock::new()));
    let hung = StoreError::Failed {
        store: "test store",
        reason: "no answer within 30 s".into(),
    };
    assert!(health.failed(&hung));
    assert!(!health.failed(&locked()));
    assert!(!health.failed(&locked()));
    match health.state() {
        StoreState::Unavailable { error, .. } => assert_eq!(error, locked()),
        StoreState::Available => panic!("available"),
    }
}
