//! What a reload refuses, and how it says so: the verdict first and the
//! file's problems capped, each at its level; a file the next start would
//! refuse (its socket path); a file still being written.

use crate::support;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::daemon::{Daemon, stderr};
use support::provider::Provider;

/// The `STATUS=` of the reload's `READY=1`.
fn status_after_reload(daemon: &mut Daemon) -> String {
    daemon.reload();
    daemon.wait_for_notification("READY=1")
}

/// The log's lines from the last "reloading the config" on.
fn last_reload(log: &str) -> Vec<&str> {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines
        .iter()
        .rposition(|line| line.contains("reloading the config"))
        .expect("a reload in the log");
    lines[start..].to_vec()
}

/// A file with 18 errors and 5 warnings (warnings first in the file): the
/// verdict is the reload's first line, then the 18 errors at ERROR, the
/// first 2 warnings at WARN, and a line for the 3 left out. One typo in a
/// generated file of 10,000 providers gave 20,001 lines at ERROR, the
/// warnings among them and the verdict last, which journald's rate limit
/// then dropped.
#[test]
fn a_refused_reload_says_its_verdict_first_and_lists_at_most_twenty_problems() {
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start(&provider.config("demo"));
    let mut providers = provider.config("demo");
    for n in 0..5 {
        providers += &provider.config_with(&format!("a{n}"), "issuer = \"https://idp.example\"");
    }
    for n in 0..18 {
        providers += &provider.config_with(&format!("b{n:02}"), "scopez = [\"x\"]");
    }
    daemon.write_config(&providers);
    let status = status_after_reload(&mut daemon);
    assert!(
        status.contains("the last reload failed (see the log)"),
        "{status}"
    );
    let log = daemon.log();
    let lines = last_reload(&log);
    let verdict = format!(
        "the new config is invalid; still running with the previous one (18 errors and 5 \
         warnings; the first 20 follow, `tokend --check --config {}` lists them all)",
        daemon.config.display()
    );
    let at = |needle: &str| lines.iter().position(|line| line.contains(needle));
    let verdict_at = at(&verdict).unwrap_or_else(|| panic!("no verdict: {log}"));
    assert!(
        lines[verdict_at].contains("ERROR") && lines[verdict_at].contains("reload_refused"),
        "{}",
        lines[verdict_at]
    );
    let problems: Vec<&&str> = lines
        .iter()
        .filter(|line| line.contains(&format!("{}:", daemon.config.display())))
        .collect();
    assert!(
        at("unknown key `scopez`").is_some_and(|first| first > verdict_at),
        "{log}"
    );
    let errors = problems
        .iter()
        .filter(|line| line.contains("ERROR") && line.contains("unknown key `scopez`"))
        .count();
    let warnings = problems
        .iter()
        .filter(|line| line.contains("WARN") && line.contains("`issuer` is ignored"))
        .count();
    assert_eq!((errors, warnings, problems.len()), (18, 2, 20), "{log}");
    let more = format!(
        "…and 3 more (3 warnings): run `tokend --check --config {}`",
        daemon.config.display()
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("WARN") && line.contains(&more)),
        "{log}"
    );
}

/// A reload of a file whose `socket` the next start refuses (a directory
/// anyone may write to) is refused, naming the problem as `tokend
/// --check` does: it was taken ("socket changed: that takes effect at the
/// next restart"), and the restart it asked for exited with status 2,
/// which the units do not restart. Mended, the reload is taken.
#[test]
fn a_reload_refuses_a_socket_path_the_next_start_would_refuse() {
    use std::os::unix::fs::PermissionsExt as _;
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start(&provider.config("demo"));
    let good = std::fs::read_to_string(&daemon.config).unwrap();
    let open = daemon.dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let socket = daemon.socket.display().to_string();
    let moved = good.replacen(&socket, &open.join("tokend.sock").display().to_string(), 1);
    assert_ne!(moved, good);
    std::fs::write(&daemon.config, &moved).unwrap();
    let status = status_after_reload(&mut daemon);
    assert!(
        status.contains("the last reload failed (see the log)"),
        "{status}"
    );
    let problem = format!(
        "{}:2:1: {} (owner uid {}, mode 0777) is writable by other users",
        daemon.config.display(),
        open.display(),
        rustix::process::geteuid().as_raw()
    );
    let log = daemon.log();
    assert!(
        log.contains(&format!(
            "the new config would fail the next start (as `tokend --check` says): {problem}"
        )),
        "{log}"
    );
    assert!(!log.contains("socket changed"), "{log}");
    let check = daemon.tokend(&["--check"]);
    assert_eq!(check.status.code(), Some(2), "{}", stderr(&check));
    assert!(stderr(&check).contains(&problem), "{}", stderr(&check));
    // Still served where it was.
    let out = daemon.tokenctl(&["status", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The directory mended: the reload is taken, the socket waiting for
    // the restart.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let status = status_after_reload(&mut daemon);
    assert!(!status.contains("reload failed"), "{status}");
    assert!(
        status.contains("a restart is needed for socket"),
        "{status}"
    );
}

/// A generator rewriting the file in place, one provider table at a time,
/// all through the reloads: each reload finds the file changing and,
/// after a few reads, refuses it, where it applied the half it read (the
/// other providers removed, their sessions lost with the memory store).
/// Once the writer is done, the reload takes the whole file.
#[test]
fn a_reload_does_not_apply_a_file_still_being_written() {
    let provider = Provider::rfc8628();
    let names: Vec<String> = (0..40).map(|n| format!("p{n:02}")).collect();
    let tables: Vec<String> = names.iter().map(|name| provider.config(name)).collect();
    let mut daemon = Daemon::start(&tables.concat());
    let whole = std::fs::read_to_string(&daemon.config).unwrap();
    let head = whole.split("[providers.").next().unwrap().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (path, stop) = (daemon.config.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            // Bounded, whatever becomes of the test.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                // Truncated and written again, in place (same inode).
                let mut file = std::fs::File::create(&path).unwrap();
                file.write_all(head.as_bytes()).unwrap();
                for table in &tables {
                    file.write_all(table.as_bytes()).unwrap();
                    // A generator's pace, not a synchronisation.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            std::fs::write(&path, &whole).unwrap();
        })
    };
    for _ in 0..3 {
        let status = status_after_reload(&mut daemon);
        assert!(status.contains("STATUS=40 providers:"), "{status}");
        assert!(
            status.contains("the last reload failed (see the log)"),
            "{status}"
        );
    }
    let log = daemon.log();
    assert!(
        log.contains("the config file changed while it was read (still being written?)")
            && log.contains("the config file kept changing while it was read (5 reads"),
        "{log}"
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let status = status_after_reload(&mut daemon);
    assert!(status.contains("STATUS=40 providers:"), "{status}");
    assert!(!status.contains("reload failed"), "{status}");
}
