//! A reload that rebuilds a provider of the same client and endpoint (a
//! changed `scopes` or `allow_users`, say) hands its tokens to the new
//! session; the session it replaced never refreshes again, and a caller
//! still holding it (a request that began before the reload, a wake-up of
//! the scheduler during it) is served by the new one. Both refreshing with
//! the same refresh token would end the login at a provider that rotates
//! them: it takes the second use of one as theft.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokend_emulator::Emulator;

use super::{broker_on_emulator, demo_config, fast_emulator, log_in_demo};
use crate::broker::session::Session;
use crate::broker::{Broker, Caller, Freshness};
use crate::store::MemoryStore;

/// A reload that changes `demo`'s scopes, applied to `broker`: the session
/// it replaced, held across it as by a request that began before it.
async fn replace_demo(broker: &Broker, emulator: &Emulator, dir: &Path) -> Arc<Session> {
    let replaced = broker.session("demo").unwrap();
    let changed = demo_config(emulator, dir, "scopes = [\"more\"]\n");
    let summary = broker.reload(&changed).await;
    assert_eq!(summary.changed, ["demo"]);
    assert!(replaced.is_retired());
    replaced
}

#[tokio::test]
async fn a_session_replaced_by_a_reload_refreshes_no_more_and_its_callers_get_the_new_one() {
    let emulator = fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = broker_on_emulator(&emulator, dir.path(), Arc::new(MemoryStore::default()));
    broker.start(None).await;
    log_in_demo(&broker, &emulator).await;
    let caller = Caller::uid(1000);
    let replaced = replace_demo(&broker, &emulator, dir.path()).await;

    // Asked for more life than its token has, the replaced session starts
    // no refresh of its own.
    emulator.set_access_token_lifetime(Duration::from_secs(4 * 3600));
    let two_hours = Freshness::AtLeast(Duration::from_secs(2 * 3600));
    assert!(replaced.token(two_hours).await.is_err());
    assert_eq!(emulator.refresh_count(), 0);

    // Through the broker, the request that holds it is served by the new
    // session: one refresh, with the refresh token the login got.
    let token = broker
        .token_from(Arc::clone(&replaced), &caller, "demo", two_hours)
        .await
        .unwrap();
    assert_eq!(emulator.refresh_count(), 1);
    assert_eq!(
        broker
            .token(&caller, "demo", two_hours)
            .await
            .unwrap()
            .secret
            .expose(),
        token.secret.expose()
    );
    assert_eq!(emulator.refresh_count(), 1);
    emulator.assert_no_violations();
    broker.shutdown(Duration::from_secs(1)).await;
}

/// A login asked of a session a reload retired (one asked while the reload
/// waits for a refresh in flight) is the provider's new session's: its
/// tokens went to the retired session, dropped once the reload was over,
/// so the person was told "logged in" and the provider stayed logged out.
#[tokio::test]
async fn a_login_asked_of_a_replaced_session_logs_the_new_one_in() {
    let emulator = fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = broker_on_emulator(&emulator, dir.path(), Arc::new(MemoryStore::default()));
    broker.start(None).await;
    let caller = Caller::uid(1000);
    // As by a login request that began during the reload.
    let replaced = replace_demo(&broker, &emulator, dir.path()).await;

    let mut login = broker
        .login_on(Arc::clone(&replaced), &caller, "demo")
        .await
        .unwrap();
    let prompt = login.prompt().await.unwrap().expect("a prompt");
    emulator.approve(&prompt.user_code).unwrap();
    login.outcome().await.unwrap();
    // The new session has the tokens.
    let token = broker.token(&caller, "demo", Freshness::Default).await;
    assert!(token.is_ok(), "{token:?}");
    emulator.assert_no_violations();
    broker.shutdown(Duration::from_secs(1)).await;
}

/// A logout asked of a session a reload then removed (the provider left
/// the config while the logout waited for the reload) is done, and said
/// done: the reload has no successor to log out, and "no provider named
/// `demo`" (exit 7) told the person that nothing happened while the
/// record was gone.
#[tokio::test]
async fn a_logout_of_a_session_a_reload_removes_is_done_and_said_so() {
    let emulator = fast_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::default());
    let broker = broker_on_emulator(&emulator, dir.path(), Arc::clone(&store) as _);
    broker.start(None).await;
    log_in_demo(&broker, &emulator).await;
    let caller = Caller::uid(1000);
    // As by a logout request that began during the reload.
    let removed = broker.session("demo").unwrap();
    let other = super::reload_added::config(&emulator, dir.path(), &["other"]);
    let summary = broker.reload(&other).await;
    assert_eq!(summary.removed, ["demo"]);
    assert!(removed.is_retired());

    let outcome = broker.logout_from(removed, &caller, "demo").await;
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(crate::store::Store::load(&*store, "demo").unwrap(), None);
    broker.shutdown(Duration::from_secs(1)).await;
}
