//! `tokenctl login`: show the device code, then wait for the verdict with a
//! live countdown (or, with `--json`, relay the event lines).

use std::io::{self, Write};
use std::time::Duration;

use tokend::client::{Client, ClientError, LoginUpdate};
use tokend::protocol::{ErrorBody, ErrorCode, LoginEvent};

use crate::exit::{self, Failure};
use crate::format::clean;
use crate::screen::{Terminal, reader_gone};

/// Off a terminal a progress line goes out this often, so a log gets a
/// heartbeat rather than one line a second.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// The longest countdown shown: a day, beyond any device code's life.
const MAX_COUNTDOWN_SECS: u64 = 24 * 3600;

/// A moment on the clock that counts a suspend and ignores the wall clock
/// being set (`CLOCK_BOOTTIME`), as the daemon keeps the code's life: the
/// countdown's clock. `std::time::Instant` (`CLOCK_MONOTONIC`) stops while the laptop
/// sleeps, and after a five-minute suspend the countdown showed five
/// minutes the code no longer had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Moment(Duration);

impl Moment {
    fn now() -> Self {
        use tokend::broker::clock::{Clock as _, SystemClock};
        Self(SystemClock.since_boot())
    }

    fn checked_add(self, by: Duration) -> Option<Self> {
        self.0.checked_add(by).map(Self)
    }

    fn saturating_duration_since(self, earlier: Self) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl std::ops::Add<Duration> for Moment {
    type Output = Self;

    fn add(self, by: Duration) -> Self {
        Self(self.0 + by)
    }
}

/// How `tokenctl login` was asked to behave.
#[derive(Debug, Clone, Copy)]
pub struct LoginOptions {
    /// Relay the event lines as JSON instead of talking to a person.
    pub json: bool,
    /// Return once the prompt is shown.
    pub no_wait: bool,
}

/// Runs the login of `provider` to its end, on `client` (or reports why
/// there is none).
///
/// With `--json` the last line is a `done` event however the login ends:
/// the daemon's own, or one tokenctl writes when the daemon could not be
/// reached, went away mid-login, refused the request with an error line
/// (`request_too_large`) or did not answer in time (see [`own_error`]).
pub fn run(
    client: Result<Client, ClientError>,
    provider: &str,
    options: LoginOptions,
    terminal: Terminal,
) -> Result<(), Failure> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut client = match client {
        Ok(client) => client,
        Err(error) => return Err(stream_failure(error, provider, options, &mut out, false)),
    };
    let mut view = HumanView::new(terminal);
    let result = follow(&mut client, provider, options, &mut out, &mut view);
    if !options.json
        // Leave the cursor on a fresh line before any message on stderr.
        && let Err(e) = view.end_countdown(&mut out)
        // A login that failed says why, not that the output failed too
        // (stdout closed: the message that says so stands).
        && result.is_ok()
    {
        return Err(Failure::output(&e));
    }
    result
}

/// Follows the login's events to its end, shown to a person or relayed
/// as JSON.
fn follow(
    client: &mut Client,
    provider: &str,
    options: LoginOptions,
    out: &mut impl Write,
    view: &mut HumanView,
) -> Result<(), Failure> {
    let output = |e: io::Error| Failure::output(&e);
    let updates = match client.login(provider) {
        Ok(updates) => updates,
        Err(error) => return Err(stream_failure(error, provider, options, out, false)),
    };
    // Whether tokend has shown the code: from then on the login is under
    // way in tokend, and a connection that closes is tokend gone with it.
    let mut prompted = false;
    for update in updates {
        let update = match update {
            Ok(update) => update,
            Err(error) => return Err(stream_failure(error, provider, options, out, prompted)),
        };
        let event = match update {
            LoginUpdate::Tick => {
                // Off a terminal nothing may be written between two
                // events for the code's whole life (15 to 30 minutes), so
                // a reader that went away (`| head -1`) would be learnt of
                // only at the end: asked of the pipe each tick instead.
                if reader_gone(io::stdout()) {
                    return Err(stdout_closed(provider));
                }
                if !options.json {
                    view.tick(out, provider, Moment::now()).map_err(output)?;
                }
                continue;
            }
            LoginUpdate::Event(event) => event,
        };
        if options.json {
            let line = serde_json::to_string(&event).map_err(|e| output(e.into()))?;
            writeln!(out, "{line}").map_err(output)?;
        }
        match event {
            LoginEvent::Prompt { provider, prompt } => {
                prompted = true;
                if !options.json {
                    view.prompt(out, &provider, &prompt, options.no_wait)
                        .map_err(output)?;
                }
                if options.no_wait {
                    return Ok(());
                }
            }
            LoginEvent::Polling { provider, trouble } => {
                if !options.json {
                    view.polling(out, &provider, trouble.as_deref(), Moment::now())
                        .map_err(output)?;
                }
            }
            LoginEvent::Done {
                provider,
                ok,
                error,
                unsaved,
            } => {
                return match (ok, unsaved) {
                    (true, None) => {
                        if !options.json {
                            view.succeeded(out, &provider).map_err(output)?;
                        }
                        Ok(())
                    }
                    // Logged in, but a stop before the store works loses
                    // it: said as a logout whose record could not be
                    // deleted is (exit 9), not "Logged in".
                    (true, Some(why)) => Err(Failure::new(
                        exit::STORE_ERROR,
                        format!(
                            "logged in to {}, but the session could not be saved: {}; tokend \
                             uses it and saves it once the store works, and a stop before then \
                             loses it",
                            clean(&provider),
                            clean(&why)
                        ),
                    )),
                    (false, _) => Err(login_failure(&provider, error)),
                };
            }
        }
    }
    // The stream ends only after `done` or an error, both handled above.
    let error = ErrorBody {
        code: ErrorCode::LoginFailed,
        message: format!("tokend ended the login of `{provider}` without saying how it went"),
    };
    if options.json {
        write_done(out, provider, &error).map_err(output)?;
    }
    Err(Failure::new(exit::LOGIN_FAILED, error.message))
}

