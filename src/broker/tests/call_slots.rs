//! At most `MAX_STORE_CALLS` store calls run at once: a call holds its slot
//! until it returns, even after its caller stopped waiting, so a store that
//! hangs holds that many blocking threads however many calls come; a call
//! that finds no slot free within its timeout fails as a timed-out call,
//! saying why, without being made.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::Poll;
use std::time::Duration;

use crate::broker::clock::SystemClock;
use crate::broker::metrics::Metrics;
use crate::broker::session::counted;
use crate::broker::store_health::{MAX_STORE_CALLS, StoreHealth};
use crate::store::StoreError;

/// Calls that wait for a release only the test sends, counting how many
/// were made.
struct HeldCalls {
    started: Arc<AtomicUsize>,
    release: mpsc::Sender<()>,
    released: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl HeldCalls {
    fn new() -> Self {
        let (release, released) = mpsc::channel();
        Self {
            started: Arc::new(AtomicUsize::new(0)),
            release,
            released: Arc::new(Mutex::new(released)),
        }
    }

    fn call(&self) -> impl FnOnce() -> Result<(), StoreError> + Send + 'static {
        let started = Arc::clone(&self.started);
        let released = Arc::clone(&self.released);
        move || {
            started.fetch_add(1, Ordering::SeqCst);
            let _ = released.lock().unwrap().recv();
            Ok(())
        }
    }

    fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
}

fn health(timeout: Duration) -> Arc<StoreHealth> {
    Arc::new(StoreHealth::new("test store", Arc::new(SystemClock)).with_call_timeout(timeout))
}

type Call = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// Awaits every one of `calls`, polling each once, in order, before any
/// is polled again: every call has taken its slot (and been made) or is
/// waiting for one before any timeout can have passed.
async fn all_together(mut calls: Vec<Call>) -> Vec<Result<(), StoreError>> {
    let mut done: Vec<Option<Result<(), StoreError>>> = calls.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (call, out) in calls.iter_mut().zip(done.iter_mut()) {
            if out.is_none() {
                match call.as_mut().poll(cx) {
                    Poll::Ready(result) => *out = Some(result),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn a_store_that_hangs_holds_at_most_max_store_calls_threads() {
    let health = health(Duration::from_millis(200));
    let metrics = Arc::new(Metrics::default());
    let held = HeldCalls::new();
    let extra = 6;
    let calls: Vec<Call> = (0..MAX_STORE_CALLS + extra)
        .map(|_| {
            Box::pin(counted(
                Arc::clone(&metrics),
                Arc::clone(&health),
                held.call(),
            )) as Call
        })
        .collect();
    let results = all_together(calls).await;

    // Only MAX_STORE_CALLS were made; they timed out and still wait on
    // the store, each with its slot.
    assert_eq!(held.started(), MAX_STORE_CALLS);
    let timed_out = results
        .iter()
        .filter(
            |r| matches!(r, Err(e) if e.to_string().contains("no answer within 0 s (a keyring")),
        )
        .count();
    assert_eq!(timed_out, MAX_STORE_CALLS, "{results:?}");
    // The others waited their timeout for a slot, and say so.
    let waited = results
        .iter()
        .filter(|r| {
            matches!(r, Err(e) if e.to_string().contains(&format!(
                "no answer within 0 s: it waited for one of the {MAX_STORE_CALLS} earlier calls \
                 still waiting on the store"
            )))
        })
        .count();
    assert_eq!(waited, extra, "{results:?}");
    // Each counted as a store error, as a call that timed out is.
    assert_eq!(metrics.store_errors(), (MAX_STORE_CALLS + extra) as u64);
    assert!(
        health.try_call_slot().is_none(),
        "the hung calls hold every slot"
    );

    // The store answers: the slots come back with the calls' returns, and
    // calls are made again.
    for _ in 0..=MAX_STORE_CALLS {
        held.release.send(()).unwrap();
    }
    let mut slots = Vec::new();
    for _ in 0..MAX_STORE_CALLS {
        slots.push(
            health
                .call_slot(Duration::from_secs(30))
                .await
                .expect("every slot is given back when its call returns"),
        );
    }
    drop(slots);
    // The calls' returns are counted off the hung ones by tasks of their
    // own: waited for, boundedly.
    for _ in 0..3000 {
        if health.may_call().is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        counted(Arc::clone(&metrics), Arc::clone(&health), held.call()).await,
        Ok(())
    );
    assert_eq!(held.started(), MAX_STORE_CALLS + 1);
}

/// Slots taken by calls still running (not timed out: no hung call to
/// refuse for): a new call waits its timeout for one, fails as timed out
/// (counted), is not made, and leaves nothing hung behind it.
#[tokio::test]
async fn a_call_with_no_free_slot_fails_as_timed_out_without_being_made() {
    let health = health(Duration::from_millis(100));
    let metrics = Arc::new(Metrics::default());
    let held = HeldCalls::new();
    let taken: Vec<_> = (0..MAX_STORE_CALLS)
        .map(|_| health.try_call_slot().expect("a free slot"))
        .collect();
    assert!(health.try_call_slot().is_none());
    let e = counted(Arc::clone(&metrics), Arc::clone(&health), held.call())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains(&format!(
            "store failed: no answer within 0 s: it waited for one of the {MAX_STORE_CALLS} \
             earlier calls still waiting on the store (no more are made at once), and was not made"
        )),
        "{e}"
    );
    assert_eq!(held.started(), 0);
    assert_eq!(metrics.store_errors(), 1);
    // Not a hung call: with a slot free, the next call is made at once.
    drop(taken);
    held.release.send(()).unwrap();
    assert_eq!(
        counted(Arc::clone(&metrics), Arc::clone(&health), held.call()).await,
        Ok(())
    );
    assert_eq!(held.started(), 1);
}
