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

/// A success answer whose access token cannot be used beside a new
/// refresh token that can: the refresh token comes back to be kept (the
/// provider may have retired the one sent); without one the answer is
/// refused as before. Either way nothing quotes a token.
#[test]
fn a_new_refresh_token_beside_an_unusable_access_token_is_handed_back() {
    for body in [
        r#"{"token_type":"Bearer","expires_in":3600,"refresh_token":"rt_new"}"#,
        r#"{"access_token":"","token_type":"Bearer","refresh_token":"rt_new"}"#,
        "{\"access_token\":\"at\\u0000x\",\"refresh_token\":\"rt_new\"}",
    ] {
        let error = refresh_answer(&STD, &json(200, body)).unwrap_err();
        assert_eq!(
            error.kept_refresh_token().map(Secret::expose),
            Some("rt_new"),
            "{body}: {error:?}"
        );
        assert_eq!(error.class(), FailureClass::Transient);
        assert!(!error.to_string().contains("rt_new"), "{error}");
        assert!(!format!("{error:?}").contains("rt_new"), "{error:?}");
    }
    let error = refresh_answer(&STD, &json(200, r#"{"token_type":"Bearer"}"#)).unwrap_err();
    assert!(
        matches!(error, ProviderError::Malformed { .. }),
        "{error:?}"
    );
    assert!(error.kept_refresh_token().is_none());
}

/// A success answer that cannot be read at all counts as a success whose
/// tokens are lost (the provider may have rotated the refresh token sent),
/// unless it is empty or a web page: a captive portal's, which spent
/// nothing at the provider.
#[test]
fn an_unreadable_success_is_told_apart_from_a_portals_page() {
    let trailing = json(200, "{\"access_token\":\"a\"}\n<!-- proxy -->\n");
    let error = refresh_answer(&STD, &trailing).unwrap_err();
    assert!(error.is_unusable_success(), "{error:?}");
    assert!(!error.is_lost_success(), "{error:?}");
    for page in [
        answer(
            200,
            "text/html",
            "<html><body>Sign in to the Wi-Fi</body></html>",
        ),
        json(200, "  "),
    ] {
        let error = refresh_answer(&STD, &page).unwrap_err();
        assert!(!error.is_unusable_success(), "{error:?}");
    }
    let error = refresh_answer(&STD, &json(503, "{\"access_token\":")).unwrap_err();
    assert!(!error.is_unusable_success(), "{error:?}");
}
