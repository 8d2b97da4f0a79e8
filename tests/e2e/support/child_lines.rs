//! The lines a child writes on its stdout, or writers into a FIFO, read on
//! a thread and handed over on a channel, each awaited with a bound.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::bus::PrivateBus;

/// How long a line is waited for.
const WAIT: Duration = Duration::from_secs(30);

/// Lines of a child's stdout or of a FIFO, on a channel; the child is
/// killed on drop.
pub struct Lines {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
}

impl Lines {
    /// The stdout lines of `child` (spawned with a piped stdout).
    #[must_use]
    pub fn of(mut child: Child) -> Self {
        let out = child.stdout.take().unwrap();
        let mut lines = Self::read(out);
        lines.child = Some(child);
        lines
    }

    /// The lines written into the FIFO at `path` by any number of writers:
    /// it is held open for writing too, so it never reads an end.
    #[must_use]
    pub fn of_fifo(path: &std::path::Path) -> Self {
        let fifo = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        Self::read(fifo)
    }

    fn read(from: impl std::io::Read + Send + 'static) -> Self {
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child: None, lines }
    }

    /// The next line that contains `needle`, waited for up to `WAIT`.
    ///
    /// # Panics
    /// When none comes in time.
    pub fn wait_for(&self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("no line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }
    /// The next line, waited for up to `WAIT`.
    ///
    /// # Panics
    /// When none comes in time.
    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no line came"))
    }

    /// The lines written so far and not yet taken, without waiting.
    #[must_use]
    pub fn taken_now(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A stub peer on `bus`: `tests/e2e/support/SCRIPT` (python3 with
/// jeepney), given the bus address and `args`, once it has printed
/// `ready`; its later lines are what it saw.
///
/// # Panics
/// When it cannot run or does not get ready in time.
#[must_use]
pub fn bus_stub(bus: &PrivateBus, script: &str, args: &[&str]) -> Lines {
    let stub = Lines::of(
        bus.command("/usr/bin/python3")
            .arg(format!(
                "{}/tests/e2e/support/{script}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .arg(bus.address())
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {script} (python3-jeepney): {e}")),
    );
    stub.wait_for("ready");
    stub
}
