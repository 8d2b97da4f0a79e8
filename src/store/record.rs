//! Which records a tokend reads, and the record of an ended session.

use super::{
    ENDED_SESSION_VERSION, FROM_A_NEWER_TOKEND, STORED_SESSION_VERSION, SessionEnd, StoredSession,
};

impl StoredSession {
    /// The record of a session the provider ended at `at` (Unix seconds)
    /// for `reason`: no token (the refresh token is dead, and the access
    /// token serves nothing once the session ends), only when and why,
    /// for status after a restart.
    #[must_use]
    pub fn ended(identity: &str, at: i64, reason: &str) -> Self {
        Self {
            version: ENDED_SESSION_VERSION,
            identity: identity.to_owned(),
            refresh_token: None,
            obtained_at: at,
            scope: None,
            access_token: None,
            token_type: None,
            expires_at: None,
            refresh_expires_at: None,
            ended: Some(Box::new(SessionEnd {
                at,
                reason: reason.to_owned(),
            })),
        }
    }
}

/// Whether `record`, as read, is one this tokend uses: its version, and a
/// token to use (or, in an ended session's record, none and the end).
pub(super) fn check(record: &StoredSession) -> Result<(), String> {
    if record.version > ENDED_SESSION_VERSION {
        return Err(format!(
            "session record version {} was {FROM_A_NEWER_TOKEND} (this one reads versions up to \
             {ENDED_SESSION_VERSION})",
            record.version
        ));
    }
    if record.version == ENDED_SESSION_VERSION {
        return match (&record.ended, &record.refresh_token, &record.access_token) {
            (Some(_), None, None) => Ok(()),
            (None, _, _) => Err("an ended session's record does not say how it ended".into()),
            (Some(_), _, _) => Err("an ended session's record holds a token".into()),
        };
    }
    if record.version != STORED_SESSION_VERSION {
        return Err(format!(
            "session record version {} is not supported (expected {STORED_SESSION_VERSION})",
            record.version
        ));
    }
    if record.ended.is_some() {
        return Err(format!(
            "a session record of version {STORED_SESSION_VERSION} says the session ended"
        ));
    }
    match (&record.refresh_token, &record.access_token) {
        (Some(refresh), _) if refresh.is_empty() => {
            Err("session record has an empty refresh token".into())
        }
        (None, None) => {
            Err("session record has neither a refresh token nor an access token".into())
        }
        (None, Some(access)) if access.is_empty() => {
            Err("session record has an empty access token and no refresh token".into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_session_record_reads_back_and_holds_no_token() {
        let record = StoredSession::ended(
            "rfc8628|https://example.org/token|c",
            1_790_000_000,
            "refused (invalid_grant)",
        );
        let bytes = record.to_bytes();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(
            !text.contains("refresh_token") && text.contains(r#""access_token":null"#),
            "{text}"
        );
        assert_eq!(StoredSession::from_bytes(&bytes).unwrap(), record);
    }

    #[test]
    fn records_that_mix_the_two_kinds_are_refused() {
        let mut holding_a_token = StoredSession::ended("i", 1, "r");
        holding_a_token.refresh_token = Some("rt".to_owned().into());
        assert_eq!(
            check(&holding_a_token).unwrap_err(),
            "an ended session's record holds a token"
        );
        let mut unexplained = StoredSession::ended("i", 1, "r");
        unexplained.ended = None;
        assert!(
            check(&unexplained)
                .unwrap_err()
                .contains("does not say how it ended")
        );
        let mut old_kind = StoredSession::ended("i", 1, "r");
        old_kind.version = STORED_SESSION_VERSION;
        old_kind.refresh_token = Some("rt".to_owned().into());
        assert!(
            check(&old_kind)
                .unwrap_err()
                .contains("says the session ended")
        );
        let mut newer = StoredSession::ended("i", 1, "r");
        newer.version = ENDED_SESSION_VERSION + 1;
        assert!(check(&newer).unwrap_err().contains(FROM_A_NEWER_TOKEND));
    }
}
