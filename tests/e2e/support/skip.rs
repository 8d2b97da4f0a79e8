//! Saying that a test is skipped, where a person running the suite sees it.

use std::fmt::Display;
use std::io::Write;

/// Writes `line` (say "SKIPPED name: why") to the process's stderr in a
/// frame, and returns so that the test can `return`.
///
/// Straight to the file descriptor, not through `eprintln!`: libtest
/// captures the print macros of a passing test, and a skip nobody sees is
/// a pass nobody earned (a root-only test run without root would show as
/// `ok`).
pub fn say(line: impl Display) {
    let _ = writeln!(std::io::stderr(), "\n!!!!! {line} !!!!!\n");
}
