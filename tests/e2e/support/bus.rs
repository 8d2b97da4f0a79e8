//! A private session-like `dbus-daemon` for one test.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

/// A `dbus-daemon` listening on a socket in its own temporary directory.
///
/// Nothing on it is auto-activated (see `tests/dbus-session.conf`), so a test
/// chooses exactly which services exist. The daemon is killed on `Drop`.
pub struct PrivateBus {
    daemon: Child,
    address: String,
    /// Its config file, for [`Self::restart`].
    config: PathBuf,
    // Dropped after `daemon` is killed (fields drop after `Drop::drop`).
    dir: TempDir,
}

impl PrivateBus {
    /// Starts a bus and returns once it accepts connections.
    ///
    /// # Panics
    /// When `dbus-daemon` cannot be started (the message has its log).
    #[must_use]
    pub fn start() -> Self {
        Self::start_with_config("tests/dbus-session.conf")
    }

    /// A bus any user may connect to (`tests/dbus-shared.conf`), with its
    /// directory open to them, for tests with a second uid.
    #[must_use]
    pub fn start_shared() -> Self {
        let bus = Self::start_with_config("tests/dbus-shared.conf");
        std::fs::set_permissions(
            bus.dir(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("open the bus directory");
        bus
    }

    /// Starts a bus with the config file at `config` (relative to the crate).
    #[must_use]
    pub fn start_with_config(config: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tokend-bus-")
            .tempdir()
            .expect("create a temporary directory for the bus");
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join(config);
        let (daemon, address) = spawn(&config, dir.path());
        Self {
            daemon,
            address,
            config,
            dir,
        }
    }

    /// Kills the bus daemon and starts a new one on the same socket, as a
    /// restart of the user's bus does. Its [`Self::address`] changes (a new
    /// guid); [`Self::path_address`] does not.
    pub fn restart(&mut self) {
        self.kill();
        let (daemon, address) = spawn(&self.config, self.dir.path());
        self.daemon = daemon;
        self.address = address;
    }

    /// The address without the bus's guid, as a user session has it
    /// (`unix:path=$XDG_RUNTIME_DIR/bus`): it names the bus across
    /// [`Self::restart`]s.
    #[must_use]
    pub fn path_address(&self) -> String {
        format!("unix:path={}", self.dir.path().join("bus").display())
    }

    /// The bus address, as `DBUS_SESSION_BUS_ADDRESS` wants it.
    #[must_use]
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The bus daemon's pid (to stop it with `SIGSTOP`: a bus that stalls,
    /// as one swapped out or under a flood does).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.daemon.id()
    }

    /// The temporary directory that holds the bus socket; it lives as long as
    /// the bus, so tests can put their own files in it.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A command for `program` whose session bus is this one. The environment
    /// is cleared but for `PATH`, so nothing reaches the real user session:
    /// the variable is set on the child only, never in the test process.
    #[must_use]
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        command
    }

    /// A new connection to this bus. Every call on it gives up after 60 s
    /// (zbus waits for ever by default), so a call nobody answers fails the
    /// test instead of hanging it.
    ///
    /// # Panics
    /// When the bus does not accept it.
    pub fn connect(&self) -> zbus::blocking::Connection {
        zbus::blocking::connection::Builder::address(self.address.as_str())
            .map(|b| b.method_timeout(Duration::from_secs(60)))
            .and_then(zbus::blocking::connection::Builder::build)
            .unwrap_or_else(|e| panic!("connect to the private bus {}: {e}", self.address))
    }

    /// Waits until someone owns `name` on the bus, at most `timeout`.
    ///
    /// # Errors
    /// The name did not appear in time, or the bus went away.
    pub fn wait_for_owner(&self, name: &str, timeout: Duration) -> Result<(), String> {
        let connection = self.connect();
        let dbus = zbus::blocking::fdo::DBusProxy::new(&connection).map_err(|e| e.to_string())?;
        // Subscribe first, then ask: an owner that arrives in between is seen
        // by one or the other.
        let changes = dbus
            .receive_name_owner_changed_with_args(&[(0, name)])
            .map_err(|e| e.to_string())?;
        let bus_name = zbus::names::BusName::try_from(name).map_err(|e| e.to_string())?;
        if dbus.name_has_owner(bus_name).map_err(|e| e.to_string())? {
            return Ok(());
        }
        // The blocking signal iterator has no timeout: it runs on a thread and
        // reports over a channel. If we give up, the thread ends when the bus
        // is killed and its stream closes.
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            for change in changes {
                let appeared = change.args().is_ok_and(|args| args.new_owner().is_some());
                if appeared {
                    let _ = sender.send(());
                    return;
                }
            }
        });
        receiver.recv_timeout(timeout).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => {
                format!("nobody took {name} on the bus within {timeout:?}")
            }
            mpsc::RecvTimeoutError::Disconnected => {
                format!("the bus closed before {name} appeared")
            }
        })
    }

    /// Kills the bus daemon now and waits for it to go, as a crash of the
    /// bus would: every connection to it ends. (`Drop` does it otherwise.)
    pub fn kill(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }

    /// The daemon's log (its stderr), for failure messages.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dbus-daemon.log")).unwrap_or_default()
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// Starts `dbus-daemon` with `config` on the socket `bus` in `dir`, logging
/// to `dbus-daemon.log` there; returns once it accepts connections, with
/// its address.
fn spawn(config: &Path, dir: &Path) -> (Child, String) {
    let socket = dir.join("bus");
    let log_path = dir.join("dbus-daemon.log");
    // Appended to: a restarted bus keeps the log of the one before.
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("open the dbus-daemon log");
    let mut daemon = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        // Overrides the config's <listen>: one socket per test.
        .arg(format!("--address=unix:path={}", socket.display()))
        .arg("--print-address")
        .arg("--nofork")
        // It activates nothing, so it needs nothing from our environment.
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run dbus-daemon ({e}): install dbus-daemon"));
    // dbus-daemon prints its address once it listens: reading that line is
    // the readiness event. If it dies first, the pipe closes and we see EOF.
    let mut address = String::new();
    let stdout = daemon.stdout.take().expect("piped stdout");
    let read = BufReader::new(stdout).read_line(&mut address);
    let address = address.trim().to_owned();
    if read.is_err() || address.is_empty() {
        let _ = daemon.kill();
        let _ = daemon.wait();
        panic!(
            "dbus-daemon did not print its address; its log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }
    (daemon, address)
}

/// Where `program` is on `PATH`, if it is.
#[must_use]
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
