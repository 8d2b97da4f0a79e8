//! The Unix socket protocol, shared by the daemon and `tokenctl`.
//!
//! # Framing
//! A stream socket carrying newline-delimited JSON (one object per line,
//! UTF-8, `\n` terminated). A connection carries any number of requests, one
//! after the other: the client writes a request line and reads answer lines
//! until the answer is complete, then may send the next request.
//!
//! - `token`, `logout`, `cancel_login`, `version`: exactly one answer line.
//! - `login`: a stream of [`LoginEvent`] lines; the last one has
//!   `"event":"done"`. A login request that fails before a prompt exists
//!   (unknown provider, access denied, provider down) answers with a single
//!   `done` line carrying the error.
//! - `status` with `"stream":true` (protocol 2): a stream of [`StatusEvent`]
//!   lines, one `"event":"provider"` line per provider in name order, then
//!   one `"event":"done"` line with the count sent (or the error, such as an
//!   unknown provider) and, when a provider was sent, the store's state
//!   ([`StoreStatus`]). Any number of providers: each line holds one.
//! - `status` without `stream` (protocol 1): one answer line holding every
//!   provider ([`StatusAnswer`]), as long as that line stays within
//!   [`MAX_STATUS_LINE`]; past it the answer is an `answer_too_large` error
//!   saying to ask for the stream (or for one provider). Clients older than
//!   protocol 2 read lines of up to [`MAX_ANSWER_LINE`] bytes, so this keeps
//!   them working where they worked and tells them what to do where they
//!   would have failed.
//!
//! - `metrics` (protocol 3): a stream of [`MetricsEvent`] lines, `"event":"text"`
//!   lines whose texts, joined, are the OpenMetrics exposition (each a run
//!   of whole lines, at most [`METRICS_CHUNK`] bytes), then one
//!   `"event":"done"` line.
//!
//! An optional request field given as `null` is absent (`provider` and
//! `stream` of `status`, `min_valid` and `refused` of `token`).
//!
//! A request line longer than [`MAX_REQUEST_LINE`] bytes, or one that is not a
//! valid request, is answered with an error line (`request_too_large`,
//! `bad_request`); the connection stays usable, unless the line has no
//! end within 1 MiB (then it is closed after the error line).
//!
//! # Compatibility
//! Fields may be added to answers; clients ignore fields they do not know.
//! [`PROTOCOL_VERSION`] goes up when a request gains a field or an op a
//! daemon of the previous version would refuse, or when an existing field or
//! op changes meaning; a client asks `version` first to learn what it may
//! send. Versions:
//! 1. The ops `token`, `login`, `status`, `logout`, `version`.
//! 2. `status` takes `"stream":true`. Every request of version 1 is served
//!    as before; only a single-line `status` too long for a version-1 client
//!    to read becomes an `answer_too_large` error.
//! 3. The op `metrics`. A daemon of version 2 answers it with `bad_request`.
//! 4. The op `cancel_login`. A daemon of version 3 answers it with
//!    `bad_request`.

mod config_status;
mod field_errors;
mod login;
mod metrics;
mod status;
mod store_status;
mod unknown_names;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;
pub use config_status::ConfigStatus;
pub use login::{LoginEvent, LoginPrompt};
pub use metrics::{METRICS_CHUNK, METRICS_SINCE, MetricsEvent};
pub use status::{
    LOGIN_APPROVED_SAVING, ProviderStatus, STATUS_STREAM_PAUSE_LIMIT, StatusAnswer, StatusEvent,
};
pub use store_status::StoreStatus;

/// Version of this protocol, reported by the `version` op (see the
/// versions listed in the module documentation).
pub const PROTOCOL_VERSION: u32 = 4;

/// The first version in which `status` takes `"stream":true`.
pub const STATUS_STREAM_SINCE: u32 = 2;

/// The longest request line the daemon reads, newline included.
pub const MAX_REQUEST_LINE: usize = 16 * 1024;

/// The longest answer line clients read, newline excluded (`tokenctl` of
/// every version so far). The daemon sends no longer line unless a single
/// provider's status is that long.
pub const MAX_ANSWER_LINE: usize = 1024 * 1024;

