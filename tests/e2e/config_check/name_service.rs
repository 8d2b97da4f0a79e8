//! Users and groups as the name service knows them, in a private mount
//! namespace (root only): names from an extra NSS source, and a config
//! holding a secret that a group's members, or the users whose primary
//! group it is, can read (the shipped layout's own user is no such reader).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use super::*;
use crate::support::mount_namespace::EXTRAUSERS_MODULE;

/// A client secret in a config `secret.toml` in `dir`, given group `gid`
/// and mode 0640: readable by that group.
fn group_readable_secret(dir: &Path, gid: u32) -> std::path::PathBuf {
    let secretive = dir.join("secret.toml");
    std::fs::write(
        &secretive,
        "[providers.gh]\ndevice_authorization_endpoint = \"https://github.com/login/device/code\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"Iv1\"\nclient_secret = \"s3cr3t-value\"\n",
    )
    .unwrap();
    rustix::fs::chown(&secretive, None, Some(rustix::fs::Gid::from_raw(gid))).unwrap();
    std::fs::set_permissions(&secretive, std::fs::Permissions::from_mode(0o640)).unwrap();
    secretive
}

/// Users and groups come from the name service, not from reading
/// `/etc/passwd`: a user and a group that exist only in an extra NSS
/// source (libnss-extrausers, enabled for this one process through a
/// private mount namespace whose `/etc/nsswitch.conf` names it) are
/// resolved by name.
#[test]
fn names_resolve_through_the_name_service() {
    if !rustix::process::geteuid().is_root() || !Path::new(EXTRAUSERS_MODULE).exists() {
        crate::support::skip::say(format_args!(
            "SKIPPED names_resolve_through_the_name_service: needs root (a mount namespace) and libnss-extrausers"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("extrausers");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(
        extra.join("passwd"),
        "tokend-nss-user:x:4242:4242::/nonexistent:/usr/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(
        extra.join("group"),
        "tokend-nss-group:x:4343:tokend-nss-user,tokend-nss-ghost\n",
    )
    .unwrap();
    let nsswitch = dir.path().join("nsswitch.conf");
    std::fs::write(
        &nsswitch,
        "passwd: files extrausers\ngroup: files extrausers\nshadow: files\n",
    )
    .unwrap();
    let config = dir.path().join("nss.toml");
    std::fs::write(
        &config,
        "[providers.gh]\ndevice_authorization_endpoint = \"https://github.com/login/device/code\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"Iv1\"\nallow_users = [\"tokend-nss-user\"]\nmanage_groups = [\"tokend-nss-group\"]\n",
    )
    .unwrap();
    // In a mount namespace of its own, so the machine's name service is
    // untouched.
    let binds = [
        (nsswitch.as_path(), "/etc/nsswitch.conf"),
        (extra.as_path(), "/var/lib/extrausers"),
    ];
    let (ok, text) = check_with_binds(&binds, &config);
    assert!(ok, "{text}");
    assert!(
        text.contains(
            "  gh: manage: root, the daemon's user, gid 4343 (members uid 4242); use: uid 4242"
        ),
        "{text}"
    );
    // A member the name service does not know is said to be left out.
    assert!(
        text.contains("the group's member `tokend-nss-ghost` is no user the name service knows"),
        "{text}"
    );
    // A config holding a client secret, readable by a group with members:
    // the check names the group and who is in it.
    let secretive = group_readable_secret(dir.path(), 4343);
    let (_, all) = check_with_binds(&binds, &secretive);
    assert!(
        all.contains("warning: the config file holds a secret (`client_secret`) and is readable by the members of its group `tokend-nss-group` (tokend-nss-user, tokend-nss-ghost)"),
        "{all}"
    );
    assert!(!all.contains("s3cr3t-value"), "{all}");
    // Outside that namespace the names are unknown, and the error says
    // where tokend looked.
    let out = tokend(&["--check", "--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no user named `tokend-nss-user` in the name service"),
        "{err}"
    );
}

/// `tokend --check` of a config of group `gid` (0640) holding a secret,
/// with `user` (a passwd line) and `group` (a group line) added to
/// `/etc/passwd` and `/etc/group`, mounted over the machine's in a private
/// mount namespace; everything it said.
fn check_with_primary_group_member(user: &str, group: &str, gid: u32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    // The machine's entries, but one of the same name (a `tokend` user
    // the .deb made): the name service would find that one first.
    let with = |file: &str, entry: &str| {
        let name = entry.split(':').next().unwrap();
        let mut lines: Vec<&str> = Vec::new();
        let machine = std::fs::read_to_string(file).unwrap();
        lines.extend(
            machine
                .lines()
                .filter(|line| line.split(':').next() != Some(name)),
        );
        lines.push(entry);
        lines.join("\n") + "\n"
    };
    std::fs::write(&passwd, with("/etc/passwd", user)).unwrap();
    let groups_file = dir.path().join("group");
    std::fs::write(&groups_file, with("/etc/group", group)).unwrap();
    let config = group_readable_secret(dir.path(), gid);
    let binds = [
        (passwd.as_path(), "/etc/passwd"),
        (groups_file.as_path(), "/etc/group"),
    ];
    check_with_binds(&binds, &config).1
}

/// A group-readable config holding a secret is readable by the users whose
/// primary group it is, though the group lists no members: the check names
/// them (it said nothing). `/etc/passwd` and `/etc/group` with such a user
/// and group are mounted over the machine's in a private mount namespace.
#[test]
fn a_secret_readable_through_a_primary_group_is_warned_about() {
    if !rustix::process::geteuid().is_root() {
        crate::support::skip::say(format_args!(
            "SKIPPED a_secret_readable_through_a_primary_group_is_warned_about: needs root (a mount namespace)"
        ));
        return;
    }
    let all = check_with_primary_group_member(
        "tokend-primary-user:x:4747:4848::/nonexistent:/usr/sbin/nologin",
        "tokend-primary-group:x:4848:",
        4848,
    );
    assert!(
        all.contains("warning: the config file holds a secret (`client_secret`) and is readable by the members of its group `tokend-primary-group` (tokend-primary-user)"),
        "{all}"
    );
    assert!(!all.contains("s3cr3t-value"), "{all}");
}

/// The shipped system layout, checked as its README says (`sudo tokend
/// --check`): a config of group `tokend` (0640) holding a secret, whose
/// one member is the service's user `tokend` (its primary group). That
/// user is the daemon: no warning (the check, run as root, named it as
/// another reader).
#[test]
fn the_shipped_layout_checked_by_root_is_not_warned_about() {
    if !rustix::process::geteuid().is_root() {
        crate::support::skip::say(format_args!(
            "SKIPPED the_shipped_layout_checked_by_root_is_not_warned_about: needs root (a mount namespace)"
        ));
        return;
    }
    let all = check_with_primary_group_member(
        "tokend:x:4749:4850::/nonexistent:/usr/sbin/nologin",
        "tokend:x:4850:",
        4850,
    );
    assert!(!all.contains("readable by"), "{all}");
    assert!(!all.contains("s3cr3t-value"), "{all}");
}
