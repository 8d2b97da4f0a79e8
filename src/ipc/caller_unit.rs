//! The systemd unit a caller runs in, for `allow_units`: read from the
//! caller's cgroup, through a pidfd, so that a reused pid never lends one
//! process's unit to another.
//!
//! The process is pinned first: on the socket by `SO_PEERPIDFD` (Linux
//! 6.5+), a pidfd of the very process that connected; on older kernels,
//! and over D-Bus when the bus offers no `ProcessFD`, by `pidfd_open` of
//! the pid the kernel or the bus reported. Then its uid and cgroup are read
//! from `/proc/PID`, and the pidfd is asked again for its pid: a pidfd
//! answers `-1` once its process is gone, so an unchanged pid proves that
//! what was read belonged to the pinned process. In the `pidfd_open` case
//! the pid could already have been reused before it was opened; the uid
//! read must then equal the uid the kernel or the bus vouched for at
//! connect time. On the socket the pid is opened as the connection is
//! accepted, a moment after the connect. Over D-Bus the first call, when
//! a peer is looked up, may come any time after its connect: a process of
//! the caller's uid could connect, hand the connection to a child and exit,
//! and wait for a service of the same uid (one `allow_units` grants, which
//! the caller cannot otherwise read) to be given its pid. So a D-Bus peer's
//! process must have started before the peer appeared on the bus
//! ([`of_pid_connected_by`]): a reused pid belongs to a later process.
//! Start times are known to a clock tick (10 ms): one started within the
//! tick of the connect passes, as on the socket.
//!
//! The unit is systemd's own answer (`sd_pid_get_unit`): the first
//! service or scope below the slices of the cgroup path. Cgroups below a
//! unit are the unit's own business (`Delegate=`): a service that makes a
//! sub-cgroup named `backup.service` is still itself.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::process::{Pid, PidfdFlags, pidfd_open};

/// Clock ticks a second in `/proc/PID/stat` (Linux's `USER_HZ`, 100 on
/// every architecture tokend is built for).
const USER_HZ: u64 = 100;

/// Why a caller's unit could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CallerUnitError {
    /// The process exited (or was never there) before it could be read.
    #[error("the process has exited")]
    Gone,
    /// A pidfd could not be had.
    #[error("cannot open a pidfd for pid {pid}: {source}")]
    Pidfd {
        /// The pid.
        pid: i32,
        /// The failure.
        source: io::Error,
    },
    /// A file under `/proc` could not be read (`ProtectProc=invisible`
    /// hides other users' processes from the daemon).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The failure.
        source: io::Error,
    },
    /// The process is not the one that connected: another uid owns it.
    #[error(
        "pid {pid} belongs to uid {found}, not to the caller's uid {expected}: the pid was reused"
    )]
    OtherProcess {
        /// The pid.
        pid: i32,
        /// The uid the kernel or bus vouched for.
        expected: u32,
        /// The uid of the process now at that pid.
        found: u32,
    },
    /// The bus gave no pidfd, and tokend could not watch peers arrive:
    /// a pid alone might be another process's.
    #[error(
        "the bus gives no pidfd of the caller (dbus-daemon before 1.15.8) and tokend could not watch callers connect, so its pid cannot be told from a reused one"
    )]
    Unwatched,
    /// The bus gave no pidfd, and the peer connected before tokend began
    /// to watch the bus (or so long ago that its arrival is forgotten):
    /// when is unknown, so any process at its pid that started before
    /// tokend would pass the start-time check, a reused pid too.
    #[error(
        "the bus gives no pidfd of the caller (dbus-daemon before 1.15.8) and it connected before tokend began to watch the bus, so its pid cannot be told from a reused one: reconnect it to the bus (restart it)"
    )]
    ConnectedUnseen,
    /// The process at the pid started after its connection appeared:
    /// it is not the process that connected, whose pid it reuses.
    #[error("pid {pid} started after the caller connected: the pid was reused")]
    StartedLater {
        /// The pid.
        pid: i32,
    },
}

/// The lines saying a caller's unit could not be read, a few a minute.
static UNKNOWN_UNITS: crate::broker::refusal_log::RefusalLog =
    crate::broker::refusal_log::RefusalLog::new();

