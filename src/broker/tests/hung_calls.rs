//! A store that never answers holds one blocking thread per call that timed
//! out: at most `MAX_HUNG_CALLS` of them wait on it, and no more calls are
//! made until one returns (the blocking pool, which HTTP name lookups need
//! too, would otherwise fill up over hours of probes and token requests).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::broker::clock::SystemClock;
use crate::broker::metrics::Metrics;
use crate::broker::session::counted;
use crate::broker::store_health::{MAX_HUNG_CALLS, StoreHealth};
use crate::store::StoreError;

#[tokio::test]
async fn calls_stop_while_too_many_earlier_ones_hang() {
    let health = Arc::new(
        StoreHealth::new("test store", Arc::new(SystemClock))
            .with_call_timeout(Duration::from_millis(200)),
    );
    // Down, as the first timeout makes it for a session's call: a late
    // answer is then announced.
    health.failed(&StoreError::Locked {
        store: "test store",
        reason: "hung".into(),
    });
    let metrics = Arc::new(Metrics::default());
    let started = Arc::new(AtomicUsize::new(0));
    // Each call waits for a release that only the test sends.
    let (release, released) = mpsc::channel::<()>();
    let released = Arc::new(Mutex::new(released));
    let call = || {
        let started = Arc::clone(&started);
        let released = Arc::clone(&released);
        move || -> Result<(), StoreError> {
            started.fetch_add(1, Ordering::SeqCst);
            let _ = released.lock().unwrap().recv();
            Ok(())
        }
    };
    for _ in 0..MAX_HUNG_CALLS {
        let e = counted(Arc::clone(&metrics), Arc::clone(&health), call())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no answer within"), "{e}");
    }
    // One more is not made: it would only wait too.
    let e = counted(Arc::clone(&metrics), Arc::clone(&health), call())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("4 earlier calls got no answer within 0 s and still wait for one"),
        "{e}"
    );
    assert_eq!(started.load(Ordering::SeqCst), MAX_HUNG_CALLS);
    // One returns: calls are made again.
    release.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), health.late_answer())
        .await
        .expect("the late answer is announced");
    for _ in 0..MAX_HUNG_CALLS {
        release.send(()).unwrap();
    }
    assert_eq!(
        counted(Arc::clone(&metrics), Arc::clone(&health), call()).await,
        Ok(())
    );
    assert_eq!(started.load(Ordering::SeqCst), MAX_HUNG_CALLS + 1);
}
