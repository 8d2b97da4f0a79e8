//! The `login` answer: a stream of [`LoginEvent`] lines, the prompt to
//! show the person, then the outcome.

use serde::{Deserialize, Serialize};

use super::ErrorBody;

/// What a person needs to approve a device login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginPrompt {
    /// The code the person types at the verification page.
    pub user_code: String,
    /// The page where the person enters the code.
    pub verification_uri: String,
    /// A page that already carries the code, when the provider gives one.
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    /// Seconds left until the code expires, as of when this was sent.
    pub expires_in: u64,
    /// A ready-made instruction sentence some providers send (Microsoft).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One line of the `login` answer stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LoginEvent {
    /// The device code is ready: show it to the person.
    Prompt {
        /// Provider name.
        provider: String,
        /// The prompt.
        #[serde(flatten)]
        prompt: LoginPrompt,
    },
    /// Between the prompt and the end, when the polls for the person's
    /// approval begin to fail (the provider down, an answer that cannot be
    /// read; tokend keeps polling until the code expires), and again when
    /// they are answered once more (`trouble` null).
    Polling {
        /// Provider name.
        provider: String,
        /// Why the last poll failed; `None` once polls are answered again.
        trouble: Option<String>,
    },
    /// The login ended; the last line of the stream.
    Done {
        /// Provider name.
        provider: String,
        /// Whether a token was obtained.
        ok: bool,
        /// Why not, when `ok` is false.
        #[serde(default)]
        error: Option<ErrorBody>,
        /// With `ok`, when the new tokens could not be saved: why (the
        /// store's trouble). They are used, and saved when the store
        /// works; a stop before then loses the login. Absent otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unsaved: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_events_match_the_contract() {
        let prompt = LoginEvent::Prompt {
            provider: "gh".into(),
            prompt: LoginPrompt {
                user_code: "ABCD-EFGH".into(),
                verification_uri: "https://example/device".into(),
                verification_uri_complete: None,
                expires_in: 900,
                message: None,
            },
        };
        assert_eq!(
            serde_json::to_string(&prompt).unwrap(),
            r#"{"event":"prompt","provider":"gh","user_code":"ABCD-EFGH","verification_uri":"https://example/device","verification_uri_complete":null,"expires_in":900}"#
        );
        let polling = LoginEvent::Polling {
            provider: "gh".into(),
            trouble: Some("HTTP 503".into()),
        };
        assert_eq!(
            serde_json::to_string(&polling).unwrap(),
            r#"{"event":"polling","provider":"gh","trouble":"HTTP 503"}"#
        );
        let done = LoginEvent::Done {
            unsaved: None,
            provider: "gh".into(),
            ok: true,
            error: None,
        };
        assert_eq!(
            serde_json::to_string(&done).unwrap(),
            r#"{"event":"done","provider":"gh","ok":true,"error":null}"#
        );
    }
}
