//! Error codes some providers put where RFC 6749 does not: Google's
//! `error_code`; and codes of their own: Microsoft's `code_expired`.

use super::*;

/// Google's device endpoint over its quota answers 403 with
/// `{"error_code": "rate_limit_exceeded"}` and no `error`: a wait, named,
/// not a refusal of the login ("Forbidden (HTTP 403): 37 bytes of
/// application/json", exit 8).
#[test]
fn googles_quota_answer_is_a_wait_with_its_code() {
    let quota = json(403, r#"{"error_code":"rate_limit_exceeded"}"#);
    let e = device_authorization(&STD, &quota).unwrap_err();
    assert_eq!(e.class(), FailureClass::Transient, "{e}");
    assert!(e.to_string().contains("rate_limit_exceeded"), "{e}");
    // On the token endpoint too.
    let e = refresh_answer(&STD, &quota).unwrap_err();
    assert_eq!(e.class(), FailureClass::Transient, "{e}");
}

/// Microsoft's older endpoints end an expired device code's polls with
/// `code_expired` (AADSTS70020): the code expired, as `expired_token`
/// says, not a refusal.
#[test]
fn microsofts_code_expired_is_an_expired_code() {
    let r = json(
        400,
        r#"{"error":"code_expired","error_description":"AADSTS70020: The provided value for the input parameter 'device_code' is not valid. This device code has expired."}"#,
    );
    assert!(matches!(poll_answer(&STD, &r), PollOutcome::Expired { .. }));
}

/// Codes sent all in upper case (`INVALID_GRANT`) mean what RFC 6749's
/// lower-case ones do: a revoked grant ends the session (it was retried
/// for ever as a refusal), a pending login keeps polling (it ended the
/// login at once). A code in mixed case is kept as sent.
#[test]
fn codes_in_upper_case_mean_what_the_rfcs_do() {
    let r = json(400, r#"{"error":"INVALID_GRANT"}"#);
    let e = refresh_answer(&STD, &r).unwrap_err();
    assert_eq!(e.class(), FailureClass::GrantRevoked, "{e}");
    let r = json(400, r#"{"error":"AUTHORIZATION_PENDING"}"#);
    assert!(matches!(poll_answer(&STD, &r), PollOutcome::Pending));
    let r = json(400, r#"{"error":"SLOW_DOWN"}"#);
    assert!(matches!(
        poll_answer(&STD, &r),
        PollOutcome::SlowDown { .. }
    ));
    let r = json(400, r#"{"error":"Invalid_Grant"}"#);
    let e = refresh_answer(&STD, &r).unwrap_err();
    assert!(e.to_string().contains("Invalid_Grant"), "{e}");
}