/// The caller's unit for [`crate::broker::Caller::unit`], or `None` with
/// the reason logged for the administrator: a unit that cannot be read
/// grants nothing, and allow_units silently not working would be a puzzle.
pub fn logged(
    result: Result<Option<String>, CallerUnitError>,
    uid: u32,
    pid: Option<i32>,
) -> Option<std::sync::Arc<str>> {
    match result {
        Ok(unit) => unit.map(std::sync::Arc::from),
        // A client that left before it was identified is no news.
        Err(CallerUnitError::Gone) => {
            tracing::debug!(uid, pid, "the caller exited before its unit was read");
            None
        }
        Err(e) => {
            // Any local user can connect as fast as the socket accepts, and
            // under the shipped unit's ProtectProc=invisible, before the
            // README's drop-in, every other uid's connection lands here:
            // a few lines a minute, as for refusals.
            if let Some(dropped) = UNKNOWN_UNITS.admit(std::time::Instant::now()) {
                // The hidden-processes hint only where it can be the cause.
                let hint = if matches!(
                    e,
                    CallerUnitError::ConnectedUnseen | CallerUnitError::Unwatched
                ) {
                    ""
                } else {
                    " (under ProtectProc=invisible tokend cannot see other users' processes; see README, allow_units)"
                };
                tracing::warn!(
                    event = "caller_unit_unknown",
                    uid,
                    pid,
                    "cannot tell the caller's systemd unit, so allow_units grants it nothing: {e}{hint}{}",
                    crate::broker::refusal_log::not_logged_note(dropped)
                );
            }
            None
        }
    }
}

/// The unit of a socket peer whose `SO_PEERCRED` said `uid` and `pid`.
///
/// # Errors
/// When the peer's process cannot be pinned or read (see
/// [`CallerUnitError`]); `Ok(None)` when it runs in no unit.
pub fn of_socket_peer(
    socket: impl AsFd,
    uid: u32,
    pid: Option<i32>,
) -> Result<Option<String>, CallerUnitError> {
    use nix::sys::socket::{getsockopt, sockopt::PeerPidfd};
    match getsockopt(&socket, PeerPidfd) {
        Ok(pidfd) => of_pidfd(pidfd.as_fd(), uid),
        // A kernel before 6.5 does not know the option.
        Err(nix::errno::Errno::ENOPROTOOPT) => of_pid(pid.ok_or(CallerUnitError::Gone)?, uid),
        // Anything else (the peer is gone: ESRCH) must not fall back to
        // the pid, which may be another process's by now.
        Err(_) => Err(CallerUnitError::Gone),
    }
}

/// The unit of process `pid` of `uid` (a D-Bus peer as the bus reports it,
/// or a socket peer on a kernel without `SO_PEERPIDFD`).
///
/// # Errors
/// As [`of_socket_peer`].
pub fn of_pid(pid: i32, uid: u32) -> Result<Option<String>, CallerUnitError> {
    of_pidfd(open_pidfd(pid)?.as_fd(), uid)
}

/// A pidfd pinning the process now at `pid`.
fn open_pidfd(pid: i32) -> Result<OwnedFd, CallerUnitError> {
    let raw = Pid::from_raw(pid).ok_or(CallerUnitError::Gone)?;
    pidfd_open(raw, PidfdFlags::empty()).map_err(|e| {
        if e == rustix::io::Errno::SRCH {
            CallerUnitError::Gone
        } else {
            CallerUnitError::Pidfd {
                pid,
                source: e.into(),
            }
        }
    })
}

/// The unit of process `pid` of `uid`, a D-Bus peer the bus reported
/// without a pidfd, that had connected by `connected_by` (`CLOCK_BOOTTIME`):
/// a process at that pid that started later is not the one that connected.
///
/// # Errors
/// As [`of_socket_peer`], and [`CallerUnitError::StartedLater`].
pub fn of_pid_connected_by(
    pid: i32,
    uid: u32,
    connected_by: std::time::Duration,
) -> Result<Option<String>, CallerUnitError> {
    let pidfd = open_pidfd(pid)?;
    let path = format!("/proc/{pid}/stat");
    let started = start_time(&read(&path)?).ok_or_else(|| CallerUnitError::Read {
        path,
        source: io::Error::other("no start time"),
    })?;
    // Read while the pidfd pins the process: `of_pidfd` then checks it is
    // still alive at that pid, so the start time was its own.
    if started > connected_by {
        return Err(CallerUnitError::StartedLater { pid });
    }
    of_pidfd(pidfd.as_fd(), uid)
}

