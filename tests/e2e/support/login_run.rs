//! A device login through the real `tokenctl login --json`, followed line
//! by line ([`LoginRun`]), or run to its end with an approval ([`login`]).

use std::io::Read;
use std::path::Path;
use std::process::Child;

use super::daemon::{Daemon, spawn_tokenctl, token};

/// How long a login run may take in a test: a daemon that stops answering
/// fails the test (the run is killed), not hangs the suite.
const RUN_WITHIN: std::time::Duration = std::time::Duration::from_secs(120);

/// A `tokenctl login NAME --json` in progress.
pub struct LoginRun {
    child: Child,
    /// Tells the guard that kills the run after [`RUN_WITHIN`] that its
    /// output was read to the end (dropped: the same).
    guard: std::sync::mpsc::Sender<()>,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    /// The prompt event, as JSON.
    pub prompt: serde_json::Value,
}

impl LoginRun {
    /// Starts `tokenctl login NAME --json` and reads its prompt line.
    pub fn start(socket: &Path, name: &str) -> Self {
        use std::io::BufRead;
        let mut child = spawn_tokenctl(socket, &["--json", "login", name]);
        let guard = guard(&child);
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines
            .next()
            .expect("tokenctl printed nothing")
            .expect("read stdout");
        let prompt: serde_json::Value = serde_json::from_str(&first).expect("prompt is JSON");
        Self {
            child,
            guard,
            lines,
            prompt,
        }
    }

    /// The user code of the prompt (panics if the first line was not a prompt).
    pub fn user_code(&self) -> String {
        assert_eq!(
            self.prompt["event"], "prompt",
            "first line: {}",
            self.prompt
        );
        self.prompt["user_code"]
            .as_str()
            .expect("user_code")
            .to_owned()
    }

    /// The next event line after the prompt (panics at the end of output).
    pub fn next_event(&mut self) -> serde_json::Value {
        let line = self
            .lines
            .next()
            .expect("tokenctl ended its output")
            .expect("read stdout");
        serde_json::from_str(&line).expect("JSON line")
    }

    /// Waits for `tokenctl` to exit; returns its last line (the `done`
    /// event), its stderr and its exit code.
    pub fn finish(mut self) -> (serde_json::Value, String, i32) {
        let last = self
            .lines
            .by_ref()
            .map_while(Result::ok)
            .last()
            .map_or(serde_json::Value::Null, |l| {
                serde_json::from_str(&l).expect("JSON line")
            });
        let mut err = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        // Its output has ended: the guard goes before the wait (it would
        // otherwise kill a process id that may be reused).
        drop(self.guard);
        let status = self.child.wait().expect("wait tokenctl");
        (last, err, status.code().unwrap_or(-1))
    }
}

/// A guard that kills `child` after [`RUN_WITHIN`] unless its sender is
/// dropped before.
fn guard(child: &Child) -> std::sync::mpsc::Sender<()> {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let pid = child.id();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(RUN_WITHIN) {
            eprintln!("tokenctl login ran past {RUN_WITHIN:?}: killed");
            if let Some(pid) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    });
    done
}

/// As [`login`], while the store cannot take the session: the login is
/// done but said not saved (exit 9, `"unsaved"` in its `done` line).
pub fn login_unsaved(daemon: &Daemon, name: &str, approve: impl FnOnce(&str)) -> String {
    let run = LoginRun::start(&daemon.socket, name);
    approve(&run.user_code());
    let (done, err, code) = run.finish();
    assert_eq!(code, 9, "{done} {err}\nlog:\n{}", daemon.log());
    assert_eq!(done["ok"], true, "{done}");
    assert!(done["unsaved"].is_string(), "{done}");
    assert!(err.contains("could not be saved"), "{err}");
    token(daemon, name, &["--min-valid", "0"])
}

/// Logs `name` in through `tokenctl login`, approving at `approve`, and
/// returns the first access token.
pub fn login(daemon: &Daemon, name: &str, approve: impl FnOnce(&str)) -> String {
    let run = LoginRun::start(&daemon.socket, name);
    approve(&run.user_code());
    let (done, err, code) = run.finish();
    assert_eq!(
        code,
        0,
        "login failed: {done} {err}\nlog:\n{}",
        daemon.log()
    );
    assert_eq!(done["ok"], true, "{done}");
    // Any remaining life will do: tests use short-lived tokens.
    token(daemon, name, &["--min-valid", "0"])
}
