//! Every file in `config/` is a valid config: the real `tokend --check`
//! accepts each (exit 0), with its warnings (placeholder secrets in a
//! world-readable file, the placeholders themselves) but no error, and each
//! names the dialect it is for.

use std::path::{Path, PathBuf};
use std::process::Command;

use tokend::provider::dialects;
use tokend_emulator::EmulatorOptions;

fn presets() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("config/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_preset_passes_tokend_check() {
    let files = presets();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    // The example and every preset the registry names.
    let expected = dialects::ALL
        .iter()
        .flat_map(|d| d.presets.iter().map(|p| p.trim_start_matches("config/")))
        .chain(["example.toml"]);
    for expected in expected {
        assert!(names.iter().any(|n| n == expected), "no config/{expected}");
    }
    // The socket's default lives in the runtime directory: give the check
    // one of its own, through the child's environment only.
    let runtime = tempfile::tempdir().unwrap();
    for file in &files {
        let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
            .arg("--check")
            .arg("--config")
            .arg(file)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("XDG_RUNTIME_DIR", runtime.path())
            .output()
            .expect("run tokend --check");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{} is refused:\n{stderr}",
            file.display()
        );
        for line in stderr.lines() {
            assert!(line.contains(": warning: "), "{}: {line}", file.display());
        }
        // A preset copied without its edit says so, every one (an id, a
        // secret, Twilio's account SID, an example.com issuer or base
        // URL): it passed as valid, to fail only at the provider.
        assert!(
            stderr.contains("is still the example's placeholder"),
            "{}:\n{stderr}",
            file.display()
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("valid (1 provider)"),
            "{}",
            file.display()
        );
    }
}

#[test]
fn every_dialect_has_a_preset_with_https_endpoints_only() {
    // The registry names each dialect's presets; each exists and says its
    // dialect, and every file but the example belongs to one dialect.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut claimed = vec![root.join("config/example.toml")];
    for dialect in dialects::ALL {
        for preset in dialect.presets {
            let text = std::fs::read_to_string(root.join(preset))
                .unwrap_or_else(|e| panic!("{preset} of dialect {dialect}: {e}"));
            assert!(
                text.contains(&format!("dialect = \"{}\"", dialect.name)),
                "{preset} does not say `dialect = \"{dialect}\"`"
            );
            claimed.push(root.join(preset));
        }
    }
    for file in presets() {
        assert!(
            claimed.contains(&file),
            "{} belongs to no dialect's `presets`",
            file.display()
        );
    }
    for file in presets() {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            assert!(!line.contains("http://"), "{}: {line}", file.display());
        }
    }
}

/// Every dialect of the registry has an emulator and every emulator a
/// dialect: a new dialect cannot be added to one list and not the other.
#[test]
fn the_registry_and_the_emulators_list_the_same_dialects() {
    let mut registered: Vec<&str> = dialects::ALL.iter().map(|d| d.name).collect();
    let mut emulated = EmulatorOptions::NAMES.to_vec();
    registered.sort_unstable();
    emulated.sort_unstable();
    assert_eq!(registered, emulated);
}

/// The example config's comment on `on_event` names every event the hook
/// program is run with (the store's two were missing, so a hook written
/// from it missed the store's alerts).
#[test]
fn the_example_names_every_hook_event() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml"))
            .unwrap();
    let hooks =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/hooks/mod.rs")).unwrap();
    for event in [
        "logged_in",
        "login_required",
        "refresh_failed",
        "refresh_token_expiring",
        "store_unavailable",
        "store_available",
    ] {
        assert!(
            hooks.contains(event),
            "{event} is no longer named in src/hooks/mod.rs"
        );
        assert!(
            example.contains(event),
            "config/example.toml does not name {event}"
        );
    }
}
