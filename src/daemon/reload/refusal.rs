//! Why a reload was refused, and how the log says it: the verdict first,
//! then at most [`LISTED`] of the file's problems, each at its own level.
//!
//! One typo in a generated file of 10,000 providers gave 20,001 lines at
//! ERROR per SIGHUP (its warnings relabelled as errors, and the verdict
//! last): journald's rate limit then dropped the line that said the
//! daemon runs on with its previous config.

use std::path::{Path, PathBuf};

use tracing::{Level, error, warn};

use crate::config::{Diagnostic, Severity};

/// How many of a refused file's problems the log lists (errors first):
/// `tokend --check` lists them all.
pub(super) const LISTED: usize = 20;

/// Why a reload left the running config in place.
#[derive(Debug)]
pub(in crate::daemon) enum Refusal {
    /// The file could not be read (gone, or the daemon out of file
    /// descriptors): not the file's fault.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Loading it failed for another reason (its task panicked).
    Failed(String),
    /// The file has errors; `diagnostics` holds them with its warnings.
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found, in file order.
        diagnostics: Vec<Diagnostic>,
    },
    /// The file is valid, but a start with it would fail (and exit with
    /// status 2, which the units do not restart): its socket path, or no
    /// CA certificate loads. `problem` is said as `tokend --check` says it.
    WouldNotStart {
        /// The problem.
        problem: String,
    },
    /// The file kept changing while it was read (see `settle`).
    StillBeingWritten {
        /// The file.
        path: PathBuf,
        /// How many times it was read.
        reads: usize,
    },
    /// The file names no provider while `running` are served.
    NoProviders {
        /// The providers the daemon runs.
        running: usize,
    },
}

/// One line of the log.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Said {
    /// Its level.
    pub level: Level,
    /// Its text.
    pub text: String,
    /// Whether it is the verdict (it carries `EVENT=reload_refused`).
    pub verdict: bool,
}

impl Said {
    fn verdict(text: String) -> Self {
        Self {
            level: Level::ERROR,
            text,
            verdict: true,
        }
    }

    /// Logs the line at its level.
    fn log(&self) {
        match (self.level, self.verdict) {
            (_, true) => error!(event = "reload_refused", "{}", self.text),
            (Level::ERROR, false) => error!("{}", self.text),
            _ => warn!("{}", self.text),
        }
    }
}

impl Refusal {
    /// Logs the refusal: [`Self::lines`], each at its level.
    pub(in crate::daemon) fn log(&self) {
        for said in self.lines() {
            said.log();
        }
    }

    /// What the log says of it: the verdict first.
    pub(super) fn lines(&self) -> Vec<Said> {
        const STILL: &str = "still running with the previous one";
        let verdict = match self {
            Self::Unreadable { path, source } => format!(
                "{}: cannot read the config: {source}; {STILL} (reload again once it can be read)",
                path.display()
            ),
            Self::Failed(why) => format!("{why}; {STILL}"),
            Self::Invalid { path, diagnostics } => return invalid(path, diagnostics),
            Self::WouldNotStart { problem } => format!(
                "the new config would fail the next start (as `tokend --check` says): {problem}; \
                 {STILL}, and a restart would fail the same way: mend it and reload"
            ),
            Self::StillBeingWritten { path, reads } => format!(
                "{}: the config file kept changing while it was read ({reads} reads: still being \
                 written?); {STILL} (reload again once it is written)",
                path.display()
            ),
            // Most likely a file caught half-written (an editor or a
            // config tool that truncates, then writes): taken, it forgot
            // every session (all of them with the memory store). A start
            // with none is a person's deliberate act; a reload to none is
            // refused.
            Self::NoProviders { running } => format!(
                "the new config has no providers (an empty or half-written file?): {STILL}'s \
                 {running}; to run with none, restart tokend"
            ),
        };
        vec![Said::verdict(verdict)]
    }
}

/// An invalid file's lines: the verdict with the counts, then the first
/// [`LISTED`] problems ([`listed`]).
fn invalid(path: &Path, diagnostics: &[Diagnostic]) -> Vec<Said> {
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let more = if diagnostics.len() > LISTED {
        format!(
            "; the first {LISTED} follow, `{}` lists them all",
            check(path)
        )
    } else {
        String::new()
    };
    let mut lines = vec![Said::verdict(format!(
        "the new config is invalid; still running with the previous one ({}{more})",
        counts(errors, diagnostics.len() - errors)
    ))];
    lines.extend(listed(path, diagnostics));
    lines
}

