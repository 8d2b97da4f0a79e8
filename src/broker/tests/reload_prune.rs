//! A reload prunes what the broker keeps per provider name or token
//! endpoint (refresh limits, record write slots, counters) to the new
//! config, keeping what is still in use: a daemon whose config is generated
//! would otherwise keep something of every name it ever had.

use std::fmt::Write as _;
use std::sync::{Arc, Weak};

use crate::broker::Broker;
use crate::broker::clock::OffsetClock;
use crate::config::Config;
use crate::store::MemoryStore;

/// A config of `names`, each on its own token endpoint (nothing listens
/// there: nothing here goes to the network).
fn config(dir: &std::path::Path, names: &[&str]) -> Config {
    let mut text = String::from("[daemon]\nsocket = \"/run/t/t.sock\"\nstore = \"memory\"\n");
    for name in names {
        let _ = write!(
            text,
            "[providers.{name}]\ndevice_authorization_endpoint = \"http://127.0.0.1:9/{name}/device\"\n\
             token_endpoint = \"{}\"\nclient_id = \"cid\"\n",
            endpoint(name)
        );
    }
    super::config_in(dir, &text)
}

fn endpoint(name: &str) -> String {
    format!("http://127.0.0.1:9/{name}/token")
}

fn endpoints(broker: &Broker) -> Vec<String> {
    let mut endpoints: Vec<String> = broker
        .inner
        .endpoint_limits
        .lock()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    endpoints.sort_unstable();
    endpoints
}

#[tokio::test]
async fn a_reload_keeps_only_the_new_configs_and_what_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let initial = config(dir.path(), &["a", "b", "busy"]);
    let broker = super::broker_for(
        &initial,
        Arc::new(MemoryStore::default()),
        Arc::new(OffsetClock::new()),
    );
    let shared = Arc::clone(&broker.inner.shared);
    for name in ["a", "b", "busy"] {
        shared.metrics.login_finished(name, None);
    }
    // Weak: they watch whether the broker still keeps a slot, without
    // keeping it themselves.
    let slot_a: Weak<_> = Arc::downgrade(&shared.record_writes.slot("a"));
    // "busy" is removed while still in use: a task holds its retired
    // session (so its refresh limit), and a write of its record is in flight.
    let busy_session = broker.session("busy").unwrap();
    let busy_write = shared.record_writes.slot("busy");

    broker.reload(&config(dir.path(), &["c", "d"])).await;

    assert_eq!(
        endpoints(&broker),
        [endpoint("busy"), endpoint("c"), endpoint("d")]
    );
    assert!(slot_a.upgrade().is_none(), "a free slot of a removed name");
    assert!(
        Arc::ptr_eq(&busy_write, &shared.record_writes.slot("busy")),
        "a slot still written through is the one a successor gets"
    );
    for gone in ["a", "b", "busy"] {
        assert!(shared.metrics.provider_counters(gone).is_none(), "{gone}");
    }

    // Once let go, they go at the next reload.
    drop((busy_session, busy_write));
    let slot_busy: Weak<_> = Arc::downgrade(&shared.record_writes.slot("busy"));
    broker.reload(&config(dir.path(), &["c", "d"])).await;
    assert_eq!(endpoints(&broker), [endpoint("c"), endpoint("d")]);
    assert!(slot_busy.upgrade().is_none());
}
