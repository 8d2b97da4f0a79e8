//! The small HTTP servers of `support/*.py` that stand in for a peer tokend
//! serves credentials to (a git server, a Kubernetes API server): started
//! with the system's Python, they print their port on the first line.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};

/// A running script server, stopped on drop.
pub struct ScriptServer {
    child: Child,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
}

impl ScriptServer {
    /// Runs `support/SCRIPT` with `args` and reads its port.
    ///
    /// # Panics
    /// When it does not start or prints no port.
    pub fn start<S: AsRef<std::ffi::OsStr>>(script: &str, args: &[S]) -> Self {
        let mut child = Command::new("/usr/bin/python3")
            .arg(format!(
                "{}/tests/e2e/support/{script}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {script}: {e}"));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{script} printed no port: {line:?}"));
        Self { child, port }
    }
}

impl Drop for ScriptServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
