//! Tests of config parsing: every problem found, each at its place.

use std::io::Write;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use super::*;

mod access;
mod credential_helpers;
mod daemon;
mod dialects;
mod endpoints;
mod secrets;
mod socket_path;
mod store;

pub(super) struct Fixture {
    pub(super) dir: tempfile::TempDir,
    pub(super) env: Environment,
}

impl Fixture {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // The config reads machine-info from here; users and groups come
        // from the name service.
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        let env = Environment {
            uid: 1000,
            xdg_runtime_dir: Some(dir.path().join("run")),
            etc,
            ..Environment::default()
        };
        Self { dir, env }
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(super) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    pub(super) fn load(&self, text: &str) -> Result<Config, ConfigError> {
        let path = self.write("config.toml", text);
        load(&path, &self.env)
    }

    /// The config `text` makes, and its warnings' messages.
    pub(super) fn load_with_warnings(&self, text: &str) -> (Config, Vec<String>) {
        let config = self.load(text).unwrap();
        let warnings = config.warnings.iter().map(|d| d.message.clone()).collect();
        (config, warnings)
    }

    pub(super) fn errors(&self, text: &str) -> Vec<String> {
        match self.load(text) {
            Ok(c) => panic!(
                "expected errors, got a config with {} providers",
                c.providers.len()
            ),
            Err(ConfigError::Invalid { diagnostics }) => diagnostics
                .iter()
                .map(|d| {
                    let name = d.file.file_name().unwrap().to_string_lossy().into_owned();
                    format!("{name}:{}:{}: {}", d.line, d.column, d.message)
                })
                .collect(),
            Err(e) => panic!("unexpected {e}"),
        }
    }
}

const GITHUB: &str = r#"
[providers.github]
device_authorization_endpoint = "https://github.com/login/device/code"
token_endpoint = "https://github.com/login/oauth/access_token"
client_id = "Iv1.abc"
scopes = ["repo", "read:org"]
"#;

