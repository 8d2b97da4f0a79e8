//! How a device login that failed is said: the provider's last word, and
//! before it the poll answer that was lost, if one was.
//!
//! A poll answered with success whose tokens could not be used (cut off,
//! unreadable, dead on arrival) and a poll sent but not answered in time
//! both may have spent the device code: the provider issued tokens and
//! marked the code used. Every poll after it then meets `invalid_grant`
//! (or the code's expiry), which alone reads as though the person had
//! done something wrong. So however the login ends after such a poll,
//! that poll is named as the likely cause.

use crate::provider::{FailureClass, PollOutcome, ProviderError};

/// A poll answer that may have carried the login's tokens and was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LostAnswer {
    /// A success answer whose tokens could not be used, with why.
    Unusable(String),
    /// A poll sent and not answered in time, with the failure's words.
    Unanswered(String),
}

impl LostAnswer {
    /// The failure's own words, as `status` showed them for the poll.
    fn failure(&self) -> &str {
        match self {
            Self::Unusable(failure) | Self::Unanswered(failure) => failure,
        }
    }
}

/// How a login whose code died while polling is said.
pub(super) fn code_died(last_failure: Option<&str>, lost: Option<&LostAnswer>) -> String {
    after_lost(lost, expired(last_failure, lost), true)
}

/// How a login the provider ended is said: denied, or its code expired.
pub(super) fn decided_against(outcome: PollOutcome, lost: Option<&LostAnswer>) -> String {
    let spent_code_fits = matches!(outcome, PollOutcome::Expired { .. });
    let said = match outcome {
        PollOutcome::Denied { message } => format!("was denied ({message})"),
        PollOutcome::Expired { message } => {
            format!("expired before it was approved ({message})")
        }
        _ => "ended".to_owned(),
    };
    after_lost(lost, said, spent_code_fits)
}

/// How a login a poll's refusal ended is said.
pub(super) fn refused(failure: &ProviderError, lost: Option<&LostAnswer>) -> String {
    after_lost(
        lost,
        super::login_prompt::poll_failure(failure),
        failure.class() == FailureClass::GrantRevoked,
    )
}

/// How a login whose code expired is said: with why the last poll failed,
/// if it did and that was not the lost answer (named on its own, by
/// [`after_lost`]).
fn expired(last_failure: Option<&str>, lost: Option<&LostAnswer>) -> String {
    match last_failure {
        Some(failure) if Some(failure) != lost.map(LostAnswer::failure) => {
            format!("expired before it was approved (the last poll failed: {failure})")
        }
        _ => "expired before it was approved".to_owned(),
    }
}

/// How a login's `outcome` is said after a lost poll answer, if one came:
/// that answer is the likely cause. A poll that got no answer is named
/// only before an end a spent code explains (`spent_code_fits`: the code
/// refused, or expired): a denial or a refused client is no sign that
/// the lost answer held tokens, and timeouts are common.
fn after_lost(lost: Option<&LostAnswer>, outcome: String, spent_code_fits: bool) -> String {
    match lost {
        Some(LostAnswer::Unanswered(_)) if !spent_code_fits => outcome,
        Some(LostAnswer::Unusable(cause)) => format!(
            "failed: a poll was answered with success, but the answer could not be used ({cause}); after it, the login {outcome}"
        ),
        Some(LostAnswer::Unanswered(cause)) => format!(
            "failed: a poll got no answer in time ({cause}), and the provider may have spent the device code on tokens lost with that answer; after it, the login {outcome}"
        ),
        None => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_answer_is_named_before_the_end_it_led_to() {
        let unanswered =
            LostAnswer::Unanswered("sent the request to X: no complete answer within 2 s".into());
        let said = after_lost(
            Some(&unanswered),
            "failed: the provider no longer takes the device code (invalid_grant)".into(),
            true,
        );
        assert!(
            said.starts_with("failed: a poll got no answer in time (sent the request to X"),
            "{said}"
        );
        assert!(said.ends_with("after it, the login failed: the provider no longer takes the device code (invalid_grant)"), "{said}");
        let unusable = LostAnswer::Unusable("cut off".into());
        // Not before a denial, which a spent code does not explain...
        assert_eq!(
            after_lost(Some(&unanswered), "was denied (no)".into(), false),
            "was denied (no)"
        );
        // ... but an unusable success answer is named before any end.
        assert!(after_lost(Some(&unusable), "was denied (no)".into(), false)
            .starts_with("failed: a poll was answered with success, but the answer could not be used (cut off)"));
        assert_eq!(
            after_lost(None, "was denied (no)".into(), true),
            "was denied (no)"
        );
    }

    /// A refusal of the client (`invalid_client`) after a poll that got no
    /// answer is said alone; the code's refusal names that poll.
    #[test]
    fn a_poll_with_no_answer_is_named_only_before_the_codes_refusal() {
        let unanswered = LostAnswer::Unanswered("no answer".into());
        let client_refused = ProviderError::Rejected {
            endpoint: "http://127.0.0.1/token".into(),
            status: 401,
            error: "invalid_client".into(),
            detail: None,
        };
        let said = refused(&client_refused, Some(&unanswered));
        assert!(!said.contains("a poll got no answer"), "{said}");
        let code_refused = ProviderError::GrantRevoked {
            error: "invalid_grant".into(),
            detail: None,
        };
        let said = refused(&code_refused, Some(&unanswered));
        assert!(
            said.starts_with("failed: a poll got no answer in time (no answer)"),
            "{said}"
        );
        let denied = PollOutcome::Denied {
            message: "access_denied".into(),
        };
        assert!(!decided_against(denied, Some(&unanswered)).contains("a poll got no answer"));
    }

    #[test]
    fn an_expiry_names_the_last_failure_once() {
        let unanswered = LostAnswer::Unanswered("no answer".into());
        // The lost answer's failure is said by `after_lost`, not twice.
        assert_eq!(
            expired(Some("no answer"), Some(&unanswered)),
            "expired before it was approved"
        );
        assert_eq!(
            expired(Some("HTTP 502"), Some(&unanswered)),
            "expired before it was approved (the last poll failed: HTTP 502)"
        );
        assert_eq!(expired(None, None), "expired before it was approved");
    }
}
