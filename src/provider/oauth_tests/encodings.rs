//! Answer bodies in the encodings providers send, and those they should
//! not: a byte order mark, bytes that are not UTF-8, bodies that are no
//! answer at all.

use super::*;

/// A refresh answer with a byte order mark before its JSON is read, and
/// its new refresh token kept.
#[test]
fn a_byte_order_mark_before_the_json_is_skipped() {
    let r = json(
        200,
        "\u{FEFF}{\"access_token\":\"a\",\"expires_in\":60,\"refresh_token\":\"r2\"}",
    );
    let grant = refresh_answer(&STD, &r).unwrap();
    assert_eq!(grant.refresh_token.unwrap().expose(), "r2");
    let r = answer(
        200,
        "Application/X-WWW-Form-Urlencoded",
        "\u{FEFF}error=authorization_pending",
    );
    assert!(matches!(poll_answer(&STD, &r), PollOutcome::Pending));
}

/// A success answer that cannot be read says why: a compression tokend
/// did not ask for, JSON that does not parse.
#[test]
fn unreadable_answers_say_why() {
    let mut r = json(200, "\u{1f}\u{8}garbled");
    r.content_encoding = Some("gzip".to_owned());
    let e = refresh_answer(&STD, &r).unwrap_err();
    assert!(
        e.to_string().contains(
            "expected a token answer, got 9 bytes of application/json compressed with `gzip`"
        ),
        "{e}"
    );
    let r = json(200, r#"{"access_token":"at_secret","expires_in":60"#);
    let e = device_authorization(&STD, &r).unwrap_err();
    let said = e.to_string();
    assert!(
        said.contains("expected a device authorization answer, got 43 bytes of application/json that is not JSON: EOF while parsing an object at line 1 column 43"),
        "{said}"
    );
    assert!(!said.contains("at_secret"), "{said}");
}

/// An `invalid_grant` whose description is in Latin-1 (not UTF-8, as JSON
/// must be) still ends the session: it was an unreadable answer, retried
/// for ever as a refusal while the session showed "active".
#[test]
fn a_latin1_invalid_grant_still_ends_the_session() {
    let mut r = json(400, "");
    r.body = bytes::Bytes::from_static(
        b"{\"error\":\"invalid_grant\",\"error_description\":\"Jeton expir\xe9\"}",
    );
    let e = refresh_answer(&STD, &r).unwrap_err();
    assert_eq!(e.class(), FailureClass::GrantRevoked, "{e}");
    assert!(e.to_string().contains("Jeton expir"), "{e}");
}
