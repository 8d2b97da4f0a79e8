//! What stdout can show, and the QR code of a login's verification link.

use std::fmt::Write as _;
use std::io::IsTerminal;

use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};

/// A terminal's size when it does not say (the classic console).
const ASSUMED_SIZE: (u16, u16) = (80, 24);

/// Modules of blank border a reader needs around a QR code (the standard's
/// quiet zone; the renderer adds it on each side).
const QUIET_ZONE: usize = 4;

/// What the terminal on stdout can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Four facts the code asks one at a time (a person reads it, escapes work,
// colors may be used, UTF-8 shows), not a state kept in flags.
#[allow(clippy::struct_excessive_bools)]
pub struct Terminal {
    /// stdout is a terminal, whatever `TERM` says: a person reads it, and
    /// may be told things in plain text (a `TERM=dumb` one as well).
    pub tty: bool,
    /// stdout is a terminal that understands `\r` redraws and escape
    /// sequences (a TTY whose `TERM` is set and not `dumb`).
    pub interactive: bool,
    /// Colors may be used (interactive, and `NO_COLOR` unset).
    pub color: bool,
    /// Columns and rows, when the terminal reports them.
    pub size: Option<(u16, u16)>,
    /// The locale's characters are UTF-8, or no locale says otherwise: the
    /// QR code's half blocks and "…" can be shown. A locale set to another
    /// character set (`LANG=C` on a serial console, a Latin-1 terminal)
    /// got a block of mojibake where the QR code should be.
    pub utf8: bool,
}

impl Terminal {
    /// The terminal of this process's stdout.
    pub fn of_stdout() -> Self {
        let stdout = std::io::stdout();
        let term = std::env::var_os("TERM");
        // No TERM at all is treated as dumb: nothing says escapes work.
        let tty = stdout.is_terminal();
        let interactive = tty && term.as_ref().is_some_and(|t| !t.is_empty() && t != "dumb");
        Self {
            tty,
            interactive,
            color: interactive && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            size: stdout_size(),
            utf8: locale_is_utf8(|name| std::env::var(name).ok()),
        }
    }

    /// Columns to write a line in without it wrapping, when known: one
    /// less than the terminal's (a line that fills the last column wraps
    /// on some terminals).
    pub fn line_width(self) -> Option<usize> {
        self.size
            .map(|(columns, _)| usize::from(columns).saturating_sub(1).max(1))
    }

    /// "…", or "..." where the locale is not UTF-8.
    pub fn ellipsis(self) -> &'static str {
        if self.utf8 { "…" } else { "..." }
    }

    /// Not a terminal: plain lines only (a pipe, a log, a test).
    #[cfg(test)]
    pub fn plain() -> Self {
        Self {
            tty: false,
            interactive: false,
            color: false,
            size: None,
            utf8: true,
        }
    }

    /// `text` in bold when colors are allowed.
    pub fn bold(self, text: &str) -> String {
        if self.color {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// The columns and rows of the terminal on stdout now, when it reports
/// them. A cheap ioctl: a live line asks again before each redraw, as the
/// person may have made the window narrower since.
pub fn stdout_size() -> Option<(u16, u16)> {
    rustix::termios::tcgetwinsize(std::io::stdout())
        .ok()
        .filter(|w| w.ws_col > 0 && w.ws_row > 0)
        .map(|w| (w.ws_col, w.ws_row))
}

/// Whether the reader of `fd` has gone: a pipe whose read end is closed
/// (`tokenctl --json login NAME | head -1` once `head` has its line), or
/// a socket whose peer hung up. Asked with no events, `poll` reports only
/// those conditions (`POLLERR` on a pipe's write end, `POLLHUP` on a
/// socket); a regular file, `/dev/null` or a terminal in use reports
/// neither, and nothing is written to find out.
pub fn reader_gone(fd: impl rustix::fd::AsFd) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(&fd, PollFlags::empty())];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&now)), Ok(n) if n > 0)
        && fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)
}

/// Whether the locale's character set is UTF-8, from `LC_ALL`, `LC_CTYPE`
/// and `LANG` as `var` gives them (the first one set and not empty
/// decides). With none set, yes: a machine with no locale configured
/// usually has a UTF-8 terminal at the other end, and the QR code is the
/// point of a login at one.
pub fn locale_is_utf8(var: impl Fn(&str) -> Option<String>) -> bool {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|name| var(name).filter(|value| !value.is_empty()))
        .is_none_or(|locale| {
            let locale = locale.to_ascii_lowercase();
            locale.contains("utf-8") || locale.contains("utf8")
        })
}

/// How many lines `text` takes on `terminal` (long lines wrap).
pub fn lines_on_screen(text: &str, terminal: Terminal) -> usize {
    let width = usize::from(terminal.size.unwrap_or(ASSUMED_SIZE).0).max(1);
    text.lines()
        .map(|line| line.chars().count().div_ceil(width).max(1))
        .sum()
}

/// Whether a QR code of `side` modules (quiet zone included) is worth
/// drawing with `other_lines` of text around it: only on an interactive
/// UTF-8 terminal big enough to show it and that text whole (two modules
/// per text line), so that the link and the code above it are not
/// scrolled away.
pub fn qr_fits(terminal: Terminal, side: usize, other_lines: usize) -> bool {
    let (columns, rows) = terminal.size.unwrap_or(ASSUMED_SIZE);
    terminal.interactive
        && terminal.utf8
        && side <= usize::from(columns)
        && side.div_ceil(2) + other_lines <= usize::from(rows)
}

