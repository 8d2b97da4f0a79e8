//! Config problems with their place in the file.

use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The config is unusable; the daemon will not start with it.
    Error,
    /// Works, but probably not as meant.
    Warning,
}

/// One problem in a config file, at a line and column (both 1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The config file.
    pub file: PathBuf,
    /// Line, 1-based; 0 when the problem concerns the whole file.
    pub line: usize,
    /// Column in characters, 1-based; 0 when the problem concerns the whole file.
    pub column: usize,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong and, where it helps, how to fix it.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: message` (errors) or `file:line:col: warning: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        match self.severity {
            Severity::Error => f.write_str(": ")?,
            Severity::Warning => f.write_str(": warning: ")?,
        }
        // The message may quote the file's own text (a provider's name, a
        // key, a value), which may hold an escape sequence or a bidi
        // control: shown escaped, so that the terminal of whoever runs
        // `tokend --check` shows what the file says, not what it does.
        for c in self.message.chars() {
            if crate::provider::url_rule::is_deceptive(c) {
                write!(f, "{}", c.escape_debug())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// Collects diagnostics while a file is read, turning byte spans into
/// lines and columns.
#[derive(Debug)]
pub struct Diagnostics<'a> {
    file: &'a Path,
    text: &'a str,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
    items: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    /// A collector for `text`, read from `file`.
    #[must_use]
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            file,
            text,
            line_starts,
            items: Vec::new(),
        }
    }

    /// Line and column (1-based, column in characters) of a byte offset.
    #[must_use]
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        (line, column)
    }

    /// Records an error at `span`.
    pub fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.push(Some(span), Severity::Error, message.into());
    }

    /// Records a warning at `span`.
    pub fn warning(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.push(Some(span), Severity::Warning, message.into());
    }

    /// Records an error about the whole file.
    pub fn file_error(&mut self, message: impl Into<String>) {
        self.push(None, Severity::Error, message.into());
    }

    /// A warning about the file itself, with no position.
    pub fn file_warning(&mut self, message: impl Into<String>) {
        self.push(None, Severity::Warning, message.into());
    }

    fn push(&mut self, span: Option<&Range<usize>>, severity: Severity, message: String) {
        let (line, column) = span.map_or((0, 0), |s| self.position(s.start));
        self.items.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            severity,
            message,
        });
    }

    /// Whether any error (not warning) was recorded.
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// The diagnostics in file order.
    #[must_use]
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by_key(|a| (a.line, a.column, a.severity));
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = 2\n";
        let d = Diagnostics::new(Path::new("c.toml"), text);
        assert_eq!(d.position(0), (1, 1));
        assert_eq!(d.position(6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(d.position(text.find('=').unwrap()), (1, 3));
        assert_eq!(d.position(text.rfind('=').unwrap()), (2, 4));
    }

    #[test]
    fn display_follows_the_contract() {
        let mut d = Diagnostics::new(Path::new("/etc/tokend/config.toml"), "x = 1\n");
        d.error(&(0..1), "unknown key `x`");
        d.warning(&(4..5), "odd");
        let items = d.into_sorted();
        assert_eq!(
            items[0].to_string(),
            "/etc/tokend/config.toml:1:1: unknown key `x`"
        );
        assert_eq!(
            items[1].to_string(),
            "/etc/tokend/config.toml:1:5: warning: odd"
        );
    }

    /// The file's own text quoted in a message is shown escaped: an escape
    /// sequence or a bidi control in a provider's name reached the
    /// terminal of whoever ran `tokend --check`.
    #[test]
    fn quoted_control_characters_are_shown_escaped() {
        let mut d = Diagnostics::new(Path::new("c.toml"), "x = 1\n");
        d.error(
            &(0..1),
            "invalid provider name \"esc\u{1b}[31mred\u{202e}x\nz\"",
        );
        let shown = d.into_sorted()[0].to_string();
        assert_eq!(
            shown,
            "c.toml:1:1: invalid provider name \"esc\\u{1b}[31mred\\u{202e}x\\nz\""
        );
    }
}
