//! `tokenctl login`: show the device code, then wait for the verdict with a
//! live countdown (or, with `--json`, relay the event lines).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use tokend::client::{Client, ClientError, LoginUpdate};
use tokend::protocol::{ErrorBody, ErrorCode, LoginEvent, LoginPrompt};

use crate::exit::{self, Failure};
use crate::format::{clean, countdown, duration};
use crate::screen::{Terminal, lines_on_screen, qr_code};

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
        Err(error) => return Err(stream_failure(error, provider, options, &mut out)),
    };
    let mut view = HumanView {
        terminal,
        countdown: None,
        asking_said: false,
    };
    let result = follow(&mut client, provider, options, &mut out, &mut view);
    if !options.json {
        // Leave the cursor on a fresh line before any message on stderr.
        view.end_countdown(&mut out)
            .map_err(|e| Failure::output(&e))?;
    }
    result
}

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
        Err(error) => return Err(stream_failure(error, provider, options, out)),
    };
    for update in updates {
        let update = match update {
            Ok(update) => update,
            Err(error) => return Err(stream_failure(error, provider, options, out)),
        };
        let event = match update {
            LoginUpdate::Tick => {
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

/// The failure for a login the daemon did not end with a `done` line; with
/// `--json`, that line is written first, so the output ends as the
/// contract says. The exit status is the error's, as for any verb.
fn stream_failure(
    error: ClientError,
    provider: &str,
    options: LoginOptions,
    out: &mut impl Write,
) -> Failure {
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

/// The person-facing side of a login.
struct HumanView {
    terminal: Terminal,
    countdown: Option<Countdown>,
    /// Whether the line saying tokend is asking the provider for a code has
    /// been printed: once a tick has gone by without the prompt (a slow
    /// provider, up to tokend's `http_timeout`), so the screen is not blank.
    asking_said: bool,
}

impl HumanView {
    fn prompt(
        &mut self,
        out: &mut impl Write,
        provider: &str,
        prompt: &LoginPrompt,
        no_wait: bool,
    ) -> io::Result<()> {
        // A second prompt (the daemon started over with a new code) goes
        // below the first; its countdown replaces the old one.
        self.end_countdown(out)?;
        // Everything printed with the QR code must fit on screen with it:
        // the prompt around it, the hint and the countdown below it.
        let other_lines = lines_on_screen(
            &prompt_text(provider, prompt, Some(""), self.terminal),
            self.terminal,
        ) + lines_on_screen(&interrupt_hint(provider), self.terminal)
            + 1;
        let qr = prompt
            .verification_uri_complete
            .as_deref()
            .and_then(|link| qr_code(link, self.terminal, other_lines));
        out.write_all(prompt_text(provider, prompt, qr.as_deref(), self.terminal).as_bytes())?;
        if !no_wait && self.terminal.interactive {
            // Said before, not when Ctrl-C comes: printing it then needs a
            // SIGINT handler, and tokenctl could not die of the signal
            // after it (resetting the disposition is unsafe code, which
            // the crate denies), so a shell script running it would carry
            // on after Ctrl-C instead of stopping.
            out.write_all(interrupt_hint(provider).as_bytes())?;
        }
        if no_wait {
            writeln!(
                out,
                "The code expires in {}. The login goes on in tokend; \
                 `tokenctl status {}` shows how it ends.",
                duration(prompt.expires_in),
                clean(provider)
            )?;
            return out.flush();
        }
        let now = Moment::now();
        self.countdown = Some(Countdown {
            // A daemon caps expires_in; one that does not (or a stand-in)
            // must not make the countdown overflow the clock.
            ends: now
                .checked_add(Duration::from_secs(
                    prompt.expires_in.min(MAX_COUNTDOWN_SECS),
                ))
                .unwrap_or(now),
            live: self.terminal.interactive,
            last_line: None,
            drawn: false,
            terminal: self.terminal,
        });
        self.tick(out, provider, now)
    }

    fn tick(&mut self, out: &mut impl Write, provider: &str, now: Moment) -> io::Result<()> {
        match &mut self.countdown {
            Some(countdown) => countdown.draw(out, now),
            None if !self.asking_said => {
                self.asking_said = true;
                writeln!(
                    out,
                    "Asking {} for a login code{}",
                    clean(provider),
                    self.terminal.ellipsis()
                )?;
                out.flush()
            }
            None => Ok(()),
        }
    }

    /// Says that polls fail (why), or answer again, on a line of its own
    /// above the countdown, which goes on below it.
    fn polling(
        &mut self,
        out: &mut impl Write,
        provider: &str,
        trouble: Option<&str>,
        now: Moment,
    ) -> io::Result<()> {
        if let Some(countdown) = &mut self.countdown
            && countdown.live
            && countdown.drawn
        {
            writeln!(out)?;
            countdown.drawn = false;
        }
        match trouble {
            Some(trouble) => writeln!(
                out,
                "tokend cannot learn from {} whether the code was approved: {}; it keeps asking until the code expires.",
                clean(provider),
                clean(trouble)
            )?,
            None => writeln!(out, "{} answers again.", clean(provider))?,
        }
        match &mut self.countdown {
            Some(countdown) => {
                // Off a terminal, the countdown's next line comes at its
                // usual pace.
                countdown.draw(out, now)
            }
            None => out.flush(),
        }
    }

    fn succeeded(&mut self, out: &mut impl Write, provider: &str) -> io::Result<()> {
        self.end_countdown(out)?;
        writeln!(out, "Logged in to {}.", clean(provider))?;
        out.flush()
    }

    /// Ends the live countdown line, if one is on screen.
    fn end_countdown(&mut self, out: &mut impl Write) -> io::Result<()> {
        if let Some(countdown) = self.countdown.take()
            && countdown.live
            && countdown.drawn
        {
            writeln!(out)?;
        }
        out.flush()
    }
}

/// The prompt a person reads: where to go, what to type, the QR code.
fn prompt_text(provider: &str, prompt: &LoginPrompt, qr: Option<&str>, term: Terminal) -> String {
    let mut text = format!("To log in to {}, open\n\n", clean(provider));
    let _ = writeln!(text, "    {}\n", clean(&prompt.verification_uri));
    let _ = writeln!(text, "and enter the code\n");
    let _ = writeln!(text, "    {}\n", term.bold(&clean(&prompt.user_code)));
    if let Some(link) = &prompt.verification_uri_complete {
        // The same link twice when it is the only one the provider sent
        // (Twilio's null `verification_uri`): said once, above.
        let other = *link != prompt.verification_uri;
        match qr {
            Some(qr) => {
                text.push_str(qr);
                if other {
                    let _ = writeln!(
                        text,
                        "\nOr scan the QR code, or open {}: it has the code filled in.\n",
                        clean(link)
                    );
                } else {
                    text.push_str("\nOr scan the QR code: it has the code filled in.\n\n");
                }
            }
            None if other => {
                let _ = writeln!(text, "Or open {} (the code is filled in).\n", clean(link));
            }
            None => {}
        }
    }
    if let Some(message) = &prompt.message {
        let _ = writeln!(text, "{}\n", clean(message));
    }
    text
}

/// What Ctrl-C does to a login: a person at a terminal is told before the
/// wait starts.
fn interrupt_hint(provider: &str) -> String {
    format!(
        "Ctrl-C stops waiting, not the login: it goes on in tokend until the code expires\n\
         (`tokenctl login {} --cancel` cancels it).\n\n",
        clean(provider)
    )
}

/// The "Waiting for approval… 14:32 left" line.
struct Countdown {
    ends: Moment,
    /// Redrawn in place once a tick, rather than printed now and then.
    live: bool,
    /// When the last line was printed (not live).
    last_line: Option<Moment>,
    /// Whether a live line is on screen.
    drawn: bool,
    /// Where it is drawn: a live line must not wrap, or each redraw (which
    /// erases only the last row) leaves a stale row behind.
    terminal: Terminal,
}

impl Countdown {
    fn draw(&mut self, out: &mut impl Write, now: Moment) -> io::Result<()> {
        let left = self.ends.saturating_duration_since(now);
        // Rounded up, so the clock reads 0:00 only once the code is dead.
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        let text = waiting_text(secs, self.terminal.ellipsis());
        if self.live {
            let text = fitted(&text, self.terminal.line_width());
            // Carriage return and erase-line: the line is rewritten in place.
            write!(out, "\r\x1b[2K{text}")?;
            self.drawn = true;
            out.flush()
        } else if progress_due(self.last_line, now) {
            self.last_line = Some(now);
            writeln!(out, "{text}")?;
            out.flush()
        } else {
            Ok(())
        }
    }
}

fn waiting_text(secs_left: u64, ellipsis: &str) -> String {
    if secs_left > 0 {
        format!(
            "Waiting for approval{ellipsis} {} left",
            countdown(secs_left)
        )
    } else {
        format!("The code has expired; waiting for tokend to confirm{ellipsis}")
    }
}

/// `text` cut to `width` characters, when known.
fn fitted(text: &str, width: Option<usize>) -> std::borrow::Cow<'_, str> {
    match width {
        Some(width) if text.chars().count() > width => text.chars().take(width).collect(),
        _ => std::borrow::Cow::Borrowed(text),
    }
}

/// Whether a non-live progress line is due.
fn progress_due(last_line: Option<Moment>, now: Moment) -> bool {
    last_line.is_none_or(|last| now.saturating_duration_since(last) >= PROGRESS_EVERY)
}

#[cfg(test)]
mod tests;
