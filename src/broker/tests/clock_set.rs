//! The wall clock set ahead or back while tokend runs (NTP's first sync
//! on a machine without a battery-backed clock, a dual-boot machine's
//! local-time clock corrected): what the sessions hold moves with it, and
//! a device login's code keeps its life. With a real emulator and a clock
//! set as the kernel's would be (the wall time moves, the time since boot
//! does not).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokend_emulator::Emulator;

use super::{demo_config, fast_emulator, log_in_demo};
use crate::broker::clock::unix_secs;
use crate::broker::clock::{Clock, OffsetClock};
use crate::broker::{Broker, BrokerEvent, Caller};
use crate::store::{MemoryStore, Store};

/// A started broker on `emulator` whose clock is `clock`.
async fn broker_with(
    emulator: &Emulator,
    dir: &std::path::Path,
    clock: Arc<OffsetClock>,
) -> Broker {
    broker_over(emulator, dir, clock, Arc::new(MemoryStore::default())).await
}

/// [`broker_with`] over `store`.
async fn broker_over(
    emulator: &Emulator,
    dir: &std::path::Path,
    clock: Arc<OffsetClock>,
    store: Arc<dyn Store>,
) -> Broker {
    let config = demo_config(emulator, dir, "");
    let broker = super::broker_for(&config, store, clock);
    broker.start(None).await;
    broker
}

