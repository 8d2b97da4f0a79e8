//! The packaged system config and the documented examples in `config/`:
//! what they start and what their comments tell people.

use super::*;

#[test]
fn packaged_config_starts_the_system_service_with_no_providers() {
    let out = generate();
    let path = out.path().join("etc/tokend/config.toml");
    // As tokend.service runs it: user tokend (not root), RuntimeDirectory=.
    let env = Environment {
        uid: 999,
        runtime_directory: Some(PathBuf::from("/run/tokend")),
        etc: PathBuf::from("/etc"),
        ..Environment::default()
    };
    let config = config::load(&path, &env).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.providers.is_empty());
    assert_eq!(config.daemon.bus, BusKind::System);
    assert_eq!(config.daemon.store, StoreKind::Memory);
    assert_eq!(config.daemon.socket, Path::new("/run/tokend/tokend.sock"));
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.message.contains("no providers")),
        "{:?}",
        config.warnings
    );
    // Nothing of the example is lost: every line is there, commented or not.
    let text = std::fs::read_to_string(&path).unwrap();
    for line in read("config/example.toml")
        .lines()
        .filter(|l| !l.is_empty())
    {
        assert!(text.contains(line.trim_start_matches("# ")), "lost: {line}");
    }
    // The real binary agrees.
    let check = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .arg("--check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    assert!(String::from_utf8_lossy(&check.stdout).contains("valid (0 providers)"));
}

/// `config/*.toml` and their comments, joined (the comments are what
/// people follow).
fn config_examples() -> Vec<(String, String)> {
    let mut examples: Vec<(String, String)> = std::fs::read_dir(repo("config"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .map(|path| {
            let name = format!("config/{}", path.file_name().unwrap().to_string_lossy());
            let text = std::fs::read_to_string(&path).unwrap();
            // A sentence may wrap: comment markers and line breaks become spaces.
            let joined = text
                .lines()
                .map(|l| l.trim_start_matches('#').trim())
                .collect::<Vec<_>>()
                .join(" ");
            (name, joined)
        })
        .collect();
    examples.sort();
    examples
}

#[test]
fn config_examples_say_where_the_device_type_default_comes_from() {
    // generic-v1's device_type defaults to CHASSIS= in /etc/machine-info
    // (src/provider/dialects/generic_v1.rs), not to what `hostnamectl
    // chassis` prints: that also reports a chassis it detects, which tokend
    // never sees.
    let examples = config_examples();
    for (name, text) in &examples {
        assert!(
            !text.contains("hostnamectl chassis"),
            "{name} says the device_type default is `hostnamectl chassis`"
        );
    }
    // The two that explain the default.
    for documented in ["config/example.toml", "config/generic-v1.toml"] {
        let (_, text) = examples.iter().find(|(n, _)| n == documented).unwrap();
        assert!(
            text.contains("/etc/machine-info"),
            "{documented} does not say device_type's default comes from /etc/machine-info"
        );
    }
}

#[test]
fn config_examples_advise_modes_the_system_service_can_read() {
    // The system service reads its config as user `tokend`, through group
    // `tokend` (root:tokend 0640, as postinst sets it): "chmod 600" on a
    // file root owns locks the service out. Every example that can hold a
    // secret in the file says which mode fits which daemon.
    for (name, text) in config_examples() {
        assert!(
            !text.contains("chmod 600") && !text.contains("chmod 0600"),
            "{name} says to chmod 600 a file the system service may need to read"
        );
        let holds_secret = ["client_secret = ", "auth_token = "]
            .iter()
            .any(|key| text.contains(key));
        if holds_secret {
            for mode in ["root:tokend 0640", "0600"] {
                assert!(
                    text.contains(mode),
                    "{name} holds a secret but does not give the mode {mode}"
                );
            }
        }
    }
    // The packaged config is made from the example, advice included.
    let out = generate();
    let packaged = std::fs::read_to_string(out.path().join("etc/tokend/config.toml")).unwrap();
    assert!(!packaged.contains("chmod 600"));
    assert!(packaged.contains("root:tokend 0640"));
}