#[test]
fn a_minimal_config_gets_defaults() {
    let f = Fixture::new();
    let config = f.load(GITHUB).unwrap();
    assert_eq!(
        config.daemon.socket,
        f.path("run").join("tokend/tokend.sock")
    );
    assert_eq!(config.daemon.socket_mode, 0o600);
    assert_eq!(config.daemon.bus, BusKind::Session);
    assert_eq!(config.daemon.store, StoreKind::SecretService);
    let gh = config.provider("github").unwrap();
    assert_eq!(gh.dialect, crate::provider::dialects::DEFAULT);
    assert_eq!(gh.dialect.name, "rfc8628");
    assert_eq!(gh.client_auth, ClientAuth::None);
    assert_eq!(gh.scopes, ["repo", "read:org"]);
    assert!(
        matches!(&gh.endpoints, EndpointSource::Fixed { token, .. } if token.as_str() == "https://github.com/login/oauth/access_token")
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn unknown_keys_are_errors_with_position_and_suggestion() {
    let f = Fixture::new();
    let errors = f.errors(&format!(
        "{GITHUB}clientid = \"x\"\n[daemon]\nsokcet = \"/tmp/x\"\n"
    ));
    assert_eq!(
        errors,
        [
            "config.toml:7:1: unknown key `clientid` in [providers.github]; did you mean `client_id`?",
            "config.toml:9:1: unknown key `sokcet` in [daemon]; did you mean `socket`?",
        ]
    );
}

#[test]
fn every_problem_is_listed_in_file_order() {
    let f = Fixture::new();
    let errors = f.errors(
        r#"
[daemon]
bus = "sesion"
http_timeout = "30"

[providers.a]
client_id = 5
token_endpoint = "https://x/token"

[providers.b]
device_authorization_endpoint = "http://idp.example/device"
token_endpoint = "not a url"
client_id = "b"
"#,
    );
    assert_eq!(errors.len(), 6, "{errors:#?}");
    assert!(
        errors[0].starts_with("config.toml:3:7: `bus` must be"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("config.toml:4:16: `http_timeout` must be an integer, not string"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].contains("missing key `device_authorization_endpoint` in [providers.a]"),
        "{}",
        errors[2]
    );
    assert!(
        errors[3].starts_with("config.toml:7:13: `client_id` must be a string, not integer"),
        "{}",
        errors[3]
    );
    assert!(errors[4].starts_with("config.toml:11:33: `device_authorization_endpoint` uses plain http:// to a host that is not loopback"), "{}", errors[4]);
    assert!(
        errors[5].starts_with("config.toml:12:18: `token_endpoint` is not a valid URL"),
        "{}",
        errors[5]
    );
}

#[test]
fn syntax_errors_have_positions() {
    let f = Fixture::new();
    let errors = f.errors("[providers.x]\nclient_id = \"unterminated\n");
    assert!(errors[0].starts_with("config.toml:2:"), "{errors:?}");
}

#[test]
fn duplicate_names_are_refused() {
    let f = Fixture::new();
    // A table given twice is one error naming it, not one per key in it.
    let errors = f.errors(&format!("{GITHUB}{GITHUB}"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(":8:12: the table `[providers.github]` is defined twice"),
        "{errors:?}"
    );
    // An unclosed header of a table given above is its syntax error
    // alone, not a table "defined twice" as well.
    let errors = f.errors("[daemon]\nbus = \"none\"\n\n[daemon\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(":4:8: unclosed table, expected `]`"),
        "{errors:?}"
    );
    // A key given twice is named.
    let errors = f.errors(&format!("{GITHUB}client_id = \"again\"\n"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(":7:1: duplicate key `client_id`: it is given twice"),
        "{errors:?}"
    );
    let clash = format!(
        "{}{}",
        GITHUB.replace("github", "my-gh"),
        GITHUB.replace("github", "my_gh")
    );
    let errors = f.errors(&clash);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("\"my_gh\" clashes with \"my-gh\""),
        "{errors:?}"
    );
}

#[test]
fn provider_names_are_checked() {
    let f = Fixture::new();
    let errors = f.errors(&GITHUB.replace("[providers.github]", "[providers.\"git hub\"]"));
    assert!(
        errors[0].contains("invalid provider name \"git hub\""),
        "{errors:?}"
    );
    // A name must start with a letter or digit: `-gh` would read as an
    // option on tokenctl's command line (`tokenctl token -gh`).
    for name in ["-gh", "_gh"] {
        let errors =
            f.errors(&GITHUB.replace("[providers.github]", &format!("[providers.{name}]")));
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&format!("invalid provider name \"{name}\""))),
            "{name}: {errors:?}"
        );
    }
}

#[test]
fn an_empty_config_warns() {
    let f = Fixture::new();
    let config = f.load("").unwrap();
    assert!(config.providers.is_empty());
    assert!(config.warnings[0].message.contains("no providers"));
}

#[test]
fn unreadable_file_is_named() {
    let f = Fixture::new();
    let err = load(&f.path("missing.toml"), &f.env).unwrap_err();
    assert!(
        err.to_string()
            .contains("missing.toml: cannot read the config"),
        "{err}"
    );
    // Something endless (`TOKEND_CONFIG=/dev/zero`) is read only so far:
    // it was read until memory ran out.
    let err = load(Path::new("/dev/zero"), &f.env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/dev/zero: cannot read the config: it is larger than 64 MiB: not a config file?"
    );
}

/// `config/example.toml` says it documents every key: each key a table
/// reads (the daemon's, the store's, a provider's, each dialect's own) is
/// written there, set or commented out (`refresh_scopes` was missing).
#[test]
fn the_example_config_documents_every_key() {
    let example = include_str!("../../../config/example.toml");
    let written = |key: &str| {
        example.lines().any(|line| {
            let line = line.trim_start_matches(['#', ' ']);
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
    };
    let keys = super::daemon_keys::DAEMON_KEYS
        .iter()
        .chain(super::daemon_keys::STORE_KEYS)
        .chain(super::provider_table::PROVIDER_KEYS)
        .copied()
        .chain(crate::provider::dialects::own_keys());
    // Another name of a key, said in the key's comment.
    let alias = |key: &str| key == "username" && example.contains("`username` is accepted");
    let missing: Vec<&str> = keys.filter(|key| !written(key) && !alias(key)).collect();
    assert!(
        missing.is_empty(),
        "not in config/example.toml: {missing:?}"
    );
}

/// A file that is not UTF-8 is refused at the line and column of its first
/// such byte (a Latin-1 "café" deep in a long file named no place).
#[test]
fn a_file_that_is_not_utf8_is_refused_at_its_place() {
    let f = Fixture::new();
    let path = f.path("latin1.toml");
    std::fs::write(&path, b"[daemon]\nbus = \"none\"\n# caf\xe9 au lait\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    match load(&path, &f.env) {
        Err(ConfigError::Invalid { diagnostics }) => {
            assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
            let d = &diagnostics[0];
            assert_eq!((d.line, d.column), (3, 6), "{d}");
            assert!(
                d.message.contains("not UTF-8") && d.message.contains("0xE9"),
                "{d}"
            );
        }
        other => panic!("{other:?}"),
    }
}
