//! Tests of config parsing: every problem found, each at its place.

use std::io::Write;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use super::*;

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
    let errors = f.errors(&format!("{GITHUB}{GITHUB}"));
    assert!(errors.iter().any(|e| e.contains("duplicate")), "{errors:?}");
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
}

#[test]
fn endpoints_or_issuer_are_required() {
    let f = Fixture::new();
    let errors = f.errors("[providers.x]\nclient_id = \"c\"\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .contains("needs `device_authorization_endpoint` and `token_endpoint`, or `issuer`"),
        "{errors:?}"
    );
    let config = f
        .load("[providers.kc]\nissuer = \"https://idp.example/realms/main\"\nclient_id = \"c\"\n")
        .unwrap();
    assert!(
        matches!(&config.providers[0].endpoints, EndpointSource::Discover { issuer } if issuer.as_str() == "https://idp.example/realms/main")
    );
    let errors = f.errors("[providers.x]\nclient_id = \"c\"\nbase_url = \"https://x\"\n");
    assert!(
        errors[0].contains("`base_url` works only for dialects with fixed paths"),
        "{errors:?}"
    );
}

#[test]
fn urls_must_be_safe() {
    let f = Fixture::new();
    for (url, problem) in [
        ("ftp://x/token", "uses the scheme `ftp:`"),
        ("https://user:pw@x/token", "must not contain credentials"),
        ("https://x/token#frag", "must not have a #fragment"),
    ] {
        let errors = f.errors(&GITHUB.replace("https://github.com/login/oauth/access_token", url));
        assert!(errors[0].contains(problem), "{url}: {errors:?}");
    }
    // Loopback may use plain http (emulators, local identity servers).
    let config = f
        .load(&GITHUB.replace(
            "https://github.com/login/oauth/access_token",
            "http://127.0.0.1:8080/token",
        ))
        .unwrap();
    assert_eq!(config.providers.len(), 1);
}

#[test]
fn client_secret_from_file_and_credential() {
    let f = Fixture::new();
    f.write("secret.txt", "s3cret\n");
    let config = f
        .load(&format!(
            "{GITHUB}client_secret_file = \"secret.txt\"\nclient_auth = \"client_secret_basic\"\n"
        ))
        .unwrap();
    let gh = &config.providers[0];
    assert_eq!(gh.client_secret.as_ref().unwrap().expose(), "s3cret");
    assert_eq!(gh.client_auth, ClientAuth::SecretBasic);

    let mut env = f.env.clone();
    env.credentials_directory = Some(f.dir.path().to_owned());
    let path = f.write(
        "config.toml",
        &format!("{GITHUB}client_secret_credential = \"secret.txt\"\n"),
    );
    let config = load(&path, &env).unwrap();
    assert_eq!(
        config.providers[0].client_secret.as_ref().unwrap().expose(),
        "s3cret"
    );
    assert_eq!(config.providers[0].client_auth, ClientAuth::SecretPost);

    let errors = f.errors(&format!("{GITHUB}client_secret_credential = \"gh\"\n"));
    assert!(
        errors[0].contains("needs $CREDENTIALS_DIRECTORY"),
        "{errors:?}"
    );
    let errors = f.errors(&format!(
        "{GITHUB}client_secret_file = \"/nonexistent/secret\"\n"
    ));
    assert!(
        errors[0].contains("cannot use /nonexistent/secret"),
        "{errors:?}"
    );
    let errors = f.errors(&format!(
        "{GITHUB}client_secret = \"a\"\nclient_secret_file = \"b\"\n"
    ));
    assert!(errors[0].contains("set only one of"), "{errors:?}");
}

#[test]
fn client_auth_needs_a_secret() {
    let f = Fixture::new();
    let errors = f.errors(&format!("{GITHUB}client_auth = \"client_secret_post\"\n"));
    assert!(
        errors[0].contains("`client_auth` needs a client secret"),
        "{errors:?}"
    );
    let errors = f.errors(&format!("{GITHUB}client_auth = \"private_key_jwt\"\n"));
    assert!(errors[0].contains("`client_auth` must be"), "{errors:?}");
}

#[test]
fn secrets_never_appear_in_messages() {
    let f = Fixture::new();
    let text = format!("{GITHUB}client_secret = \"TOPSECRET-VALUE\"\nbogus = 1\n");
    let path = f.write("config.toml", &text);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = load(&path, &f.env).unwrap_err();
    assert!(err.to_string().contains("world-readable"), "{err}");
    assert!(!err.to_string().contains("TOPSECRET"), "{err}");
    let config = f
        .load(&format!("{GITHUB}client_secret = \"TOPSECRET-VALUE\"\n"))
        .unwrap();
    assert!(!format!("{config:?}").contains("TOPSECRET"));
}

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

#[test]
fn daemon_keys() {
    let f = Fixture::new();
    let config = f
        .load(&format!(
            "[daemon]\nsocket = \"/run/x/t.sock\"\nsocket_mode = \"0660\"\nsocket_group = \"root\"\nbus = \"none\"\nstore = \"memory\"\nhttp_timeout = 5\nmax_concurrent_refreshes = 2\n{GITHUB}"
        ))
        .unwrap();
    assert_eq!(config.daemon.socket, Path::new("/run/x/t.sock"));
    assert_eq!(config.daemon.socket_mode, 0o660);
    assert_eq!(config.daemon.socket_group, Some(0));
    assert_eq!(config.daemon.bus, BusKind::None);
    assert_eq!(config.daemon.store, StoreKind::Memory);
    assert_eq!(
        config.daemon.http_timeout,
        std::time::Duration::from_secs(5)
    );
    assert_eq!(config.daemon.max_concurrent_refreshes, 2);
    let errors = f.errors(&format!(
        "[daemon]\nsocket_mode = \"0666\"\nsocket = \"relative.sock\"\n{GITHUB}"
    ));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("others no write"), "{errors:?}");
    assert!(errors[1].contains("absolute path"), "{errors:?}");
}

