//! Reading what the kernel says about a process (`/proc/PID/status`), for
//! the hardening tests and the scale benchmark; signals; FIFOs.

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

/// Waits for `child` to exit, at most `within`: its status, or `None` after
/// killing it (and reaping it) when it had not exited by then.
pub fn wait_at_most(
    child: &mut std::process::Child,
    within: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        // Polling a child's exit: std offers no wait with a timeout.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sends `signal` to process `pid` (`SIGSTOP` to make a keyring hang, ...).
pub fn signal(pid: u32, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(pid, signal).expect("send the signal");
}

/// A FIFO at `path`, mode 0600: a file whose reader blocks until someone
/// writes (a hook's events, a file system that does not answer).
pub fn make_fifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}
