//! Tests of the driver: the machine's effects carried out against a real
//! scheduler, store and (emulated) provider. The rules themselves are
//! tested as tables in `machine/tests`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokend_emulator::{Emulator, Rfc8628Options};
use tokio::sync::broadcast;

use crate::broker::clock::{Clock, SystemClock, unix_secs};
use crate::broker::{
    AttentionKind, Broker, BrokerEvent, BrokerParts, Caller, Freshness, session_identity,
};
use crate::config::Config;
use crate::provider::HttpClient;
use crate::secret::Secret;
use crate::store::{MemoryStore, STORED_SESSION_VERSION, Store, StoredSession};

/// Wall-clock time that moves with tokio's (paused) clock.
#[derive(Debug)]
struct PausedClock {
    wall: SystemTime,
    start: tokio::time::Instant,
}

impl Clock for PausedClock {
    fn now(&self) -> SystemTime {
        self.wall + self.start.elapsed()
    }
}

fn config(dir: &std::path::Path, device: &str, token: &str) -> Config {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\nsocket = \"/run/t/t.sock\"\nstore = \"memory\"\n\
             [providers.demo]\ndevice_authorization_endpoint = \"{device}\"\n\
             token_endpoint = \"{token}\"\nclient_id = \"tokend-test\"\n"
        ),
    )
    .unwrap();
    let env = crate::config::Environment {
        etc: dir.to_owned(),
        ..Default::default()
    };
    crate::config::load(&path, &env).unwrap()
}

/// A stored session whose access token is gone: the first use refreshes.
fn stored(config: &Config, refresh_token: &str, now: SystemTime) -> StoredSession {
    StoredSession {
        version: STORED_SESSION_VERSION,
        identity: session_identity(&config.providers[0]),
        refresh_token: Some(Secret::from(refresh_token)),
        obtained_at: unix_secs(now),
        scope: None,
        access_token: None,
        token_type: None,
        expires_at: None,
        refresh_expires_at: None,
        ended: None,
    }
}

fn broker(config: &Config, store: Arc<MemoryStore>, clock: Arc<dyn Clock>) -> Broker {
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

async fn next_attention(events: &mut broadcast::Receiver<BrokerEvent>) -> AttentionKind {
    loop {
        if let BrokerEvent::Attention { kind, .. } = events.recv().await.unwrap() {
            return kind;
        }
    }
}

async fn next_refreshed(events: &mut broadcast::Receiver<BrokerEvent>) {
    while !matches!(
        events.recv().await.unwrap(),
        BrokerEvent::TokenRefreshed { .. }
    ) {}
}

/// With tokio's time paused: a restored session whose provider cannot be
/// reached is refreshed by the scheduler, backs off (the scheduler holds
/// the machine's retry time, doubling), and a nudge brings the retry
/// forward at once.
#[tokio::test(start_paused = true)]
async fn an_unreachable_provider_backs_off_through_the_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback: nothing listens, the connection is refused.
    let config = config(
        dir.path(),
        "http://127.0.0.1:1/device",
        "http://127.0.0.1:1/token",
    );
    let clock = Arc::new(PausedClock {
        wall: SystemTime::now(),
        start: tokio::time::Instant::now(),
    });
    let store = Arc::new(MemoryStore::default());
    store
        .save("demo", &stored(&config, "rt", clock.now()))
        .unwrap();
    let broker = broker(&config, store, clock.clone());
    let mut events = broker.subscribe();
    broker.start(None).await;
    let scheduler = &broker.inner.shared.scheduler;

    let mut delays = Vec::new();
    for _ in 0..2 {
        assert_eq!(
            next_attention(&mut events).await,
            AttentionKind::RefreshFailed
        );
        let status = &broker.status(&Caller::uid(1000), Some("demo")).unwrap()[0];
        assert!(
            status
                .last_error
                .as_deref()
                .unwrap()
                .contains("could not reach")
        );
        let due = scheduler.due("demo").expect("a retry is scheduled");
        assert_eq!(status.next_refresh, Some(due));
        delays.push(due.duration_since(clock.now()).unwrap());
    }
    // 2.5 to 5 s after the first failure, 5 to 10 s after the second.
    assert!(delays[0] >= Duration::from_millis(2500) && delays[0] <= Duration::from_secs(5));
    assert!(delays[1] >= Duration::from_secs(5) && delays[1] <= Duration::from_secs(10));

    // The network is back: the retry moves to now.
    let before = clock.now();
    assert_eq!(
        broker.retry_waiting_refreshes(Duration::ZERO, crate::broker::WorldChange::Network),
        1
    );
    assert!(scheduler.due("demo").unwrap() <= before);
    assert_eq!(
        next_attention(&mut events).await,
        AttentionKind::RefreshFailed
    );
    assert!(broker.shutdown(Duration::from_secs(5)).await);
}

