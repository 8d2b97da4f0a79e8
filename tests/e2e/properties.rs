//! Property tests of everything that reads untrusted bytes: the socket
//! protocol (line reader and request decoder), the config loader, and every
//! dialect's answer parsers. They never panic, they keep their bounds, and
//! no token from an answer ever reaches an error message.
//!
//! Each property runs a fixed number of cases (`PROPTEST_CASES` overrides
//! it) so the whole file stays within seconds. A failure prints the
//! shrunk input: add it to `regressions` below as a plain test.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;

use bytes::Bytes;
use proptest::prelude::*;
use tokend::config::{ClientAuth, Environment, Severity};
use tokend::ipc::lines::{Line, read_line};
use tokend::protocol::{MAX_REQUEST_LINE, parse_request};
use tokend::provider::{
    ClientIdentity, DialectSettings, HttpResponse, PollOutcome, ProviderDialect, dialects,
};
use url::Url;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        // Failures are reported with their shrunk input; no files are kept.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ----- the socket protocol -----------------------------------------------

/// What `read_line` must return for `input`, line after line.
fn expected_lines(input: &[u8], limit: usize) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (line, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => rest.split_at(i + 1),
            None => (rest, &[][..]),
        };
        lines.push(if line.len() > limit {
            Line::TooLong
        } else {
            Line::Complete(line.to_vec())
        });
        rest = after;
    }
    lines.push(Line::Eof);
    lines
}

/// Bytes that look like request lines, or do not.
fn protocol_bytes() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(br#"{"op":"token","provider":"demo","min_valid":60}"#.to_vec()),
        Just(br#"{"op":"status"}"#.to_vec()),
        Just(br#"{"op":"login","provider":"x"}"#.to_vec()),
        "[ -~]{0,80}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..120),
        (1usize..400).prop_map(|n| vec![b'a'; n]),
    ];
    proptest::collection::vec((line, any::<bool>()), 0..8).prop_map(|lines| {
        let mut bytes = Vec::new();
        for (line, newline) in lines {
            bytes.extend(line);
            if newline {
                bytes.push(b'\n');
            }
        }
        bytes
    })
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

proptest! {
    #![proptest_config(config(2048))]

    /// Whatever the bytes and however they are split into reads, lines come
    /// out as the model says: bounded, in order, the overlong ones dropped.
    #[test]
    fn the_line_reader_keeps_lines_whole_and_bounded(
        input in protocol_bytes(),
        capacity in 1usize..64,
        limit in 1usize..200,
    ) {
        let got = run(async {
            let mut reader = tokio::io::BufReader::with_capacity(capacity, &input[..]);
            let mut lines = Vec::new();
            loop {
                let line = read_line(&mut reader, limit).await.unwrap();
                let end = line == Line::Eof;
                lines.push(line);
                if end {
                    return lines;
                }
            }
        });
        prop_assert_eq!(got, expected_lines(&input, limit));
    }

    /// The decoder answers every line with a request or a message, and the
    /// message never repeats the line (it could hold a token).
    #[test]
    fn the_request_decoder_never_panics_or_echoes(input in protocol_bytes()) {
        for line in input.split(|&b| b == b'\n') {
            if let Err(message) = parse_request(line) {
                prop_assert!(!message.is_empty());
                prop_assert!(message.len() < 400, "{message}");
            }
        }
    }

    /// Requests round-trip, whatever their strings.
    #[test]
    fn requests_round_trip(provider in ".{0,40}", min_valid in proptest::option::of(any::<u64>())) {
        let request = tokend::protocol::Request::Token {
            provider,
            min_valid,
            refused: None,
        };
        let line = serde_json::to_vec(&request).unwrap();
        prop_assert!(line.len() <= MAX_REQUEST_LINE);
        prop_assert_eq!(parse_request(&line).unwrap(), request);
    }
}

// ----- the config loader -------------------------------------------------

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

/// Values that stand for secrets: none may ever be seen in an error.
const MARK: &str = "SECRETMARK";

fn client() -> ClientIdentity {
    ClientIdentity {
        client_id: "cid".into(),
        client_secret: Some("client-secret-value".into()),
        client_auth: ClientAuth::SecretPost,
        scopes: vec!["a".into(), "offline_access".into()],
        device_params: BTreeMap::new(),
    }
}

/// Every dialect of the registry, so that a new one is covered without a
/// line here. Built without settings of their own: the readers under test
/// never look at them (Twilio's account only signs requests).
fn all_dialects() -> Vec<Box<dyn ProviderDialect>> {
    dialects::ALL
        .iter()
        .map(|spec| (spec.build)(client(), &DialectSettings::default()))
        .collect()
}

/// A JSON value: secret-bearing keys get marked values, the rest anything.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        "[ -~]{0,20}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("3600")),
        Just(serde_json::Value::from("Bearer")),
        Just(serde_json::Value::from("authorization_pending")),
        Just(serde_json::Value::from("invalid_grant")),
        Just(serde_json::Value::from("slow_down")),
        Just(serde_json::Value::from("2030-01-01T00:00:00Z")),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

const KEYS: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "device_code",
    "token_type",
    "expires_in",
    "expires_at",
    "created_at",
    "scope",
    "error",
    "error_description",
    "error_uri",
    "user_code",
    "verification_uri",
    "verification_url",
    "verification_uri_complete",
    "interval",
    "message",
    "code",
    "status",
    "more_info",
    "AccessToken",
    "RefreshToken",
    "DeviceCode",
    "ExpiresIn",
];
const SECRET_KEYS: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "device_code",
    "AccessToken",
    "RefreshToken",
    "DeviceCode",
];

