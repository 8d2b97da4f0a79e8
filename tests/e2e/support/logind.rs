//! A stand-in for logind on a private bus (Python jeepney, as a real
//! third-party service would be): it owns `org.freedesktop.login1`, sends
//! `PrepareForSleep(b)` when told, and answers `Inhibit` with one end of a
//! pipe, saying when the caller takes one and when it closes it (which is
//! what lets a real sleep go on).

use std::io::Write as _;
use std::process::{ChildStdin, Command, Stdio};

use super::bus::PrivateBus;
use super::child_lines::Lines;

const STUB_LOGIND: &str = r#"
import os, sys, threading
from jeepney import DBusAddress, MessageType, new_signal, new_method_return, new_error
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

conn = open_dbus_connection(bus=sys.argv[1], enable_fds=True)
sending = threading.Lock()
printing = threading.Lock()

def say(line):
    with printing:
        print(line, flush=True)

def send(message):
    with sending:
        conn.send(message)

reply = conn.send_and_get_reply(message_bus.RequestName("org.freedesktop.login1"))
assert reply.body[0] == 1, reply.body
manager = DBusAddress("/org/freedesktop/login1", interface="org.freedesktop.login1.Manager")

def signals():
    for line in sys.stdin:
        send(new_signal(manager, "PrepareForSleep", "b", (line.strip() == "sleep",)))
        say("sent")

def watch(read_end):
    while os.read(read_end, 64):
        pass
    os.close(read_end)
    say("released")

say("ready")
threading.Thread(target=signals, daemon=True).start()
while True:
    message = conn.receive()
    if message.header.message_type != MessageType.method_call:
        continue
    if message.header.fields.get(3) == "Inhibit":  # the member
        what, who, why, mode = message.body
        read_end, write_end = os.pipe()
        send(new_method_return(message, "h", (write_end,)))
        os.close(write_end)
        say(f"inhibited {what} {mode} by {who}")
        threading.Thread(target=watch, args=(read_end,), daemon=True).start()
    else:
        send(new_error(message, "org.freedesktop.DBus.Error.UnknownMethod"))
"#;

/// The stub logind process, killed on drop.
pub struct StubLogind {
    stdin: ChildStdin,
    lines: Lines,
    /// Lines read while waiting for another, in order: the pipe watcher's
    /// `released` may come before the signal sender's `sent`.
    unclaimed: Vec<String>,
}

impl StubLogind {
    /// Starts it on `bus` and waits until it owns logind's name.
    #[must_use]
    pub fn start(bus: &PrivateBus) -> Self {
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", STUB_LOGIND, bus.address()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3 (install python3-jeepney)");
        let stdin = child.stdin.take().unwrap();
        let mut stub = Self {
            stdin,
            lines: Lines::of(child),
            unclaimed: Vec::new(),
        };
        stub.wait_for("ready");
        stub
    }

    /// Waits for its next line containing `needle`: `inhibited sleep
    /// delay by tokend` when an inhibitor is taken, `released` when one is
    /// closed.
    pub fn wait_for(&mut self, needle: &str) -> String {
        if let Some(at) = self.unclaimed.iter().position(|l| l.contains(needle)) {
            return self.unclaimed.remove(at);
        }
        loop {
            let line = self.lines.next_line();
            if line.contains(needle) {
                return line;
            }
            self.unclaimed.push(line);
        }
    }

    /// Whether a line containing `needle` came and was not waited for yet
    /// (without waiting).
    pub fn has_said(&mut self, needle: &str) -> bool {
        self.unclaimed.extend(self.lines.taken_now());
        self.unclaimed.iter().any(|l| l.contains(needle))
    }

    /// Sends `PrepareForSleep(true)` (`"sleep"`) or `(false)` (`"resume"`).
    pub fn send(&mut self, what: &str) {
        writeln!(self.stdin, "{what}").unwrap();
        self.wait_for("sent");
    }
}
