//! `allow_units`: real processes placed in real cgroups named like systemd
//! units, as a `DynamicUser=` service would run (a uid no one configured).
//! A process whose unit matches a pattern gets the provider's token, on
//! the socket and over D-Bus; the same uid outside the unit, and a
//! sub-cgroup named like the unit inside another unit (what `Delegate=`
//! lets a service make), are refused as if the provider did not exist.
//!
//! Needs root and a writable cgroup v2 hierarchy; skipped with a line on
//! stderr otherwise. The cgroups are removed when the test ends.

use crate::support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, login, stderr, stdout};
use support::other_uid::{NOBODY, OtherUser};
use support::provider::Provider;

/// A uid nobody configured, as systemd picks for a `DynamicUser=` service.
const DYNAMIC_UID: u32 = 61_234;

/// Exit status of tokenctl for an unknown provider.
const UNKNOWN_PROVIDER: i32 = 7;

/// Parents of test cgroups made by this process so far.
static PARENTS_MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Test cgroups under one parent, removed (leaves first) on drop.
struct UnitCgroups {
    parent: PathBuf,
    made: Vec<PathBuf>,
}

impl UnitCgroups {
    /// A fresh parent `tokend-test-PID-N.slice` (a slice, as units live in)
    /// under this process's own cgroup, or under the root of the hierarchy
    /// when this process already runs in a unit (a cgroup below a unit
    /// belongs to that unit, whatever its name). `None`, with the reason on
    /// stderr, when it cannot be made.
    fn new(test: &str) -> Option<Self> {
        if !rustix::process::geteuid().is_root() {
            crate::support::skip::say(format_args!(
                "SKIPPED {test}: needs root to make cgroups and switch uid"
            ));
            return None;
        }
        let Some(mount) = cgroup2_mount() else {
            crate::support::skip::say(format_args!(
                "SKIPPED {test}: no cgroup v2 hierarchy is mounted"
            ));
            return None;
        };
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("0::"))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "/".into());
        let base = if tokend::ipc::caller_unit::unit_of_cgroup_path(&own).is_none() {
            mount.join(own.trim_start_matches('/'))
        } else {
            mount
        };
        // One parent a test: tests of one process run side by side.
        let nth = PARENTS_MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let parent = base.join(format!("tokend-test-{}-{nth}.slice", std::process::id()));
        if let Err(e) = std::fs::create_dir(&parent) {
            crate::support::skip::say(format_args!(
                "SKIPPED {test}: cannot make {}: {e}",
                parent.display()
            ));
            return None;
        }
        Some(Self {
            made: vec![parent.clone()],
            parent,
        })
    }

    /// Makes the cgroup `relative` (one level at a time) under the parent.
    fn make(&mut self, relative: &str) -> PathBuf {
        let mut path = self.parent.clone();
        for part in relative.split('/') {
            path = path.join(part);
            if !path.exists() {
                std::fs::create_dir(&path).unwrap();
                self.made.push(path.clone());
            }
        }
        path
    }
}

