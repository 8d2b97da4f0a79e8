//! Tests of the broker as a whole, through its API: each file one concern.
//! The session's state machine has its own table tests next to it
//! (`session/machine/tests.rs`).

mod call_slots;
mod clock_set;
mod hung_calls;
mod prepared_save;
mod probe_saves;
mod reload_added;
mod reload_handover;
mod reload_prune;
mod restore_waits_for_store;
mod status_pages;
mod store_health;
mod unreadable_record;
mod write_order;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokend_emulator::Emulator;

use crate::broker::{Broker, BrokerParts, SystemClock};
use crate::provider::HttpClient;
use crate::store::Store;

/// The standard-dialect emulator polled every second: a test's device
/// login takes a second, not RFC 8628's five.
async fn fast_emulator() -> Emulator {
    Emulator::start(tokend_emulator::Rfc8628Options {
        interval: Duration::from_secs(1),
        ..tokend_emulator::Rfc8628Options::default()
    })
    .await
    .unwrap()
}

/// Logs `demo` in as uid 1000, approving its code at `emulator`.
async fn log_in_demo(broker: &Broker, emulator: &Emulator) {
    let mut login = broker
        .login(&crate::broker::Caller::uid(1000), "demo")
        .await
        .unwrap();
    let prompt = login.prompt().await.unwrap().expect("a prompt");
    emulator.approve(&prompt.user_code).unwrap();
    login.outcome().await.unwrap();
}

/// The record a daemon would have stored for `config`'s first provider:
/// refresh token `rt`, access token `at-stored` expiring at `expires_at`.
fn stored_record(
    config: &crate::config::Config,
    expires_at: std::time::SystemTime,
) -> crate::store::StoredSession {
    use crate::broker::clock::unix_secs;
    crate::store::StoredSession {
        version: crate::store::STORED_SESSION_VERSION,
        identity: crate::broker::session_identity(&config.providers[0]),
        refresh_token: Some(crate::secret::Secret::from("rt")),
        obtained_at: unix_secs(std::time::SystemTime::now()),
        scope: None,
        access_token: Some(crate::secret::Secret::from("at-stored")),
        token_type: Some("Bearer".into()),
        expires_at: Some(unix_secs(expires_at)),
        refresh_expires_at: None,
        ended: None,
    }
}

/// `text` written as `dir/config.toml` and loaded, as the daemon loads it.
fn config_in(dir: &Path, text: &str) -> crate::config::Config {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    let env = crate::config::Environment {
        etc: dir.to_owned(),
        ..Default::default()
    };
    crate::config::load(&path, &env).unwrap()
}

/// A broker (not started) whose one provider, `demo`, is `emulator`, with
/// its config written in `dir` and its sessions in `store`; owner uid 1000.
fn broker_on_emulator(emulator: &Emulator, dir: &Path, store: Arc<dyn Store>) -> Broker {
    let config = demo_config(emulator, dir, "");
    broker_for(&config, store, Arc::new(SystemClock))
}

/// A broker for `config` on `store` and `clock`, as the tests make them
/// (owner uid 1000, a 5 s HTTP timeout); not started.
pub(crate) fn broker_for(
    config: &crate::config::Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn crate::broker::Clock>,
) -> Broker {
    Broker::new(
        &config.daemon,
        config.providers.clone(),
        BrokerParts {
            store,
            clock,
            http: HttpClient::new(Duration::from_secs(5)).unwrap(),
            owner_uid: 1000,
        },
    )
}

/// The config of [`broker_on_emulator`] (the provider `demo` on
/// `emulator`, with `extra` keys in its table), written in `dir` and loaded.
fn demo_config(emulator: &Emulator, dir: &Path, extra: &str) -> crate::config::Config {
    config_in(
        dir,
        &format!(
            "[daemon]\nsocket = \"/run/t/t.sock\"\nstore = \"memory\"\n\
             [providers.demo]\ndevice_authorization_endpoint = \"{}\"\n\
             token_endpoint = \"{}\"\nclient_id = \"tokend-test\"\n{extra}",
            emulator.device_authorization_endpoint(),
            emulator.token_endpoint()
        ),
    )
}

/// Where a test store holds its blocking calls (a keyring waiting for an
/// unlock prompt, a bus that answers nothing) until the test lets them go.
#[derive(Debug, Default)]
struct Gate {
    held: std::sync::Mutex<bool>,
    released: std::sync::Condvar,
}

impl Gate {
    /// Holds the calls that [`Self::pass`] until the guard is dropped:
    /// also when an assertion fails, or the held blocking thread would
    /// keep the test's runtime from shutting down, and the test would hang
    /// instead of failing.
    fn hold(&self) -> Held<'_> {
        *self.held.lock().unwrap() = true;
        Held(self)
    }

    /// Waits while the gate is held.
    fn pass(&self) {
        let held = self.held.lock().unwrap();
        drop(self.released.wait_while(held, |held| *held).unwrap());
    }
}

/// A [`Gate`] held until this is dropped.
struct Held<'a>(&'a Gate);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        *self
            .0
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = false;
        self.0.released.notify_all();
    }
}
