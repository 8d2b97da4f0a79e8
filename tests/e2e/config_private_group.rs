//! A user's own config under Debian's and Ubuntu's user private groups:
//! with a umask of 002, `mkdir -p ~/.config/tokend` makes 0775 directories
//! and an editor 0664 files, writable by the user's own group, which has
//! no one else in it. `tokend` took them for writable by others and
//! refused to start (the README's first steps failed on Ubuntu).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::config_check::check_with_binds;

const USER: &str = "tokend-upg";
const UID: u32 = 4951;
/// A group with members besides the user.
const SHARED_GID: u32 = 4952;

fn own(path: &Path, gid: u32, mode: u32) {
    rustix::fs::chown(
        path,
        Some(rustix::fs::Uid::from_raw(UID)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_config_made_under_a_umask_of_002_is_accepted() {
    if !rustix::process::geteuid().is_root() {
        crate::support::skip::say(format_args!(
            "SKIPPED a_config_made_under_a_umask_of_002_is_accepted: needs root (a mount namespace)"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let config_dir = home.join(".config").join("tokend");
    std::fs::create_dir_all(&config_dir).unwrap();
    // The user and their private group, and a group they share with
    // `nobody`, added to the machine's in a private mount namespace.
    let passwd = dir.path().join("passwd");
    let users = format!(
        "{}{USER}:x:{UID}:{UID}::{}:/bin/sh\n",
        std::fs::read_to_string("/etc/passwd").unwrap(),
        home.display()
    );
    std::fs::write(&passwd, users).unwrap();
    let group = dir.path().join("group");
    let groups = format!(
        "{}{USER}:x:{UID}:\ntokend-upg-shared:x:{SHARED_GID}:{USER},nobody\n",
        std::fs::read_to_string("/etc/group").unwrap()
    );
    std::fs::write(&group, groups).unwrap();
    let binds = [
        (passwd.as_path(), "/etc/passwd"),
        (group.as_path(), "/etc/group"),
    ];
    let config = config_dir.join("config.toml");
    std::fs::write(
        &config,
        "[providers.gh]\ndevice_authorization_endpoint = \"https://github.com/login/device/code\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"Iv1\"\n",
    )
    .unwrap();
    for path in [&home, &home.join(".config"), &config_dir] {
        own(path, UID, 0o775);
    }
    own(&config, UID, 0o664);

    let (ok, text) = check_with_binds(&binds, &config);
    assert!(ok, "{text}");

    // Writable by a group with another member: refused, by name.
    own(&config_dir, SHARED_GID, 0o775);
    let (ok, text) = check_with_binds(&binds, &config);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "{} (owner uid {UID}, mode 0775) is writable by its group",
            config_dir.display()
        )),
        "{text}"
    );
}