/// The longest single-line `status` answer the daemon sends, newline
/// excluded; a longer one is refused with [`ErrorCode::AnswerTooLarge`].
///
/// Below [`MAX_ANSWER_LINE`] by a margin because the daemon measures the
/// line before it sends it, page by page, without holding it: statuses that
/// change in between (a new error, a login prompt) may make it a little
/// longer than measured.
pub const MAX_STATUS_LINE: usize = MAX_ANSWER_LINE - 64 * 1024;

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// A valid access token for `provider`, as fresh as `min_valid` asks.
    Token {
        /// Provider name (the `[providers.NAME]` table key).
        provider: String,
        /// Seconds of life the token must still have; an error when even a
        /// fresh token has less. Absent: a token the daemon would not
        /// refresh yet (a share of the provider's lifetime), else any
        /// still-valid one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_valid: Option<u64>,
        /// A token that was refused where it was used (git's `erase`):
        /// answer another, refreshing when the current token is this one.
        /// Ignored with `min_valid`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refused: Option<Secret>,
    },
    /// Start or join the device login of `provider`; answered by a stream of events.
    Login {
        /// Provider name.
        provider: String,
    },
    /// State of one provider, or of every provider the caller may see.
    Status {
        /// Provider name; all providers when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider: Option<String>,
        /// Answer with a stream of [`StatusEvent`] lines, one per provider
        /// (protocol 2), instead of one [`StatusAnswer`] line, which is
        /// refused when longer than [`MAX_STATUS_LINE`]. `null` is absent
        /// (`false`), as for every optional field.
        #[serde(
            default,
            deserialize_with = "null_as_false",
            skip_serializing_if = "std::ops::Not::not"
        )]
        stream: bool,
    },
    /// Forget the session of `provider`: tokens dropped from memory and store.
    Logout {
        /// Provider name.
        provider: String,
    },
    /// Cancel the device login of `provider` that waits for the person,
    /// and nothing else: its session, an active one too, stays (protocol 4).
    CancelLogin {
        /// Provider name.
        provider: String,
    },
    /// The daemon's protocol and program versions.
    // `deny_unknown_fields` does not reach a unit variant of an internally
    // tagged enum: without `no_fields`, `{"op":"version","x":1}` passed
    // where `{"op":"logout","provider":"p","x":1}` is refused.
    #[serde(deserialize_with = "no_fields")]
    Version,
    /// The daemon's metrics as OpenMetrics text (protocol 3); answered by
    /// a stream of [`MetricsEvent`] lines.
    #[serde(deserialize_with = "no_fields")]
    Metrics,
}

/// Every op's name, in the order the requests are declared: the list
/// serde's error wording (`unknown_names`) and [`Request::op`] use. The
/// broker's request counters (`broker::SOCKET_OPS`, which the core may not
/// take from a wire type) list the same names, then `invalid`: a test
/// checks both against serde's own names.
pub const OPS: [&str; 7] = [
    "token",
    "login",
    "status",
    "logout",
    "cancel_login",
    "version",
    "metrics",
];

impl Request {
    /// This request's op, as the `op` field names it.
    #[must_use]
    pub fn op(&self) -> &'static str {
        OPS[match self {
            Self::Token { .. } => 0,
            Self::Login { .. } => 1,
            Self::Status { .. } => 2,
            Self::Logout { .. } => 3,
            Self::CancelLogin { .. } => 4,
            Self::Version => 5,
            Self::Metrics => 6,
        }]
    }
}

/// Reads the fields of an op that has none besides `op`, refusing any
/// (serde's "unknown field `x`, there are no fields").
fn no_fields<'de, D: serde::Deserializer<'de>>(fields: D) -> Result<(), D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NoFields {}
    NoFields::deserialize(fields).map(|NoFields {}| ())
}

/// Reads a flag whose `null` means absent: every other optional field
/// (an `Option`) takes `null` as absent, and a client that writes its
/// unset fields as `null` was refused for this one alone.
fn null_as_false<'de, D: serde::Deserializer<'de>>(flag: D) -> Result<bool, D::Error> {
    Option::<bool>::deserialize(flag).map(Option::unwrap_or_default)
}

