//! What a person sees of `tokenctl login`: the prompt with its code (and
//! QR code), the countdown, and the progress lines off a terminal.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use tokend::protocol::LoginPrompt;

use super::{MAX_COUNTDOWN_SECS, Moment, PROGRESS_EVERY};
use crate::format::{clean, countdown, duration};
use crate::screen::{Terminal, lines_on_screen, qr_code, stdout_size};

/// Reads the terminal's columns and rows now (`None`: it does not say).
pub(super) type SizeReader = fn() -> Option<(u16, u16)>;

/// The person-facing side of a login.
pub(super) struct HumanView {
    pub(super) terminal: Terminal,
    pub(super) countdown: Option<Countdown>,
    /// Whether the line saying tokend is asking the provider for a code has
    /// been printed: once a tick has gone by without the prompt (a slow
    /// provider, up to tokend's `http_timeout`), so the screen is not blank.
    pub(super) asking_said: bool,
    /// Whether the person has been told what Ctrl-C does: said once, with
    /// the line saying tokend asks for a code, or else below the prompt.
    pub(super) hint_said: bool,
    /// Where the terminal's size is read again before a layout or a
    /// redraw: the window may have been resized since the last one.
    pub(super) size_now: SizeReader,
}

impl HumanView {
    /// A view on `terminal` (or none), nothing shown yet.
    pub(super) fn new(terminal: Terminal) -> Self {
        Self {
            terminal,
            countdown: None,
            asking_said: false,
            hint_said: false,
            size_now: stdout_size,
        }
    }

    /// Takes the terminal's size as it is now, if it says.
    fn resized(&mut self) {
        if self.terminal.tty
            && let Some(size) = (self.size_now)()
        {
            self.terminal.size = Some(size);
        }
    }

    /// Says what Ctrl-C does, once, to a person at a terminal (plain text:
    /// a `TERM=dumb` one too; nothing goes to a log or a pipe).
    fn hint(&mut self, out: &mut impl Write, provider: &str) -> io::Result<()> {
        if self.terminal.tty && !self.hint_said {
            self.hint_said = true;
            // Said before, not when Ctrl-C comes: printing it then needs a
            // SIGINT handler, and tokenctl could not die of the signal
            // after it (resetting the disposition is unsafe code, which
            // the crate denies), so a shell script running it would carry
            // on after Ctrl-C instead of stopping.
            out.write_all(interrupt_hint(provider).as_bytes())?;
        }
        Ok(())
    }