/// Waits (at most 10 s) for `demo` to say its state changed, as a session
/// does once it has heard of the clock being set.
async fn demo_changed(events: &mut tokio::sync::broadcast::Receiver<BrokerEvent>) {
    let changed = async {
        loop {
            if let BrokerEvent::StateChanged { provider } = events.recv().await.unwrap()
                && provider == "demo"
            {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), changed)
        .await
        .expect("demo heard of the clock being set");
}

/// How far `at` is from `clock`'s now, in whole seconds (negative: past).
fn secs_from_now(clock: &OffsetClock, at: Option<SystemTime>) -> i64 {
    let at = at.expect("a time");
    match at.duration_since(clock.now()) {
        Ok(ahead) => i64::try_from(ahead.as_secs()).unwrap(),
        Err(behind) => -i64::try_from(behind.duration().as_secs()).unwrap(),
    }
}

#[tokio::test]
async fn a_clock_set_back_moves_the_sessions_times_with_it() {
    let emulator = fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(OffsetClock::new());
    let broker = broker_with(&emulator, dir.path(), Arc::clone(&clock)).await;
    log_in_demo(&broker, &emulator).await;
    let report = || {
        broker
            .status(&Caller::uid(1000), Some("demo"))
            .unwrap()
            .remove(0)
    };
    let before = report();
    let left = secs_from_now(&clock, before.expires_at);
    let planned = secs_from_now(&clock, before.next_refresh);
    assert!((3590..=3600).contains(&left), "{left}");

    for back in [7200, 3600] {
        let mut events = broker.subscribe();
        clock.set(Duration::ZERO, Duration::from_secs(back));
        broker.inner.shared.scheduler.poke();
        // The session says its times changed once it has moved them.
        demo_changed(&mut events).await;
        let after = report();
        // As far from now as before the clock was set (a few seconds for
        // the test's own time), not two hours more; the token is still
        // served, and no refresh was made.
        let left_now = secs_from_now(&clock, after.expires_at);
        assert!(
            (left - 10..=left).contains(&left_now),
            "{left_now} left, {left} before"
        );
        let planned_now = secs_from_now(&clock, after.next_refresh);
        assert!(
            (planned - 10..=planned).contains(&planned_now),
            "{planned_now}, {planned} before"
        );
        let last = secs_from_now(&clock, after.last_refresh);
        assert!((-10..=0).contains(&last), "last refresh {last} s from now");
    }
    assert_eq!(emulator.refresh_count(), 0);
    broker.shutdown(Duration::from_secs(1)).await;
}

/// Set back, the moved times are saved too: a restart read the record's
/// old ones, and served the dead token for the step's length.
#[tokio::test]
async fn a_clock_set_back_saves_the_moved_times() {
    let emulator = fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(OffsetClock::new());
    let store = Arc::new(MemoryStore::default());
    let broker = broker_over(
        &emulator,
        dir.path(),
        Arc::clone(&clock),
        Arc::clone(&store) as Arc<dyn Store>,
    )
    .await;
    log_in_demo(&broker, &emulator).await;
    let stored = |store: &MemoryStore| store.load("demo").unwrap().unwrap().expires_at.unwrap();
    let before = stored(&store);
    let mut events = broker.subscribe();
    clock.set(Duration::ZERO, Duration::from_secs(7200));
    broker.inner.shared.scheduler.poke();
    // Heard of the step, then saved.
    demo_changed(&mut events).await;
    demo_changed(&mut events).await;
    assert_eq!(stored(&store), before - 7200);
    broker.shutdown(Duration::from_secs(1)).await;
}

/// A session restored from the store, whose expiry is a date written
/// while the clock was right, keeps it when the clock is set right after
/// the start (a board without a battery-backed clock, started ten hours
/// behind, then set by NTP): moved with the clock, the token would look
/// to have eleven hours and be served dead for ten.
#[tokio::test]
async fn a_restored_expiry_stays_where_it_is_when_the_clock_is_set() {
    let emulator = fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(&emulator, dir.path(), "");
    let store = Arc::new(MemoryStore::default());
    let real_expiry = SystemTime::now() + Duration::from_secs(3600);
    let record = super::stored_record(&config, real_expiry);
    store.save("demo", &record).unwrap();
    let clock = Arc::new(OffsetClock::new());
    clock.set(Duration::ZERO, Duration::from_secs(10 * 3600));
    let broker = broker_over(&emulator, dir.path(), Arc::clone(&clock), store).await;
    let mut events = broker.subscribe();
    clock.set(Duration::from_secs(10 * 3600), Duration::ZERO);
    broker.inner.shared.scheduler.poke();
    demo_changed(&mut events).await;
    let report = broker
        .status(&Caller::uid(1000), Some("demo"))
        .unwrap()
        .remove(0);
    assert_eq!(
        report.expires_at.map(unix_secs),
        Some(unix_secs(real_expiry)),
        "{report:?}"
    );
    let planned = secs_from_now(&clock, report.next_refresh);
    assert!((0..3600).contains(&planned), "next refresh in {planned} s");
    broker.shutdown(Duration::from_secs(1)).await;
}

/// A refresh out when the clock is set is dated on the clock as it is
/// set when the answer comes: its token lives as long from now as the
/// provider said, not two hours more (set back while the answer took 2 s).
#[tokio::test]
async fn a_refresh_out_while_the_clock_is_set_dates_its_token_on_the_new_clock() {
    let emulator = fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(OffsetClock::new());
    let broker = broker_with(&emulator, dir.path(), Arc::clone(&clock)).await;
    log_in_demo(&broker, &emulator).await;
    emulator.set_access_token_lifetime(Duration::from_secs(7200));
    emulator.inject(
        tokend_emulator::Endpoint::Token,
        tokend_emulator::Fault::Delay(Duration::from_secs(2)),
        1,
    );
    let asking = broker.clone();
    let token = tokio::spawn(async move {
        asking
            .token(&Caller::uid(1000), "demo", Duration::from_secs(5000))
            .await
    });
    emulator
        .wait_for(|requests| {
            requests
                .iter()
                .any(tokend_emulator::RecordedRequest::is_refresh)
        })
        .await;
    clock.set(Duration::ZERO, Duration::from_secs(7200));
    broker.inner.shared.scheduler.poke();
    let token = token.await.unwrap().unwrap();
    let left = secs_from_now(&clock, token.expires_at);
    assert!((7180..=7200).contains(&left), "{left} s left");
    broker.shutdown(Duration::from_secs(1)).await;
}

/// Set ahead by more than the token's life: the time may have passed
/// unseen (a virtual machine paused while its host slept counts no time
/// since boot either, and its clock is stepped ahead when it runs again).
/// The token is taken as aged, refreshed at once, and its successor lives
/// from now; before, its expiry moved with the clock and the dead token
/// was served as fresh for the step's length, with no refresh.
#[tokio::test]
async fn a_clock_set_ahead_ages_the_token_and_refreshes_it() {
    let emulator = fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(OffsetClock::new());
    let broker = broker_with(&emulator, dir.path(), Arc::clone(&clock)).await;
    log_in_demo(&broker, &emulator).await;
    let first = broker
        .token(&Caller::uid(1000), "demo", Duration::ZERO)
        .await
        .unwrap();
    let mut events = broker.subscribe();
    clock.set(Duration::from_secs(2 * 3600), Duration::ZERO);
    broker.inner.shared.scheduler.poke();
    demo_changed(&mut events).await;
    emulator
        .wait_for(|requests| {
            requests
                .iter()
                .any(tokend_emulator::RecordedRequest::is_refresh)
        })
        .await;
    let token = broker
        .token(&Caller::uid(1000), "demo", Duration::from_secs(600))
        .await
        .unwrap();
    assert_ne!(
        token.secret.expose(),
        first.secret.expose(),
        "the dead token was served"
    );
    let left = secs_from_now(&clock, token.expires_at);
    assert!((3500..=3600).contains(&left), "{left} s left");
    assert_eq!(emulator.refresh_count(), 1);
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_clock_set_ahead_mid_login_leaves_the_code_its_life() {
    let emulator = fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(OffsetClock::new());
    let broker = broker_with(&emulator, dir.path(), Arc::clone(&clock)).await;
    let mut login = broker.login(&Caller::uid(1000), "demo").await.unwrap();
    let prompt = login.prompt().await.unwrap().expect("a prompt");
    // An hour ahead: past the code's 600 s on the wall clock, not in fact.
    clock.set(Duration::from_secs(3600), Duration::ZERO);
    // A late joiner is told what is left of the code, not that it died.
    let mut joined = broker.login(&Caller::uid(1000), "demo").await.unwrap();
    let left = joined
        .prompt()
        .await
        .unwrap()
        .expect("a prompt")
        .expires_in
        .as_secs();
    assert!((590..=600).contains(&left), "{left} s left");
    let polls = emulator.poll_times().len();
    emulator
        .wait_for(move |requests| requests.iter().filter(|r| r.is_poll()).count() >= polls + 2)
        .await;
    emulator.approve(&prompt.user_code).unwrap();
    login
        .outcome()
        .await
        .expect("the login goes on, and succeeds");
    broker.shutdown(Duration::from_secs(1)).await;
}

/// A clock set back while a refresh's new tokens wait for the store (a
/// slow keyring or disk): they were dated on the clock before the step,
/// and move with it once installed, and are saved again. Moved before
/// they were installed, they kept the old clock's times, in memory and in
/// the store: a token of an hour was taken to have three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_set_back_while_new_tokens_are_saved_moves_them_too() {
    use super::write_order::{SlowedStore, key};
    use crate::broker::Freshness;
    use crate::broker::clock::ClockStep;
    let emulator = fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SlowedStore::new(crate::store::EncryptedFileStore::new(
        &dir.path().join("sessions"),
        key(),
    )));
    let clock = Arc::new(OffsetClock::new());
    let config = demo_config(&emulator, dir.path(), "");
    // Not started: the scheduler's clock watch would see the step too;
    // the test hands it to the broker itself, at the moment it chooses.
    let broker = super::broker_for(&config, store.clone(), clock.clone());
    log_in_demo(&broker, &emulator).await;
    let saves = *store.finished.borrow();
    let held = store.hold_saves();
    let refreshing = {
        let broker = broker.clone();
        tokio::spawn(async move {
            // More life than the tokens have: a refresh first.
            let want = Freshness::AtLeast(Duration::from_secs(3700));
            broker.token(&Caller::uid(1000), "demo", want).await
        })
    };
    store
        .entered
        .subscribe()
        .wait_for(|n| *n > saves)
        .await
        .unwrap();
    let back = Duration::from_secs(7200);
    clock.set(Duration::ZERO, back);
    broker.clock_stepped(ClockStep::Back(back));
    drop(held);
    let _ = refreshing.await.unwrap();
    // The refresh's save, then the moved record's.
    let mut finished = store.finished.subscribe();
    let saved_again = tokio::time::timeout(
        Duration::from_secs(10),
        finished.wait_for(|n| *n >= saves + 2),
    )
    .await
    .is_ok();
    let report = broker
        .status(&Caller::uid(1000), Some("demo"))
        .unwrap()
        .remove(0);
    let left = secs_from_now(&clock, report.expires_at);
    assert!((3590..=3600).contains(&left), "{left} s left: {report:?}");
    assert!(saved_again, "the moved record was not saved again");
    assert_eq!(
        store.load("demo").unwrap().unwrap().expires_at,
        report.expires_at.map(unix_secs),
        "the stored expiry"
    );
    broker.shutdown(Duration::from_secs(1)).await;
}
