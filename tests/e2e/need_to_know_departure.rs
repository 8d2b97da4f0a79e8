//! Only the bus may say that a peer left. On the system bus tokend sends
//! a provider's signals to each known peer that may see them, and forgets
//! a peer when the bus's `NameOwnerChanged` says it left. Another local
//! user's client can address a signal of that name to tokend's unique
//! name: the shipped policy refuses it at the bus (nothing but tokend's
//! interfaces reach the name), but a site whose policy lets it through
//! must not have tokend believe it, or that user could cost anyone the
//! signals of a provider (a login's code, its end) at will.
//!
//! Two guards refuse it inside tokend: zbus's own filter of the watch's
//! match rule (it reads the bus's name as a unique name and compares it
//! with the message's sender), and tokend's check of the sender
//! (`ipc::dbus::peers`), which does not rely on the first. This test
//! fails only if both are gone.

use crate::dist_dbus::{policy_for_this_user, system_like_bus};
use crate::need_to_know::{Listener, PeerScript, STRANGER, daemon_on};
use crate::support;

use support::daemon::login;
use support::other_uid::{NOBODY, can_switch_uid};
use support::provider::Provider;

/// The rule a more permissive site policy may add: any signal may be
/// sent to tokend.
const SIGNALS_LET_THROUGH: &str =
    "    <allow send_destination=\"org.tokend.Broker1\" send_type=\"signal\"/>\n  </policy>";

#[test]
fn a_departure_said_by_another_peer_is_not_believed() {
    if !can_switch_uid() {
        support::skip::say(format_args!(
            "SKIPPED a_departure_said_by_another_peer_is_not_believed: needs root"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_for_this_user(dir.path());
    let shipped = std::fs::read_to_string(&policy).unwrap();
    let (head, tail) = shipped.rsplit_once("  </policy>").unwrap();
    std::fs::write(&policy, format!("{head}{SIGNALS_LET_THROUGH}{tail}")).unwrap();
    let (bus, _bus_config) = system_like_bus(&policy);
    let provider = Provider::rfc8628();
    let config = provider.config_with("shared", &format!("allow_users = [{NOBODY}]"));
    let daemon = daemon_on(&bus, &config);

    // `nobody` listens, known to tokend (it has called it).
    let script = PeerScript::new();
    let nobody = Listener::until_told(&script, NOBODY, bus.address());
    let line = nobody.wait_for(&["unique_name"]);
    let named: serde_json::Value = serde_json::from_str(&line).unwrap();
    let nobody_name = named["unique_name"].as_str().unwrap();

    // Another user says, as if it were the bus, that `nobody` left; its
    // call after it is answered, so tokend has read the signal.
    let forged = script.run(
        STRANGER,
        STRANGER,
        bus.address(),
        &["forge-departure", nobody_name],
    );
    assert!(forged[0]["ok"].is_string(), "{forged:?}");

    // `nobody` still receives what it may see: the login's end.
    login(&daemon, "shared", |code| {
        provider.approve(code).unwrap();
    });
    let seen = nobody.finish().join("\n");
    assert!(
        seen.contains("\"signal\": \"LoginFinished\"") && seen.contains("'shared'"),
        "nobody was forgotten on another user's word: {seen}"
    );
}
