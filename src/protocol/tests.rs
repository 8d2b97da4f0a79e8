//! Tests of the request parser and the answers' wire shapes.
use super::*;

/// Any line of `token`-like fields (in any order, with duplicates, with
/// `null`s, wrong types, unknown fields and other ops) reads the same
/// through the struct and through the enum.
#[test]
fn the_token_shortcut_reads_every_line_as_the_enum_does() {
    use proptest::prelude::*;
    let key = prop::sample::select(vec![
        "op",
        "provider",
        "min_valid",
        "refused",
        "stream",
        "x",
        "op",
    ]);
    let value = prop::sample::select(vec![
        "\"token\"",
        "\"tok\\u0065n\"",
        "\"status\"",
        "\"demo\"",
        "60",
        "-1",
        "1e3",
        "null",
        "true",
        "{}",
        "\"t\\\"x\"",
    ]);
    let line = prop::collection::vec((key, value), 0..6).prop_map(|fields| {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    });
    proptest!(ProptestConfig::with_cases(2000), |(line in line)| {
        let general = serde_json::from_str::<Request>(&line).ok();
        let shortcut = parse_token_request(&line);
        match (shortcut, general) {
            (Some(shortcut), general) => prop_assert_eq!(Some(shortcut), general, "{}", line),
            (None, general) => prop_assert!(
                !matches!(general, Some(Request::Token { .. })),
                "the shortcut missed a token request: {}",
                line
            ),
        }
    });
}

#[test]
fn the_token_shortcut_takes_token_requests_in_any_spelling() {
    for line in [
        r#"{"op":"token","provider":"demo"}"#,
        r#"{"provider":"demo","op":"token"}"#,
        r#" { "op" : "tok\u0065n", "provider":"d\u00e9mo", "min_valid": 60 } "#,
        r#"{"op":"token","provider":"demo","refused":"old","min_valid":null}"#,
    ] {
        let shortcut = parse_token_request(line.trim());
        assert!(shortcut.is_some(), "{line}");
        assert_eq!(shortcut, serde_json::from_str(line).ok(), "{line}");
        assert_eq!(shortcut, parse_request(line.as_bytes()).ok(), "{line}");
    }
}

