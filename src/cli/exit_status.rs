//! `tokenctl`'s exit statuses.
//!
//! Scripts branch on these (`4` → run a login, `6` → retry later), so they
//! are part of the interface: add new ones, never renumber. They are listed
//! in `tokenctl --help` and in the man page, both from [`MEANINGS`].

use std::fmt::Write as _;

/// Success.
pub const SUCCESS: u8 = 0;
/// Any failure without a status of its own.
pub const FAILURE: u8 = 1;
/// Bad command line (clap exits with this itself).
pub const USAGE: u8 = 2;
/// tokend is not running or its socket is out of reach.
pub const DAEMON_UNREACHABLE: u8 = 3;
/// The provider has no session: `tokenctl login NAME` first.
pub const LOGIN_REQUIRED: u8 = 4;
/// This user may use the provider but not log it in or out (a user with
/// no role on it is told there is no such provider: 7).
pub const ACCESS_DENIED: u8 = 5;
/// The provider is down or failing for now; retrying later may work.
pub const PROVIDER_UNAVAILABLE: u8 = 6;
/// No provider of that name is configured.
pub const UNKNOWN_PROVIDER: u8 = 7;
/// The device login was denied, expired, cancelled or failed.
pub const LOGIN_FAILED: u8 = 8;
/// tokend's session store cannot give the session now (keyring locked or
/// gone, record unreadable or sealed with another key): the message says
/// what to do; tokend retries a store that is down by itself.
pub const STORE_ERROR: u8 = 9;
/// `tokenctl exec`: the command exists but could not be run (as shells say).
pub const COMMAND_NOT_RUNNABLE: u8 = 126;
/// `tokenctl exec`: no such command (as shells say).
pub const COMMAND_NOT_FOUND: u8 = 127;

/// Every status with its meaning, in order.
pub const MEANINGS: &[(u8, &str)] = &[
    (SUCCESS, "success"),
    (FAILURE, "other failure"),
    (USAGE, "usage error"),
    (
        DAEMON_UNREACHABLE,
        "tokend not reachable (not running, no access to its socket, or the socket is served by a user tokend does not run as)",
    ),
    (LOGIN_REQUIRED, "login required: run `tokenctl login NAME`"),
    (
        ACCESS_DENIED,
        "access denied: this user may use the provider but not log in or out (a user with no role on it gets 7)",
    ),
    (
        PROVIDER_UNAVAILABLE,
        "provider unavailable for now: retry later",
    ),
    (UNKNOWN_PROVIDER, "unknown provider"),
    (LOGIN_FAILED, "login denied, expired, cancelled or failed"),
    (
        STORE_ERROR,
        "tokend's store cannot give the session now (e.g. a locked keyring): see the message",
    ),
    (
        COMMAND_NOT_RUNNABLE,
        "exec: the command could not be run (otherwise exec exits with the command's status)",
    ),
    (COMMAND_NOT_FOUND, "exec: no such command"),
];

/// The "Exit status" section of `tokenctl --help`.
#[must_use]
pub fn help_text() -> String {
    let mut text = String::from("Exit status:\n");
    for (status, meaning) in MEANINGS {
        let _ = writeln!(text, "  {status}  {meaning}");
    }
    text
}
