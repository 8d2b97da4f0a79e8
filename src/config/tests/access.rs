//! Who may use and manage a provider: users and groups by name or id,
//! and systemd units by name or pattern.

use super::*;

#[test]
fn users_and_groups_resolve_by_name_or_id() {
    let f = Fixture::new();
    let config = f
        .load(&format!(
            "{GITHUB}allow_users = [\"root\", 2000]\nallow_groups = [\"root\", 4000]\n"
        ))
        .unwrap();
    // Resolved through the machine's name service, where root is 0 on
    // every system (tests/e2e/config_check.rs resolves names known only to
    // an extra NSS source, and group members).
    let gh = &config.providers[0];
    assert_eq!(gh.allow_users, [0, 2000]);
    let gids: Vec<u32> = gh.allow_groups.iter().map(|g| g.gid).collect();
    assert_eq!(gids, [0, 4000]);
    let errors = f.errors(&format!("{GITHUB}allow_users = [\"nobody-here\"]\n"));
    assert!(
        errors[0].contains("no user named `nobody-here`"),
        "{errors:?}"
    );
}

#[test]
fn allow_units_are_checked_entry_by_entry() {
    let f = Fixture::new();
    let config = f
        .load(&format!(
            "{GITHUB}allow_units = [\"backup.service\", \"sync@*.service\"]\n"
        ))
        .unwrap();
    let units: Vec<&str> = config.providers[0]
        .allow_units
        .iter()
        .map(crate::config::UnitPattern::as_str)
        .collect();
    assert_eq!(units, ["backup.service", "sync@*.service"]);
    let errors = f.errors(&format!(
        "{GITHUB}allow_units = [\"ok.service\", \"backup.timer\", \"sync@.service\"]\n"
    ));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("`backup.timer` is not a service or scope"),
        "{errors:?}"
    );
    assert!(errors[1].contains("template"), "{errors:?}");
    // Each error is at its own entry: the second starts after the first.
    assert_ne!(
        errors[0].split(':').nth(2),
        errors[1].split(':').nth(2),
        "{errors:?}"
    );
}

/// Root's `tokend --check` of a config in another user's home judges it as
/// that user's daemon will (her config, her directories), but a config of
/// hers anywhere else, and root's own daemon, still refuse it.
#[test]
fn root_checks_a_users_config_in_her_home_as_her_daemon_would() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: needs root to give files to another user");
        return;
    }
    let nobody = rustix::fs::Uid::from_raw(65534);
    let mut f = Fixture::new();
    f.env.checking = true;
    let home = f.path("home/alice");
    let elsewhere = f.path("etc-tokend");
    let mut configs = Vec::new();
    for dir in [home.join(".config/tokend"), elsewhere.clone()] {
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.toml");
        std::fs::write(&config, GITHUB).unwrap();
        for owned in config
            .ancestors()
            .take_while(|p| p.starts_with(&home) || p.starts_with(&elsewhere))
        {
            rustix::fs::chown(owned, Some(nobody), None).unwrap();
        }
        configs.push(config);
    }
    let passwd = f.env.etc.join("passwd");
    let refused = |config: &Path, env: &Environment| match load(config, env) {
        Ok(_) => false,
        Err(ConfigError::Invalid { diagnostics }) => {
            let all: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            assert!(
                all.iter().any(|d| d.contains("(owner uid 65534, mode 0")
                    && d.contains("belongs to another user")),
                "{all:?}"
            );
            true
        }
        Err(e) => panic!("{e}"),
    };
    // Unknown to the password database: another user's, refused.
    std::fs::write(&passwd, "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    assert!(refused(&configs[0], &f.env));
    // Her home: judged as hers.
    std::fs::write(
        &passwd,
        format!(
            "root:x:0:0:root:/root:/bin/sh\nalice:x:65534:65534::{}:/bin/sh\n",
            home.display()
        ),
    )
    .unwrap();
    assert!(!refused(&configs[0], &f.env));
    // Hers, outside her home: the system service or root would read it.
    assert!(refused(&configs[1], &f.env));
    // Root's daemon itself trusts no one else's config.
    let daemon = Environment {
        checking: false,
        ..f.env.clone()
    };
    assert!(refused(&configs[0], &daemon));
}