/// The command that lists every problem of the file at `path`.
fn check(path: &Path) -> String {
    format!("tokend --check --config {}", path.display())
}

/// The first [`LISTED`] of `diagnostics` (of the file at `path`), errors
/// (at ERROR) before warnings (at WARN), and a line saying how many more
/// there are and how to see them.
pub(super) fn listed(path: &Path, diagnostics: &[Diagnostic]) -> Vec<Said> {
    let (errors, warnings): (Vec<&Diagnostic>, Vec<&Diagnostic>) = diagnostics
        .iter()
        .partition(|d| d.severity == Severity::Error);
    let shown_errors = errors.len().min(LISTED);
    let shown_warnings = warnings.len().min(LISTED - shown_errors);
    let shown = errors[..shown_errors]
        .iter()
        .map(|d| (Level::ERROR, d))
        .chain(warnings[..shown_warnings].iter().map(|d| (Level::WARN, d)));
    let mut lines: Vec<Said> = shown
        .map(|(level, diagnostic)| Said {
            level,
            text: diagnostic.to_string(),
            verdict: false,
        })
        .collect();
    let (errors_left, warnings_left) =
        (errors.len() - shown_errors, warnings.len() - shown_warnings);
    if errors_left + warnings_left > 0 {
        lines.push(Said {
            level: if errors_left > 0 {
                Level::ERROR
            } else {
                Level::WARN
            },
            text: format!(
                "…and {} more ({}): run `{}`",
                errors_left + warnings_left,
                counts(errors_left, warnings_left),
                check(path)
            ),
            verdict: false,
        });
    }
    lines
}

/// Logs `warnings`, the problems of a config that is used, at most
/// [`LISTED`] of them (a generated file can have thousands).
pub(in crate::daemon) fn log_warnings(path: &Path, warnings: &[Diagnostic]) {
    for said in listed(path, warnings) {
        said.log();
    }
}

/// "3 errors and 1 warning", "1 error".
fn counts(errors: usize, warnings: usize) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (e, 0) => plural(e, "error"),
        (0, w) => plural(w, "warning"),
        (e, w) => format!("{} and {}", plural(e, "error"), plural(w, "warning")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(line: usize, severity: Severity) -> Diagnostic {
        Diagnostic {
            file: PathBuf::from("c.toml"),
            line,
            column: 1,
            severity,
            message: format!("problem {line}"),
        }
    }

    /// The verdict comes first; errors at ERROR, warnings at WARN, errors
    /// listed first whatever their place in the file; at most `LISTED`.
    #[test]
    fn an_invalid_file_is_said_verdict_first_and_capped() {
        let mut diagnostics: Vec<Diagnostic> =
            (1..=3).map(|n| problem(n, Severity::Warning)).collect();
        diagnostics.extend((4..=30).map(|n| problem(n, Severity::Error)));
        let refusal = Refusal::Invalid {
            path: PathBuf::from("c.toml"),
            diagnostics,
        };
        let lines = refusal.lines();
        assert_eq!(lines.len(), 1 + LISTED + 1);
        assert!(lines[0].verdict && lines.iter().skip(1).all(|l| !l.verdict));
        assert_eq!(
            lines[0].text,
            "the new config is invalid; still running with the previous one (27 errors and 3 \
             warnings; the first 20 follow, `tokend --check --config c.toml` lists them all)"
        );
        assert_eq!(lines[1].text, "c.toml:4:1: problem 4");
        assert!(lines[1..=LISTED].iter().all(|l| l.level == Level::ERROR));
        assert_eq!(
            lines[LISTED + 1].text,
            "…and 10 more (7 errors and 3 warnings): run `tokend --check --config c.toml`"
        );
    }

    /// A few problems: all listed, each at its level, no "more" line.
    #[test]
    fn a_few_problems_are_all_listed() {
        let refusal = Refusal::Invalid {
            path: PathBuf::from("c.toml"),
            diagnostics: vec![problem(1, Severity::Warning), problem(2, Severity::Error)],
        };
        let lines = refusal.lines();
        let levels: Vec<Level> = lines.iter().map(|l| l.level).collect();
        assert_eq!(levels, [Level::ERROR, Level::ERROR, Level::WARN]);
        assert_eq!(
            lines[0].text,
            "the new config is invalid; still running with the previous one (1 error and 1 warning)"
        );
        assert_eq!(lines[2].text, "c.toml:1:1: warning: problem 1");
    }
}
