//! Every dialect's answer parsers, on answer-like JSON and bytes.

use super::*;

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
        retry_after: None,
        content_encoding: None,
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
