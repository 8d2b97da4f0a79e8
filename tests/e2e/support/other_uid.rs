//! Acting as a second local user in a test run as root, wherever the
//! checkout lives.
//!
//! A clone under `/root` or in a `mktemp -d` directory (mode 0700) holds its
//! `target/` where no other uid can enter, so a process switched to
//! `nobody` cannot execute `target/debug/tokenctl` in place. Each
//! [`OtherUser`] therefore carries its own copies of the binaries, in a
//! fresh directory of its own (mode 0755) that is removed when it drops;
//! nothing depends on the permissions above the checkout.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The uid and gid of `nobody` on Debian.
pub const NOBODY: u32 = 65534;

/// The project's binaries a second uid may have to run.
const BINARIES: [(&str, &str); 2] = [
    ("tokend", env!("CARGO_BIN_EXE_tokend")),
    ("tokenctl", env!("CARGO_BIN_EXE_tokenctl")),
];

/// Whether this test process may switch to another uid.
pub fn can_switch_uid() -> bool {
    rustix::process::geteuid().is_root()
}

/// A second local user (`nobody`) with copies of the binaries it can reach.
pub struct OtherUser {
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    binaries: ReachableBinaries,
}

impl OtherUser {
    /// `nobody`, or `None` when this process cannot switch uid (not root):
    /// then one line on stderr says that `test` is skipped and why.
    pub fn nobody_or_skip(test: &str) -> Option<Self> {
        if !can_switch_uid() {
            crate::support::skip::say(format_args!(
                "SKIPPED {test}: needs root to act as a second uid (nobody)"
            ));
            return None;
        }
        Some(Self {
            uid: NOBODY,
            gid: NOBODY,
            binaries: ReachableBinaries::new(),
        })
    }

    /// The path of this user's copy of `name` (`tokend` or `tokenctl`).
    pub fn binary(&self, name: &str) -> PathBuf {
        self.binaries.path(name)
    }

    /// `program` (one of the project's binaries by name, else a program
    /// on `PATH` such as `busctl` or `cat`) to be run as this user.
    pub fn command(&self, program: &str) -> Command {
        let mut command = if BINARIES.iter().any(|(name, _)| *name == program) {
            Command::new(self.binary(program))
        } else {
            Command::new(program)
        };
        command.uid(self.uid).gid(self.gid);
        command
    }
}

/// Copies of the project's binaries in a directory every uid can enter,
/// removed on drop.
pub struct ReachableBinaries {
    dir: tempfile::TempDir,
}

impl ReachableBinaries {
    /// Links (or, across file systems, copies) `tokend` and `tokenctl` into
    /// a new world-enterable temporary directory.
    pub fn new() -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::Builder::new()
            .prefix("tokend-bin.")
            .tempdir()
            .expect("temp dir for the binaries");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("open the binaries' directory to other uids");
        for (name, built) in BINARIES {
            place(Path::new(built), &dir.path().join(name));
        }
        Self { dir }
    }

    /// The copy of `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        assert!(
            BINARIES.iter().any(|(known, _)| *known == name),
            "no copy of {name}"
        );
        self.dir.path().join(name)
    }
}

impl Default for ReachableBinaries {
    fn default() -> Self {
        Self::new()
    }
}

/// A hard link keeps the binary's own mode (0755) and costs nothing; a
/// copy is the fallback when the temporary directory is on another file
/// system.
fn place(built: &Path, at: &Path) {
    if std::fs::hard_link(built, at).is_err() {
        std::fs::copy(built, at).unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
    }
}

/// `contents` written as `name` (mode 0644) in a fresh directory every uid
/// can enter (0755): a script another uid runs. The directory goes when
/// the returned `TempDir` is dropped.
pub fn reachable_file(name: &str, contents: &str) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::Builder::new()
        .prefix("tokend-reachable.")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    (dir, path)
}
