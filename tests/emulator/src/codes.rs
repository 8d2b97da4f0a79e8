//! Device codes as the tests and the approval page see them.
//!
//! The public face of the authority's device codes: their status, a
//! snapshot of one code, and why a person's approval can fail.

use std::fmt;
use std::time::{Duration, Instant};

/// User-code letters: no vowels (no words) and nothing easily confused
/// (RFC 8628 §6.1 suggests this base-20 set).
pub(crate) const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Where a device code stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeStatus {
    /// Waiting for the person.
    Pending,
    /// Approved; the next poll gets the tokens.
    Approved,
    /// Denied by the person.
    Denied,
    /// Exchanged for tokens.
    Consumed,
    /// Expired before it was exchanged.
    Expired,
}

impl fmt::Display for CodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Consumed => "used",
            Self::Expired => "expired",
        })
    }
}

/// A device code the emulator issued, as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCode {
    /// The device code (secret: it can be exchanged for tokens).
    pub device_code: String,
    /// The code the person types, like `BCDF-GHJK`.
    pub user_code: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The scope asked for.
    pub scope: Option<String>,
    /// Every other parameter of the device authorization request.
    pub params: Vec<(String, String)>,
    /// When it was issued.
    pub issued_at: Instant,
    /// When it expires.
    pub expires_at: Instant,
    /// The current poll interval for this code (grows with each `slow_down`).
    pub interval: Duration,
    /// Where it stands.
    pub status: CodeStatus,
}

/// Why a user code could not be approved or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// No such code.
    #[error("no device asked for this code")]
    UnknownCode,
    /// The code expired.
    #[error("this code has expired; start the login on the device again")]
    Expired,
    /// Already approved.
    #[error("this code was already approved")]
    AlreadyApproved,
    /// Already denied.
    #[error("this code was already denied")]
    AlreadyDenied,
    /// Already exchanged for tokens.
    #[error("this code was already used")]
    AlreadyUsed,
}

/// A user code typed by a person, reduced to its letters.
pub(crate) fn normalize_user_code(typed: &str) -> String {
    typed
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// A new user code like `BCDF-GHJK` that is not among `taken`.
pub(crate) fn new_user_code(rng: &mut fastrand::Rng, taken: impl Fn(&str) -> bool) -> String {
    loop {
        let letters: String = (0..8)
            .map(|_| char::from(USER_CODE_ALPHABET[rng.usize(..USER_CODE_ALPHABET.len())]))
            .collect();
        let code = format!("{}-{}", &letters[..4], &letters[4..]);
        if !taken(&code) {
            return code;
        }
    }
}
