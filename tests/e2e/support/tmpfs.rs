//! A small file system of a test's own (tmpfs, root only): a state
//! directory that fills up, or turns read-only.

/// A small file system of the test's own over a directory, unmounted on
/// drop (root only).
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// `size` bytes over `dir`, mode 0700 (a state directory's).
    pub fn over(dir: &std::path::Path, size: &str) -> Option<Self> {
        let mounted = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Self(dir.to_owned()))
    }

    /// [`Self::over`], or `None` with a line saying that `test` is skipped
    /// and why (not root, or no tmpfs).
    pub fn over_or_skip(dir: &std::path::Path, size: &str, test: &str) -> Option<Self> {
        if !rustix::process::geteuid().is_root() {
            crate::support::skip::say(format_args!("SKIPPED {test}: mounting needs root"));
            return None;
        }
        let mounted = Self::over(dir, size);
        if mounted.is_none() {
            crate::support::skip::say(format_args!("SKIPPED {test}: no tmpfs"));
        }
        mounted
    }

    /// Writes a file until the file system is full.
    pub fn fill(&self) {
        use std::io::Write as _;
        let mut filler = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = [0u8; 4096];
        for _ in 0..100_000 {
            if filler
                .write_all(&block)
                .and_then(|()| filler.sync_all())
                .is_err()
            {
                return;
            }
        }
        panic!("the file system never filled");
    }
}

impl Tmpfs {
    /// Remounts it read-only (`true`) or read-write.
    pub fn read_only(&self, read_only: bool) {
        let option = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        let status = std::process::Command::new("mount")
            .args(["-o", option])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "mount -o {option}");
    }
}

impl Tmpfs {
    /// Unmounts it lazily (`umount -l`), as an administrator's mistake or
    /// a failing disk may: a process holding a file open on it keeps it
    /// alive, and its path names the directory beneath.
    pub fn unmount_lazily(self) {
        drop(self);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