#[test]
fn token_request_round_trip() {
    let req: Request =
        serde_json::from_str(r#"{"op":"token","provider":"github","min_valid":60}"#).unwrap();
    assert_eq!(
        req,
        Request::Token {
            provider: "github".into(),
            min_valid: Some(60),
            refused: None,
        }
    );
}

#[test]
fn answer_shapes_match_the_contract() {
    let ok = Answer::success(TokenAnswer {
        access_token: Secret::from("tok"),
        token_type: "Bearer".into(),
        expires_at: Some(1_790_000_000),
    });
    assert_eq!(
        serde_json::to_string(&ok).unwrap(),
        r#"{"ok":true,"access_token":"tok","token_type":"Bearer","expires_at":1790000000}"#
    );
    // A token of unknown life (no `expires_in`): `null`, as the README says.
    let unknown = Answer::success(TokenAnswer {
        access_token: Secret::from("tok"),
        token_type: "Bearer".into(),
        expires_at: None,
    });
    assert_eq!(
        serde_json::to_string(&unknown).unwrap(),
        r#"{"ok":true,"access_token":"tok","token_type":"Bearer","expires_at":null}"#
    );
    let err: Answer<TokenAnswer> = Answer::failure(ErrorCode::LoginRequired, "run login");
    assert_eq!(
        serde_json::to_string(&err).unwrap(),
        r#"{"ok":false,"error":{"code":"login_required","message":"run login"}}"#
    );
    let back: Answer<TokenAnswer> =
        serde_json::from_str(r#"{"ok":false,"error":{"code":"login_required","message":"m"}}"#)
            .unwrap();
    assert_eq!(
        back.into_result().unwrap_err().code,
        ErrorCode::LoginRequired
    );
}

#[test]
fn status_requests_old_and_streamed() {
    // A version-1 request is still one, and a client that does not
    // stream sends exactly what a version-1 daemon accepts.
    let old = parse_request(br#"{"op":"status"}"#).unwrap();
    assert_eq!(
        old,
        Request::Status {
            provider: None,
            stream: false
        }
    );
    assert_eq!(serde_json::to_string(&old).unwrap(), r#"{"op":"status"}"#);
    let streamed = parse_request(br#"{"op":"status","provider":"gh","stream":true}"#).unwrap();
    assert_eq!(
        streamed,
        Request::Status {
            provider: Some("gh".into()),
            stream: true
        }
    );
}

#[test]
fn unknown_codes_from_newer_daemons_parse() {
    let body: ErrorBody =
        serde_json::from_str(r#"{"code":"something_new","message":"m"}"#).unwrap();
    assert_eq!(body.code, ErrorCode::Unknown);
}

#[test]
fn bad_requests_are_named() {
    assert!(parse_request(b"").unwrap_err().contains("empty"));
    assert_eq!(
        parse_request(b"{").unwrap_err(),
        "the request is not valid JSON: EOF while parsing an object at line 1 column 1"
    );
    assert_eq!(
        parse_request(br#"{"op":"version",}"#).unwrap_err(),
        "the request is not valid JSON: trailing comma at line 1 column 17"
    );
    assert!(parse_request(b"\xff\xfe").unwrap_err().contains("UTF-8"));
    let e = parse_request(br#"{"op":"tokn","provider":"x"}"#).unwrap_err();
    assert!(e.contains("tokn"), "{e}");
    let e = parse_request(br#"{"op":"token","provider":"x","extra":1}"#).unwrap_err();
    assert!(e.contains("extra"), "{e}");
}

/// A byte order mark before the object (PowerShell's UTF-8, Notepad) is
/// ignored, as RFC 8259 allows; it is not JSON anywhere else.
#[test]
fn a_byte_order_mark_before_a_request_is_ignored() {
    let request = parse_request("\u{feff}{\"op\":\"version\"}\r\n".as_bytes()).unwrap();
    assert_eq!(request, Request::Version);
    assert!(parse_request("{\"op\":\"version\"}\u{feff}".as_bytes()).is_err());
}

/// A line that is not JSON, or JSON but not an object, is told so in
/// words, with serde's position for the first, and never quoted.
#[test]
fn a_line_that_is_not_an_object_is_told_so() {
    assert_eq!(
        parse_request(b"not json\n").unwrap_err(),
        r#"the request is not a JSON object: expected ident at line 1 column 2; send one JSON object per line, such as {"op":"version"}"#
    );
    for (line, kind) in [
        (&br#"["token","demo"]"#[..], "an array"),
        (br#""gho_s3cret""#, "a string"),
        (b"42", "a number"),
        (b"true", "a boolean"),
        (b"null", "null"),
    ] {
        let e = parse_request(line).unwrap_err();
        assert!(
            e.starts_with(&format!("the request is not a JSON object but {kind};")),
            "{e}"
        );
        assert!(!e.contains("s3cret") && !e.contains("demo"), "{e}");
    }
    for line in ["gho_s3cret", "s3cret {\"op\":\"version\"}"] {
        let e = parse_request(line.as_bytes()).unwrap_err();
        assert!(e.starts_with("the request is not a JSON object: "), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}

/// Every op refuses a field it does not know, the ops without fields too.
#[test]
fn every_op_refuses_unknown_fields() {
    for line in [
        r#"{"op":"token","provider":"p","x":1}"#,
        r#"{"op":"login","provider":"p","x":1}"#,
        r#"{"op":"status","x":1}"#,
        r#"{"op":"logout","provider":"p","x":1}"#,
        r#"{"op":"cancel_login","provider":"p","x":1}"#,
        r#"{"op":"version","x":1}"#,
        r#"{"x":null,"op":"version"}"#,
        r#"{"op":"metrics","x":1}"#,
    ] {
        let e = parse_request(line.as_bytes()).unwrap_err();
        assert!(
            e.starts_with("invalid request: unknown field `x`"),
            "{line}: {e}"
        );
    }
    assert_eq!(parse_request(br#"{"op":"version"}"#), Ok(Request::Version));
    assert_eq!(
        parse_request(br#"{"op":"cancel_login","provider":"gh"}"#),
        Ok(Request::CancelLogin {
            provider: "gh".into()
        })
    );
    assert_eq!(
        parse_request(br#"{"op":"cancel_login","provider":null}"#).unwrap_err(),
        "invalid request: `provider` must be a string for `cancel_login`, got null"
    );
    assert_eq!(
        parse_request(br#" {"op":"metrics"} "#),
        Ok(Request::Metrics)
    );
    assert_eq!(
        serde_json::to_string(&Request::Version).unwrap(),
        r#"{"op":"version"}"#
    );
}

/// A field of the wrong type is named, with what it must be, and its
/// value is never quoted (it may be a token pasted in the wrong place).
#[test]
fn a_field_of_the_wrong_type_is_named_without_its_value() {
    for (line, expected) in [
        (
            r#"{"op":"token","provider":5}"#,
            "invalid request: `provider` must be a string, got a number",
        ),
        (
            r#"{"op":"logout","provider":["a"]}"#,
            "invalid request: `provider` must be a string, got an array",
        ),
        (
            r#"{"op":"token","provider":null}"#,
            "invalid request: `provider` must be a string for `token`, got null",
        ),
        (
            r#"{"op":"token","provider":"p","min_valid":"at_secret"}"#,
            "invalid request: `min_valid` must be a whole number of seconds, 0 or more, got a string",
        ),
        (
            r#"{"op":"token","provider":"p","min_valid":-1}"#,
            "invalid request: `min_valid` must be a whole number of seconds, 0 or more, got a negative number",
        ),
        (
            r#"{"op":"token","provider":"p","min_valid":1.5}"#,
            "invalid request: `min_valid` must be a whole number of seconds, 0 or more, got a number with a fraction",
        ),
        // Whole, negative or too large, in the forms serde reads as floats:
        // each said as what it is (all read "a number with a fraction").
        (
            r#"{"op":"token","provider":"p","min_valid":1e3}"#,
            "invalid request: `min_valid` must be a whole number of seconds, 0 or more, got a number with a decimal point or an exponent (write it as digits alone, such as 60)",
        ),
        (
            r#"{"op":"token","provider":"p","min_valid":60.0}"#,
            "invalid request: `min_valid` must be a whole number of seconds, 0 or more, got a number with a decimal point or an exponent (write it as digits alone, such as 60)",
        ),
        (
            r#"{"op":"token","provider":"p","min_valid":99999999999999999999}"#,
            "invalid request: `min_valid` must be a whole number of seconds, 0 or more, got a number too large",
        ),
        (
            r#"{"op":"token","provider":"p","min_valid":-99999999999999999999}"#,
            "invalid request: `min_valid` must be a whole number of seconds, 0 or more, got a negative number",
        ),
        (
            r#"{"op":"token","provider":"p","min_valid":-0}"#,
            "invalid request: `min_valid` must be a whole number of seconds, 0 or more, got a negative number",
        ),
        (
            r#"{"op":"token","provider":"p","refused":{"t":"at_secret"}}"#,
            "invalid request: `refused` must be a string, got an object",
        ),
        (
            r#"{"op":"status","stream":"yes"}"#,
            "invalid request: `stream` must be true or false, got a string",
        ),
        // `op` sent as null: named, as every request needs it (it read
        // "is a field given twice?", naming nothing).
        (
            r#"{"op":null}"#,
            "invalid request: `op` must be a string, got null",
        ),
        (
            r#"{"provider":"p","op":null}"#,
            "invalid request: `op` must be a string, got null",
        ),
        (
            r#"{"op":5}"#,
            "invalid request: `op` must be a string, got a number",
        ),
        // Given twice, the wrong one first: read again as a map, the last
        // one wins and has its type; the value is still not quoted.
        (
            r#"{"op":"token","provider":"p","min_valid":"at_secret","min_valid":60}"#,
            "invalid request: a field has a value of the wrong type (is a field given twice?)",
        ),
        (
            r#"{"op":"status","stream":"at_secret","stream":true}"#,
            "invalid request: a field has a value of the wrong type (is a field given twice?)",
        ),
    ] {
        assert_eq!(
            parse_request(line.as_bytes()),
            Err(expected.to_owned()),
            "{line}"
        );
    }
    // Other errors keep serde's words: an unknown field, op or a missing one.
    let unknown = parse_request(br#"{"op":"version","provider":5}"#).unwrap_err();
    assert!(
        unknown.starts_with("invalid request: unknown field `provider`"),
        "{unknown}"
    );
    let missing = parse_request(br#"{"op":"token"}"#).unwrap_err();
    assert_eq!(missing, "invalid request: missing field `provider`");
    // A null optional field is absent, as before.
    assert!(parse_request(br#"{"op":"status","provider":null}"#).is_ok());
}

/// Every optional field of every op takes `null` as absent: `stream` was
/// refused (`must be true or false, got null`) where `provider` and
/// `min_valid` were taken as absent. A required one stays refused.
#[test]
fn null_optional_fields_are_absent() {
    for (line, expected) in [
        (
            r#"{"op":"status","stream":null}"#,
            Request::Status {
                provider: None,
                stream: false,
            },
        ),
        (
            r#"{"op":"status","provider":null,"stream":null}"#,
            Request::Status {
                provider: None,
                stream: false,
            },
        ),
        (
            r#"{"op":"status","provider":"p","stream":true}"#,
            Request::Status {
                provider: Some("p".into()),
                stream: true,
            },
        ),
        (
            r#"{"op":"token","provider":"p","min_valid":null,"refused":null}"#,
            Request::Token {
                provider: "p".into(),
                min_valid: None,
                refused: None,
            },
        ),
    ] {
        assert_eq!(parse_request(line.as_bytes()), Ok(expected), "{line}");
    }
    // The token request's fast path and the general one agree.
    assert_eq!(
        parse_token_request(r#"{"op":"token","provider":"p","min_valid":null,"refused":null}"#),
        parse_request(br#"{"op":"token","provider":"p"}"#).ok()
    );
    for (line, expected) in [
        (
            r#"{"op":"token","provider":null}"#,
            "invalid request: `provider` must be a string for `token`, got null",
        ),
        (
            r#"{"op":"status","stream":"yes"}"#,
            "invalid request: `stream` must be true or false, got a string",
        ),
    ] {
        assert_eq!(
            parse_request(line.as_bytes()),
            Err(expected.to_owned()),
            "{line}"
        );
    }
}

/// A logout answer of a daemon before `had_tokens` reads as what it meant:
/// the tokens are gone, and no login was said to be cancelled.
#[test]
fn an_older_logout_answer_reads_as_tokens_gone() {
    let answer: LogoutAnswer = serde_json::from_str(r#"{"provider":"gh"}"#).unwrap();
    assert!(answer.had_tokens);
    assert!(!answer.cancelled_login);
    let answer: LogoutAnswer =
        serde_json::from_str(r#"{"provider":"gh","had_tokens":false,"cancelled_login":true}"#)
            .unwrap();
    assert!(!answer.had_tokens && answer.cancelled_login);
}

/// Each op's name is the one serde reads, listed once in [`OPS`] (by
/// [`Request::op`]) and counted under it by the broker's metrics, whose
/// list adds `invalid` only.
#[test]
fn every_op_is_named_alike_by_serde_the_list_and_the_counters() {
    let one_of_each = [
        r#"{"op":"token","provider":"p"}"#,
        r#"{"op":"login","provider":"p"}"#,
        r#"{"op":"status"}"#,
        r#"{"op":"logout","provider":"p"}"#,
        r#"{"op":"cancel_login","provider":"p"}"#,
        r#"{"op":"version"}"#,
        r#"{"op":"metrics"}"#,
    ];
    let named: Vec<&str> = one_of_each
        .iter()
        .map(|line| serde_json::from_str::<Request>(line).unwrap().op())
        .collect();
    assert_eq!(named, OPS);
    let counted = crate::broker::metrics::SOCKET_OPS;
    assert_eq!(counted[..OPS.len()], OPS);
    assert_eq!(counted[OPS.len()..], ["invalid"]);
}