/// When the process whose `/proc/PID/stat` is `stat` started, since boot
/// (the clock of `CLOCK_BOOTTIME`), rounded down to a clock tick.
fn start_time(stat: &str) -> Option<std::time::Duration> {
    // The command name, in parentheses, may hold spaces and parentheses:
    // the fields after it start after its last ')'. `starttime` is the
    // 22nd field, the 20th after the name.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    Some(std::time::Duration::from_millis(
        ticks.saturating_mul(1000 / USER_HZ),
    ))
}

/// Now, on the clock process start times are given in.
#[must_use]
pub fn since_boot() -> std::time::Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    std::time::Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// The unit of the process `pidfd` refers to, which must run as `uid`.
///
/// # Errors
/// As [`of_socket_peer`].
pub fn of_pidfd(pidfd: BorrowedFd<'_>, uid: u32) -> Result<Option<String>, CallerUnitError> {
    let pid = pid_of(pidfd)?;
    let status = read(&format!("/proc/{pid}/status"))?;
    let cgroup = read(&format!("/proc/{pid}/cgroup"))?;
    // Still the same live process: what was read is its own.
    if pid_of(pidfd)? != pid {
        return Err(CallerUnitError::Gone);
    }
    let found = effective_uid(&status).ok_or_else(|| CallerUnitError::Read {
        path: format!("/proc/{pid}/status"),
        source: io::Error::other("no Uid line"),
    })?;
    if found != uid {
        return Err(CallerUnitError::OtherProcess {
            pid,
            expected: uid,
            found,
        });
    }
    Ok(unit_of_cgroup_file(&cgroup).map(str::to_owned))
}

fn read(path: &str) -> Result<String, CallerUnitError> {
    // A process that exits while its files are read answers ESRCH.
    let gone = rustix::io::Errno::SRCH.raw_os_error();
    std::fs::read_to_string(path).map_err(|source| {
        if source.raw_os_error() == Some(gone) {
            CallerUnitError::Gone
        } else {
            CallerUnitError::Read {
                path: path.to_owned(),
                source,
            }
        }
    })
}

/// The pid a pidfd refers to, from its `fdinfo` (`Pid:`, `-1` once the
/// process is gone).
fn pid_of(pidfd: BorrowedFd<'_>) -> Result<i32, CallerUnitError> {
    use std::os::fd::AsRawFd as _;
    let info = read(&format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd()))?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .filter(|&pid| pid > 0)
        .ok_or(CallerUnitError::Gone)
}

/// The effective uid of a `/proc/PID/status` (its `Uid:` line: real,
/// effective, saved, file system), as `SO_PEERCRED` and the bus report it.
fn effective_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The unit of a `/proc/PID/cgroup` file: from the unified (v2) hierarchy,
/// `0::PATH`, else from systemd's own v1 hierarchy (`name=systemd`).
#[must_use]
pub fn unit_of_cgroup_file(text: &str) -> Option<&str> {
    // Each line is `HIERARCHY-ID:CONTROLLERS:PATH`.
    let path_of = |id: Option<&str>, controllers: &str| {
        text.lines().find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (line_id, line_controllers) = (fields.next()?, fields.next()?);
            let matches = id.is_none_or(|id| id == line_id) && line_controllers == controllers;
            matches.then(|| fields.next()).flatten()
        })
    };
    path_of(Some("0"), "")
        .filter(|p| *p != "/")
        .or_else(|| path_of(None, "name=systemd"))
        .and_then(unit_of_cgroup_path)
}

