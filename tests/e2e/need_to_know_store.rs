//! Need to know of the store's state on the system bus: when the store
//! goes down and comes back, the broker object's `PropertiesChanged`
//! (`StoreState`, `StoreError`, `StoreUnavailableSince`) reaches a local
//! user who may see a provider, and never one who may see none (who reads
//! those properties empty, see `need_to_know`).

use crate::dist_dbus::{policy_for_this_user, system_like_bus};
use crate::need_to_know::{Listener, PeerScript, STRANGER};
use crate::support;

use support::daemon::{Daemon, login, refresh_now};
use support::file_store::FileStore;
use support::other_uid::{NOBODY, can_switch_uid};
use support::provider::Provider;

#[test]
fn the_stores_state_is_signalled_only_to_users_who_may_see_a_provider() {
    if !can_switch_uid() {
        crate::support::skip::say(format_args!(
            "SKIPPED the_stores_state_is_signalled_only_to_users...: needs root"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (bus, _bus_config) = system_like_bus(&policy_for_this_user(dir.path()));
    let provider = Provider::rfc8628();
    let config = format!(
        "{}{}",
        provider.config("secret"),
        provider.config_with("shared", &format!("allow_users = [{NOBODY}]")),
    );
    let store = FileStore::new();
    let mut options = store.options();
    options.bus = "system";
    options
        .env
        .push(("DBUS_SYSTEM_BUS_ADDRESS".into(), bus.address().into()));
    let daemon = Daemon::start_with(&config, options);
    login(&daemon, "shared", |code| {
        provider.approve(code).unwrap();
    });

    let script = PeerScript::new();
    let nobody = Listener::until_told(&script, NOBODY, bus.address());
    let stranger = Listener::until_told(&script, STRANGER, bus.address());
    let changed = "\"signal\": \"PropertiesChanged\", \"path\": \"/org/tokend/Broker1\"";

    // The records' directory replaced by a file: a refresh cannot be saved.
    store.break_records();
    refresh_now(&daemon, "shared");
    let down = nobody.wait_for(&[changed, "'unavailable'"]);
    assert!(down.contains("not a directory"), "{down}");

    // Back: the status has the store probed at once.
    store.mend_records();
    assert!(daemon.tokenctl(&["status"]).status.success());
    nobody.wait_for(&[changed, "'available'"]);

    // Both changes were signalled (one after the other, by one task) before
    // the stranger's last call was answered: it received neither.
    let seen_by_stranger = stranger.finish().join("\n");
    assert!(
        !seen_by_stranger.contains("Store") && !seen_by_stranger.contains("PropertiesChanged"),
        "{seen_by_stranger}"
    );
    drop(nobody);
}
