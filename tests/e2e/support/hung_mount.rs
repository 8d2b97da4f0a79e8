//! A directory whose file system never answers (root only, with
//! `/dev/fuse`): what a hung NFS home or FUSE server looks like to a
//! process that touches it (`hung_fuse.py`).

use std::process::{Command, Stdio};

use super::child_lines::Lines;

/// A hung FUSE mount over a directory; released (the process touching it
/// gets an error) and detached on drop.
pub struct HungMount {
    dir: std::path::PathBuf,
    lines: Option<Lines>,
}

impl HungMount {
    /// Mounts over `dir`, or `None` with a line saying that `test` is
    /// skipped and why (not root, or no `/dev/fuse`).
    pub fn over_or_skip(dir: &std::path::Path, test: &str) -> Option<Self> {
        Self::mount_or_skip(dir, &[], test)
    }

    /// As [`Self::over_or_skip`], over the regular file `file` (made if
    /// missing): that file alone hangs, not the directory that holds it.
    pub fn over_file_or_skip(file: &std::path::Path, test: &str) -> Option<Self> {
        if !file.exists() {
            std::fs::write(file, b"").unwrap();
        }
        Self::mount_or_skip(file, &["file"], test)
    }

    /// Mounts over `dir` with `hung_fuse.py`'s `options`.
    fn mount_or_skip(dir: &std::path::Path, options: &[&str], test: &str) -> Option<Self> {
        if !rustix::process::geteuid().is_root() || !std::path::Path::new("/dev/fuse").exists() {
            crate::support::skip::say(format_args!(
                "SKIPPED {test}: a FUSE mount needs root and /dev/fuse"
            ));
            return None;
        }
        let child = Command::new("/usr/bin/python3")
            .arg(format!(
                "{}/tests/e2e/support/hung_fuse.py",
                env!("CARGO_MANIFEST_DIR")
            ))
            .arg(dir)
            .args(options)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start hung_fuse.py");
        let lines = Lines::of(child);
        let first = lines.next_line();
        if first != "mounted" {
            crate::support::skip::say(format_args!("SKIPPED {test}: no FUSE mount: {first}"));
            return None;
        }
        Some(Self {
            dir: dir.to_owned(),
            lines: Some(lines),
        })
    }

    /// Waits until a process has touched the mount (and hangs there).
    pub fn wait_until_touched(&self) {
        self.lines.as_ref().unwrap().wait_for("request");
    }
}

impl Drop for HungMount {
    fn drop(&mut self) {
        // Killed first: its requests then fail, and the mount can go.
        drop(self.lines.take());
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
