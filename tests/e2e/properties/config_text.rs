//! The config loader, on edits of a valid config with every dialect.

use super::*;

/// A valid config with every dialect, to mutate.
const BASE_CONFIG: &str = r#"[daemon]
socket = "/run/tokend-test/tokend.sock"
bus = "none"
store = "memory"
http_timeout = 10
max_concurrent_refreshes = 4

[providers.github]
device_authorization_endpoint = "https://github.com/login/device/code"
token_endpoint = "https://github.com/login/oauth/access_token"
client_id = "Iv1.abc"
scopes = ["repo", "read:org"]

[providers.trakt]
dialect = "trakt"
base_url = "https://api.trakt.tv"
client_id = "abc"
client_secret = "def"

[providers.twilio]
dialect = "twilio"
base_url = "https://oauth.twilio.com"
account_sid = "AC123"
auth_token = "tok"
client_id = "OQ123"
scopes = ["offline_access"]

[providers.oracle]
dialect = "oracle"
base_url = "https://idcs-x.identity.oraclecloud.com"
client_id = "abc"
scopes = ["urn:opc:idm:__myscopes__", "offline_access"]

[providers.kiosk]
dialect = "generic-v1"
base_url = "https://api.example.com"
client_id = "abc"
device_params = { device_type = "kiosk" }
verification_uri = "https://example.com/activate"
allow_users = [1000]
"#;

/// One edit of a config text.
#[derive(Debug, Clone)]
enum Edit {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    DuplicateLine { line: usize },
    SwapLines { a: usize, b: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    let tomlish = prop_oneof![
        "[ -~]{1,12}",
        Just("\"".to_owned()),
        Just("[".to_owned()),
        Just("]]".to_owned()),
        Just("{".to_owned()),
        Just("=".to_owned()),
        Just("\n".to_owned()),
        Just("é€😀".to_owned()),
        Just("\u{0}".to_owned()),
        Just("[providers.x]\n".to_owned()),
        Just("dialect = \"trakt\"\n".to_owned()),
        Just("client_id = 5\n".to_owned()),
        Just("scopes = [1, {}]\n".to_owned()),
        Just("socket_mode = \"0777\"\n".to_owned()),
        Just("issuer = \"http://\"\n".to_owned()),
    ];
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), tomlish).prop_map(|(at, text)| Edit::Insert { at, text }),
        any::<usize>().prop_map(|line| Edit::DuplicateLine { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines { a, b }),
    ]
}

/// Applies `edit` to `text`, keeping it valid UTF-8 (offsets snap back to
/// a character boundary).
fn apply(text: &str, edit: &Edit) -> String {
    let boundary = |at: usize| {
        let mut at = at % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    match edit {
        Edit::Delete { at, len } => {
            let start = boundary(*at);
            let end = boundary((start + len).min(text.len()));
            format!("{}{}", &text[..start], &text[end.max(start)..])
        }
        Edit::Insert { at, text: new } => {
            let at = boundary(*at);
            format!("{}{new}{}", &text[..at], &text[at..])
        }
        Edit::DuplicateLine { line } if !lines.is_empty() => {
            let i = line % lines.len();
            let mut out = lines.clone();
            out.insert(i, lines[i]);
            out.concat()
        }
        Edit::SwapLines { a, b } if !lines.is_empty() => {
            let mut out = lines.clone();
            out.swap(a % lines.len(), b % lines.len());
            out.concat()
        }
        _ => text.to_owned(),
    }
}

/// Loads `text` as a private config file; checks every diagnostic points
/// into the file.
fn load_checked(text: &str) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap();
    let line_count = text.split('\n').count();
    match tokend::config::load(&path, &Environment::from_process()) {
        Ok(config) => {
            prop_assert!(!text.is_empty() || config.providers.is_empty());
        }
        Err(tokend::config::ConfigError::Invalid { diagnostics }) => {
            prop_assert!(
                diagnostics.iter().any(|d| d.severity == Severity::Error),
                "refused without an error"
            );
            for d in &diagnostics {
                prop_assert!(
                    d.line >= 1 && d.line <= line_count && d.column >= 1,
                    "{d} is not a place in a {line_count}-line file"
                );
                prop_assert!(d.to_string().starts_with(&path.display().to_string()));
            }
        }
        Err(e @ tokend::config::ConfigError::Read { .. }) => {
            // Not UTF-8 is a read error; nothing else may be.
            prop_assert!(
                e.to_string().contains("UTF-8") || e.to_string().contains("utf-8"),
                "{e}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1024))]

    /// A valid config with a few random edits: loaded, or refused with
    /// every problem at a line and column of the file.
    #[test]
    fn a_mutated_config_loads_or_says_where(edits in proptest::collection::vec(edit(), 1..5)) {
        let text = edits.iter().fold(BASE_CONFIG.to_owned(), |text, e| apply(&text, e));
        load_checked(&text)?;
    }

    /// Arbitrary text: never a panic, never an error without a place.
    #[test]
    fn arbitrary_text_never_panics_the_config_loader(text in "(\\PC|\n){0,300}") {
        load_checked(&text)?;
    }
}

#[test]
fn the_base_config_is_valid() {
    load_checked(BASE_CONFIG).unwrap();
}

// ----- dialect answer parsers --------------------------------------------