impl Drop for UnitCgroups {
    fn drop(&mut self) {
        for dir in self.made.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Where the cgroup2 file system is mounted (`/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on a hybrid system).
fn cgroup2_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mount_point = left.split_whitespace().nth(4)?;
        (right.split_whitespace().next() == Some("cgroup2")).then(|| PathBuf::from(mount_point))
    })
}

/// `program args` run as `uid` (group `nogroup`, which may reach the
/// socket) inside `cgroup`, or where the test runs when `None`: a
/// shell moves itself into the cgroup, drops root and becomes the program,
/// so the program's own process is the one in the unit.
fn run_in(uid: u32, cgroup: Option<&Path>, program: &Path, args: &[&str]) -> Output {
    let script = r#"if [ -n "$1" ]; then echo $$ > "$1/cgroup.procs" || exit 99; fi; shift
exec setpriv --reuid="$UID_TO" --regid="$GID_TO" --clear-groups "$@""#;
    Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(cgroup.map_or_else(PathBuf::new, Path::to_path_buf))
        .arg(program)
        .args(args)
        .env("UID_TO", uid.to_string())
        .env("GID_TO", NOBODY.to_string())
        .output()
        .unwrap()
}

/// tokend serving `config` on `bus`, its socket reachable by `nogroup`.
fn start_daemon(config: &str, bus: &PrivateBus) -> Daemon {
    let daemon = Daemon::start_with(
        config,
        DaemonOptions {
            daemon_keys: crate::socket::socket_shared_with_nobody(),
            bus: "session",
            env: vec![("DBUS_SESSION_BUS_ADDRESS".into(), bus.address().into())],
            ..DaemonOptions::default()
        },
    );
    for dir in [daemon.dir.path(), daemon.socket.parent().unwrap()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    daemon
}

#[test]
fn a_process_in_a_matching_unit_is_granted_and_others_are_not() {
    let Some(mut cgroups) =
        UnitCgroups::new("a_process_in_a_matching_unit_is_granted_and_others_are_not")
    else {
        return;
    };
    let backup = cgroups.make("backup.service");
    let nightly = cgroups.make("sync@nightly.service");
    let nested = cgroups.make("other.service/backup.service");
    let binaries = OtherUser::nobody_or_skip("allow_units").expect("root");
    let bus = PrivateBus::start_shared();
    let provider = Provider::rfc8628();
    let config = provider.config_with(
        "shared",
        "allow_units = [\"backup.service\", \"sync@*.service\"]",
    );
    let mut daemon = start_daemon(&config, &bus);
    let first = login(&daemon, "shared", |code| {
        provider.approve(code).unwrap();
    });
    let tokenctl = binaries.binary("tokenctl");
    let socket = daemon.socket.to_str().unwrap().to_owned();
    let token_in = |cgroup: Option<&Path>| {
        run_in(
            DYNAMIC_UID,
            cgroup,
            &tokenctl,
            &["--socket", &socket, "token", "shared"],
        )
    };

    // Socket: by name, and by pattern.
    for unit in [&backup, &nightly] {
        let out = token_in(Some(unit));
        assert!(
            out.status.success(),
            "{}: {}\nlog:\n{}",
            unit.display(),
            stderr(&out),
            daemon.log()
        );
        assert_eq!(stdout(&out).trim_end(), first);
    }
    // The same uid outside any unit, and inside another unit under a
    // sub-cgroup that only looks like one: no such provider.
    for cgroup in [None, Some(nested.as_path())] {
        let out = token_in(cgroup);
        assert_eq!(
            out.status.code(),
            Some(UNKNOWN_PROVIDER),
            "{cgroup:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("no provider named `shared`"),
            "{}",
            stderr(&out)
        );
    }

    get_token_over_dbus(&bus, &backup, &first);

    // A reload that takes the grant away refuses the unit; one that gives
    // it back (no provider granted units in between) grants it again.
    daemon.write_config(&provider.config("shared"));
    daemon.reload();
    let out = token_in(Some(&backup));
    assert_eq!(
        out.status.code(),
        Some(UNKNOWN_PROVIDER),
        "{}",
        stderr(&out)
    );
    daemon.write_config(&config);
    daemon.reload();
    let out = token_in(Some(&backup));
    assert!(
        out.status.success(),
        "{}\nlog:\n{}",
        stderr(&out),
        daemon.log()
    );
}

/// D-Bus: the bus reports the caller's pid; tokend pins and reads it. The
/// process in `backup` gets the token `first`, one outside is refused.
fn get_token_over_dbus(bus: &PrivateBus, backup: &Path, first: &str) {
    // As `nobody`: dbus-daemon admits only uids the name service knows
    // (systemd's nss-systemd names a DynamicUser= uid while it runs).
    let busctl = support::bus::find_program("busctl").expect("busctl");
    let address = format!("--address={}", bus.address());
    let get_token = |cgroup: Option<&Path>| {
        run_in(
            NOBODY,
            cgroup,
            &busctl,
            &[
                &address,
                "call",
                "org.tokend.Broker1",
                "/org/tokend/Broker1",
                "org.tokend.Broker1",
                "GetToken",
                "s",
                "shared",
            ],
        )
    };
    let granted = get_token(Some(backup));
    assert!(granted.status.success(), "{}", stderr(&granted));
    assert!(stdout(&granted).contains(first), "{}", stdout(&granted));
    let refused = get_token(None);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("no provider named `shared`"),
        "{}",
        stderr(&refused)
    );
}

/// The pid a D-Bus peer connected with, taken by a process of a granted
/// unit: a process of the caller's uid connects, hands the connection to a
/// child and exits; a process of the same uid in `backup.service` is given
/// its pid (`ns_last_pid`); the child then calls `GetToken`. The bus (no
/// pidfd before dbus-daemon 1.15.8) vouches for the pid it saw at the
/// connect, which is now the service's: the caller must still be refused,
/// as the process at that pid started after the peer connected.
#[test]
fn a_pid_reused_by_a_granted_unit_lends_it_nothing_over_dbus() {
    let test = "a_pid_reused_by_a_granted_unit_lends_it_nothing_over_dbus";
    let Some(mut cgroups) = UnitCgroups::new(test) else {
        return;
    };
    let backup = cgroups.make("backup.service");
    let bus = PrivateBus::start_shared();
    let (_provider, daemon) = shared_with_backup_logged_in(&bus);
    let Some(staged) = ReusedPid::stage(test, &bus, &backup) else {
        return;
    };
    let answer = staged.call();
    assert!(
        answer.contains("no provider named `shared`"),
        "{answer}\nlog:\n{}",
        daemon.log()
    );
    daemon.wait_for_log(
        1,
        &["caller_unit_unknown", "started after the caller connected"],
    );
}

/// The same, staged before tokend starts (a restart, or a start the
/// caller itself asks for by bus activation): tokend never saw the peer
/// connect, so the start-time check has no bound (the service started
/// before tokend too) and the peer gets no unit, on a bus that gives no
/// pidfd of its peers. It was taken to have connected when tokend began to
/// watch, and the service's token was handed over.
#[test]
fn a_pid_reused_before_tokend_started_lends_nothing_over_dbus() {
    let test = "a_pid_reused_before_tokend_started_lends_nothing_over_dbus";
    let Some(mut cgroups) = UnitCgroups::new(test) else {
        return;
    };
    let backup = cgroups.make("backup.service");
    let bus = PrivateBus::start_shared();
    let Some(staged) = ReusedPid::stage(test, &bus, &backup) else {
        return;
    };
    let (_provider, daemon) = shared_with_backup_logged_in(&bus);
    let answer = staged.call();
    assert!(
        answer.contains("no provider named `shared`"),
        "{answer}\nlog:\n{}",
        daemon.log()
    );
    daemon.wait_for_log(
        1,
        &[
            "caller_unit_unknown",
            "connected before tokend began to watch the bus",
        ],
    );
}

/// A daemon on `bus` whose provider `shared` is granted to
/// `backup.service` and logged in; its provider, which must outlive it.
fn shared_with_backup_logged_in(bus: &PrivateBus) -> (Provider, Daemon) {
    let provider = Provider::rfc8628();
    let config = provider.config_with("shared", "allow_units = [\"backup.service\"]");
    let daemon = start_daemon(&config, bus);
    login(&daemon, "shared", |code| {
        provider.approve(code).unwrap();
    });
    (provider, daemon)
}

/// A D-Bus connection whose connector has exited, held by its child, and
/// a process of `backup.service` at the connector's pid.
struct ReusedPid {
    go: std::process::ChildStdin,
    said: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    service: std::process::Child,
    _script: tempfile::TempDir,
}

impl ReusedPid {
    /// Stages it on `bus`; `None` (said as a skip) when no process could be
    /// started at the pid.
    fn stage(test: &str, bus: &PrivateBus, backup: &Path) -> Option<Self> {
        let (script, path) = support::other_uid::reachable_file(
            "handed_connection.py",
            include_str!("support/handed_connection.py"),
        );
        let mut connector = Command::new("setpriv")
            .args([
                "--reuid",
                &NOBODY.to_string(),
                "--regid",
                &NOBODY.to_string(),
            ])
            .args(["--clear-groups", "/usr/bin/python3"])
            .arg(&path)
            .args([bus.address(), "shared"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let go = connector.stdin.take().unwrap();
        let mut said =
            std::io::BufRead::lines(std::io::BufReader::new(connector.stdout.take().unwrap()));
        let line = said.next().unwrap().unwrap();
        let pid: i32 = line.strip_prefix("pid ").unwrap().parse().unwrap();
        // Reaped: the pid is free.
        assert!(connector.wait().unwrap().success());
        // The service starts later than the connect, as one started by a
        // timer would: start times are known to a clock tick (10 ms), so
        // one within the tick of the connect cannot be told from the
        // connector. (This stages the scenario; nothing is waited for.)
        std::thread::sleep(std::time::Duration::from_millis(50));
        let Some(service) = process_at_pid(pid, backup) else {
            crate::support::skip::say(format_args!(
                "SKIPPED {test}: could not start a process at pid {pid}"
            ));
            return None;
        };
        Some(Self {
            go,
            said,
            service,
            _script: script,
        })
    }

    /// Has the connector's child call `GetToken`; its answer.
    fn call(mut self) -> String {
        std::io::Write::write_all(&mut self.go, b"go\n").unwrap();
        let answer = self.said.next().unwrap().unwrap();
        let _ = self.service.kill();
        let _ = self.service.wait();
        answer
    }
}

/// A process of `nobody` in `cgroup` at pid `pid` (freed a moment ago),
/// sleeping once it has said "ready": `ns_last_pid` set just below it before each spawn, tried a
/// few times (other processes may take it first). `None` when it never
/// got the pid.
fn process_at_pid(pid: i32, cgroup: &Path) -> Option<std::process::Child> {
    let script = r#"echo $$ > "$1/cgroup.procs" || exit 99
exec setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'echo ready; exec sleep 60'"#;
    for _ in 0..20 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).ok()?;
        let mut child = Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(cgroup)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        if i32::try_from(child.id()).ok() == Some(pid) {
            // In the unit and of nobody's uid, which it says once it is.
            let mut ready = String::new();
            let stdout = child.stdout.as_mut()?;
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut ready).ok()?;
            return (ready.trim() == "ready").then_some(child);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}
