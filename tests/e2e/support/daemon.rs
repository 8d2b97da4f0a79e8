//! Runs the real `tokend` binary for a test, and the real `tokenctl` against it.
//!
//! Each [`Daemon`] gets its own temporary directory holding its config, its
//! socket and its log. Readiness is the daemon's own `READY=1`, received on a
//! notify socket the test binds, as systemd would: no sleeping, no polling
//! the socket path.

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

// Kept at their old path: most suites import them from here.
pub use super::login_run::{LoginRun, login};
pub use super::tokenctl_run::{
    log_number, refresh_now, spawn_tokenctl, stderr, stdout, token, tokenctl,
};

/// How long a daemon may take to become ready before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// What a spawned daemon needs besides its providers.
pub struct DaemonOptions {
    /// Extra `[daemon]` keys (lines), besides socket, bus and store.
    pub daemon_keys: String,
    /// `store = ...`, default "memory".
    pub store: &'static str,
    /// `bus = ...`, default "none".
    pub bus: &'static str,
    /// Environment for the daemon process (bus addresses, ...).
    pub env: Vec<(String, String)>,
    /// Run the daemon as this uid (and gid), for tests run as root that
    /// look at the daemon from another process of its uid. Its directory is
    /// handed to that uid, and it runs a copy of `tokend` that uid can
    /// reach wherever the checkout lives.
    pub uid: Option<u32>,
    /// A command the daemon is started through (it must end by exec'ing
    /// its arguments, so the daemon keeps the child's pid), e.g. `unshare`.
    pub wrapper: Vec<String>,
    /// Set `JOURNAL_STREAM` to the log file's device and inode, as systemd
    /// does when stderr goes to the journal.
    pub journal_stream: bool,
}

impl DaemonOptions {
    /// A daemon run as `uid` (its files handed to it).
    pub fn run_as(uid: u32) -> Self {
        Self {
            uid: Some(uid),
            ..Self::default()
        }
    }

    /// A daemon on `bus` as its session bus.
    pub fn on_session_bus(bus: &super::bus::PrivateBus) -> Self {
        Self {
            bus: "session",
            env: vec![("DBUS_SESSION_BUS_ADDRESS".into(), bus.address().into())],
            ..Self::default()
        }
    }

    /// Sessions in the Secret Service of `bus` (a test keyring runs
    /// there), the daemon itself on no bus.
    pub fn with_keyring_on(bus: &super::bus::PrivateBus) -> Self {
        Self {
            store: "secret-service",
            env: vec![("DBUS_SESSION_BUS_ADDRESS".into(), bus.address().into())],
            ..Self::default()
        }
    }
}

impl Default for DaemonOptions {
    fn default() -> Self {
        Self {
            daemon_keys: String::new(),
            store: "memory",
            bus: "none",
            env: Vec::new(),
            uid: None,
            wrapper: Vec::new(),
            journal_stream: false,
        }
    }
}

/// A running `tokend`, killed when dropped.
pub struct Daemon {
    child: Option<Child>,
    /// The daemon's private directory.
    pub dir: tempfile::TempDir,
    /// Its socket.
    pub socket: PathBuf,
    /// Its config file.
    pub config: PathBuf,
    notify: UnixDatagram,
    /// Every notify message received so far.
    pub notifications: Vec<String>,
    options_env: Vec<(String, String)>,
    uid: Option<u32>,
    /// Binaries `uid` can reach (when set).
    reachable: Option<super::other_uid::ReachableBinaries>,
    wrapper: Vec<String>,
    journal_stream: bool,
    /// When the process was last spawned.
    spawned_at: Instant,
    /// From the last spawn to its `READY=1` (for benchmarks).
    pub ready_after: Duration,
}

impl Daemon {
    /// Starts `tokend` with `providers` (TOML `[providers.*]` tables) and
    /// waits until it reports `READY=1`.
    pub fn start(providers: &str) -> Self {
        Self::start_with(providers, DaemonOptions::default())
    }

    /// As [`Self::start`], with options.
    pub fn start_with(providers: &str, options: DaemonOptions) -> Self {
        let mut daemon = Self::spawn_with(providers, options);
        daemon.wait_for_ready();
        daemon
    }

