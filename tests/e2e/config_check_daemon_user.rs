//! `sudo tokend --check` judges the secret files a config names as the
//! daemon that will read them: the system service runs as `tokend`, a
//! user's own daemon as that user. Root reads every file, so a store key or
//! client secret only root could read passed the check, and the service
//! then failed to start on it.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::config_check::check_with_binds;

/// A user with a home, whose own daemon reads her config.
const USER: &str = "tokend-reader";
const USER_UID: u32 = 4962;
/// The system service's user, when the machine has none.
const SERVICE_UID: u32 = 4961;

fn own(path: &Path, uid: u32, mode: u32) {
    rustix::fs::chown(path, Some(rustix::fs::Uid::from_raw(uid)), None).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The uid of the `tokend` user in `passwd`, if it has one.
fn tokend_uid(passwd: &str) -> Option<u32> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"tokend"))
            .then(|| fields.get(2)?.parse().ok())
            .flatten()
    })
}

/// Writes `passwd` and `group` in `dir`: the machine's, with [`USER`]
/// (home `home`) and, where the machine has none, a `tokend` user; returns
/// the `tokend` user's uid. Bound over /etc's in the check's namespace.
fn write_users(dir: &Path, home: &Path) -> u32 {
    let machine = std::fs::read_to_string("/etc/passwd").unwrap();
    let mut users = format!(
        "{machine}{USER}:x:{USER_UID}:{USER_UID}::{}:/bin/sh\n",
        home.display()
    );
    let mut groups = format!(
        "{}{USER}:x:{USER_UID}:\n",
        std::fs::read_to_string("/etc/group").unwrap()
    );
    let service_uid = tokend_uid(&machine).unwrap_or_else(|| {
        let _ = writeln!(
            users,
            "tokend:x:{SERVICE_UID}:{SERVICE_UID}::/nonexistent:/usr/sbin/nologin"
        );
        let _ = writeln!(groups, "tokend:x:{SERVICE_UID}:");
        SERVICE_UID
    });
    std::fs::write(dir.join("passwd"), users).unwrap();
    std::fs::write(dir.join("group"), groups).unwrap();
    service_uid
}

/// In `dir` (made searchable by the users, as a machine's directories
/// are): [`USER`]'s home, hers, and the `passwd` and `group` of
/// [`write_users`]. Returns the home and the `tokend` user's uid.
fn users_with_a_home(dir: &Path) -> (std::path::PathBuf, u32) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    own(&home, USER_UID, 0o755);
    let service_uid = write_users(dir, &home);
    (home, service_uid)
}

/// An encrypted-file store's config with its state in `dir` and the key
/// at `key`.
fn file_store_config(dir: &Path, key: &Path) -> String {
    format!(
        "[daemon]\nbus = \"none\"\nstore = \"encrypted-file\"\nstate_directory = \"{}\"\nstore_key_file = \"{}\"\n",
        dir.join("state").display(),
        key.display()
    )
}

