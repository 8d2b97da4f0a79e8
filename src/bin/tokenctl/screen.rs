//! What stdout can show, and the QR code of a login's verification link.

use std::fmt::Write as _;
use std::io::IsTerminal;

use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};

/// A terminal's size when it does not say (the classic console).
const ASSUMED_SIZE: (u16, u16) = (80, 24);

/// Lines of the login prompt around the QR code, which must fit on screen
/// with it so the code is not scrolled away half drawn.
const PROMPT_LINES: usize = 8;

/// Modules of blank border a reader needs around a QR code (the standard's
/// quiet zone; the renderer adds it on each side).
const QUIET_ZONE: usize = 4;

/// What the terminal on stdout can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminal {
    /// stdout is a terminal that understands `\r` redraws and escape
    /// sequences (a TTY whose `TERM` is set and not `dumb`).
    pub interactive: bool,
    /// Colors may be used (interactive, and `NO_COLOR` unset).
    pub color: bool,
    /// Columns and rows, when the terminal reports them.
    pub size: Option<(u16, u16)>,
}

impl Terminal {
    /// The terminal of this process's stdout.
    pub fn of_stdout() -> Self {
        let stdout = std::io::stdout();
        let term = std::env::var_os("TERM");
        // No TERM at all is treated as dumb: nothing says escapes work.
        let interactive =
            stdout.is_terminal() && term.as_ref().is_some_and(|t| !t.is_empty() && t != "dumb");
        let size = rustix::termios::tcgetwinsize(&stdout)
            .ok()
            .filter(|w| w.ws_col > 0 && w.ws_row > 0)
            .map(|w| (w.ws_col, w.ws_row));
        Self {
            interactive,
            color: interactive && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            size,
        }
    }

    /// Not a terminal: plain lines only (a pipe, a log, a test).
    #[cfg(test)]
    pub fn plain() -> Self {
        Self {
            interactive: false,
            color: false,
            size: None,
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

/// Whether a QR code of `side` modules (quiet zone included) is worth
/// drawing: only on an interactive terminal big enough to show it whole,
/// two modules per text line.
pub fn qr_fits(terminal: Terminal, side: usize) -> bool {
    let (columns, rows) = terminal.size.unwrap_or(ASSUMED_SIZE);
    terminal.interactive
        && side <= usize::from(columns)
        && side.div_ceil(2) + PROMPT_LINES <= usize::from(rows)
}

/// The QR code of `link` drawn with Unicode half blocks, or `None` when the
/// terminal cannot show it (see [`qr_fits`]).
pub fn qr_code(link: &str, terminal: Terminal) -> Option<String> {
    // Level L: a screen is not a scratched label, and the smaller code fits
    // more terminals.
    let code = QrCode::with_error_correction_level(link, EcLevel::L).ok()?;
    if !qr_fits(terminal, code.width() + 2 * QUIET_ZONE) {
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
            interactive: true,
            color: true,
            size: Some((columns, rows)),
        }
    }

    #[test]
    fn qr_only_on_a_big_enough_terminal() {
        assert!(qr_fits(tty(80, 40), 41));
        assert!(!qr_fits(tty(40, 40), 41), "too narrow");
        assert!(!qr_fits(tty(80, 20), 41), "too short");
        assert!(!qr_fits(Terminal::plain(), 41), "not a terminal");
        let unknown_size = Terminal {
            size: None,
            ..tty(0, 0)
        };
        assert!(qr_fits(unknown_size, 29));
    }

    #[test]
    fn qr_is_drawn_in_half_blocks() {
        let qr = qr_code(LINK, tty(100, 60)).unwrap();
        let rows: Vec<&str> = qr.lines().collect();
        let side = QrCode::with_error_correction_level(LINK, EcLevel::L)
            .unwrap()
            .width()
            + 2 * QUIET_ZONE;
        assert_eq!(rows.len(), side.div_ceil(2));
        assert!(rows[0].starts_with("\x1b[30;107m") && rows[0].ends_with("\x1b[0m"));
        assert!(qr.contains('▀') || qr.contains('▄') || qr.contains('█'));
        assert!(qr_code(LINK, tty(20, 60)).is_none());
        assert!(qr_code(LINK, Terminal::plain()).is_none());
    }

    #[test]
    fn no_color_qr_has_no_escapes() {
        let terminal = Terminal {
            color: false,
            ..tty(100, 60)
        };
        let qr = qr_code(LINK, terminal).unwrap();
        assert!(!qr.contains('\x1b'));
        // The quiet zone is drawn in the text color: the first row is solid.
        assert!(qr.lines().next().unwrap().chars().all(|c| c == '█'));
    }

    #[test]
    fn bold_only_with_colors() {
        assert_eq!(Terminal::plain().bold("X"), "X");
        assert_eq!(tty(80, 24).bold("X"), "\x1b[1mX\x1b[0m");
    }
}
