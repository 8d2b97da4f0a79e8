//! The broker's answers in the socket's wire types ([`crate::protocol`]):
//! the one place the core's reports and error kinds become JSON fields.
//!
//! The mapping is field by field and exhaustive, so a new error kind or
//! session phase fails to compile here until the protocol says how it is
//! sent. The tests pin the wire names to the core's names, which metrics
//! use too: a caller's `code` and its count in `tokenctl metrics` agree.

use std::io;

use zeroize::Zeroizing;

use crate::broker::clock::unix_secs;
use crate::broker::{
    AccessToken, BrokerError, DevicePrompt, ErrorKind, SessionReport, StoreReport,
};
use crate::protocol::{
    Answer, ConfigStatus, ErrorBody, ErrorCode, LoginPrompt, ProviderStatus, StoreStatus,
};

/// The protocol's code for a kind of broker failure.
pub(crate) fn error_code(kind: ErrorKind) -> ErrorCode {
    match kind {
        ErrorKind::UnknownProvider => ErrorCode::UnknownProvider,
        ErrorKind::AccessDenied => ErrorCode::AccessDenied,
        ErrorKind::LoginRequired => ErrorCode::LoginRequired,
        ErrorKind::ProviderUnavailable => ErrorCode::ProviderUnavailable,
        ErrorKind::ProviderRejected => ErrorCode::ProviderError,
        ErrorKind::LoginFailed => ErrorCode::LoginFailed,
        ErrorKind::TokenTooShort => ErrorCode::TokenTooShort,
        ErrorKind::InvalidArgument => ErrorCode::BadRequest,
        ErrorKind::Store => ErrorCode::StoreError,
        ErrorKind::ShuttingDown => ErrorCode::ShuttingDown,
    }
}

/// The error object of an answer that failed with `error`.
pub(crate) fn error_body(error: &BrokerError) -> ErrorBody {
    ErrorBody {
        code: error_code(error.kind()),
        message: error.to_string(),
    }
}

/// The failure answer for `error`.
pub(crate) fn failure_answer<T>(error: &BrokerError) -> Answer<T> {
    Answer {
        ok: false,
        value: None,
        error: Some(error_body(error)),
    }
}

/// One answer line, newline included; zeroed when dropped, as it may hold
/// a token.
///
/// # Errors
/// The answer could not be serialized (never for the protocol's types).
pub(crate) fn answer_line(answer: &impl serde::Serialize) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut line = Zeroizing::new(serde_json::to_vec(answer).map_err(io::Error::other)?);
    line.push(b'\n');
    Ok(line)
}

/// The `token` answer carrying `token`: the shape
/// [`token_answer_line`] writes, which the tests hold it to.
#[cfg(test)]
pub(crate) fn token_answer(token: &AccessToken) -> crate::protocol::TokenAnswer {
    use crate::protocol::TokenAnswer;
    TokenAnswer {
        access_token: token.secret.clone(),
        token_type: token.token_type.clone(),
        expires_at: token.expires_at.map(unix_secs),
    }
}

/// The whole `token` answer line for `token`, newline included: the bytes
/// `Answer::success(token_answer(token))` serializes to, written from
/// borrowed fields (no copy of the token to zero later but the line).
/// Zeroed when dropped.
pub(crate) fn token_answer_line(token: &AccessToken) -> Zeroizing<Vec<u8>> {
    /// [`crate::protocol::Answer`] around a [`TokenAnswer`], borrowed.
    #[derive(serde::Serialize)]
    struct Line<'a> {
        ok: bool,
        access_token: &'a str,
        token_type: &'a str,
        expires_at: Option<i64>,
    }
    let line = Line {
        ok: true,
        access_token: token.secret.expose(),
        token_type: &token.token_type,
        expires_at: token.expires_at.map(unix_secs),
    };
    // Room for the fields around the token, so the line is never moved
    // (a move would leave a copy of the token behind, unzeroed).
    let capacity = token.secret.expose().len() + token.token_type.len() + 96;
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    // Writing into a Vec cannot fail, and these fields always serialize.
    let _ = serde_json::to_writer(&mut *bytes, &line);
    bytes.push(b'\n');
    bytes
}

/// A device login's prompt as `login` and `status` send it.
pub(crate) fn login_prompt(prompt: DevicePrompt) -> LoginPrompt {
    LoginPrompt {
        user_code: prompt.user_code,
        verification_uri: prompt.verification_uri,
        verification_uri_complete: prompt.verification_uri_complete,
        expires_in: prompt.expires_in.as_secs(),
        message: prompt.message,
    }
}

/// One provider of a `status` answer.
pub(crate) fn provider_status(report: SessionReport) -> ProviderStatus {
    ProviderStatus {
        name: report.name,
        dialect: report.dialect.to_owned(),
        state: report.phase.name().to_owned(),
        expires_at: report.expires_at.map(unix_secs),
        last_refresh: report.last_refresh.map(unix_secs),
        next_refresh: report.next_refresh.map(unix_secs),
        last_error: report.last_error,
        scopes: report.scopes,
        login: report.login.map(login_prompt),
        saved: report.saved,
        hosts: report.hosts,
        username: Some(report.username),
        login_needed_by: report.login_needed_by.map(unix_secs),
        git_auth: Some(report.git_auth.as_str().to_owned()),
    }
}

