//! Reading what the kernel says about a process (`/proc/PID/status`), for
//! the hardening tests and the scale benchmark.

use std::path::Path;

/// The value of `field` in the `status` file under `dir` (`/proc/PID` or
/// `/proc/PID/task/TID`), trimmed; `None` when the process or the field is
/// not there.
pub fn status_field_in(dir: &Path, field: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|value| value.trim().to_owned())
}

/// The value of `field` in `/proc/PID/status`, trimmed.
pub fn status_field(pid: u32, field: &str) -> Option<String> {
    status_field_in(&Path::new("/proc").join(pid.to_string()), field)
}

/// The leading number of a field (`VmRSS:  1234 kB` gives 1234); 0 when
/// it is not there.
pub fn status_number(dir: &Path, field: &str) -> u64 {
    status_field_in(dir, field)
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
