//! Client secrets: inline, from a file, from a systemd credential; the
//! client authentications they allow; and never a secret in a message.

use std::os::unix::fs::PermissionsExt as _;

use super::*;

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
    // A directory that does not exist: not quoted (a secret with a `/`
    // pasted there names none either).
    assert!(
        errors[0].contains("cannot use the file this names: No such file"),
        "{errors:?}"
    );
    let errors = f.errors(&format!(
        "{GITHUB}client_secret = \"a\"\nclient_secret_file = \"b\"\n"
    ));
    assert!(errors[0].contains("set only one of"), "{errors:?}");
}

/// A secret file that is not a regular file (a FIFO), or is too large,
/// is refused without waiting on it or reading it whole.
#[test]
fn a_secret_file_must_be_a_small_regular_file() {
    let f = Fixture::new();
    let fifo = f.dir.path().join("secret.fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let errors = f.errors(&format!("{GITHUB}client_secret_file = \"secret.fifo\"\n"));
    assert!(errors[0].contains("not a regular file"), "{errors:?}");
    f.write("big.txt", &"x".repeat(64 * 1024 + 1));
    let errors = f.errors(&format!("{GITHUB}client_secret_file = \"big.txt\"\n"));
    assert!(errors[0].contains("larger than 64 KiB"), "{errors:?}");
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

/// A secret pasted where a file or a credential's name goes is not quoted
/// back: the diagnostic points at the value by its position, and says
/// what is wrong, but the text (which reaches the journal at a start or a
/// reload) does not hold it. A path whose directory exists is still named.
#[test]
fn a_secret_pasted_as_a_file_or_credential_name_is_not_quoted() {
    let f = Fixture::new();
    // One with a `/`, as base64 has half the time, and the store's keys.
    let cases = [
        ("gho_PASTEDsecretVALUE123", "client_secret_file"),
        ("gho_PASTEDsecretVALUE123", "client_secret_credential"),
        ("Zm9v/YmFy+PASTED/cXV4=", "client_secret_file"),
    ];
    let store = "[daemon]\nstore = \"encrypted-file\"\n";
    let daemon_cases = [
        ("Zm9v/YmFy+PASTED/cXV4=", "store_key_file"),
        ("PASTEDstoreKEYvalue", "store_key_credential"),
    ];
    let configs = cases
        .iter()
        .map(|(pasted, key)| (*pasted, format!("{GITHUB}{key} = \"{pasted}\"\n")))
        .chain(
            daemon_cases
                .iter()
                .map(|(pasted, key)| (*pasted, format!("{store}{key} = \"{pasted}\"\n{GITHUB}"))),
        );
    for (pasted, config) in configs {
        let key = &config;
        let errors = f.errors(&config);
        assert!(!errors.is_empty(), "{key}");
        assert!(errors.iter().all(|e| !e.contains(pasted)), "{errors:?}");
        let mut env = f.env.clone();
        env.checking = true;
        env.credentials_directory = None;
        let path = f.write("checked.toml", &config);
        let said: Vec<String> = match load(&path, &env) {
            Ok(config) => config.warnings.iter().map(|d| d.message.clone()).collect(),
            Err(ConfigError::Invalid { diagnostics }) => {
                diagnostics.iter().map(|d| d.message.clone()).collect()
            }
            Err(e) => panic!("unexpected {e}"),
        };
        assert!(!said.is_empty(), "{key}: nothing said");
        assert!(said.iter().all(|e| !e.contains(pasted)), "{said:?}");
    }
    // A bare name: the config's directory is said, not the name; a path
    // in a directory that exists is named.
    let errors = f.errors(&format!("{GITHUB}client_secret_file = \"secret.txt\"\n"));
    assert!(
        errors[0].contains(&format!(
            "cannot use the file this names, in {}: ",
            f.dir.path().display()
        )),
        "{errors:?}"
    );
    let missing = f.dir.path().join("missing.txt");
    let errors = f.errors(&format!(
        "{GITHUB}client_secret_file = \"{}\"\n",
        missing.display()
    ));
    assert!(
        errors[0].contains(&format!("cannot use {}: ", missing.display())),
        "{errors:?}"
    );
}

/// `~` and `$HOME` are not expanded: said so, not "no such file" for a file
/// that exists; and a relative config's directory is named, not left empty.
#[test]
fn a_secret_path_with_a_tilde_or_a_variable_is_refused_saying_why() {
    let f = Fixture::new();
    for value in ["~/.config/tokend/gh.secret", "$HOME/gh.secret"] {
        let errors = f.errors(&format!("{GITHUB}client_secret_file = \"{value}\"\n"));
        assert!(
            errors[0].contains("tokend expands neither `~` nor environment variables"),
            "{errors:?}"
        );
    }
    let dir = std::path::absolute(Path::new(".")).unwrap();
    let named = crate::config::secrets::named_file(Path::new("github.toml"), "gh.secret");
    assert_eq!(named.unwrap(), dir.join("gh.secret"));
}
