//! The emulator's own binary, as the demo runs it, for every dialect.

/// The demo binary, killed when dropped.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_emulator_binary_speaks_every_dialect_with_a_config_tokend_accepts() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    for (dialect, name) in [
        ("trakt", "Trakt"),
        ("twilio", "Twilio"),
        ("oracle", "Oracle"),
        ("generic-v1", "generic-v1"),
    ] {
        let config = dir.path().join(format!("{dialect}.toml"));
        let mut demo = Demo(
            Command::new(env!("CARGO_BIN_EXE_tokend-emulator"))
                .args(["--dialect", dialect, "--config-out"])
                .arg(&config)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        // The first line is printed once the config is written.
        let mut reader = BufReader::new(demo.0.stdout.take().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        assert!(
            first.starts_with(&format!("tokend-emulator: {name} provider listening on")),
            "{first}"
        );
        // What `tokend --check` does, in process (this crate has no tokend binary).
        let env = tokend::config::Environment {
            xdg_runtime_dir: Some(dir.path().to_owned()),
            ..tokend::config::Environment::from_process()
        };
        let checked = tokend::config::load(&config, &env)
            .unwrap_or_else(|e| panic!("{dialect}: tokend refuses the config: {e}"));
        assert!(
            checked.warnings.is_empty(),
            "{dialect}: {:?}",
            checked.warnings
        );
        // Stopped before its pipe closes, so it never writes to a closed pipe.
        drop(demo);
        drop(reader);
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_tokend-emulator"))
        .args(["--dialect", "trakt", "--quirks", "github"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--quirks is for --dialect rfc8628 only")
    );
}
