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

/// `tokenctl token grouped` as [`USER`]: its exit status.
fn token_as_user(binaries: &ReachableBinaries, daemon: &Daemon) -> Option<i32> {
    let out = std::process::Command::new(binaries.path("tokenctl"))
        .uid(USER)
        .gid(USER)
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["token", "grouped"])
        .output()
        .unwrap();
    out.status.code()
}

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

/// A provider granted to the group `tokend-grp` by `key`, used by a member
/// of it over the socket, then refused once the group database no longer
/// lists the member.
fn taken_out_of_the_group(key: &str, test: &str) {
    if !rustix::process::geteuid().is_root() || !Path::new(EXTRAUSERS_MODULE).exists() {
        crate::support::skip::say(format_args!(
            "SKIPPED {test}: needs root (a mount namespace) and libnss-extrausers"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("extrausers");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(
        extra.join("passwd"),
        format!("tokend-grp-user:x:{USER}:{USER}::/nonexistent:/usr/sbin/nologin\n"),
    )
    .unwrap();
    let group = extra.join("group");
    // The user's own group may reach the socket; the grant is `tokend-grp`,
    // which the user is in only as the group database lists it.
    let groups =
        |members: &str| format!("tokend-grp-sock:x:{USER}:\ntokend-grp:x:{GROUP}:{members}\n");
    std::fs::write(&group, groups("tokend-grp-user")).unwrap();
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
        daemon_keys: "socket_mode = \"0660\"\nsocket_group = \"tokend-grp-sock\"\n".into(),
        ..DaemonOptions::default()
    };
    let daemon = Daemon::start_with(
        &provider.config_with("grouped", &format!("{key} = [\"tokend-grp\"]")),
        options,
    );
    std::fs::set_permissions(daemon.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    login(&daemon, "grouped", |code| {
        provider.approve(code).unwrap();
    });
    let binaries = ReachableBinaries::new();
    assert_eq!(
        token_as_user(&binaries, &daemon),
        Some(0),
        "{}",
        daemon.log()
    );

    // Out of the group: within the recheck's period the provider is gone
    // for the user, as if never granted (unknown provider, exit 7).
    std::fs::write(&group, groups("")).unwrap();
    daemon.wait_for_log_within(
        Duration::from_secs(60),
        1,
        &["the group database changed the members of a granted group"],
    );
    assert_eq!(token_as_user(&binaries, &daemon), Some(7));
    let out = daemon.tokenctl(&["token", "grouped"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