#[test]
fn missing_runtime_dir_needs_an_explicit_socket() {
    let mut f = Fixture::new();
    f.env.xdg_runtime_dir = None;
    let errors = f.errors(GITHUB);
    assert!(
        errors[0].contains("XDG_RUNTIME_DIR is not set"),
        "{errors:?}"
    );
    f.env.runtime_directory = Some(PathBuf::from("/run/user/1000/tokend"));
    let config = f.load(GITHUB).unwrap();
    assert_eq!(
        config.daemon.socket,
        Path::new("/run/user/1000/tokend/tokend.sock")
    );
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
}

/// Writes a store key of `len` bytes with `mode` into the fixture.
fn key_file(f: &Fixture, name: &str, len: usize, mode: u32) -> PathBuf {
    let path = f.path(name);
    std::fs::write(&path, vec![0x5a; len]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn encrypted_file_store_defaults_to_the_systemd_credential_and_state_directory() {
    let f = Fixture::new();
    let creds = f.path("creds");
    std::fs::create_dir(&creds).unwrap();
    key_file(&f, "creds/tokend-store-key", 32, 0o400);
    let mut env = f.env.clone();
    env.credentials_directory = Some(creds.clone());
    env.state_directory = Some(PathBuf::from("/var/lib/tokend:/var/lib/other"));
    let path = f.write(
        "config.toml",
        &format!("[daemon]\nstore = \"encrypted-file\"\n{GITHUB}"),
    );
    let config = load(&path, &env).unwrap();
    assert_eq!(config.daemon.store, StoreKind::EncryptedFile);
    let file = config.daemon.encrypted_file.unwrap();
    assert_eq!(file.state_directory, Path::new("/var/lib/tokend"));
    assert_eq!(file.key_path, creds.join("tokend-store-key"));

    // A user's daemon, outside systemd: XDG state home and a key file.
    key_file(&f, "store.key", 32, 0o600);
    let mut env = f.env.clone();
    env.xdg_state_home = Some(PathBuf::from("/home/alice/.local/state"));
    let path = f.write(
        "config.toml",
        &format!("[daemon]\nstore = \"encrypted-file\"\nstore_key_file = \"store.key\"\n{GITHUB}"),
    );
    let file = load(&path, &env).unwrap().daemon.encrypted_file.unwrap();
    assert_eq!(
        file.state_directory,
        Path::new("/home/alice/.local/state/tokend")
    );
    assert_eq!(file.key_path, f.path("store.key"));
    // Other stores carry no encrypted-file settings.
    assert!(f.load(GITHUB).unwrap().daemon.encrypted_file.is_none());
}

#[test]
fn encrypted_file_store_keys_are_checked_at_their_position() {
    let f = Fixture::new();
    key_file(&f, "short.key", 16, 0o600);
    key_file(&f, "loose.key", 32, 0o644);
    key_file(&f, "good.key", 32, 0o600);
    // The fixture has no HOME: neither a directory nor a key can be found.
    let errors = f.errors(&format!("[daemon]\nstore = \"encrypted-file\"\n{GITHUB}"));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("config.toml:2:9: no state directory")
            && errors[0].contains("set `state_directory`"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("config.toml:2:9: the encrypted file store needs its key")
            && errors[1].contains("LoadCredentialEncrypted=tokend-store-key:")
            && errors[1].contains("`store_key_file`"),
        "{errors:?}"
    );
    for (file, line, expected) in [
        ("short.key", 3, "exactly 32 bytes, not 16"),
        ("loose.key", 3, "readable or writable by others (mode 0644)"),
        ("missing.key", 3, "No such file"),
    ] {
        let errors = f.errors(&format!(
            "[daemon]\nstore = \"encrypted-file\"\nstore_key_file = \"{file}\"\nstate_directory = \"/srv/tokend\"\n{GITHUB}"
        ));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(&format!("config.toml:{line}:18: cannot use "))
                && errors[0].contains("as the store key")
                && errors[0].contains(expected),
            "{errors:?}"
        );
    }
    let errors = f.errors(&format!(
        "[daemon]\nstore = \"encrypted-file\"\nstore_key_file = \"good.key\"\nstore_key_credential = \"k\"\nstate_directory = \"relative\"\n{GITHUB}"
    ));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("config.toml:4:1: set only one of"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("config.toml:5:19:") && errors[1].contains("absolute"),
        "{errors:?}"
    );

    // The keys are ignored, with a warning, by the other stores.
    let config = f
        .load(&format!(
            "[daemon]\nstore = \"memory\"\nstore_key_file = \"good.key\"\n{GITHUB}"
        ))
        .unwrap();
    assert_eq!(config.warnings.len(), 1);
    assert!(
        config.warnings[0]
            .message
            .contains("only with store = \"encrypted-file\""),
        "{:?}",
        config.warnings
    );
}
