//! Signals from the process's first step on: a SIGHUP or SIGTERM that
//! comes while `tokend` reads its config (before its async runtime and
//! its handlers exist) is handled, not the default action that killed it
//! (status 129, no line in the log; systemd takes a death by SIGHUP for a
//! clean exit and does not restart it). The config is a FIFO the test
//! holds ([`HeldConfig`]): the signal is sent while `tokend` is known to
//! be in that read.

use crate::support;

use rustix::process::Signal;
use support::daemon::{DaemonOptions, stderr};
use support::held_config::HeldConfig;
use support::provider::Provider;

/// A reload asked for while the config is read is done once tokend is up
/// (the file may have changed since it was read), and tokend serves.
#[test]
fn a_reload_during_the_config_read_runs_once_tokend_is_up() {
    let provider = Provider::rfc8628();
    let (mut daemon, held) = HeldConfig::spawn(&provider.config("demo"), DaemonOptions::default());
    support::process::signal(daemon.pid(), Signal::HUP);
    held.release();
    daemon.wait_for_notification("READY=1");
    daemon.notifications.clear();
    daemon.wait_for_notification("RELOADING=1");
    daemon.wait_for_notification("READY=1");
    let out = daemon.tokenctl(&["status", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // (Read during the rest of the start, it is said so; read once up, it
    // is a reload as any other: which one, the scheduler decides.)
    assert!(daemon.log().contains("config reloaded"), "{}", daemon.log());
}

/// A stop asked for while the config is read ends the start cleanly
/// (status 0, said in the log, no socket left), as one during the rest of
/// the start does.
#[test]
fn a_stop_during_the_config_read_ends_the_start_cleanly() {
    let provider = Provider::rfc8628();
    for signal in [Signal::TERM, Signal::INT] {
        let (mut daemon, held) =
            HeldConfig::spawn(&provider.config("demo"), DaemonOptions::default());
        support::process::signal(daemon.pid(), signal);
        held.release();
        let status = daemon.wait_for_exit(std::time::Duration::from_secs(30));
        assert_eq!(
            status.code(),
            Some(0),
            "{signal:?}: {status}\n{}",
            daemon.log()
        );
        assert!(daemon.log().contains("stopping"), "{}", daemon.log());
        assert!(!daemon.socket.exists(), "{signal:?}: the socket was left");
    }
}
