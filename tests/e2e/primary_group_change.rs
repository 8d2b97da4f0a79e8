//! A user whose primary group changes (`usermod -g`) loses a grant by that
//! group on the connections it holds open, on both front-ends, within the
//! 30 s in which a user taken out of a group's member list loses it
//! (`group_recheck`). A new connection was refused within that, but an
//! open D-Bus connection kept getting the token for good (its confirmed
//! groups were kept for its life), and an open socket connection's
//! `status` kept listing the provider (its groups were fixed at accept).
//!
//! The user is the machine's `nobody`, whom the bus (a private
//! `dbus-daemon` configured like a system bus, see `bus_groups`) must know
//! to admit. The daemon runs in a mount namespace of its own, where the
//! machine's passwd lacks `nobody` and an extra source (libnss-extrausers)
//! names it with the test's groups: the test edits that source as
//! `usermod -g` edits `/etc/passwd`, for the daemon alone.

use crate::dist_dbus::{policy_for_this_user, system_like_bus};
use crate::need_to_know::{PeerScript, lines_of};
use crate::support;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::daemon::{Daemon, DaemonOptions, login};
use support::mount_namespace::{self, EXTRAUSERS_MODULE};
use support::other_uid::NOBODY;
use support::provider::Provider;

/// The user (`nobody`), the group granted the provider (its primary group
/// at first, in the daemon's name service), and the group it is moved to.
const USER: u32 = NOBODY;
const GRANTED: u32 = 4373;
const OTHER: u32 = 4374;

/// How long after the change the grant must be gone: the 30 s of the
/// README, and room for a lookup and a loaded machine.
const WITHIN: Duration = Duration::from_secs(45);

/// The user's entry in the extra source's passwd, in `primary`.
fn passwd(primary: u32) -> String {
    format!("nobody:x:{USER}:{primary}::/nonexistent:/usr/sbin/nologin\n")
}

/// A socket client on one connection: each line on its stdin is sent as a
/// request, and the answer line printed.
const SOCKET_CLIENT: &str = "import socket,sys\n\
    s=socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(sys.argv[1]); f=s.makefile('rwb')\n\
    for line in sys.stdin:\n\
    \x20   f.write(line.encode()); f.flush()\n\
    \x20   print(f.readline().decode().strip(), flush=True)\n";

