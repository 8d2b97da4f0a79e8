//! The Twilio emulator's error answers: OAuth-style, Twilio-style, or
//! Twilio-style without OAuth words (`TwilioErrorStyle`).

use serde_json::json;

use super::{Twilio, TwilioErrorStyle};
use crate::reply::Reply;

impl Twilio {
    /// Twilio's own error body; `code` 20003 is its authentication error.
    pub(super) fn twilio_error(status: u16, code: u32, message: &str) -> Reply {
        Reply::json(
            status,
            &json!({
                "code": code,
                "message": message,
                "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                "status": status,
            }),
        )
    }

    /// An OAuth error in the configured style; the outcome is the OAuth code.
    pub(super) fn error(&self, status: u16, error: &str, description: &str) -> Reply {
        match self.options.error_style {
            TwilioErrorStyle::OAuth => Reply::oauth_error(status, error, description),
            TwilioErrorStyle::Twilio => {
                let code = if error == "invalid_client" {
                    20003
                } else {
                    20001
                };
                Self::twilio_error(status, code, &format!("{error}: {description}")).outcome(error)
            }
            TwilioErrorStyle::TwilioOpaque => {
                let (status, code, message) = match error {
                    "authorization_pending" => (
                        400,
                        20001,
                        "Authorization request is awaiting user approval",
                    ),
                    "slow_down" => (429, 20429, "Polling too frequently"),
                    "access_denied" => {
                        (400, 20001, "Authorization request was rejected by the user")
                    }
                    "expired_token" => (400, 20001, "Device code has expired"),
                    "invalid_client" => (401, 20003, "Client authentication failed"),
                    _ => (status, 20001, description),
                };
                Self::twilio_error(status, code, message).outcome(error)
            }
        }
    }

    /// `invalid_grant` for the `token` named ("device code", "refresh
    /// token"), which the opaque style says as "Invalid <token>".
    pub(super) fn invalid_grant(&self, token: &str, why: &str) -> Reply {
        match self.options.error_style {
            TwilioErrorStyle::TwilioOpaque => {
                Self::twilio_error(400, 20001, &format!("Invalid {token}")).outcome("invalid_grant")
            }
            TwilioErrorStyle::OAuth | TwilioErrorStyle::Twilio => {
                self.error(400, "invalid_grant", why)
            }
        }
    }

    /// `invalid_request`, a client bug: also a violation.
    pub(super) fn invalid(&self, problem: &str) -> Reply {
        self.error(400, "invalid_request", problem)
            .violation(format!("invalid request: {problem}"))
    }
}
