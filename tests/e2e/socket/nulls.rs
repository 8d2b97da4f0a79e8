//! Optional request fields given as `null` are absent, for every op: a
//! client that writes its unset fields as `null` is served as one that
//! leaves them out.

use super::{Connection, logged_in};

/// `stream: null` was refused (`stream` must be true or false, got null)
/// where `provider: null` and `min_valid: null` were taken as absent.
#[test]
fn null_optional_fields_are_absent() {
    let (_provider, daemon, token) = logged_in();
    let mut conn = Connection::open(&daemon);
    // `status` with every optional field null: the single line, as with none.
    for request in [
        r#"{"op":"status","stream":null}"#,
        r#"{"op":"status","provider":null,"stream":null}"#,
    ] {
        let answer = conn.ask(request);
        assert_eq!(answer["ok"], true, "{request}: {answer}");
        assert_eq!(
            answer["providers"][0]["name"], "demo",
            "{request}: {answer}"
        );
    }
    // `token` with both of its optional fields null.
    let answer = conn.ask(r#"{"op":"token","provider":"demo","min_valid":null,"refused":null}"#);
    assert_eq!(answer["access_token"], token.as_str(), "{answer}");
    // A required field is still required, null or not.
    let answer = conn.ask(r#"{"op":"logout","provider":null}"#);
    assert_eq!(answer["error"]["code"], "bad_request", "{answer}");
    // And a stream asked for is one.
    let answer = conn.ask(r#"{"op":"status","provider":null,"stream":true}"#);
    assert_eq!(answer["event"], "provider", "{answer}");
}
