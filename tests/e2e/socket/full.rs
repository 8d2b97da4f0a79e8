//! A daemon whose every connection is in use says so in its log: clients
//! past the bound wait in the kernel's queue, and their requests timed out
//! as if a provider were slow, with nothing saying why.

use std::os::unix::net::UnixStream;

use tokend::ipc::socket::MAX_CONNECTIONS;

use crate::support::daemon::{Daemon, DaemonOptions};
use crate::support::provider::Provider;

#[test]
fn a_daemon_with_every_connection_in_use_says_so() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    // The daemon's own uid: no per-uid cap, only the daemon's bound.
    let held: Vec<UnixStream> = (0..MAX_CONNECTIONS)
        .map(|_| UnixStream::connect(&daemon.socket).expect("connect"))
        .collect();
    let said = daemon.wait_for_log(1, &["connections_full"]);
    assert!(
        said[0].contains(&format!("all {MAX_CONNECTIONS} connections are in use")),
        "{said:?}"
    );
    drop(held);
    // Served again once they close.
    let out = daemon.tokenctl(&["version"]);
    assert!(out.status.success(), "{out:?}");
}

/// A daemon out of file descriptors (its limit 40 here; clients holding
/// connections open) says so a few times a minute, naming the limit, and
/// serves again once they close: it said "accept failed: Too many open
/// files" ten times a second for as long as it lasted, with no event name.
#[test]
fn a_daemon_out_of_file_descriptors_says_so_a_few_times() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            wrapper: vec!["prlimit".into(), "--nofile=40:40".into(), "--".into()],
            ..DaemonOptions::default()
        },
    );
    let held: Vec<UnixStream> = (0..60)
        .map(|_| UnixStream::connect(&daemon.socket).expect("connect"))
        .collect();
    let said = daemon.wait_for_log(1, &["accept_failed"]);
    assert!(
        said[0].contains("Too many open files")
            && said[0].contains("tokend's limit of open files, 40, is reached"),
        "{said:?}"
    );
    // Three seconds of it: thirty lines before, at most ten a minute now.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let lines = daemon
        .log()
        .lines()
        .filter(|line| line.contains("accept_failed"))
        .count();
    assert!((1..=10).contains(&lines), "{lines} lines: {}", daemon.log());
    drop(held);
    let out = daemon.tokenctl(&["version"]);
    assert!(out.status.success(), "{out:?}");
}