#[test]
fn root_checks_secret_files_as_the_daemon_reads_them() {
    if !rustix::process::geteuid().is_root() {
        crate::support::skip::say(format_args!(
            "SKIPPED root_checks_secret_files_as_the_daemon_reads_them: needs root (a mount namespace)"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (home, service_uid) = users_with_a_home(dir.path());
    let (passwd, group) = (dir.path().join("passwd"), dir.path().join("group"));
    // The system service's files where its unit lets it see them (not
    // under /tmp, which its PrivateTmp= replaces): this directory, seen
    // at /mnt in the check's mount namespace.
    let system = dir.path().join("system");
    std::fs::create_dir(&system).unwrap();
    std::fs::set_permissions(&system, std::fs::Permissions::from_mode(0o755)).unwrap();
    let binds = [
        (passwd.as_path(), "/etc/passwd"),
        (group.as_path(), "/etc/group"),
        (system.as_path(), "/mnt"),
    ];
    let seen = Path::new("/mnt");

    // The system service's config, with a store key only root may read.
    let key_here = system.join("store.key");
    let key = seen.join("store.key");
    std::fs::write(&key_here, [0x5a; 32]).unwrap();
    own(&key_here, 0, 0o600);
    let config_here = system.join("config.toml");
    let config = seen.join("config.toml");
    std::fs::write(&config_here, file_store_config(seen, &key)).unwrap();
    let (ok, text) = check_with_binds(&binds, &config);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "{} cannot be read by its daemon: the system service runs as `tokend`, and the file is owner uid 0, group 0, mode 0600",
            key.display()
        )),
        "{text}"
    );
    // Given to the service's user, as the README says: nothing to say.
    own(&key_here, service_uid, 0o600);
    let (ok, text) = check_with_binds(&binds, &config);
    assert!(ok && !text.contains("cannot be read"), "{text}");

    // Readable, but in a directory only root may enter: named, as is a
    // path under /tmp, which the unit's PrivateTmp= hides from it.
    own(&system, 0, 0o700);
    let (_, text) = check_with_binds(&binds, &config);
    assert!(
        text.contains(&format!(
            "{} cannot be read by its daemon: the system service runs as `tokend`, and the directory /mnt (owner uid 0, group 0, mode 0700) does not let it in",
            key.display()
        )),
        "{text}"
    );
    own(&system, 0, 0o755);
    let in_tmp = system.join("in-tmp.toml");
    std::fs::write(&in_tmp, file_store_config(seen, &key_here)).unwrap();
    let (_, text) = check_with_binds(&binds, &seen.join("in-tmp.toml"));
    assert!(
        text.contains(&format!(
            "{} cannot be read by its daemon: the system service runs as `tokend`, under the unit's PrivateTmp=yes",
            key_here.display()
        )),
        "{text}"
    );

    // The config itself, deployed for root alone (`install -m 0600`): the
    // service could not read it, at its start or at a reload.
    own(&config_here, 0, 0o600);
    let (_, text) = check_with_binds(&binds, &config);
    assert!(
        text.contains(&format!(
            "{}: warning: {} cannot be read by its daemon: the system service runs as `tokend`",
            config.display(),
            config.display()
        )) && text.contains(&format!(
            "`chown root:tokend {}` and `chmod 0640` it",
            config.display()
        )),
        "{text}"
    );
    own(&config_here, 0, 0o644);

    // A user's own config in her home, with a client secret only root may
    // read: her daemon reads it as her.
    let secret = home.join("secret.txt");
    std::fs::write(&secret, "s3cr3t-value\n").unwrap();
    own(&secret, 0, 0o600);
    let config = home.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nbus = \"none\"\nstore = \"memory\"\n\n[providers.gh]\ndevice_authorization_endpoint = \"https://github.com/login/device/code\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"Iv1\"\nclient_secret_file = \"{}\"\n",
            secret.display()
        ),
    )
    .unwrap();
    own(&config, USER_UID, 0o600);
    let (ok, text) = check_with_binds(&binds, &config);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("the daemon of this config runs as `{USER}`")),
        "{text}"
    );
    assert!(!text.contains("s3cr3t-value"), "{text}");
    own(&secret, USER_UID, 0o600);
    let (ok, text) = check_with_binds(&binds, &config);
    assert!(ok && !text.contains("cannot be read"), "{text}");
}

/// Root's check of a user's own config with no `[daemon]` table judges it
/// with her daemon's defaults (the session bus, her keyring), not root's:
/// it warned that her keyring is not on the system bus and told her to
/// switch to `store = "encrypted-file"`.
#[test]
fn root_checks_a_users_config_with_her_daemons_defaults() {
    if !rustix::process::geteuid().is_root() {
        crate::support::skip::say(format_args!(
            "SKIPPED root_checks_a_users_config_with_her_daemons_defaults: needs root (a mount namespace)"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (home, _) = users_with_a_home(dir.path());
    let (passwd, group) = (dir.path().join("passwd"), dir.path().join("group"));
    let binds = [
        (passwd.as_path(), "/etc/passwd"),
        (group.as_path(), "/etc/group"),
    ];
    let config = home.join("config.toml");
    std::fs::write(
        &config,
        "[providers.gh]\ndevice_authorization_endpoint = \"https://github.com/login/device/code\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"Iv1\"\n",
    )
    .unwrap();
    own(&config, USER_UID, 0o600);
    let (ok, text) = check_with_binds(&binds, &config);
    assert!(ok, "{text}");
    assert!(!text.contains("system bus"), "{text}");
    assert!(!text.contains("encrypted-file"), "{text}");
}