/// A child process spoken to by lines: requests on its stdin, answers (or
/// signals) from its stdout as they come.
struct Lines {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Lines {
    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stdout.take().unwrap());
        Self { child, lines }
    }

    /// Writes `line` to the child's stdin.
    fn say(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
    }

    /// The next line, waited for until `deadline`.
    fn next_by(&self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.lines.recv_timeout(left).ok()
    }

    /// The answer to `request` (socket client).
    fn ask(&mut self, request: &str) -> String {
        self.say(request);
        self.next_by(Instant::now() + Duration::from_secs(30))
            .expect("an answer")
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon in a name service of its own (see the module doc), with the
/// provider `prim` granted to `pgc-granted` and logged in, on a
/// system-like bus; its socket reachable by that group.
struct Setup {
    _dir: tempfile::TempDir,
    /// The extra source's passwd, which the test edits.
    passwd_file: std::path::PathBuf,
    bus: support::bus::PrivateBus,
    _bus_config: tempfile::TempDir,
    daemon: Daemon,
    _provider: Provider,
}

impl Setup {
    /// `None` (the test skipped) without root or libnss-extrausers.
    fn start(test: &str) -> Option<Self> {
        if !rustix::process::geteuid().is_root() || !Path::new(EXTRAUSERS_MODULE).exists() {
            support::skip::say(format_args!(
                "SKIPPED {test}: needs root (a mount namespace) and libnss-extrausers"
            ));
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        // The machine's users but `nobody`, whom only the extra source names.
        let mut machine = String::new();
        for line in std::fs::read_to_string("/etc/passwd").unwrap().lines() {
            if line.split(':').nth(2) != Some(USER.to_string().as_str()) {
                machine.push_str(line);
                machine.push('\n');
            }
        }
        let machine_file = dir.path().join("passwd");
        std::fs::write(&machine_file, machine).unwrap();
        let extra = dir.path().join("extrausers");
        std::fs::create_dir(&extra).unwrap();
        let passwd_file = extra.join("passwd");
        std::fs::write(&passwd_file, passwd(GRANTED)).unwrap();
        // No member lists: the user holds the granted group as its primary
        // group alone, which is what the change takes away.
        std::fs::write(
            extra.join("group"),
            format!("pgc-granted:x:{GRANTED}:\npgc-other:x:{OTHER}:\n"),
        )
        .unwrap();
        let nsswitch = dir.path().join("nsswitch.conf");
        std::fs::write(
            &nsswitch,
            "passwd: files extrausers\ngroup: files extrausers\nshadow: files\n",
        )
        .unwrap();
        let (bus, bus_config) = system_like_bus(&policy_for_this_user(dir.path()));
        let provider = Provider::rfc8628();
        let daemon = Daemon::start_with(
            &provider.config_with("prim", "allow_groups = [\"pgc-granted\"]"),
            DaemonOptions {
                bus: "system",
                env: vec![("DBUS_SYSTEM_BUS_ADDRESS".into(), bus.address().into())],
                wrapper: mount_namespace::wrapper(&[
                    (nsswitch.as_path(), "/etc/nsswitch.conf"),
                    (machine_file.as_path(), "/etc/passwd"),
                    (extra.as_path(), "/var/lib/extrausers"),
                ]),
                // The user's process keeps the group it had: it still
                // reaches the socket after the change.
                daemon_keys: "socket_mode = \"0660\"\nsocket_group = \"pgc-granted\"\n".into(),
                ..DaemonOptions::default()
            },
        );
        std::fs::set_permissions(daemon.dir.path(), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        login(&daemon, "prim", |code| {
            provider.approve(code).unwrap();
        });
        Some(Self {
            _dir: dir,
            passwd_file,
            bus,
            _bus_config: bus_config,
            daemon,
            _provider: provider,
        })
    }

    /// `usermod -g` of the user to `primary`, whole at once (written
    /// beside the file, renamed over it) as usermod does.
    fn move_user_to(&self, primary: u32) {
        let next = self.passwd_file.with_extension("next");
        std::fs::write(&next, passwd(primary)).unwrap();
        std::fs::rename(&next, &self.passwd_file).unwrap();
    }

    /// A socket client of the user, in its primary group as a login gives.
    fn socket_client(&self) -> Lines {
        let mut command = Command::new("/usr/bin/python3");
        command
            .args(["-c", SOCKET_CLIENT])
            .arg(&self.daemon.socket)
            .uid(USER)
            .gid(GRANTED);
        Lines::spawn(command)
    }

    /// A D-Bus peer of the user, in its primary group as a login gives,
    /// run with `args` (see `support/bus_peer.py`).
    fn bus_peer(&self, script: &PeerScript, args: &[&str]) -> Lines {
        let mut command = script.command(USER, GRANTED, self.bus.address());
        command.args(args);
        Lines::spawn(command)
    }
}

const TOKEN: &str = r#"{"op":"token","provider":"prim"}"#;
const STATUS: &str = r#"{"op":"status"}"#;

/// The user holds a socket connection and two D-Bus connections (one
/// calling, one listening), each granted `prim` by the user's primary
/// group; the user is moved to another primary group. Within the bound
/// (30 s, asserted with room: [`WITHIN`]) the D-Bus listener hears
/// `InterfacesRemoved` of `prim`, the calling connection's next
/// `GetToken` is refused as for a provider that does not exist, and the
/// socket connection is refused the token and no longer sees `prim` in
/// `status`. The owner keeps it.
#[test]
fn a_primary_group_change_revokes_the_grant_on_open_connections() {
    let Some(setup) = Setup::start("a_primary_group_change_revokes_the_grant_on_open_connections")
    else {
        return;
    };
    let daemon = &setup.daemon;
    // The user's connections: one on the socket, one calling over D-Bus,
    // one listening there.
    let mut socket = setup.socket_client();
    let first = socket.ask(TOKEN);
    assert!(
        first.contains("\"access_token\""),
        "{first}\n{}",
        daemon.log()
    );
    let listed = socket.ask(STATUS);
    assert!(listed.contains("\"prim\""), "{listed}");
    let script = PeerScript::new();
    let mut bus_call = setup.bus_peer(&script, &["call-again", "GetToken", "prim"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = bus_call.next_by(deadline).expect("a D-Bus answer");
    assert!(answer.contains("\"ok\""), "{answer}\n{}", daemon.log());
    let mut listener = setup.bus_peer(&script, &["listen-until-told"]);
    assert_eq!(listener.next_by(deadline).as_deref(), Some("ready"));

    setup.move_user_to(OTHER);
    let changed = Instant::now();
    let by = changed + WITHIN;
    // Each front-end is looked at whatever the other did, so that a
    // failure says which of them kept the grant.
    let mut kept = Vec::new();
    // D-Bus: the listener is told the provider is gone for it...
    let removed_after = loop {
        let Some(line) = listener.next_by(by) else {
            kept.push(format!(
                "D-Bus: no InterfacesRemoved of prim within {WITHIN:?}"
            ));
            break None;
        };
        if line.contains("InterfacesRemoved") && line.contains("/providers/prim") {
            break Some(changed.elapsed());
        }
    };
    // ...and the connection that had the token is refused it.
    bus_call.say("");
    let again = bus_call
        .next_by(Instant::now() + Duration::from_secs(30))
        .expect("a second D-Bus answer");
    if !again.contains("org.tokend.Error.UnknownProvider") {
        kept.push(format!("D-Bus: the open connection's GetToken: {again}"));
    }
    // The socket connection, asking again and again on the same
    // connection (on a thread of its own from the second token on).
    let refused_after = loop {
        let answer = socket.ask(TOKEN);
        if answer.contains("unknown_provider") {
            break Some(changed.elapsed());
        }
        assert!(answer.contains("\"access_token\""), "{answer}");
        if Instant::now() >= by {
            kept.push(format!(
                "socket: the open connection still got prim's token {WITHIN:?} after"
            ));
            break None;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let listed = socket.ask(STATUS);
    assert!(listed.contains("\"ok\":true"), "{listed}");
    if listed.contains("\"prim\"") {
        kept.push(format!("socket: the open connection's status: {listed}"));
    }
    assert!(
        kept.is_empty(),
        "the grant was kept after the change:\n{}\n{}",
        kept.join("\n"),
        daemon.log()
    );
    eprintln!(
        "after the change: InterfacesRemoved in {removed_after:?}, the socket refused in {refused_after:?}"
    );
    listener.say("stop");
    assert!(listener.child.wait().unwrap().success());
    // The owner keeps it.
    let out = daemon.tokenctl(&["token", "prim"]);
    assert!(out.status.success(), "{}", support::daemon::stderr(&out));
}