/// The store's state, sent once per `status` answer.
pub(crate) fn store_status(report: StoreReport) -> StoreStatus {
    let state = report.state_name().to_owned();
    let (reason, since) = match report.outage {
        None => (None, None),
        Some(outage) => (Some(outage.reason), Some(unix_secs(outage.since))),
    };
    StoreStatus {
        state,
        name: report.name.to_owned(),
        reason,
        since,
    }
}

/// The config's standing, sent once per `status` answer when there is
/// anything to say.
pub(crate) fn config_status(standing: &crate::broker::ConfigStanding) -> Option<ConfigStatus> {
    (!standing.is_clean()).then(|| ConfigStatus {
        reload_failed_at: standing.reload_failed_at.map(unix_secs),
        restart_needed: standing
            .restart_needed
            .iter()
            .map(|key| (*key).to_owned())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::broker::SessionPhase;
    use crate::broker::clock::from_unix_secs;
    use crate::broker::metrics::OUTCOMES;
    use crate::broker::report::StoreOutage;

    #[test]
    fn the_token_line_is_the_token_answer_serialized() {
        for expires_at in [Some(from_unix_secs(1_790_000_000)), None] {
            let token = AccessToken {
                secret: "tok\"en\\\u{1}é".into(),
                token_type: "Bearer".into(),
                expires_at,
            };
            let mut expected =
                serde_json::to_vec(&crate::protocol::Answer::success(token_answer(&token)))
                    .unwrap();
            expected.push(b'\n');
            assert_eq!(
                String::from_utf8(token_answer_line(&token).to_vec()).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }

    #[test]
    fn every_error_kind_is_sent_under_its_core_name() {
        for kind in ErrorKind::ALL {
            let code = error_code(kind);
            assert_eq!(code.as_str(), kind.name(), "{kind:?}");
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::from(kind.name())
            );
        }
    }

    #[test]
    fn every_code_the_socket_sends_has_a_metrics_outcome() {
        let codes = [
            ErrorCode::LoginRequired,
            ErrorCode::UnknownProvider,
            ErrorCode::AccessDenied,
            ErrorCode::ProviderUnavailable,
            ErrorCode::ProviderError,
            ErrorCode::LoginFailed,
            ErrorCode::TokenTooShort,
            ErrorCode::BadRequest,
            ErrorCode::RequestTooLarge,
            ErrorCode::AnswerTooLarge,
            ErrorCode::ShuttingDown,
            ErrorCode::Internal,
            ErrorCode::Unknown,
        ];
        for code in codes {
            assert!(OUTCOMES.contains(&code.as_str()), "{code:?}");
        }
    }

    fn report() -> SessionReport {
        SessionReport {
            name: "github".into(),
            dialect: "rfc8628",
            phase: SessionPhase::LoginPending,
            expires_at: Some(from_unix_secs(1_790_000_600)),
            last_refresh: Some(from_unix_secs(1_790_000_000)),
            next_refresh: None,
            last_error: Some("provider `github` is unavailable: timed out".into()),
            scopes: vec!["repo".into(), "read:org".into()],
            login: Some(DevicePrompt {
                user_code: "WDJB-MJHT".into(),
                verification_uri: "https://example.com/device".into(),
                verification_uri_complete: None,
                expires_in: Duration::from_secs(899),
                message: None,
            }),
            saved: false,
            hosts: vec!["github.com".into()],
            username: "x-access-token".into(),
            login_needed_by: None,
            git_auth: crate::config::GitAuth::Auto,
        }
    }

    #[test]
    fn a_report_is_sent_as_the_contract_shows() {
        let line = serde_json::to_string(&provider_status(report())).unwrap();
        assert_eq!(
            line,
            concat!(
                r#"{"name":"github","dialect":"rfc8628","state":"login_pending","#,
                r#""expires_at":1790000600,"last_refresh":1790000000,"next_refresh":null,"#,
                r#""last_error":"provider `github` is unavailable: timed out","#,
                r#""scopes":["repo","read:org"],"login":{"user_code":"WDJB-MJHT","#,
                r#""verification_uri":"https://example.com/device","#,
                r#""verification_uri_complete":null,"expires_in":899},"saved":false,"#,
                r#""hosts":["github.com"],"username":"x-access-token","login_needed_by":null,"#,
                r#""git_auth":"auto"}"#
            )
        );
    }

    #[test]
    fn every_phase_is_sent_under_its_core_name() {
        for phase in SessionPhase::ALL {
            let status = provider_status(SessionReport { phase, ..report() });
            assert_eq!(status.state, phase.name());
        }
    }

    #[test]
    fn the_store_is_available_or_says_why_not() {
        let up = store_status(StoreReport {
            name: "memory store",
            outage: None,
        });
        assert!(up.is_available() && up.reason.is_none() && up.since.is_none());
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        let down = store_status(StoreReport {
            name: "Secret Service",
            outage: Some(StoreOutage {
                reason: "store locked".into(),
                since,
            }),
        });
        assert_eq!(
            serde_json::to_string(&down).unwrap(),
            r#"{"state":"unavailable","name":"Secret Service","reason":"store locked","since":1790000000}"#
        );
    }
}