    /// Shows the prompt (the code, the links, the QR code when it fits)
    /// and, unless `no_wait`, starts the countdown below it.
    pub(super) fn prompt(
        &mut self,
        out: &mut impl Write,
        provider: &str,
        prompt: &LoginPrompt,
        no_wait: bool,
    ) -> io::Result<()> {
        // A second prompt (the daemon started over with a new code) goes
        // below the first; its countdown replaces the old one.
        self.end_countdown(out)?;
        self.resized();
        let hint_due = !no_wait && self.terminal.tty && !self.hint_said;
        // Everything printed with the QR code must fit on screen with it:
        // the prompt around it, the hint and the countdown below it.
        let hint_lines = if hint_due {
            lines_on_screen(&interrupt_hint(provider), self.terminal)
        } else {
            0
        };
        let other_lines = lines_on_screen(
            &prompt_text(provider, prompt, Some(""), self.terminal),
            self.terminal,
        ) + hint_lines
            + 1;
        let qr = prompt
            .verification_uri_complete
            .as_deref()
            .and_then(|link| qr_code(link, self.terminal, other_lines));
        out.write_all(prompt_text(provider, prompt, qr.as_deref(), self.terminal).as_bytes())?;
        if !no_wait {
            self.hint(out, provider)?;
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
            size_now: self.size_now,
        });
        self.tick(out, provider, now)
    }

    /// A second went by: redraws the countdown, or, while tokend still
    /// asks the provider for a code, says so (once).
    pub(super) fn tick(
        &mut self,
        out: &mut impl Write,
        provider: &str,
        now: Moment,
    ) -> io::Result<()> {
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
                // Ctrl-C while the code is asked for leaves the login going
                // on in tokend too (a slow provider takes up to tokend's
                // `http_timeout`): the person is told now, not only at the
                // prompt.
                self.hint(out, provider)?;
                out.flush()
            }
            None => Ok(()),
        }
    }

    /// Says that polls fail (why), or answer again, on a line of its own
    /// above the countdown, which goes on below it.
    pub(super) fn polling(
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

    /// Ends the countdown with the good news.
    pub(super) fn succeeded(&mut self, out: &mut impl Write, provider: &str) -> io::Result<()> {
        self.end_countdown(out)?;
        writeln!(out, "Logged in to {}.", clean(provider))?;
        out.flush()
    }

    /// Ends the live countdown line, if one is on screen.
    pub(super) fn end_countdown(&mut self, out: &mut impl Write) -> io::Result<()> {
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
pub(super) fn prompt_text(
    provider: &str,
    prompt: &LoginPrompt,
    qr: Option<&str>,
    term: Terminal,
) -> String {
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
pub(super) fn interrupt_hint(provider: &str) -> String {
    format!(
        "Ctrl-C stops waiting, not the login: it goes on in tokend until the code expires\n\
         (`tokenctl login {} --cancel` cancels it).\n\n",
        clean(provider)
    )
}

/// The "Waiting for approval… 14:32 left" line.
pub(super) struct Countdown {
    pub(super) ends: Moment,
    /// Redrawn in place once a tick, rather than printed now and then.
    pub(super) live: bool,
    /// When the last line was printed (not live).
    pub(super) last_line: Option<Moment>,
    /// Whether a live line is on screen.
    pub(super) drawn: bool,
    /// Where it is drawn: a live line must not wrap, or each redraw (which
    /// erases only the last row) leaves a stale row behind.
    pub(super) terminal: Terminal,
    /// Reads the terminal's size before each live redraw: a window made
    /// narrower since the last one would wrap the line (SIGWINCH needs no
    /// handler for this, the ioctl is cheap once a second).
    pub(super) size_now: SizeReader,
}

impl Countdown {
    /// Draws the line for `now`: in place on a terminal, now and then off
    /// one.
    pub(super) fn draw(&mut self, out: &mut impl Write, now: Moment) -> io::Result<()> {
        let left = self.ends.saturating_duration_since(now);
        // Rounded up, so the clock reads 0:00 only once the code is dead.
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        if self.live {
            if let Some(size) = (self.size_now)() {
                self.terminal.size = Some(size);
            }
            let text =
                fitted_waiting_text(secs, self.terminal.ellipsis(), self.terminal.line_width());
            // Carriage return and erase-line: the line is rewritten in place.
            write!(out, "\r\x1b[2K{text}")?;
            self.drawn = true;
            out.flush()
        } else if progress_due(self.last_line, now) {
            self.last_line = Some(now);
            writeln!(out, "{}", waiting_text(secs, self.terminal.ellipsis()))?;
            out.flush()
        } else {
            Ok(())
        }
    }
}

/// The countdown's line in full, with `secs_left` seconds to go.
pub(super) fn waiting_text(secs_left: u64, ellipsis: &str) -> String {
    waiting_texts(secs_left, ellipsis).swap_remove(0)
}

/// The ways to say the countdown's line, longest first, each a shorter
/// one's words and more: the label goes before the time does.
fn waiting_texts(secs_left: u64, ellipsis: &str) -> Vec<String> {
    if secs_left > 0 {
        let time = countdown(secs_left);
        vec![
            format!("Waiting for approval{ellipsis} {time} left"),
            format!("{time} left"),
            time,
        ]
    } else {
        vec![
            format!("The code has expired; waiting for tokend to confirm{ellipsis}"),
            "The code has expired".into(),
            "Expired".into(),
        ]
    }
}

/// The longest of [`waiting_texts`] that fits in `width` characters (the
/// longest of all when the width is not known), or nothing when none does. Never
/// one cut short: cut at 26 columns, "… 0:50 left" read "… 0:5", five
/// seconds, and a time cut at all is a wrong time.
pub(super) fn fitted_waiting_text(secs_left: u64, ellipsis: &str, width: Option<usize>) -> String {
    let mut texts = waiting_texts(secs_left, ellipsis).into_iter();
    match width {
        Some(width) => texts
            .find(|text| text.chars().count() <= width)
            .unwrap_or_default(),
        None => texts.next().unwrap_or_default(),
    }
}

/// Whether a non-live progress line is due.
pub(super) fn progress_due(last_line: Option<Moment>, now: Moment) -> bool {
    last_line.is_none_or(|last| now.saturating_duration_since(last) >= PROGRESS_EVERY)
}
