//! A provider added by a reload refreshes in the background from the
//! start. Its restore plans its first wake-up while the reload still runs
//! (other providers restored, retired sessions let go); a wake-up that
//! came then found no session of that name (the new map is installed
//! last), was dropped, and nothing refreshed the session until a caller
//! asked: no refresh ahead of expiry, no warning, and a provider that ends
//! unused refresh tokens ended the login.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokend_emulator::Emulator;
use tokio::sync::watch;

use super::restore_waits_for_store::LockableStore;
use super::{Gate, broker_on_emulator, config_in, fast_emulator, log_in_demo};
use crate::config::Config;
use crate::store::{MemoryStore, Store, StoreError, StoredSession};

/// A memory store whose loads of `later` wait at a gate.
#[derive(Debug, Default)]
struct GatedStore {
    inner: MemoryStore,
    later: Gate,
    /// Loads of `later` that reached the gate.
    at_gate: watch::Sender<usize>,
}

impl Store for GatedStore {
    fn name(&self) -> &'static str {
        "gated memory store"
    }
    fn load(&self, provider: &str) -> Result<Option<StoredSession>, StoreError> {
        if provider == "later" {
            self.at_gate.send_modify(|n| *n += 1);
            self.later.pass();
        }
        self.inner.load(provider)
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
}

/// A config of `names`, each a provider on `emulator`.
pub(super) fn config(emulator: &Emulator, dir: &Path, names: &[&str]) -> Config {
    let mut text = String::from("[daemon]\nsocket = \"/run/t/t.sock\"\nstore = \"memory\"\n");
    for name in names {
        let _ = write!(
            text,
            "[providers.{name}]\ndevice_authorization_endpoint = \"{}\"\n\
             token_endpoint = \"{}\"\nclient_id = \"tokend-test\"\n",
            emulator.device_authorization_endpoint(),
            emulator.token_endpoint()
        );
    }
    config_in(dir, &text)
}

/// Waits, up to 20 s, until `done` says so.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "still not: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_provider_a_reload_adds_refreshes_though_its_first_wake_up_came_during_the_reload() {
    let emulator = fast_emulator().await;
    emulator.set_access_token_lifetime(Duration::from_secs(1));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(GatedStore::default());
    let broker = broker_on_emulator(&emulator, dir.path(), Arc::clone(&store) as Arc<dyn Store>);
    broker.start(None).await;
    log_in_demo(&broker, &emulator).await;

    // `demo` leaves the config; its record stays, and its access token
    // (of a second) expires meanwhile.
    emulator.set_access_token_lifetime(Duration::from_secs(3600));
    broker
        .reload(&config(&emulator, dir.path(), &["other"]))
        .await;
    let stored = store.inner.load("demo").unwrap().expect("demo's record");
    let expired_at = std::time::UNIX_EPOCH
        + Duration::from_secs(u64::try_from(stored.expires_at.unwrap()).unwrap());
    until("demo's stored token expired", || {
        std::time::SystemTime::now() > expired_at
    })
    .await;

    // `demo` comes back beside `later`, whose restore waits at the gate:
    // `demo` is restored (its overdue refresh planned within 5 s) and its
    // wake-up comes while the reload waits.
    let held = store.later.hold();
    let reload = {
        let broker = broker.clone();
        let config = config(&emulator, dir.path(), &["demo", "later", "other"]);
        tokio::spawn(async move { broker.reload(&config).await })
    };
    let mut at_gate = store.at_gate.subscribe();
    at_gate.wait_for(|n| *n > 0).await.unwrap();
    // `demo` came first in the reload: restored, its wake-up planned. The
    // wake-up comes (perhaps it came already) while `later` waits.
    let scheduler = &broker.inner.shared.scheduler;
    until("demo's wake-up came", || scheduler.due("demo").is_none()).await;
    drop(held);
    let summary = reload.await.unwrap();
    assert_eq!(summary.added, ["demo", "later"]);

    // The refresh comes all the same, with nobody asking for a token.
    let refreshes = emulator.refresh_count();
    until("demo refreshed in the background", || {
        emulator.refresh_count() > refreshes
    })
    .await;
    emulator.assert_no_violations();
    broker.shutdown(Duration::from_secs(1)).await;
}

/// A store that comes back while a reload waits (here for the refresh in
/// flight of a provider it removes): the store's recovery restores the
/// sessions of the map it finds, which does not have the one the reload
/// added during the outage yet. That session had a record to read and
/// stayed logged out, with no background refresh, until a caller asked
/// for its token or the daemon restarted.
#[tokio::test]
async fn a_provider_a_reload_adds_during_an_outage_is_restored_when_the_store_comes_back_meanwhile()
{
    let emulator = fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LockableStore::default());
    let broker = broker_on_emulator(&emulator, dir.path(), Arc::clone(&store) as Arc<dyn Store>);
    broker.start(None).await;
    log_in_demo(&broker, &emulator).await;
    // `later`'s record: the same client and endpoint as `demo`'s.
    let record = store.inner.load("demo").unwrap().expect("demo's record");
    store.inner.save("later", &record).unwrap();

    // A refresh of `demo` that the provider answers 3 s late.
    emulator.inject(
        tokend_emulator::Endpoint::Token,
        tokend_emulator::Fault::Delay(Duration::from_secs(3)),
        1,
    );
    let refresh = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let caller = crate::broker::Caller::uid(1000);
            broker
                .token(&caller, "demo", Duration::from_secs(7200))
                .await
        })
    };
    let refreshes = emulator.refresh_count();
    until("demo's refresh reached the provider", || {
        emulator.refresh_count() > refreshes
    })
    .await;

    // The store goes down; a reload adds `later` (which waits for the
    // store) and removes `demo` (and waits for its refresh).
    store
        .locked
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let health = Arc::clone(&broker.inner.shared.store_health);
    health.failed(&store.check().unwrap_err());
    let reload = {
        let broker = broker.clone();
        let config = config(&emulator, dir.path(), &["later"]);
        tokio::spawn(async move { broker.reload(&config).await })
    };
    // The reload runs up to its wait for `demo`'s refresh.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!reload.is_finished());

    // The store comes back meanwhile, and its recovery is done.
    store
        .locked
        .store(false, std::sync::atomic::Ordering::SeqCst);
    health.nudge();
    until("the store is available again", || health.is_available()).await;
    let summary = reload.await.unwrap();
    assert_eq!(summary.added, ["later"]);
    let _ = refresh.await;

    // Restored: active, with nobody asking for its token.
    let caller = crate::broker::Caller::uid(1000);
    until("later restored", || {
        broker
            .status(&caller, Some("later"))
            .is_ok_and(|s| s[0].phase == crate::broker::SessionPhase::Active)
    })
    .await;
    broker.shutdown(Duration::from_secs(1)).await;
}
