//! A daemon whose bus goes away (the bus daemon crashed or was restarted)
//! stops as for SIGTERM and exits with a failure, so that the service
//! manager (`Restart=on-failure`) starts it again on the bus as it is now:
//! left running, it would answer on its socket but be gone from D-Bus for
//! good, with a watchdog that never notices.

use crate::support;

use std::time::Duration;

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, stdout};
use support::provider::Provider;

/// How long the daemon may take to notice the loss and stop.
const EXIT_WITHIN: Duration = Duration::from_secs(30);

/// `busctl call ... ListProviders` on `bus`.
fn list_providers(bus: &PrivateBus) -> std::process::Output {
    bus.command("busctl")
        .arg(format!("--address={}", bus.address()))
        .args([
            "call",
            "org.tokend.Broker1",
            "/org/tokend/Broker1",
            "org.tokend.Broker1",
            "ListProviders",
        ])
        .output()
        .expect("run busctl")
}

#[test]
fn losing_the_bus_stops_the_daemon_with_a_failure_and_a_restart_serves_again() {
    let mut bus = PrivateBus::start();
    let provider = Provider::rfc8628();
    let options = DaemonOptions {
        bus: "session",
        env: vec![
            // As a user session names its bus: the same after a restart.
            ("DBUS_SESSION_BUS_ADDRESS".into(), bus.path_address()),
            // As the units have it: a watchdog fed all along must not
            // keep a daemon without its bus alive.
            ("WATCHDOG_USEC".into(), "400000".into()),
        ],
        ..DaemonOptions::default()
    };
    let mut daemon = Daemon::start_with(&provider.config("a"), options);
    daemon.wait_for_notification("WATCHDOG=1");
    let answer = list_providers(&bus);
    assert!(
        answer.status.success() && stdout(&answer).contains("\"a\""),
        "busctl: {answer:?}\nlog:\n{}",
        daemon.log()
    );

    bus.restart();
    let status = daemon.wait_for_exit(EXIT_WITHIN);

    let log = daemon.log();
    assert_eq!(status.code(), Some(1), "{status}; log:\n{log}");
    // The normal stop: the service manager is told, and the socket goes.
    daemon.wait_for_notification("STOPPING=1");
    assert!(
        !daemon.socket.exists(),
        "the socket is removed; log:\n{log}"
    );
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one ERROR line; log:\n{log}");
    assert!(
        errors[0].contains("lost the connection to the session bus")
            && errors[0].contains("stopping, so that the service manager starts tokend again"),
        "{}",
        errors[0]
    );
    let failed_signals = log.lines().filter(|l| l.contains("could not emit")).count();
    assert!(failed_signals <= 1, "log:\n{log}");

    // What the service manager does next: the new daemon takes the name
    // on the new bus.
    daemon.restart();
    let answer = list_providers(&bus);
    assert!(
        answer.status.success() && stdout(&answer).contains("\"a\""),
        "busctl after the restart: {answer:?}\nlog:\n{}",
        daemon.log()
    );
}
