//! The CA certificates the HTTP client loads at start: from
//! `SSL_CERT_FILE`/`SSL_CERT_DIR` when set, else the system's store. None
//! loaded (a typo in the variable, a file the unit's `ProtectHome=` hides,
//! an image without ca-certificates) is a problem only a person can cure:
//! the start stops with the config's status (2), which the units do not
//! restart, naming the variables, and `tokend --check` says so first. It
//! was exit 1, restarted until systemd's start limit, naming nothing.

use std::time::Duration;

use crate::support::daemon::{Daemon, DaemonOptions, stderr};
use crate::support::provider::Provider;

#[test]
fn no_ca_certificates_stop_the_start_naming_where_they_were_looked_for() {
    let provider = Provider::rfc8628();
    let empty = tempfile::tempdir().unwrap();
    let env = vec![
        ("SSL_CERT_FILE".to_owned(), "/nonexistent/ca.pem".to_owned()),
        (
            "SSL_CERT_DIR".to_owned(),
            empty.path().display().to_string(),
        ),
    ];
    let mut daemon = Daemon::spawn_with(
        &provider.config("demo"),
        DaemonOptions {
            env,
            ..DaemonOptions::default()
        },
    );
    let status = daemon.wait_for_exit(Duration::from_secs(60));
    let log = daemon.log();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains("No CA certificates were loaded")
            && log.contains("from SSL_CERT_FILE=/nonexistent/ca.pem and SSL_CERT_DIR="),
        "{log}"
    );
    let check = daemon.tokend(&["--check"]);
    assert_eq!(check.status.code(), Some(2), "{}", stderr(&check));
    assert!(
        stderr(&check).contains("SSL_CERT_FILE=/nonexistent/ca.pem"),
        "{}",
        stderr(&check)
    );
}
