//! Need to know on the system bus: a local user's own D-Bus client (a
//! Python jeepney peer run as `nobody`) learns nothing about a provider it
//! has no role on, by any path: method answers, `GetManagedObjects`,
//! `GetAll`, introspection, errors, and the signals it subscribes to while
//! root logs in. A use-only user gets tokens but may not log in or out; a
//! group grant holds on D-Bus as on the socket.
//!
//! The bus is a private `dbus-daemon` configured like a system bus with
//! the shipped policy `dist/dbus/org.tokend.Broker1.conf` included.

use crate::dist_dbus::{policy_for_this_user, system_like_bus};
use crate::support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, login};
use support::other_uid::{NOBODY, can_switch_uid};
use support::provider::Provider;

/// The system's Python (with python3-jeepney), reachable by every uid.
const PYTHON: &str = "/usr/bin/python3";

/// A local user with no role anywhere: Debian's `daemon` (uid and gid 1).
pub(crate) const STRANGER: u32 = 1;

/// User `bin` (Debian's uid 2), whose primary group `bin` has the same id
/// and no members listed.
const BIN: u32 = 2;

/// The D-Bus calls one user other than the daemon's may have in progress.
const CALLS_PER_OTHER_USER: usize = 64;

/// How long a peer may take to show it listens.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The peer script, in a directory every uid can read.
pub(crate) struct PeerScript {
    /// Holds the script's directory.
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl PeerScript {
    pub(crate) fn new() -> Self {
        let (dir, path) = crate::support::other_uid::reachable_file(
            "bus_peer.py",
            include_str!("support/bus_peer.py"),
        );
        Self { _dir: dir, path }
    }

    fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The peer run as `uid` with the one group `gid` (primary and only
    /// supplementary group, as a login gives).
    pub(crate) fn command(&self, uid: u32, gid: u32, address: &str) -> Command {
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg(format!("--groups={gid}"))
            .arg(PYTHON)
            .arg(self.path())
            .arg(address)
            .env_clear()
            .stdin(Stdio::null());
        command
    }

    /// The JSON lines the peer printed for `args`.
    pub(crate) fn run(
        &self,
        uid: u32,
        gid: u32,
        address: &str,
        args: &[&str],
    ) -> Vec<serde_json::Value> {
        let out = self.command(uid, gid, address).args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "peer {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

/// A listening peer: its stdout lines arrive on a channel.
pub(crate) struct Listener {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Listener {
    /// Listens until `LoginFinished` for the provider `until`.
    fn start(script: &PeerScript, uid: u32, gid: u32, address: &str, until: &str) -> Self {
        let mut command = script.command(uid, gid, address);
        command.args(["listen", until]);
        Self::spawn(command)
    }

    /// Listens until [`Self::finish`] tells it to stop (uid and gid `uid`).
    pub(crate) fn until_told(script: &PeerScript, uid: u32, address: &str) -> Self {
        let mut command = script.command(uid, uid, address);
        command.arg("listen-until-told").stdin(Stdio::piped());
        Self::spawn(command)
    }

    fn spawn(mut command: Command) -> Self {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let lines = lines_of(child.stdout.take().unwrap());
        let ready = lines.recv_timeout(READY_TIMEOUT);
        assert_eq!(ready.as_deref(), Ok("ready"), "the peer did not start");
        Self { child, lines }
    }

    /// Waits (at most [`READY_TIMEOUT`]) for a line holding every one of
    /// `needles`.
    pub(crate) fn wait_for(&self, needles: &[&str]) -> String {
        loop {
            match self.lines.recv_timeout(READY_TIMEOUT) {
                Ok(line) if needles.iter().all(|n| line.contains(n)) => return line,
                Ok(_) => {}
                Err(e) => panic!("no signal with {needles:?}: {e}"),
            }
        }
    }

    /// Every signal it received, once it saw the end it waits for (told
    /// now, for one started [`Self::until_told`]: then every signal tokend
    /// sent it before the answer to its last call).
    pub(crate) fn finish(mut self) -> Vec<String> {
        if let Some(mut stdin) = self.child.stdin.take() {
            writeln!(stdin, "stop").unwrap();
        }
        let status = self.child.wait().unwrap();
        let lines: Vec<String> = self.lines.try_iter().collect();
        assert!(status.success(), "the peer saw no end: {lines:#?}");
        lines
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tokend (as root) serving `config` on the system-like `bus`.
pub(crate) fn daemon_on(bus: &PrivateBus, config: &str) -> Daemon {
    Daemon::start_with(
        config,
        DaemonOptions {
            bus: "system",
            env: vec![("DBUS_SYSTEM_BUS_ADDRESS".into(), bus.address().into())],
            ..DaemonOptions::default()
        },
    )
}

/// The lines a peer prints, as they come.
pub(crate) fn lines_of(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

fn answer<'a>(answers: &'a [serde_json::Value], call: &str) -> &'a serde_json::Value {
    answers
        .iter()
        .find(|a| a["call"] == call)
        .unwrap_or_else(|| panic!("no answer to {call}: {answers:#?}"))
}

/// A system-like bus with the shipped policy, and tokend (as root) on it
/// with four providers: `secret` (no grant), `shared` (nobody may use
/// it), `grouped` (group `users` may use it: no member in the group
/// database), `primary` (group `bin`, the primary group of user `bin`).
struct Setup {
    daemon: Daemon,
    provider: Provider,
    script: PeerScript,
    bus: PrivateBus,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Setup {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (bus, bus_config) = system_like_bus(&policy_for_this_user(dir.path()));
        let provider = Provider::rfc8628();
        let config = format!(
            "{}{}{}{}",
            provider.config("secret"),
            provider.config_with("shared", &format!("allow_users = [{NOBODY}]")),
            provider.config_with("grouped", "allow_groups = [\"users\"]"),
            provider.config_with("primary", &format!("allow_groups = [{BIN}]")),
        );
        let daemon = daemon_on(&bus, &config);
        Self {
            daemon,
            provider,
            script: PeerScript::new(),
            bus,
            _dirs: (dir, bus_config),
        }
    }

    /// Root logs `name` in; returns the login's user code.
    fn login(&self, name: &str) -> String {
        let mut shown = String::new();
        login(&self.daemon, name, |code| {
            code.clone_into(&mut shown);
            self.provider.approve(code).unwrap();
        });
        shown
    }

    /// The peer's answers for `args`, run as `uid` in group `gid`.
    fn peer(&self, uid: u32, gid: u32, args: &[&str]) -> Vec<serde_json::Value> {
        self.script.run(uid, gid, self.bus.address(), args)
    }
}

#[test]
fn a_local_user_learns_nothing_of_providers_it_has_no_role_on() {
    if !can_switch_uid() {
        crate::support::skip::say(format_args!(
            "SKIPPED a_local_user_learns_nothing_of_providers_it_has_no_role_on: needs root"
        ));
        return;
    }
    let setup = Setup::start();
    let answers = setup.peer(NOBODY, NOBODY, &["ask"]);

    // (The answers about the paths it asked for itself echo those paths.)
    let unprompted: Vec<_> = answers
        .iter()
        .filter(|a| !a["call"].as_str().unwrap().ends_with(" secret"))
        .collect();
    let everything = serde_json::to_string(&unprompted).unwrap();
    assert!(
        !everything.contains("secret") && !everything.contains("grouped"),
        "nobody learned of a provider it has no role on: {answers:#?}"
    );
    assert_eq!(answer(&answers, "ListProviders")["ok"], "(['shared'],)");
    // The store's state, for a caller who may see a provider.
    let broker = answer(&answers, "GetAllBroker")["ok"].as_str().unwrap();
    assert!(
        broker.contains("'StoreState': ('s', 'available')"),
        "{broker}"
    );
    let objects = answer(&answers, "GetManagedObjects")["ok"]
        .as_str()
        .unwrap();
    assert!(objects.contains("/providers/shared"), "{objects}");
    let children = answer(&answers, "IntrospectProviders")["ok"]
        .as_str()
        .unwrap();
    assert!(children.contains("<node name=\"shared\"/>"), "{children}");
    assert_eq!(children.matches("<node name=").count(), 1, "{children}");
    assert!(
        answer(&answers, "GetAll shared")["ok"]
            .as_str()
            .unwrap()
            .contains("'active'")
            || answer(&answers, "GetAll shared")["ok"]
                .as_str()
                .unwrap()
                .contains("'logged_out'"),
        "{answers:#?}"
    );
    // A uid with no role on any provider: no names, and not even the
    // store's state: its properties are there (introspection lists them)
    // but empty.
    let stranger = setup.peer(STRANGER, STRANGER, &["ask"]);
    assert_eq!(answer(&stranger, "ListProviders")["ok"], "([],)");
    let store = answer(&stranger, "GetAllBroker")["ok"].as_str().unwrap();
    for empty in [
        "'StoreState': ('s', '')",
        "'StoreError': ('s', '')",
        "'StoreUnavailableSince': ('x', 0)",
    ] {
        assert!(store.contains(empty), "{store}");
    }
    assert_eq!(answer(&stranger, "GetManagedObjects")["ok"], "({},)");

    // A provider without a role answers exactly as one that does not exist.
    for call in ["GetAll", "Introspect"] {
        let hidden = answer(&answers, &format!("{call} secret"));
        let missing = answer(&answers, &format!("{call} nonexistent"));
        assert_eq!(hidden["error"], "org.freedesktop.DBus.Error.UnknownObject");
        assert_eq!(hidden["error"], missing["error"]);
        assert_eq!(
            hidden["message"].as_str().unwrap().replace("secret", "X"),
            missing["message"]
                .as_str()
                .unwrap()
                .replace("nonexistent", "X")
        );
    }

    // While root logs both in, nobody (a known peer: it called the broker)
    // and root listen to every signal.
    let address = setup.bus.address();
    let nobody = Listener::start(&setup.script, NOBODY, NOBODY, address, "shared");
    let root = Listener::start(&setup.script, 0, 0, address, "shared");
    let codes: Vec<String> = ["secret", "shared", "grouped"]
        .iter()
        .map(|name| setup.login(name))
        .collect();
    let seen_by_nobody = nobody.finish().join("\n");
    let seen_by_root = root.finish().join("\n");
    // Root, who manages everything, saw the prompts: signals do flow.
    assert!(
        seen_by_root.contains("\"signal\": \"LoginPrompt\"") && seen_by_root.contains("'secret'"),
        "{seen_by_root}"
    );
    // Nobody saw its provider's end, and nothing of the others, and no
    // prompt at all (a use-only user may not see login codes).
    assert!(
        seen_by_nobody.contains("LoginFinished") && seen_by_nobody.contains("'shared'"),
        "{seen_by_nobody}"
    );
    assert!(!seen_by_nobody.contains("secret"), "{seen_by_nobody}");
    assert!(!seen_by_nobody.contains("LoginPrompt"), "{seen_by_nobody}");
    for code in &codes {
        assert!(!seen_by_nobody.contains(code.as_str()), "{seen_by_nobody}");
    }
}

/// Use without manage over D-Bus, and a group grant: by the caller's
/// primary group, and not by a supplementary group the group database
/// does not list (a user taken out of the group with `gpasswd -d` keeps it
/// in the processes of the session it had; `setpriv` or a unit's
/// `SupplementaryGroups=` give one).
#[test]
fn a_use_only_user_gets_tokens_and_a_group_grant_holds_on_the_bus() {
    if !can_switch_uid() {
        crate::support::skip::say(format_args!(
            "SKIPPED a_use_only_user_gets_tokens_and_a_group_grant_holds_on_the_bus: needs root"
        ));
        return;
    }
    let setup = Setup::start();
    for name in ["shared", "grouped", "primary"] {
        setup.login(name);
    }
    // Use: a token, but neither login nor logout.
    let token = setup.peer(NOBODY, NOBODY, &["call", "GetToken", "shared"]);
    assert!(token[0]["ok"].as_str().is_some(), "{token:?}");
    for method in ["Login", "Logout", "CancelLogin"] {
        let refused = setup.peer(NOBODY, NOBODY, &["call", method, "shared"]);
        assert_eq!(
            refused[0]["error"], "org.tokend.Error.AccessDenied",
            "{method}: {refused:?}"
        );
    }
    // A group grant by the user's primary group: user `bin` in its group.
    let token = setup.peer(BIN, BIN, &["call", "GetToken", "primary"]);
    assert!(token[0]["ok"].as_str().is_some(), "{token:?}");
    // A process in group `users` that the group database does not list
    // as a member: the grant does not hold, as after `gpasswd -d`.
    let users = 100;
    for gid in [users, NOBODY] {
        let refused = setup.peer(NOBODY, gid, &["call", "GetToken", "grouped"]);
        assert_eq!(
            refused[0]["error"], "org.tokend.Error.UnknownProvider",
            "{refused:?}"
        );
    }
}

/// A use-only peer reads a provider in signals as `Get` answers it: when
/// the provider ends the session, the `LastError` that `PropertiesChanged`
/// brings it says that someone who manages the provider must log in, not
/// "run `tokenctl login`" (the manager's advice, which the signal carried
/// before: signals were built as the daemon's owner sees the provider).
#[test]
fn a_use_only_peer_reads_the_same_in_signals_as_in_get() {
    if !can_switch_uid() {
        crate::support::skip::say(format_args!(
            "SKIPPED a_use_only_peer_reads_the_same_in_signals_as_in_get: needs root"
        ));
        return;
    }
    let setup = Setup::start();
    setup.login("shared");
    let address = setup.bus.address();
    let nobody = Listener::start(&setup.script, NOBODY, NOBODY, address, "shared");
    let root = Listener::start(&setup.script, 0, 0, address, "shared");
    // The provider forgets every grant: the next refresh is refused.
    setup.provider.revoke_all();
    let out = setup
        .daemon
        .tokenctl(&["token", "shared", "--min-valid", "7200"]);
    assert_eq!(out.status.code(), Some(4), "login required");
    // A new login ends both listeners.
    setup.login("shared");
    let seen_by_nobody = nobody.finish().join("\n");
    let seen_by_root = root.finish().join("\n");
    // (Python's repr writes the dash before the advice as \u2014.)
    let manager_advice = "\\u2014 run `tokenctl login shared`";
    assert!(seen_by_root.contains(manager_advice), "{seen_by_root}");
    assert!(
        seen_by_nobody.contains("someone who manages it must run"),
        "{seen_by_nobody}"
    );
    assert!(!seen_by_nobody.contains(manager_advice), "{seen_by_nobody}");
}

/// Another user whose calls wait long (300 `Login`s on three connections
/// against a provider that never answers: each waits 20 s for the code)
/// has at most its share of them in progress, 64; the rest are refused at
/// once, saying why, and root is answered meanwhile. Before, that user
/// took all 256 slots and everyone else was told to try again until its
/// calls ended.
#[test]
fn another_users_slow_calls_take_only_its_share() {
    if !can_switch_uid() {
        crate::support::skip::say(format_args!(
            "SKIPPED another_users_slow_calls_take_only_its_share: needs root"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (bus, bus_config) = system_like_bus(&policy_for_this_user(dir.path()));
    let (silent, config) =
        support::provider::silent_provider("slow", &format!("manage_users = [{NOBODY}]"));
    let daemon = daemon_on(&bus, &config);
    let script = PeerScript::new();
    let mut flood = script
        .command(NOBODY, NOBODY, bus.address())
        .args(["flood", "3", "100", "Login", "slow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(flood.stdout.take().unwrap());
    assert_eq!(lines.recv_timeout(READY_TIMEOUT).as_deref(), Ok("sent"));
    // Root, meanwhile: answered (told at most to try again while the
    // flood's excess is being refused, as a client told so does).
    let mut answered = None;
    for _ in 0..200 {
        let out = bus
            .command("busctl")
            .arg(format!("--address={}", bus.address()))
            .args(["--timeout=30", "call", "org.tokend.Broker1"])
            .args(["/org/tokend/Broker1", "org.tokend.Broker1", "ListProviders"])
            .output()
            .unwrap();
        if !String::from_utf8_lossy(&out.stderr).contains("try again shortly") {
            answered = Some(out);
            break;
        }
    }
    let answered = answered.expect("root was answered");
    assert!(answered.status.success(), "{answered:?}");
    let so_far: Vec<String> = lines.try_iter().collect();
    assert!(
        !so_far.iter().any(|l| l.contains("within 20 s")),
        "root was answered only once the flood's calls ended: {so_far:#?}"
    );
    // Every call answered: its share waited for the provider, the rest
    // were refused as over it (or, for a moment, as over all slots).
    assert!(flood.wait().unwrap().success());
    let replies: Vec<serde_json::Value> = so_far
        .into_iter()
        .chain(lines.try_iter())
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(replies.len(), 300, "{replies:#?}");
    let said = |needle: &str| {
        replies
            .iter()
            .filter(|r| r["message"].as_str().is_some_and(|m| m.contains(needle)))
            .count()
    };
    assert_eq!(said("within 20 s"), CALLS_PER_OTHER_USER, "{replies:#?}");
    assert!(said("calls of this user") > 0, "{replies:#?}");
    assert_eq!(
        said("within 20 s") + said("calls of this user") + said("try again shortly"),
        300,
        "{replies:#?}"
    );
    drop((daemon, silent, bus, bus_config, dir));
}
