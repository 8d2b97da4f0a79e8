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

/// A path of one variable that cannot be read while the other gives the
/// certificates (a typo in `SSL_CERT_FILE`, say, that was to add a private
/// CA): the start goes on, but says so, and `tokend --check` says so first.
/// The loader passed over it without a word, and the first login failed
/// with "UnknownIssuer", naming no variable.
#[test]
fn an_unreadable_ca_path_beside_working_ones_is_said() {
    let system = std::path::Path::new("/etc/ssl/certs");
    let has_certificates = std::fs::read_dir(system).is_ok_and(|mut entries| {
        entries.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "pem")))
    });
    if !has_certificates {
        crate::support::skip::say(format_args!(
            "SKIPPED an_unreadable_ca_path_beside_working_ones_is_said: \
             no certificates in /etc/ssl/certs (ca-certificates)"
        ));
        return;
    }
    let provider = Provider::rfc8628();
    let env = vec![
        ("SSL_CERT_FILE".to_owned(), "/nonexistent/ca.pem".to_owned()),
        ("SSL_CERT_DIR".to_owned(), system.display().to_string()),
    ];
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            env,
            ..DaemonOptions::default()
        },
    );
    let said = "SSL_CERT_FILE names /nonexistent/ca.pem, which cannot be read (No such file";
    let log = daemon.log();
    assert!(
        log.contains(said) && log.contains("ca_path_unreadable"),
        "{log}"
    );
    let check = daemon.tokend(&["--check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    assert!(stderr(&check).contains(said), "{}", stderr(&check));
}
