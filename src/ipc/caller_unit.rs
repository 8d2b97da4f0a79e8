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
//! connect time, so a recycled pid can only ever lend a unit of the
//! caller's own uid (whose processes that user controls anyway).
//!
//! The unit is systemd's own answer (`sd_pid_get_unit`): the first
//! service or scope below the slices of the cgroup path. Cgroups below a
//! unit are the unit's own business (`Delegate=`): a service that makes a
//! sub-cgroup named `backup.service` is still itself.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::process::{Pid, PidfdFlags, pidfd_open};

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
}

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
            tracing::warn!(
                event = "caller_unit_unknown",
                uid,
                pid,
                "cannot tell the caller's systemd unit, so allow_units grants it nothing: {e} \
                 (under ProtectProc=invisible tokend cannot see other users' processes; see README, allow_units)"
            );
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
    let raw = Pid::from_raw(pid).ok_or(CallerUnitError::Gone)?;
    let pidfd: OwnedFd = pidfd_open(raw, PidfdFlags::empty()).map_err(|e| {
        if e == rustix::io::Errno::SRCH {
            CallerUnitError::Gone
        } else {
            CallerUnitError::Pidfd {
                pid,
                source: e.into(),
            }
        }
    })?;
    of_pidfd(pidfd.as_fd(), uid)
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