/// The unit of a cgroup path: the first component after the slices, when
/// it is a service or a scope (as `sd_pid_get_unit` answers).
#[must_use]
pub fn unit_of_cgroup_path(path: &str) -> Option<&str> {
    fn type_of(component: &str) -> Option<&str> {
        component.rsplit_once('.').map(|(_, t)| t)
    }
    let mut components = path
        .split('/')
        .filter(|c| !c.is_empty())
        // systemd prefixes a cgroup name with `_` when the unit name
        // could be mistaken for a kernel file (`cgroup.*`, `cpu.*`) or
        // starts with `_` or `.` itself.
        .map(|c| c.strip_prefix('_').unwrap_or(c));
    // Unit types are lowercase; `Backup.SERVICE` is no unit at all.
    let unit = components.find(|c| type_of(c) != Some("slice"))?;
    matches!(type_of(unit), Some("service" | "scope")).then_some(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The uid compared with the caller's is the effective one (the
    /// second of the `Uid:` line), as `SO_PEERCRED` and the bus report it:
    /// a set-uid program's real uid is its user's, not the one it acts as.
    #[test]
    fn the_effective_uid_is_read_from_the_status() {
        let status = "Name:\tsync\nUmask:\t0022\nState:\tS (sleeping)\n\
                      Uid:\t1000\t61234\t61234\t61234\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(effective_uid(status), Some(61_234));
        assert_eq!(effective_uid("Name:\tx\n"), None);
        assert_eq!(effective_uid("Uid:\t1000\n"), None);
    }

    /// A line sink for a test's own tracing subscriber.
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Callers whose unit cannot be read, connecting as fast as they can:
    /// a few lines a minute, not one each.
    #[test]
    fn unreadable_units_are_logged_a_few_times_a_minute() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for pid in 0..50 {
                let unreadable = Err(CallerUnitError::Read {
                    path: format!("/proc/{pid}/cgroup"),
                    source: io::Error::from(io::ErrorKind::PermissionDenied),
                });
                assert_eq!(logged(unreadable, 1000, Some(pid)), None);
            }
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let said = text.matches("caller_unit_unknown").count();
        assert!(
            said <= crate::broker::refusal_log::LINES_PER_WINDOW as usize,
            "{said} lines: {text}"
        );
    }

    #[test]
    fn the_start_time_is_read_past_a_name_with_parentheses() {
        // `sleep` renamed "a) (b": the fields after the last ')'.
        let stat =
            "4242 (a) (b) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 8298109 2000 100";
        assert_eq!(
            start_time(stat),
            Some(std::time::Duration::from_millis(82_981_090))
        );
        assert_eq!(start_time("4242 (x) S 1"), None);
        assert_eq!(start_time("no name at all"), None);
    }

    #[test]
    fn the_unit_is_the_first_below_the_slices() {
        assert_eq!(
            unit_of_cgroup_path("/system.slice/backup.service"),
            Some("backup.service")
        );
        assert_eq!(
            unit_of_cgroup_path("/system.slice/system-sync.slice/sync@nightly.service"),
            Some("sync@nightly.service")
        );
        assert_eq!(
            unit_of_cgroup_path(
                "/user.slice/user-1000.slice/user@1000.service/app.slice/backup.service"
            ),
            Some("user@1000.service"),
            "a user's own units are not system units"
        );
        assert_eq!(
            unit_of_cgroup_path("/system.slice/docker.service/backup.service"),
            Some("docker.service"),
            "a delegated sub-cgroup does not change the unit"
        );
        assert_eq!(
            unit_of_cgroup_path("/user.slice/user-1000.slice/session-4.scope"),
            Some("session-4.scope")
        );
        assert_eq!(unit_of_cgroup_path("/"), None);
        assert_eq!(unit_of_cgroup_path("/machine/qemu"), None);
        assert_eq!(
            unit_of_cgroup_path("/system.slice/_cpu.service"),
            Some("cpu.service")
        );
    }

    #[test]
    fn the_unified_hierarchy_first_then_systemds_own() {
        let hybrid = "9:name=systemd:/system.slice/old.service\n4:memory:/x\n0::/system.slice/backup.service\n";
        assert_eq!(unit_of_cgroup_file(hybrid), Some("backup.service"));
        let legacy = "9:name=systemd:/system.slice/old.service\n0::/\n";
        assert_eq!(unit_of_cgroup_file(legacy), Some("old.service"));
        assert_eq!(unit_of_cgroup_file("0::/\n"), None);
    }

    #[test]
    fn this_process_is_read_through_its_pidfd() {
        let me = std::process::id().cast_signed();
        let uid = rustix::process::geteuid().as_raw();
        let expected = unit_of_cgroup_file(&std::fs::read_to_string("/proc/self/cgroup").unwrap())
            .map(str::to_owned);
        assert_eq!(of_pid(me, uid).unwrap(), expected);
        assert!(matches!(
            of_pid(me, uid + 1),
            Err(CallerUnitError::OtherProcess { .. })
        ));
    }
}
