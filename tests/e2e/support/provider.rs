//! A provider emulator on its own runtime, for tests that otherwise block
//! on processes (`tokend`, `tokenctl`).
//!
//! The emulator's server runs on a dedicated multi-threaded runtime, so it
//! keeps answering while the test thread waits for a child process. It runs
//! on a manual clock: a test moves the provider's time with
//! [`Emulator::advance`] (device codes and tokens expire at the provider)
//! instead of waiting for it. The daemon keeps its own, real, clock.

use std::future::Future;
use std::ops::Deref;
use std::time::Duration;

use tokend_emulator::{Clock, Emulator, EmulatorOptions, RecordedRequest, Rfc8628Options};

/// A running emulator and the runtime it runs on.
pub struct Provider {
    // Field order matters: the emulator is dropped (stopped) before its runtime.
    emulator: Emulator,
    runtime: tokio::runtime::Runtime,
}

impl Provider {
    /// Starts an emulator of the dialect `options` are for, on a manual clock.
    pub fn start(options: impl Into<EmulatorOptions>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let emulator = runtime
            .block_on(Emulator::start_with_clock(options, Clock::manual()))
            .expect("start the emulator");
        Self { emulator, runtime }
    }

    /// An RFC 8628 emulator with test-friendly defaults: 1 s poll interval,
    /// client id `tokend-test`.
    pub fn rfc8628() -> Self {
        Self::start(fast())
    }

    /// Runs `future` (an emulator wait) to completion on the emulator's runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Waits until the emulator has issued a device code; returns its user code.
    pub fn wait_for_user_code(&self) -> String {
        self.block_on(self.emulator.wait_for_device_code())
            .user_code
    }

    /// The polls received so far, in order.
    pub fn polls(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_poll)
            .collect()
    }

    /// Waits until `count` requests match `predicate`.
    pub fn wait_for_count(
        &self,
        count: usize,
        predicate: impl Fn(&RecordedRequest) -> bool,
    ) -> Vec<RecordedRequest> {
        self.block_on(
            self.emulator.wait_for(move |requests| {
                requests.iter().filter(|r| predicate(r)).count() >= count
            }),
        )
    }

    /// Waits until a request matches `predicate`; the first that does.
    pub fn wait_for_first(&self, predicate: impl Fn(&RecordedRequest) -> bool) -> RecordedRequest {
        let mut found = None;
        self.block_on(self.emulator.wait_for(|requests| {
            found = requests.iter().find(|r| predicate(r)).cloned();
            found.is_some()
        }));
        found.expect("the awaited request")
    }

    /// Every refresh token and device code the client sent so far: secrets
    /// that must never be found outside the store.
    pub fn secrets_sent(&self) -> Vec<String> {
        self.requests()
            .iter()
            .flat_map(|r| r.fields.clone())
            .filter(|(name, _)| name == "refresh_token" || name == "device_code")
            .map(|(_, value)| value)
            .collect()
    }

    /// The `[providers.NAME]` table pointing at this emulator.
    pub fn config(&self, name: &str) -> String {
        self.config_with(name, "")
    }

    /// As [`Self::config`], with extra keys.
    pub fn config_with(&self, name: &str, extra: &str) -> String {
        format!(
            "[providers.{name}]\ndevice_authorization_endpoint = \"{}\"\ntoken_endpoint = \"{}\"\nclient_id = \"tokend-test\"\n{extra}\n",
            self.emulator.device_authorization_endpoint(),
            self.emulator.token_endpoint(),
        )
    }

    /// A `[providers.NAME]` table of a dialect with fixed paths, pointing
    /// `base_url` at this emulator, with `keys` (client id included).
    pub fn base_config(&self, name: &str, dialect: &str, keys: &str) -> String {
        let base = self.emulator.base_url();
        let base = base.as_str().trim_end_matches('/');
        format!("[providers.{name}]\ndialect = \"{dialect}\"\nbase_url = \"{base}\"\n{keys}\n")
    }
}

impl Deref for Provider {
    type Target = Emulator;

    fn deref(&self) -> &Emulator {
        &self.emulator
    }
}

/// Emulator options that keep tests quick: 1 s poll interval.
pub fn fast() -> Rfc8628Options {
    Rfc8628Options {
        interval: Duration::from_secs(1),
        ..Rfc8628Options::default()
    }
}

/// An answer of 200 `application/json` with exactly `body` (a success
/// the emulator would not give: odd fields, echoes, garbage).
pub fn json_answer(body: &str) -> tokend_emulator::Fault {
    tokend_emulator::Fault::Body {
        status: 200,
        content_type: Some("application/json".into()),
        body: bytes::Bytes::from(body.to_owned()),
    }
}

/// A provider that takes connections (the kernel's backlog) and never
/// answers, held open while the listener lives, and the config of a
/// provider `name` on it with `extra` keys.
pub fn silent_provider(name: &str, extra: &str) -> (std::net::TcpListener, String) {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let config = format!(
        "[providers.{name}]\nclient_id = \"demo\"\n\
         device_authorization_endpoint = \"http://127.0.0.1:{port}/device\"\n\
         token_endpoint = \"http://127.0.0.1:{port}/token\"\n{extra}\n"
    );
    (silent, config)
}

/// A loopback port where nothing listens now: bound by the kernel's
/// choice and let go. Not a fixed one (port 9, say): a test machine may run
/// a service there.
#[must_use]
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("its address").port()
}
