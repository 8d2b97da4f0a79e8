//! A daemon whose every connection is in use says so in its log: clients
//! past the bound wait in the kernel's queue, and their requests timed out
//! as if a provider were slow, with nothing saying why.

use std::os::unix::net::UnixStream;

use tokend::ipc::socket::MAX_CONNECTIONS;

use crate::support::daemon::Daemon;
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