/// The failure for a login whose stdout's reader went away: tokenctl
/// stops waiting, the login goes on in tokend. Exit 1, as for any output
/// that could not go out; said, unlike a reader gone at the end of a
/// verb's output, because the login outlives tokenctl.
fn stdout_closed(provider: &str) -> Failure {
    Failure::new(
        exit::FAILURE,
        format!(
            "stdout was closed: stopped waiting; the login goes on in tokend \
             (`tokenctl login {} --cancel` stops it)",
            clean(provider)
        ),
    )
}

/// What tokend going away after the prompt is said as: the code was shown,
/// so it had answered, and the login ended with it. Shaped as the error of
/// a daemon that says it is going away, which is said the same way.
fn closed_mid_login() -> ErrorBody {
    ErrorBody {
        code: ErrorCode::ShuttingDown,
        message: "tokend closed the connection during the login (did it stop or crash?)".into(),
    }
}

/// The failure for a login the daemon did not end with a `done` line; with
/// `--json`, that line is written first, so the output ends as the
/// contract says. The exit status is the error's, as for any verb.
/// `prompted`: the code was shown (a connection closed after it is
/// tokend gone mid-login, not one that never answered).
fn stream_failure(
    error: ClientError,
    provider: &str,
    options: LoginOptions,
    out: &mut impl Write,
    prompted: bool,
) -> Failure {
    if prompted && matches!(error, ClientError::Closed) {
        let error = closed_mid_login();
        if options.json
            && let Err(e) = write_done(out, provider, &error)
        {
            return Failure::output(&e);
        }
        return login_failure(provider, Some(error));
    }
    if options.json
        && let Err(e) = write_done(out, provider, &own_error(&error))
    {
        return Failure::output(&e);
    }
    Failure::from(error)
}

/// The error object of a `done` line tokenctl writes itself, shaped as the
/// daemon's. The daemon's error line (`request_too_large`, ...) is sent on
/// as it came. A daemon that cannot be reached or went away (stopped,
/// crashed: the connection closed mid-login) is `shutting_down`, the code
/// of a daemon that says it is going away, whose exit status (3, tokend
/// not reachable) is the same; a code that expired with no verdict is
/// `login_failed` (8); no answer in time, a lost or unreadable connection
/// is `internal` (1). The message is the one on stderr, which never holds
/// a secret.
fn own_error(error: &ClientError) -> ErrorBody {
    let code = match error {
        ClientError::Daemon(body) => return body.clone(),
        // Not a login's (a status stream's), but what ended it is.
        ClientError::StatusCutShort { cause, .. } => {
            return ErrorBody {
                message: error.to_string(),
                ..own_error(cause)
            };
        }
        ClientError::Connect { .. } | ClientError::Closed | ClientError::UntrustedServer { .. } => {
            ErrorCode::ShuttingDown
        }
        ClientError::LoginUnfinished => ErrorCode::LoginFailed,
        ClientError::Timeout { .. }
        | ClientError::NoLoginCode { .. }
        | ClientError::Io { .. }
        | ClientError::BadAnswer { .. } => ErrorCode::Internal,
    };
    ErrorBody {
        code,
        message: error.to_string(),
    }
}

/// A `done` line with `ok: false` and `error`.
fn write_done(out: &mut impl Write, provider: &str, error: &ErrorBody) -> io::Result<()> {
    let done = LoginEvent::Done {
        provider: provider.to_owned(),
        ok: false,
        error: Some(error.clone()),
        unsaved: None,
    };
    let line = serde_json::to_string(&done)?;
    writeln!(out, "{line}")?;
    out.flush()
}

/// The failure for a `done` line with `ok: false`.
fn login_failure(provider: &str, error: Option<ErrorBody>) -> Failure {
    let status = exit::for_login_failure(error.as_ref().map(|e| e.code));
    match error {
        // The login ended with the daemon, not at the provider: the person
        // needs to know it is to be done again.
        Some(error) if error.code == ErrorCode::ShuttingDown => Failure::new(
            status,
            format!(
                "{}: the login ended with it; run `tokenctl login {}` again once tokend is back",
                error.message.trim_end_matches('.'),
                clean(provider)
            ),
        ),
        Some(error) if !error.message.trim().is_empty() => Failure::new(status, error.message),
        _ => Failure::new(
            status,
            format!(
                "provider `{provider}`: the login failed — run `tokenctl login {provider}` to try again"
            ),
        ),
    }
}

mod view;

use view::HumanView;

#[cfg(test)]
mod tests;
