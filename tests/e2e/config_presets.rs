//! Every file in `config/` is a valid config: the real `tokend --check`
//! accepts each (exit 0), with its warnings (placeholder secrets in a
//! world-readable file) but no error, and each names the dialect it is for.

use std::path::{Path, PathBuf};
use std::process::Command;

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
    for expected in [
        "example.toml",
        "generic-v1.toml",
        "github.toml",
        "google.toml",
        "keycloak.toml",
        "microsoft.toml",
        "oracle.toml",
        "trakt.toml",
        "twilio.toml",
    ] {
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
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("valid (1 provider)"),
            "{}",
            file.display()
        );
    }
}

#[test]
fn every_dialect_has_a_preset_with_https_endpoints_only() {
    for dialect in ["rfc8628", "trakt", "twilio", "oracle", "generic-v1"] {
        let found = presets().iter().any(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .contains(&format!("dialect = \"{dialect}\""))
        });
        assert!(found, "no preset for dialect {dialect}");
    }
    for file in presets() {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            assert!(!line.contains("http://"), "{}: {line}", file.display());
        }
    }
}
