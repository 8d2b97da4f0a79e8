//! Group grants follow the group database while the daemon runs: a user
//! taken out of a granted group loses the provider within the recheck's
//! period (30 s), without a reload. The daemon runs in a mount namespace
//! of its own whose name service has an extra source (libnss-extrausers)
//! with a user and a group the test edits; the user asks over the socket.

use crate::support;

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::time::Duration;

use support::daemon::{Daemon, DaemonOptions, login, stderr};
use support::mount_namespace::{self, EXTRAUSERS_MODULE};
use support::other_uid::ReachableBinaries;
use support::provider::Provider;

/// The extra source's user, in the group, and the group.
const USER: u32 = 4242;
const GROUP: u32 = 4343;

#[test]
fn a_user_taken_out_of_a_granted_group_loses_it_without_a_reload() {
    taken_out_of_the_group(
        "allow_groups",
        "a_user_taken_out_of_a_granted_group_loses_it_without_a_reload",
    );
}

/// The same for a group granted the manager's role (`manage_groups`):
/// a user taken out of it kept managing (log in, log out, prompts,
/// tokens) until a reload, the recheck having updated `allow_groups` only.
#[test]
fn a_user_taken_out_of_a_managing_group_loses_it_without_a_reload() {
    taken_out_of_the_group(
        "manage_groups",
        "a_user_taken_out_of_a_managing_group_loses_it_without_a_reload",
    );
}

/// A daemon in a name service of its own (see the module doc) with the
/// provider `grouped` granted to the group `tokend-grp` by `key` and
/// logged in; its socket reachable by the group `socket_group`. `None`
/// (the test skipped) without root or libnss-extrausers.
struct Grouped {
    _dir: tempfile::TempDir,
    /// The extra source's group file, which the test edits.
    group_file: std::path::PathBuf,
    provider: Provider,
    daemon: Daemon,
    binaries: ReachableBinaries,
}