async fn emulator_and_broker() -> (Emulator, Broker, Arc<MemoryStore>, tempfile::TempDir) {
    let emulator = Emulator::start(Rfc8628Options::default()).await.unwrap();
    let seeded = emulator.grant_session("tokend-test", Duration::from_secs(3600));
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        emulator.device_authorization_endpoint().as_str(),
        emulator.token_endpoint().as_str(),
    );
    let store = Arc::new(MemoryStore::default());
    let refresh_token = seeded.refresh_token.expect("a refresh token");
    store
        .save("demo", &stored(&config, &refresh_token, SystemTime::now()))
        .unwrap();
    let broker = broker(&config, store.clone(), Arc::new(SystemClock));
    (emulator, broker, store, dir)
}

/// Single flight through the driver: fifty callers that all need a
/// refresh at once share one request to the provider and one token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waiters_share_one_refresh() {
    let (emulator, broker, _store, _dir) = emulator_and_broker().await;
    broker.start(None).await;
    let caller = Caller::uid(1000);
    let requests = (0..50).map(|_| {
        let (broker, caller) = (broker.clone(), caller.clone());
        tokio::spawn(async move { broker.token(&caller, "demo", Freshness::Default).await })
    });
    let mut tokens = Vec::new();
    for request in requests {
        let token = request.await.unwrap().expect("a token");
        tokens.push(token.secret.expose().to_owned());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "every caller got the one refreshed token");
    assert_eq!(emulator.refresh_count(), 1);
    assert!(emulator.is_valid_access_token(&tokens[0]));
}

/// Cancellation: a caller that gives up waiting does not cancel the
/// refresh, which still lands in memory and in the store (its rotated
/// refresh token would be lost otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_gives_up_does_not_cancel_the_refresh() {
    let (emulator, broker, store, _dir) = emulator_and_broker().await;
    let before = store.load("demo").unwrap().unwrap().refresh_token;
    emulator.set_rotate_refresh_tokens(true);
    // The refresh's answer is held back long enough for the caller below
    // to give up first, however loaded the machine (500 ms could pass
    // before a 10 ms timer fired on a busy CI runner).
    emulator.inject(
        tokend_emulator::Endpoint::Token,
        tokend_emulator::Fault::Delay(Duration::from_secs(3)),
        1,
    );
    let mut events = broker.subscribe();
    broker.start(None).await;
    let caller = Caller::uid(1000);
    let gave_up = tokio::time::timeout(
        Duration::from_millis(10),
        broker.token(&caller, "demo", Freshness::Default),
    )
    .await;
    assert!(gave_up.is_err(), "the caller gave up before the answer");
    next_refreshed(&mut events).await;
    assert_eq!(emulator.refresh_count(), 1);
    let after = store.load("demo").unwrap().unwrap();
    assert_ne!(after.refresh_token, before, "the rotated token is stored");
    let token = broker
        .token(&caller, "demo", Freshness::Default)
        .await
        .unwrap();
    assert_eq!(emulator.refresh_count(), 1, "the refreshed token is reused");
    assert_eq!(
        after.access_token.as_ref().map(Secret::expose),
        Some(token.secret.expose())
    );
}

/// An issuer counts without its trailing `/`: the discovery document is
/// the same either way, and adding one (or taking it off) logged the
/// session out. A record written under the slashed form (every issuer
/// without a path, which the URL parser writes with one) is still the
/// provider's: its older identity.
#[test]
fn an_issuers_trailing_slash_does_not_change_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let load = |issuer: &str| {
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            format!(
                "[daemon]\nsocket = \"/run/t/t.sock\"\nstore = \"memory\"\n\
                 [providers.kc]\nissuer = \"{issuer}\"\nclient_id = \"tokend\"\n"
            ),
        )
        .unwrap();
        let env = crate::config::Environment {
            etc: dir.path().to_owned(),
            ..Default::default()
        };
        crate::config::load(&path, &env)
            .unwrap()
            .providers
            .remove(0)
    };
    let bare = load("https://sso.example.com/realms/prod");
    let slashed = load("https://sso.example.com/realms/prod/");
    assert_eq!(session_identity(&bare), session_identity(&slashed));
    assert_eq!(
        session_identity(&bare),
        "rfc8628|https://sso.example.com/realms/prod|tokend"
    );
    let older = super::older_session_identity(&bare);
    assert_eq!(
        older.as_deref(),
        Some("rfc8628|https://sso.example.com/realms/prod/|tokend")
    );
    // Without a path: written "https://idp.example/" before.
    let root = load("https://idp.example");
    assert_eq!(
        super::older_session_identity(&root).as_deref(),
        Some("rfc8628|https://idp.example/|tokend")
    );
}