/// Machine-readable error codes carried in error answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The provider has no usable session: run `tokenctl login NAME`.
    LoginRequired,
    /// No provider of that name is configured.
    UnknownProvider,
    /// The caller's uid may not use this provider.
    AccessDenied,
    /// The provider could not be reached or answered with a temporary
    /// failure; retrying later may succeed.
    ProviderUnavailable,
    /// The provider rejected the request for good (bad client id, ...).
    ProviderError,
    /// The device login ended without a token (denied, expired, failed).
    LoginFailed,
    /// The provider issues tokens with less life than the caller asked for.
    TokenTooShort,
    /// The request was not valid JSON or not a valid request.
    BadRequest,
    /// The request line was longer than [`MAX_REQUEST_LINE`].
    RequestTooLarge,
    /// The answer would be a line longer than [`MAX_STATUS_LINE`]: ask for a
    /// stream (`status` with `"stream":true`) or for less.
    AnswerTooLarge,
    /// The daemon is shutting down.
    ShuttingDown,
    /// tokend's session store cannot give or keep this session now (the
    /// keyring is locked or gone, the state directory unusable, the record
    /// unreadable or sealed with another key): the message says why and
    /// what to do. The daemon retries a store that is down by itself.
    StoreError,
    /// Anything else; the message says what.
    Internal,
    /// An error code this client does not know (sent by a newer daemon).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The wire name of the code, as in the JSON.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginRequired => "login_required",
            Self::UnknownProvider => "unknown_provider",
            Self::AccessDenied => "access_denied",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::ProviderError => "provider_error",
            Self::LoginFailed => "login_failed",
            Self::TokenTooShort => "token_too_short",
            Self::BadRequest => "bad_request",
            Self::RequestTooLarge => "request_too_large",
            Self::AnswerTooLarge => "answer_too_large",
            Self::ShuttingDown => "shutting_down",
            Self::StoreError => "store_error",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }
}

/// The error object of an error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What kind of failure.
    pub code: ErrorCode,
    /// A sentence for a person: what happened and what to do.
    pub message: String,
}

/// Answer to `token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAnswer {
    /// The access token.
    pub access_token: Secret,
    /// The token type the provider gave, normally `Bearer`.
    pub token_type: String,
    /// Expiry as Unix seconds; `null` when the provider did not say (read
    /// as such when absent too).
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// Answer to `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionAnswer {
    /// [`PROTOCOL_VERSION`] of the daemon.
    pub protocol: u32,
    /// The daemon's program version.
    pub daemon_version: String,
}

/// A one-line answer: `{"ok":true, ...payload}` or `{"ok":false,"error":{...}}`.
///
/// Serialized by hand-shaped structs rather than an enum so the `ok` field
/// comes first and the payload's fields sit beside it, as the contract shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer<T> {
    /// Whether the request succeeded.
    pub ok: bool,
    /// The payload, on success.
    #[serde(
        flatten,
        default = "Option::default",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<T>,
    /// The error, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl<T> Answer<T> {
    /// A success answer.
    pub fn success(value: T) -> Self {
        Self {
            ok: true,
            value: Some(value),
            error: None,
        }
    }

    /// An error answer.
    pub fn failure(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            ok: false,
            value: None,
            error: Some(ErrorBody {
                code,
                message: message.into(),
            }),
        }
    }

    /// The payload or the error.
    ///
    /// # Errors
    /// The error body of a failure answer (or an `internal` one when a success
    /// answer carried no payload).
    pub fn into_result(self) -> Result<T, ErrorBody> {
        match (self.ok, self.value, self.error) {
            (true, Some(value), _) => Ok(value),
            (_, _, Some(error)) => Err(error),
            _ => Err(ErrorBody {
                code: ErrorCode::Internal,
                message: "the daemon sent an answer without payload or error".into(),
            }),
        }
    }
}

/// Answer to `cancel_login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelLoginAnswer {
    /// Provider name.
    pub provider: String,
    /// Whether a login was waiting (and is now cancelled).
    pub cancelled: bool,
}

/// The protocol version that brought `cancel_login`.
pub const CANCEL_LOGIN_SINCE: u32 = 4;