/// The QR code of `link` drawn with Unicode half blocks, or `None` when the
/// terminal cannot show it with `other_lines` of text (see [`qr_fits`]).
pub fn qr_code(link: &str, terminal: Terminal, other_lines: usize) -> Option<String> {
    // Level L: a screen is not a scratched label, and the smaller code fits
    // more terminals.
    let code = QrCode::with_error_correction_level(link, EcLevel::L).ok()?;
    if !qr_fits(terminal, code.width() + 2 * QUIET_ZONE, other_lines) {
        return None;
    }
    let mut renderer = code.render::<Dense1x2>();
    renderer.quiet_zone(true);
    if terminal.color {
        // Dark modules on a forced white background read right on light
        // and dark themes alike.
        let image = renderer
            .dark_color(Dense1x2::Dark)
            .light_color(Dense1x2::Light)
            .build();
        let mut text = String::new();
        for line in image.lines() {
            let _ = writeln!(text, "\x1b[30;107m{line}\x1b[0m");
        }
        Some(text)
    } else {
        // Without colors the terminal's own are used; most are light text
        // on dark, so draw the light modules with the text color.
        let image = renderer
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .build();
        let mut text = image;
        text.push('\n');
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "https://github.com/login/device?user_code=ABCD-EFGH";

    fn tty(columns: u16, rows: u16) -> Terminal {
        Terminal {
            tty: true,
            interactive: true,
            color: true,
            size: Some((columns, rows)),
            utf8: true,
        }
    }

    #[test]
    fn qr_only_on_a_big_enough_terminal() {
        assert!(qr_fits(tty(80, 40), 41, 8));
        assert!(!qr_fits(tty(40, 40), 41, 8), "too narrow");
        assert!(!qr_fits(tty(80, 20), 41, 8), "too short");
        assert!(!qr_fits(Terminal::plain(), 41, 8), "not a terminal");
        let unknown_size = Terminal {
            size: None,
            ..tty(0, 0)
        };
        assert!(qr_fits(unknown_size, 29, 8));
        // The text below the code counts too: 21 + 16 lines on 30 rows
        // would scroll the link away.
        assert!(!qr_fits(tty(80, 30), 41, 16));
        assert!(
            !qr_fits(
                Terminal {
                    utf8: false,
                    ..tty(80, 40)
                },
                41,
                8
            ),
            "not UTF-8"
        );
    }

    /// A locale set to another character set says no; none set, or one of
    /// UTF-8 in any spelling, says yes; `LC_ALL` decides before `LANG`.
    #[test]
    fn the_locale_decides_utf8() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            }
        };
        assert!(locale_is_utf8(env(&[])));
        assert!(locale_is_utf8(env(&[("LANG", "en_GB.UTF-8")])));
        assert!(locale_is_utf8(env(&[("LANG", "C.utf8")])));
        assert!(!locale_is_utf8(env(&[("LANG", "C")])));
        assert!(!locale_is_utf8(env(&[
            ("LC_ALL", "C"),
            ("LANG", "en_GB.UTF-8")
        ])));
        assert!(locale_is_utf8(env(&[
            ("LC_ALL", ""),
            ("LANG", "en_GB.UTF-8")
        ])));
        assert!(!locale_is_utf8(env(&[("LC_CTYPE", "en_US.ISO-8859-1")])));
    }

    #[test]
    fn wrapped_lines_are_counted() {
        assert_eq!(lines_on_screen("a\n\nb\n", tty(80, 24)), 3);
        assert_eq!(lines_on_screen(&"x".repeat(100), tty(40, 24)), 3);
    }

    #[test]
    fn qr_is_drawn_in_half_blocks() {
        let qr = qr_code(LINK, tty(100, 60), 8).unwrap();
        let rows: Vec<&str> = qr.lines().collect();
        let side = QrCode::with_error_correction_level(LINK, EcLevel::L)
            .unwrap()
            .width()
            + 2 * QUIET_ZONE;
        assert_eq!(rows.len(), side.div_ceil(2));
        assert!(rows[0].starts_with("\x1b[30;107m") && rows[0].ends_with("\x1b[0m"));
        assert!(qr.contains('▀') || qr.contains('▄') || qr.contains('█'));
        assert!(qr_code(LINK, tty(20, 60), 8).is_none());
        assert!(qr_code(LINK, Terminal::plain(), 8).is_none());
    }

    #[test]
    fn no_color_qr_has_no_escapes() {
        let terminal = Terminal {
            color: false,
            ..tty(100, 60)
        };
        let qr = qr_code(LINK, terminal, 8).unwrap();
        assert!(!qr.contains('\x1b'));
        // The quiet zone is drawn in the text color: the first row is solid.
        assert!(qr.lines().next().unwrap().chars().all(|c| c == '█'));
    }

    /// A pipe whose reader has gone is seen so without a write; one still
    /// read, a regular file and `/dev/null` are not taken for it.
    #[test]
    fn a_reader_gone_is_seen_on_a_pipe_only() {
        let (reader, writer) = std::io::pipe().unwrap();
        assert!(!reader_gone(&writer), "a pipe still read");
        drop(reader);
        assert!(reader_gone(&writer), "a pipe whose reader closed it");
        let file = tempfile::tempfile().unwrap();
        assert!(!reader_gone(&file), "a regular file");
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        assert!(!reader_gone(&null), "/dev/null");
        // A socket whose peer hung up: its writes would fail too.
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(!reader_gone(&ours), "a socket still read");
        drop(theirs);
        assert!(reader_gone(&ours), "a socket whose peer closed it");
    }

    #[test]
    fn bold_only_with_colors() {
        assert_eq!(Terminal::plain().bold("X"), "X");
        assert_eq!(tty(80, 24).bold("X"), "\x1b[1mX\x1b[0m");
    }
}
