//! A private mount namespace for the daemon: files or directories bound
//! over the machine's for that process alone (root only), such as an extra
//! name service (libnss-extrausers) or a `/run` of the test's own.

use std::fmt::Write as _;
use std::path::Path;

/// Where libnss-extrausers (Debian) keeps its module.
pub const EXTRAUSERS_MODULE: &str = "/usr/lib/libnss_extrausers.so.2";

/// A [`super::daemon::DaemonOptions`] `wrapper` that runs the daemon in a
/// mount namespace of its own, with each `(path, over)` of `binds` bound
/// over `over`.
#[must_use]
pub fn wrapper(binds: &[(&Path, &str)]) -> Vec<String> {
    let mut mounts = String::new();
    for (path, over) in binds {
        let _ = write!(mounts, "mount --bind '{}' {over} && ", path.display());
    }
    mounted_first(&mounts)
}

/// A [`super::daemon::DaemonOptions`] `wrapper` that runs the daemon in a
/// mount namespace of its own with a tmpfs of `size` (`64k`) over the
/// directory `over` (made beforehand): a small disk the test fills
/// through `/proc/PID/root`.
#[must_use]
pub fn with_small_disk(over: &Path, size: &str) -> Vec<String> {
    mounted_first(&format!(
        "mount -t tmpfs -o size={size},mode=0700 tokend-e2e '{}' && ",
        over.display()
    ))
}

/// A `wrapper` that runs the daemon in a mount namespace of its own after
/// the shell commands `mounts` (each ending in `&& `).
fn mounted_first(mounts: &str) -> Vec<String> {
    [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        &format!("{mounts}exec \"$@\""),
        "sh",
    ]
    .map(str::to_owned)
    .to_vec()
}
