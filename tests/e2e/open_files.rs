//! The limit on open files: tokend raises its soft limit to the hard one
//! (a shell's `ulimit -n 64` let a burst of clients run it out of
//! descriptors), and says at the start when the hard limit is below what
//! it may need (its socket connections and its own).

use crate::support;

use support::daemon::{Daemon, DaemonOptions};
use support::provider::Provider;

/// The daemon's "Max open files" soft and hard limits, as /proc shows them.
fn open_file_limits(daemon: &Daemon) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", daemon.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a line for open files");
    let mut figures = line["Max open files".len()..].split_whitespace();
    (
        figures.next().unwrap().to_owned(),
        figures.next().unwrap().to_owned(),
    )
}

fn started_with(limit: &str) -> Daemon {
    let provider = Provider::rfc8628();
    let options = DaemonOptions {
        wrapper: vec!["prlimit".into(), format!("--nofile={limit}"), "--".into()],
        ..DaemonOptions::default()
    };
    let daemon = Daemon::start_with(&provider.config("demo"), options);
    drop(provider);
    daemon
}

#[test]
fn the_soft_limit_on_open_files_is_raised_to_the_hard_one() {
    let daemon = started_with("64:4096");
    assert_eq!(open_file_limits(&daemon), ("4096".into(), "4096".into()));
    assert!(!daemon.log().contains("few_open_files"), "{}", daemon.log());
    assert!(daemon.tokenctl(&["status"]).status.success());
}

#[test]
fn a_hard_limit_below_what_tokend_may_need_is_said() {
    let daemon = started_with("64:256");
    assert_eq!(open_file_limits(&daemon), ("256".into(), "256".into()));
    let said = daemon.wait_for_log(1, &["event=\"few_open_files\""]);
    assert!(
        said[0].contains("tokend may have 256 files open"),
        "{said:?}"
    );
}