impl Grouped {
    fn start(
        test: &str,
        grant: &str,
        passwd: &str,
        groups: &str,
        socket_group: &str,
    ) -> Option<Self> {
        if !rustix::process::geteuid().is_root() || !Path::new(EXTRAUSERS_MODULE).exists() {
            crate::support::skip::say(format_args!(
                "SKIPPED {test}: needs root (a mount namespace) and libnss-extrausers"
            ));
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extrausers");
        std::fs::create_dir(&extra).unwrap();
        std::fs::write(extra.join("passwd"), passwd).unwrap();
        let group_file = extra.join("group");
        std::fs::write(&group_file, groups).unwrap();
        let nsswitch = dir.path().join("nsswitch.conf");
        std::fs::write(
            &nsswitch,
            "passwd: files extrausers\ngroup: files extrausers\nshadow: files\n",
        )
        .unwrap();
        let provider = Provider::rfc8628();
        let options = DaemonOptions {
            wrapper: mount_namespace::wrapper(&[
                (nsswitch.as_path(), "/etc/nsswitch.conf"),
                (extra.as_path(), "/var/lib/extrausers"),
            ]),
            daemon_keys: format!("socket_mode = \"0660\"\nsocket_group = \"{socket_group}\"\n"),
            ..DaemonOptions::default()
        };
        let daemon = Daemon::start_with(&provider.config_with("grouped", grant), options);
        std::fs::set_permissions(daemon.dir.path(), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        login(&daemon, "grouped", |code| {
            provider.approve(code).unwrap();
        });
        Some(Self {
            _dir: dir,
            group_file,
            provider,
            daemon,
            binaries: ReachableBinaries::new(),
        })
    }

    /// `script` run by python3 as `uid` with `gid` as its process's group,
    /// given the socket's path, its stdin and stdout piped.
    fn python_as(&self, uid: u32, gid: u32, script: &str) -> std::process::Child {
        std::process::Command::new("/usr/bin/python3")
            .args(["-c", script])
            .arg(&self.daemon.socket)
            .uid(uid)
            .gid(gid)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `tokenctl token grouped` as `uid` with `gid` as its process's
    /// group (no other): its exit status.
    fn token_as(&self, uid: u32, gid: u32) -> Option<i32> {
        let out = std::process::Command::new(self.binaries.path("tokenctl"))
            .uid(uid)
            .gid(gid)
            .arg("--socket")
            .arg(&self.daemon.socket)
            .args(["token", "grouped"])
            .output()
            .unwrap();
        out.status.code()
    }
}

/// A provider granted to the group `tokend-grp` by `key`, used by a member
/// of it over the socket, then refused once the group database no longer
/// lists the member.
fn taken_out_of_the_group(key: &str, test: &str) {
    // The user's own group may reach the socket; the grant is `tokend-grp`,
    // which the user is in only as the group database lists it.
    let groups =
        |members: &str| format!("tokend-grp-sock:x:{USER}:\ntokend-grp:x:{GROUP}:{members}\n");
    let Some(grouped) = Grouped::start(
        test,
        &format!("{key} = [\"tokend-grp\"]"),
        &format!("tokend-grp-user:x:{USER}:{USER}::/nonexistent:/usr/sbin/nologin\n"),
        &groups("tokend-grp-user"),
        "tokend-grp-sock",
    ) else {
        return;
    };
    let daemon = &grouped.daemon;
    assert_eq!(grouped.token_as(USER, USER), Some(0), "{}", daemon.log());

    // Out of the group: within the recheck's period the provider is gone
    // for the user, as if never granted (unknown provider, exit 7).
    // Whole at once (written beside it, renamed over it): a recheck that
    // read it half written would see no change, and the next one comes
    // 30 s later.
    let next = grouped.group_file.with_extension("next");
    std::fs::write(&next, groups("")).unwrap();
    std::fs::rename(&next, &grouped.group_file).unwrap();
    daemon.wait_for_log_within(
        Duration::from_secs(60),
        1,
        &["the group database changed the members of a granted group"],
    );
    assert_eq!(grouped.token_as(USER, USER), Some(7));
    let out = daemon.tokenctl(&["token", "grouped"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// On the socket, the kernel's gid of the caller's process counts for a
/// grant by group only when it is the user's primary group in the user
/// database: a gid taken with `sg`/`newgrp` (kept after `gpasswd -d` for
/// as long as that process lives) or lent by a setgid program gave the
/// grant, where D-Bus, which asks the user database, did not.
#[test]
fn a_group_the_process_took_with_sg_is_not_a_grant() {
    const PRIMARY_MEMBER: u32 = 4244;
    let Some(grouped) = Grouped::start(
        "a_group_the_process_took_with_sg_is_not_a_grant",
        "allow_groups = [\"tokend-grp\"]",
        &format!(
            "tokend-grp-user:x:{USER}:{USER}::/nonexistent:/usr/sbin/nologin\n\
             tokend-grp-prim:x:{PRIMARY_MEMBER}:{GROUP}::/nonexistent:/usr/sbin/nologin\n"
        ),
        // The socket's group is the granted one, so that a process with
        // that gid reaches it; the user is no member of it.
        &format!("tokend-grp:x:{GROUP}:\n"),
        "tokend-grp",
    ) else {
        return;
    };
    // As after `sg tokend-grp`: the process's gid is the granted group,
    // the user's primary group is not. No such provider for it (exit 7).
    assert_eq!(
        grouped.token_as(USER, GROUP),
        Some(7),
        "{}",
        grouped.daemon.log()
    );
    // A user whose primary group it is keeps the grant.
    assert_eq!(
        grouped.token_as(PRIMARY_MEMBER, GROUP),
        Some(0),
        "{}",
        grouped.daemon.log()
    );
}

/// A socket client on one connection asking for `grouped`'s token twice,
/// the second time when the test writes a line to its stdin (see
/// [`reload_grants_an_open_connection`]).
const TWO_TOKEN_REQUESTS: &str = "import socket,sys\n\
    s=socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(sys.argv[1]); f=s.makefile('rwb')\n\
    for _ in range(2):\n\
    \x20   f.write(b'{\"op\":\"token\",\"provider\":\"grouped\"}\\n'); f.flush()\n\
    \x20   print(f.readline().decode().strip(), flush=True); sys.stdin.readline()\n";

/// A grant to a group that a reload adds applies to a socket connection
/// made before it by a user whose primary group it is: the caller's
/// primary group is known whatever group the config grants (it was
/// confirmed only for a gid granted when the connection was made, and
/// such a connection was refused until it reconnected). The config grants
/// another group from the start: without any group grant the user
/// database is not asked.
#[test]
fn a_group_grant_a_reload_adds_applies_to_a_connection_made_before() {
    const PRIMARY_MEMBER: u32 = 4244;
    let Some(mut grouped) = Grouped::start(
        "a_group_grant_a_reload_adds_applies_to_a_connection_made_before",
        "allow_groups = [\"tokend-grp-other\"]",
        &format!("tokend-grp-prim:x:{PRIMARY_MEMBER}:{GROUP}::/nonexistent:/usr/sbin/nologin\n"),
        &format!("tokend-grp:x:{GROUP}:\ntokend-grp-other:x:4345:\n"),
        "tokend-grp",
    ) else {
        return;
    };
    reload_grants_an_open_connection(&mut grouped, (PRIMARY_MEMBER, GROUP), "tokend-grp");
}

/// A reload that adds the first group grant applies to a socket connection
/// made before it, at its next request, as on D-Bus (`bus_groups`): the
/// connection's primary group, not asked for while nothing granted by
/// group, is asked for then. It kept no group until it reconnected.
#[test]
fn a_first_group_grant_a_reload_adds_applies_to_a_connection_made_before() {
    const PRIMARY_MEMBER: u32 = 4254;
    const PRIMARY_GROUP: u32 = 4353;
    let Some(mut grouped) = Grouped::start(
        "a_first_group_grant_a_reload_adds_applies_to_a_connection_made_before",
        "",
        &format!("pgc-prim:x:{PRIMARY_MEMBER}:{PRIMARY_GROUP}::/nonexistent:/usr/sbin/nologin\n"),
        &format!("pgc-grp:x:{PRIMARY_GROUP}:\n"),
        "pgc-grp",
    ) else {
        return;
    };
    reload_grants_an_open_connection(&mut grouped, (PRIMARY_MEMBER, PRIMARY_GROUP), "pgc-grp");
}

/// One socket connection of a process of `(uid, gid)`, `gid` the user's
/// primary group: `grouped`'s token refused, then, after a reload that
/// grants it to `group`, given on the same connection.
fn reload_grants_an_open_connection(grouped: &mut Grouped, (uid, gid): (u32, u32), group: &str) {
    let mut client = grouped.python_as(uid, gid, TWO_TOKEN_REQUESTS);
    let mut answers =
        std::io::BufRead::lines(std::io::BufReader::new(client.stdout.take().unwrap()));
    let mut next = || answers.next().expect("an answer").unwrap();
    let before = next();
    assert!(before.contains("unknown_provider"), "{before}");
    let granted = grouped
        .provider
        .config_with("grouped", &format!("allow_groups = [\"{group}\"]"));
    grouped.daemon.write_config(&granted);
    grouped.daemon.reload();
    let mut stdin = client.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"\n").unwrap();
    let after = next();
    assert!(
        after.contains("\"access_token\""),
        "{after}\n{}",
        grouped.daemon.log()
    );
    std::io::Write::write_all(&mut stdin, b"\n").unwrap();
    assert!(client.wait().unwrap().success());
}

/// A user granted by its primary group alone is not locked out by a local
/// user with no role that holds the whole pool of such callers' socket
/// connections (64): while its group is asked of the user database, a
/// connection counts against its own uid, not that pool.
#[test]
fn a_full_pool_of_callers_with_no_role_does_not_lock_out_a_primary_group_member() {
    const PRIMARY_MEMBER: u32 = 4244;
    const STRANGER: u32 = 4246;
    let Some(grouped) = Grouped::start(
        "a_full_pool_of_callers_with_no_role_does_not_lock_out_a_primary_group_member",
        "allow_groups = [\"tokend-grp\"]",
        &format!(
            "tokend-grp-prim:x:{PRIMARY_MEMBER}:{GROUP}::/nonexistent:/usr/sbin/nologin\n\
             tokend-grp-none:x:{STRANGER}:{STRANGER}::/nonexistent:/usr/sbin/nologin\n"
        ),
        &format!("tokend-grp:x:{GROUP}:\n"),
        "tokend-grp",
    ) else {
        return;
    };
    // The stranger reaches the socket with the group's gid (as after
    // `sg`), holds 64 connections, each answered once, then waits.
    let script = "import socket,sys\n\
        held=[]\n\
        for _ in range(64):\n\
        \x20   s=socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(sys.argv[1]); f=s.makefile('rwb')\n\
        \x20   f.write(b'{\"op\":\"status\"}\\n'); f.flush(); f.readline(); held.append((s,f))\n\
        print('held', flush=True); sys.stdin.readline()\n";
    let mut stranger = grouped.python_as(STRANGER, GROUP, script);
    let mut said = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(stranger.stdout.take().unwrap()),
        &mut said,
    )
    .unwrap();
    assert_eq!(said.trim(), "held", "{}", grouped.daemon.log());
    assert_eq!(
        grouped.token_as(PRIMARY_MEMBER, GROUP),
        Some(0),
        "{}",
        grouped.daemon.log()
    );
    drop(stranger.stdin.take());
    assert!(stranger.wait().unwrap().success());
}
