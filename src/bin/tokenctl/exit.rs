//! Exit statuses: maps failures to them. The statuses themselves are
//! defined in [`tokend::cli::exit_status`], beside the command line.

use tokend::client::ClientError;
use tokend::protocol::ErrorCode;

pub use tokend::cli::exit_status::{
    ACCESS_DENIED, COMMAND_NOT_FOUND, COMMAND_NOT_RUNNABLE, DAEMON_UNREACHABLE, FAILURE,
    LOGIN_FAILED, LOGIN_REQUIRED, PROVIDER_UNAVAILABLE, STORE_ERROR, SUCCESS, UNKNOWN_PROVIDER,
    USAGE,
};

/// The exit status for a daemon error code.
pub fn for_error_code(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::LoginRequired => LOGIN_REQUIRED,
        ErrorCode::AccessDenied => ACCESS_DENIED,
        ErrorCode::ProviderUnavailable => PROVIDER_UNAVAILABLE,
        ErrorCode::UnknownProvider => UNKNOWN_PROVIDER,
        ErrorCode::LoginFailed => LOGIN_FAILED,
        ErrorCode::StoreError => STORE_ERROR,
        // The daemon is going away: to a script that is the same as it not
        // running, and systemd will bring it back.
        ErrorCode::ShuttingDown => DAEMON_UNREACHABLE,
        ErrorCode::ProviderError
        | ErrorCode::TokenTooShort
        | ErrorCode::BadRequest
        | ErrorCode::RequestTooLarge
        | ErrorCode::AnswerTooLarge
        | ErrorCode::Internal
        | ErrorCode::Unknown => FAILURE,
    }
}

/// The exit status for a failed request.
pub fn for_client_error(error: &ClientError) -> u8 {
    match error {
        // A daemon that hung up mid-request has stopped or crashed.
        ClientError::Connect { .. } | ClientError::Closed | ClientError::UntrustedServer { .. } => {
            DAEMON_UNREACHABLE
        }
        ClientError::Daemon(body) => for_error_code(body.code),
        // What ended it decides: a daemon gone is 3 as it was, and so is
        // one that gave up on a paused reader (it hung up, whyever).
        ClientError::StatusCutShort { cause, .. } => for_client_error(cause),
        ClientError::LoginUnfinished => LOGIN_FAILED,
        ClientError::Timeout { .. }
        | ClientError::NoLoginCode { .. }
        | ClientError::Io { .. }
        | ClientError::BadAnswer { .. } => FAILURE,
    }
}

/// The exit status for a login that ended without a token. Only the
/// login's own outcome is [`LOGIN_FAILED`]: denied, expired or failed
/// (`login_failed`), refused by the provider for good (`provider_error`: a
/// bad client id, say), or ended with no reason given. Every other code
/// keeps the status the other verbs give it: a bad request (an empty or
/// too long name), an internal error or a code this tokenctl does not know
/// is 1, no login having been tried.
pub fn for_login_failure(code: Option<ErrorCode>) -> u8 {
    match code {
        None | Some(ErrorCode::LoginFailed | ErrorCode::ProviderError) => LOGIN_FAILED,
        Some(code) => for_error_code(code),
    }
}

/// Why a verb failed: the line for stderr and the exit status.
#[derive(Debug)]
pub struct Failure {
    /// The exit status.
    pub status: u8,
    /// One line saying what happened and what to do.
    pub message: String,
}

impl Failure {
    /// A failure with `status`.
    pub fn new(status: u8, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// Writing to stdout failed (a full disk; a closed pipe). A reader
    /// that went away (`tokenctl status | head -1`) is not told so: it
    /// stopped reading on purpose, and the line would only be noise on the
    /// terminal. The status still says the output did not all go out.
    pub fn output(error: &std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            return Self::silent(FAILURE);
        }
        Self::new(FAILURE, format!("cannot write the output: {error}"))
    }

    /// An exit status whose reason was already printed: no message.
    pub fn silent(status: u8) -> Self {
        Self::new(status, String::new())
    }
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Self::new(for_client_error(&error), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use tokend::protocol::ErrorBody;

    use super::*;

    #[test]
    fn a_reader_that_went_away_is_not_told_so() {
        let closed = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let failure = Failure::output(&closed);
        assert_eq!((failure.status, failure.message.as_str()), (FAILURE, ""));
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert!(
            Failure::output(&full)
                .message
                .contains("cannot write the output")
        );
    }

    #[test]
    fn daemon_codes_map_to_their_statuses() {
        assert_eq!(for_error_code(ErrorCode::LoginRequired), 4);
        assert_eq!(for_error_code(ErrorCode::AccessDenied), 5);
        assert_eq!(for_error_code(ErrorCode::ProviderUnavailable), 6);
        assert_eq!(for_error_code(ErrorCode::UnknownProvider), 7);
        assert_eq!(for_error_code(ErrorCode::LoginFailed), 8);
        assert_eq!(for_error_code(ErrorCode::Internal), 1);
        assert_eq!(for_error_code(ErrorCode::Unknown), 1);
    }

    #[test]
    fn transport_failures_map_to_their_statuses() {
        let connect = ClientError::Connect {
            path: PathBuf::from("/x"),
            source: std::io::ErrorKind::NotFound.into(),
        };
        assert_eq!(for_client_error(&connect), DAEMON_UNREACHABLE);
        assert_eq!(for_client_error(&ClientError::Closed), DAEMON_UNREACHABLE);
        let timeout = ClientError::Timeout {
            timeout: Duration::from_secs(1),
        };
        assert_eq!(for_client_error(&timeout), FAILURE);
        let daemon = ClientError::Daemon(ErrorBody {
            code: ErrorCode::AccessDenied,
            message: "no".into(),
        });
        assert_eq!(Failure::from(daemon).status, ACCESS_DENIED);
    }

    #[test]
    fn failed_logins_keep_specific_statuses() {
        assert_eq!(for_login_failure(None), LOGIN_FAILED);
        assert_eq!(
            for_login_failure(Some(ErrorCode::LoginFailed)),
            LOGIN_FAILED
        );
        assert_eq!(
            for_login_failure(Some(ErrorCode::ProviderError)),
            LOGIN_FAILED
        );
        // No login was tried: the statuses of the other verbs.
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::RequestTooLarge,
            ErrorCode::Internal,
            ErrorCode::Unknown,
        ] {
            assert_eq!(for_login_failure(Some(code)), FAILURE, "{code:?}");
        }
        assert_eq!(
            for_login_failure(Some(ErrorCode::ShuttingDown)),
            DAEMON_UNREACHABLE
        );
        assert_eq!(
            for_login_failure(Some(ErrorCode::UnknownProvider)),
            UNKNOWN_PROVIDER
        );
        assert_eq!(
            for_login_failure(Some(ErrorCode::ProviderUnavailable)),
            PROVIDER_UNAVAILABLE
        );
    }
}
