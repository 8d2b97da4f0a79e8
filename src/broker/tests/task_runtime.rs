//! The broker's own tasks run on the runtime it was built on, whichever
//! runtime asks for them: the socket's extra event loops serve requests
//! that start refreshes and logins, and those loops end with their
//! connections (`ipc::socket::reactors`).

use std::sync::Arc;
use std::time::Duration;

use crate::broker::clock::OffsetClock;
use crate::broker::{Broker, BrokerParts};
use crate::provider::HttpClient;
use crate::store::MemoryStore;

fn broker(dir: &std::path::Path) -> Broker {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        "[daemon]\nsocket = \"/run/t/t.sock\"\nstore = \"memory\"\n\
         [providers.demo]\ndevice_authorization_endpoint = \"http://127.0.0.1:9/device\"\n\
         token_endpoint = \"http://127.0.0.1:9/token\"\nclient_id = \"cid\"\n",
    )
    .unwrap();
    let env = crate::config::Environment {
        etc: dir.to_owned(),
        ..Default::default()
    };
    let config = crate::config::load(&path, &env).unwrap();
    Broker::new(
        &config,
        BrokerParts {
            store: Arc::new(MemoryStore::default()),
            clock: Arc::new(OffsetClock::new()),
            http: HttpClient::new(Duration::from_secs(5)).unwrap(),
            owner_uid: 1000,
        },
    )
}

#[test]
fn a_task_started_from_another_runtime_runs_on_the_broker_s() {
    let dir = tempfile::tempdir().unwrap();
    let broker_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let broker = {
        let _in_it = broker_runtime.enter();
        broker(dir.path())
    };
    // Started from a runtime on another thread, which is gone by the time
    // the task runs: had the task been put on that runtime, it would have
    // been dropped with it.
    let shared = Arc::clone(&broker.inner.shared);
    let task = std::thread::spawn(move || {
        let other = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _in_it = other.enter();
        shared.spawn(async { std::thread::current().id() })
    })
    .join()
    .unwrap();
    let ran_on = broker_runtime
        .block_on(task)
        .expect("the task ran to its end");
    assert_eq!(ran_on, std::thread::current().id());
}
