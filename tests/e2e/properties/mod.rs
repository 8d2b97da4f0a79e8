//! Property tests of everything that reads untrusted bytes: the socket
//! protocol (line reader and request decoder), the config loader, and every
//! dialect's answer parsers. They never panic, they keep their bounds, and
//! no token from an answer ever reaches an error message.
//!
//! Each property runs a fixed number of cases (`PROPTEST_CASES` overrides
//! it) so the whole file stays within seconds. A failure prints the
//! shrunk input: add it to `regressions` (in this file) as a plain test.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;

use bytes::Bytes;
use proptest::prelude::*;
use tokend::config::{ClientAuth, Environment, Severity};
use tokend::ipc::lines::{Line, read_line};
use tokend::protocol::{MAX_REQUEST_LINE, parse_request};
use tokend::provider::{
    ClientIdentity, DialectSettings, HttpResponse, PollOutcome, ProviderDialect, dialects,
};
use url::Url;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        // Failures are reported with their shrunk input; no files are kept.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ----- the socket protocol -----------------------------------------------

mod answers;
mod config_text;
mod protocol;

/// Inputs the properties once found wrong, kept as plain tests.
mod regressions {}
