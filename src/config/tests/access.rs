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