    /// Starts `tokend` as [`Self::start_with`] does, without waiting for
    /// `READY=1`: for tests of what happens during start-up.
    pub fn spawn_with(providers: &str, options: DaemonOptions) -> Self {
        let mut daemon = Self::prepare_with(providers, options);
        daemon.spawn();
        daemon
    }

    /// A daemon's directory, config and notify socket, with no process
    /// yet ([`Self::spawn_prepared`] starts it): for a test that changes
    /// what the daemon finds first.
    pub fn prepare_with(providers: &str, options: DaemonOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("run/tokend.sock");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[daemon]\nsocket = \"{}\"\nbus = \"{}\"\nstore = \"{}\"\n{}\n{providers}",
                socket.display(),
                options.bus,
                options.store,
                options.daemon_keys
            ),
        )
        .expect("write config");
        let notify_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
        Self {
            child: None,
            dir,
            socket,
            config,
            notify,
            notifications: Vec::new(),
            options_env: options.env,
            uid: options.uid,
            reachable: options
                .uid
                .map(|_| super::other_uid::ReachableBinaries::new()),
            wrapper: options.wrapper,
            journal_stream: options.journal_stream,
            spawned_at: Instant::now(),
            ready_after: Duration::ZERO,
        }
    }

    /// Starts the process of a daemon [`Self::prepare_with`] made, without
    /// waiting for `READY=1`.
    pub fn spawn_prepared(&mut self) {
        assert!(self.child.is_none(), "spawned already");
        self.spawn();
    }

    /// Whether the process has exited (it is then reaped: its status is
    /// returned, once).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().expect("wait")?;
        self.child = None;
        Some(status)
    }

    /// Starts the daemon process again (after [`Self::stop`] or [`Self::kill`]),
    /// with the same config and store, and waits for `READY=1`.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart a stopped daemon only");
        self.notifications.clear();
        self.spawn();
        self.wait_for_ready();
    }

    fn wait_for_ready(&mut self) {
        self.wait_for_notification("READY=1");
        self.ready_after = self.spawned_at.elapsed();
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open log");
        let journal_stream = self.journal_stream.then(|| {
            use std::os::unix::fs::MetadataExt as _;
            let meta = log.metadata().expect("stat log");
            format!("{}:{}", meta.dev(), meta.ino())
        });
        let tokend = match &self.reachable {
            Some(binaries) => binaries.path("tokend"),
            None => PathBuf::from(env!("CARGO_BIN_EXE_tokend")),
        };
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&tokend);
                command
            }
            None => Command::new(&tokend),
        };
        command
            .arg("--config")
            .arg(&self.config)
            .env("NOTIFY_SOCKET", self.dir.path().join("notify.sock"))
            .env("RUST_LOG", "tokend=debug,info")
            .env_remove("JOURNAL_STREAM")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            // Its own runtime directories; the user's is where it locks a
            // Secret Service store: daemons of parallel tests, each on its
            // own keyring, must not lock each other out through the
            // caller's.
            .env("RUNTIME_DIRECTORY", self.dir.path())
            .env("XDG_RUNTIME_DIR", self.dir.path())
            // And its own state directory, where it notes logouts a
            // Secret Service could not carry out: not root's
            // /var/lib/tokend, which parallel tests would share.
            .env("STATE_DIRECTORY", self.dir.path().join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(stream) = journal_stream {
            command.env("JOURNAL_STREAM", stream);
        }
        for (key, value) in &self.options_env {
            command.env(key, value);
        }
        if let Some(uid) = self.uid {
            use std::os::unix::process::CommandExt as _;
            let owner = Some(rustix::fs::Uid::from_raw(uid));
            let group = Some(rustix::fs::Gid::from_raw(uid));
            for path in [
                self.dir.path().to_owned(),
                self.config.clone(),
                self.dir.path().join("notify.sock"),
            ] {
                rustix::fs::chown(&path, owner, group).expect("hand the daemon its files");
            }
            command.uid(uid).gid(uid);
        }
        self.spawned_at = Instant::now();
        self.child = Some(command.spawn().expect("spawn tokend"));
    }

    /// Waits for a notify message containing `needle` (READY=1, STOPPING=1, ...).
    pub fn wait_for_notification(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut buf = vec![0u8; 4096];
        loop {
            if let Some(found) = self.notifications.iter().find(|n| n.contains(needle)) {
                return found.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "tokend sent no {needle} within {READY_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "tokend exited ({status}) before {needle}; log:\n{}",
                    self.log()
                );
            }
            // A short receive timeout only so that a daemon that died is
            // noticed; the wait itself ends on the message.
            self.notify
                .set_read_timeout(Some(left.min(Duration::from_millis(500))))
                .unwrap();
            if let Ok(n) = self.notify.recv(&mut buf) {
                self.notifications
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        // The daemon's grace (20 s) and then some: a stop that hangs fails
        // the test instead of holding the suite.
        self.signal_and_wait(rustix::process::Signal::TERM, Duration::from_secs(60))
    }

    /// Sends SIGHUP and waits until the reload is done (`READY=1` after `RELOADING=1`).
    pub fn reload(&mut self) {
        self.notifications.clear();
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.pid()).unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::HUP).expect("SIGHUP");
        self.wait_for_notification("RELOADING=1");
        self.notifications
            .retain(|n| !n.contains("RELOADING=1") || n.contains("READY=1"));
        if !self.notifications.iter().any(|n| n.contains("READY=1")) {
            self.wait_for_notification("READY=1");
        }
    }

    /// Sends `signal` and waits for the exit, at most `within` (then the
    /// daemon is killed and the test fails).
    pub fn signal_and_wait(
        &mut self,
        signal: rustix::process::Signal,
        within: Duration,
    ) -> ExitStatus {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.pid()).unwrap()).unwrap();
        rustix::process::kill_process(pid, signal).expect("send the signal");
        self.wait_for_exit(within)
    }

    /// Waits for the daemon to exit by itself, at most `within` (then it
    /// is killed and the test fails).
    pub fn wait_for_exit(&mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        super::process::wait_at_most(&mut child, within).unwrap_or_else(|| {
            panic!(
                "tokend did not exit within {within:?}; log:\n{}",
                self.log()
            )
        })
    }

    /// Kills the daemon with SIGKILL (a crash).
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
    }

    /// Path of the daemon's log (its stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("tokend.log")
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Runs `tokenctl --socket SOCKET ARGS...` and returns its output.
    pub fn tokenctl(&self, args: &[&str]) -> Output {
        tokenctl(&self.socket, args)
    }

    /// Waits (at most [`READY_TIMEOUT`]) until the log holds `count` lines
    /// containing every one of `needles`; returns those lines.
    pub fn wait_for_log(&self, count: usize, needles: &[&str]) -> Vec<String> {
        self.wait_for_log_within(READY_TIMEOUT, count, needles)
    }

    /// [`Self::wait_for_log`], waiting at most `timeout`: for what the
    /// daemon does after a backoff of its own.
    pub fn wait_for_log_within(
        &self,
        timeout: Duration,
        count: usize,
        needles: &[&str],
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<String> = self
                .log()
                .lines()
                .filter(|line| needles.iter().all(|n| line.contains(n)))
                .map(str::to_owned)
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no {count} log lines with {needles:?} within {timeout:?}; log:\n{}",
                self.log()
            );
            // The log is a file another process appends to: there is no
            // event to wait on, so look again shortly (bounded by the deadline).
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `tokend ARGS --config CONFIG` with the daemon's environment (for
    /// `--prune` and `--check`), run to completion.
    pub fn tokend(&self, args: &[&str]) -> Output {
        self.tokend_command(args).output().expect("run tokend")
    }

    /// The command [`Self::tokend`] runs, to run with other output.
    pub fn tokend_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tokend"));
        command
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env("RUNTIME_DIRECTORY", self.dir.path())
            .env("XDG_RUNTIME_DIR", self.dir.path())
            .stdin(Stdio::null());
        for (key, value) in &self.options_env {
            command.env(key, value);
        }
        command
    }

    /// Appends TOML to the config file (for reload tests) or rewrites it.
    pub fn write_config(&self, providers: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let daemon_part = text.split("\n[providers.").next().unwrap_or("").to_owned();
        std::fs::write(&self.config, format!("{daemon_part}\n{providers}")).unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