/// Answer to `logout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutAnswer {
    /// Provider name.
    pub provider: String,
    /// Whether the session had tokens to forget (false: it was never
    /// logged in, or was logged out already). A daemon from before this
    /// field does not say; read as true, what its answer meant (a field
    /// added to an answer: the protocol's version is unchanged).
    #[serde(default = "said_yes")]
    pub had_tokens: bool,
    /// Whether a device login that waited for the person was cancelled.
    #[serde(default)]
    pub cancelled_login: bool,
}

/// The default of a flag older daemons do not send, whose meaning was yes.
fn said_yes() -> bool {
    true
}

/// Parses one request line (without or with its trailing newline).
///
/// # Errors
/// A sentence naming what is wrong with the line, for a `bad_request` answer.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(line).map_err(|_| "request is not UTF-8".to_owned())?;
    // A byte order mark, which some Windows-born tools put before UTF-8
    // text, is ignored, as RFC 8259 (section 8.1) allows a JSON reader.
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Err("empty request line".to_owned());
    }
    // Checked first: serde would also read an array (`["token","demo"]`)
    // as a request, by position, which the protocol never promised.
    if !text.starts_with('{') {
        return Err(not_an_object(text));
    }
    if let Some(token) = parse_token_request(text) {
        return Ok(token);
    }
    serde_json::from_str(text).map_err(|e| match e.classify() {
        // A syntax error's message is a fixed phrase and its position
        // ("trailing comma at line 1 column 15"), never the input.
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("the request is not valid JSON: {e}")
        }
        // serde's messages name the field or variant at fault ("unknown
        // variant `tokn`, expected one of ..."); keep their words, with an
        // unknown op or field name shown escaped and cut (serde quotes it
        // whole and raw).
        // A type error read from serde's buffer names no field (and quotes
        // a string as it is): name the field instead when one is wrong.
        serde_json::error::Category::Data | serde_json::error::Category::Io => {
            let message = e.to_string();
            if let Some(reworded) = unknown_names::reworded(&message, text) {
                // serde's position, where it gave one (for an op).
                let at = if e.line() > 0 {
                    format!(" at line {} column {}", e.line(), e.column())
                } else {
                    String::new()
                };
                return format!("invalid request: {reworded}{at}");
            }
            let wrong_type =
                message.starts_with("invalid type") || message.starts_with("invalid value");
            match (
                wrong_type,
                wrong_type.then(|| field_errors::describe(text)).flatten(),
            ) {
                (_, Some(wrong_field)) => format!("invalid request: {wrong_field}"),
                // serde's words quote the value, which may be a token put
                // in the wrong place; every field read again has its type,
                // so a field is given twice, one of them wrong.
                (true, None) => "invalid request: a field has a value of the wrong type \
                                 (is a field given twice?)"
                    .to_owned(),
                (false, None) => format!("invalid request: {message}"),
            }
        }
    })
}

/// What is wrong with a request line that does not start with `{`: not
/// JSON at all (serde's words and the position: "expected ident at line 1
/// column 2" for `not json`), or JSON of another kind. Never quotes the
/// line, which may be a token pasted in the wrong place.
fn not_an_object(text: &str) -> String {
    const HINT: &str = r#"send one JSON object per line, such as {"op":"version"}"#;
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return format!("the request is not a JSON object: {e}; {HINT}");
    }
    let kind = match text.as_bytes()[0] {
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a number",
    };
    format!("the request is not a JSON object but {kind}; {HINT}")
}

/// A `token` request, the one asked most often, parsed as a plain struct:
/// [`Request`]'s derive reads any line into a buffer of owned keys and
/// values before it looks at `op`, which costs more than the rest of the
/// answer to a cached token. `None` for whatever else the line is (another
/// op, an error of any kind): [`parse_request`] then reads it the general
/// way, so errors and other ops are answered as before. The tests hold the
/// two ways to the same result.
fn parse_token_request(text: &str) -> Option<Request> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TokenLine<'a> {
        #[serde(borrow)]
        op: std::borrow::Cow<'a, str>,
        provider: String,
        #[serde(default)]
        min_valid: Option<u64>,
        #[serde(default)]
        refused: Option<Secret>,
    }
    let line: TokenLine<'_> = serde_json::from_str(text).ok()?;
    (line.op == "token").then_some(Request::Token {
        provider: line.provider,
        min_valid: line.min_valid,
        refused: line.refused,
    })
}

#[cfg(test)]
mod tests;