/// A JSON object of answer-like fields; secret-bearing keys get marked values.
fn json_object() -> impl Strategy<Value = serde_json::Map<String, serde_json::Value>> {
    proptest::collection::vec(
        (
            proptest::sample::select(KEYS),
            json_value(),
            "[a-z0-9]{0,6}",
        ),
        0..8,
    )
    .prop_map(|fields| {
        let mut map = serde_json::Map::new();
        for (key, value, salt) in fields {
            let value = if SECRET_KEYS.contains(&key) {
                serde_json::Value::from(format!("{MARK}{salt}"))
            } else {
                value
            };
            map.insert(key.to_owned(), value);
        }
        map
    })
}

fn body() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        json_object().prop_map(|m| Bytes::from(serde_json::to_vec(&m).unwrap())),
        json_object().prop_map(|m| {
            let form: Vec<String> = m
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                    )
                })
                .collect();
            Bytes::from(form.join("&"))
        }),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(Bytes::from),
        "[ -~]{0,100}".prop_map(|s| Bytes::from(format!("{MARK}{s}"))),
        Just(Bytes::from_static(
            b"<!doctype html><html>SECRETMARK</html>"
        )),
    ]
}

fn response() -> impl Strategy<Value = HttpResponse> {
    let status = prop_oneof![
        Just(200u16),
        Just(201),
        Just(204),
        Just(400),
        Just(401),
        Just(403),
        Just(404),
        Just(409),
        Just(410),
        Just(418),
        Just(429),
        Just(500),
        Just(502),
        Just(503),
        100u16..600,
    ];
    let content_type = proptest::option::of(prop_oneof![
        Just("application/json".to_owned()),
        Just("application/json; charset=utf-8".to_owned()),
        Just("application/x-www-form-urlencoded".to_owned()),
        Just("text/html".to_owned()),
        Just("text/plain".to_owned()),
        "[ -~]{0,30}",
    ]);
    (status, content_type, body()).prop_map(|(status, content_type, body)| HttpResponse {
        url: Url::parse("https://provider.example/token").unwrap(),
        status,
        content_type,
        location: None,
        date: None,
        body,
    })
}

proptest! {
    #![proptest_config(config(4096))]

    /// Every dialect reads every answer without panicking, and no secret
    /// value of the answer reaches an error message.
    #[test]
    fn dialect_parsers_never_panic_or_leak(response in response()) {
        for dialect in all_dialects() {
            let kind = dialect.spec();
            if let Err(e) = dialect.parse_device_authorization(&response) {
                prop_assert!(!e.to_string().contains(MARK), "{kind}: {e}");
            }
            if let Err(e) = dialect.parse_refresh(&response) {
                prop_assert!(!e.to_string().contains(MARK), "{kind}: {e}");
            }
            let text = match dialect.parse_poll(&response) {
                PollOutcome::Denied { message } | PollOutcome::Expired { message } => message,
                PollOutcome::Failed(e) => e.to_string(),
                other => format!("{other:?}"),
            };
            prop_assert!(!text.contains(MARK), "{kind}: {text}");
        }
    }
}

/// Inputs the properties once found wrong, kept as plain tests.
mod regressions {}
