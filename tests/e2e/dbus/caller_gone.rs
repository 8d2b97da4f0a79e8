//! A call whose caller left the bus before tokend could ask the bus who it
//! was: a fire-and-forget `dbus-send … Logout`, which exits as soon as the
//! call is sent.

use super::*;

/// `dbus-send` without `--print-reply` sends `Logout` and exits. tokend,
/// stopped meanwhile, reads the call only once the bus has seen the
/// sender leave: it cannot tell whether the caller may log out, so the
/// session stays, and the log says so (the session's owner believes it
/// logged out: the call was dropped without a word, and only a metrics
/// counter of `internal` errors moved).
#[test]
fn a_logout_whose_caller_left_first_is_not_done_and_is_said() {
    let setup = start(fast(), &["demo"]);
    login(&setup.daemon, "demo", |code| {
        setup.provider.approve(code).unwrap();
    });
    let watcher = setup.bus.connect();
    let departures = zbus::blocking::fdo::DBusProxy::new(&watcher)
        .unwrap()
        .receive_name_owner_changed()
        .unwrap();
    let (tx, changes) = mpsc::channel();
    std::thread::spawn(move || {
        for change in departures {
            let Ok(args) = change.args() else { continue };
            let owners = (
                args.name().to_string(),
                args.old_owner().as_ref().map(ToString::to_string),
                args.new_owner().as_ref().map(ToString::to_string),
            );
            if tx.send(owners).is_err() {
                break;
            }
        }
    });
    support::process::signal(setup.daemon.pid(), rustix::process::Signal::STOP);
    let sent = setup
        .bus
        .command("dbus-send")
        .arg(format!("--bus={}", setup.bus.address()))
        .args([
            "--type=method_call",
            "--dest=org.tokend.Broker1",
            "/org/tokend/Broker1",
            "org.tokend.Broker1.Logout",
            "string:demo",
        ])
        .output()
        .expect("run dbus-send");
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    // The sender arrived and left after the watch began: its departure
    // is the bus's word that it is gone.
    let mut arrived = Vec::new();
    let gone = loop {
        let (name, old, new) = changes
            .recv_timeout(SIGNAL_TIMEOUT)
            .expect("dbus-send's connection seen to leave");
        if old.is_none() && new.is_some() {
            arrived.push(name);
        } else if new.is_none() && arrived.contains(&name) {
            break name;
        }
    };
    support::process::signal(setup.daemon.pid(), rustix::process::Signal::CONT);
    let said = setup.daemon.wait_for_log(1, &["dbus_caller_gone"]);
    assert!(
        said[0].contains("Logout of `demo` was not carried out") && said[0].contains(&gone),
        "{}",
        said[0]
    );
    let status = setup.daemon.tokenctl(&["--json", "status", "demo"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status[0]["state"], "active", "{status}");
}
