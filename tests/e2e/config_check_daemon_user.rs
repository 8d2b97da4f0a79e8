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

#[test]
fn root_checks_secret_files_as_the_daemon_reads_them() {
    if !rustix::process::geteuid().is_root() {
        crate::support::skip::say(format_args!(
            "SKIPPED root_checks_secret_files_as_the_daemon_reads_them: needs root (a mount namespace)"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    own(&home, USER_UID, 0o755);
    // The users, added to the machine's in a private mount namespace.
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
    let (passwd, group) = (dir.path().join("passwd"), dir.path().join("group"));
    std::fs::write(&passwd, users).unwrap();
    std::fs::write(&group, groups).unwrap();
    let binds = [
        (passwd.as_path(), "/etc/passwd"),
        (group.as_path(), "/etc/group"),
    ];

    // The system service's config, with a store key only root may read.
    let key = dir.path().join("store.key");
    std::fs::write(&key, [0x5a; 32]).unwrap();
    own(&key, 0, 0o600);
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nbus = \"none\"\nstore = \"encrypted-file\"\nstate_directory = \"{}\"\nstore_key_file = \"{}\"\n",
            dir.path().join("state").display(),
            key.display()
        ),
    )
    .unwrap();
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
    own(&key, service_uid, 0o600);
    let (ok, text) = check_with_binds(&binds, &config);
    assert!(ok && !text.contains("cannot be read"), "{text}");

    // The config itself, deployed for root alone (`install -m 0600`): the
    // service could not read it, at its start or at a reload.
    own(&config, 0, 0o600);
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
    own(&config, 0, 0o644);

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
