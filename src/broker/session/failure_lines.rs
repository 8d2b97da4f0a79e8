//! The lines of failed refreshes: a session's own, and its token
//! endpoint's while it fails for several sessions (`outage_log`).

use tracing::{debug, warn};

use super::Session;
use crate::broker::BrokerError;
use crate::broker::outage_log::{Summary, Verdict};
use crate::provider::FailureClass;

/// How a failed refresh's line is said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailureLine {
    /// As a warning.
    Said,
    /// At debug level: it repeats the one before it (see
    /// `machine::refresh_failed`).
    Repeated,
    /// At debug level: the endpoint fails for other sessions too, and its
    /// `endpoint_failing` lines speak for them (see `outage_log`).
    Folded,
}

impl Session {
    /// How the line of a failed refresh is said: a passing failure goes
    /// by the endpoint's outage log, whose line this one may bring.
    pub(super) fn refresh_failed_line(&self, error: &BrokerError, repeated: bool) -> FailureLine {
        let source = match error {
            BrokerError::ProviderUnavailable { source, .. }
                if source.class() == FailureClass::Transient =>
            {
                source
            }
            // A refusal is the session's own news.
            _ if repeated => return FailureLine::Repeated,
            _ => return FailureLine::Said,
        };
        let verdict = self
            .endpoint_limit
            .outage_failure_line(&self.name, &source.to_string());
        if let Verdict::FoldAndSay { summary, first } = &verdict {
            log_endpoint_failing(self.endpoint_limit.endpoint(), summary, *first);
        }
        match (verdict, repeated) {
            (_, true) => FailureLine::Repeated,
            (Verdict::Say, false) => FailureLine::Said,
            _ => FailureLine::Folded,
        }
    }
}

/// The endpoint's line while its refreshes fail for more than one
/// session: `first` when a second session's failure brings it.
fn log_endpoint_failing(endpoint: &str, summary: &Summary, first: bool) {
    let Summary {
        lasted,
        sessions,
        failures,
        last_error,
        ..
    } = summary;
    let lasted = lasted.as_secs();
    let text = if first {
        format!(
            "refreshes fail at {endpoint} for more than one session ({last_error}): the first session's lines are said in full, the others' go to debug level, summed up here at most once a minute and when the endpoint answers again"
        )
    } else {
        let folded = summary.folded_words();
        let folded = if folded.is_empty() {
            String::new()
        } else {
            format!("; {folded} since the last line")
        };
        format!(
            "refreshes at {endpoint} still fail after {lasted} s: {failures} failure(s) of {sessions} session(s) so far, the last: {last_error}{folded}"
        )
    };
    warn!(
        event = "endpoint_failing",
        endpoint, sessions, failures, lasted, "{text}"
    );
}

/// The line of a failed refresh: a warning, or at debug level (see
/// [`FailureLine`]). From the 4th failure in a row on, it says when the
/// next is said.
pub(super) fn log_refresh_failed(
    name: &str,
    retry_in: std::time::Duration,
    error: &BrokerError,
    line: FailureLine,
    in_a_row: u32,
) {
    let retry_in = whole_secs_up(retry_in);
    if line == FailureLine::Repeated {
        debug!(provider = %name, event = "refresh_failed", retry_in, in_a_row, "refresh failed again as before: {error}");
    } else if line == FailureLine::Folded {
        debug!(provider = %name, event = "refresh_failed", retry_in, in_a_row, "refresh failed: {error} (the endpoint fails for other sessions too: its `endpoint_failing` lines count this one)");
    } else if in_a_row >= 4 {
        warn!(provider = %name, event = "refresh_failed", retry_in, in_a_row,
            "refresh failed: {error} ({in_a_row} failures in a row; failures like it are logged at debug level until the {}th, or until a refresh works)",
            in_a_row.saturating_mul(2));
    } else {
        warn!(provider = %name, event = "refresh_failed", retry_in, "refresh failed: {error}");
    }
}

/// `wait` in whole seconds, rounded up: a retry in 2.6 s logged as
/// `retry_in=2` came later than the line said.
pub(super) fn whole_secs_up(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl Session {
    /// The line that the access token expired while refreshes failed: at
    /// debug level once the endpoint's lines speak for the session.
    pub(super) fn log_access_expired(
        &self,
        last_error: Option<String>,
        next_try_in: Option<std::time::Duration>,
    ) {
        let name = &self.name;
        let last = last_error.map_or_else(String::new, |e| format!(" (last: {e})"));
        let next = next_try_in.map_or_else(String::new, |in_| {
            format!("; the next refresh is tried in {} s", in_.as_secs())
        });
        let text = format!(
            "the access token expired and no refresh has brought another{last}: requests for a token are refused until one does{next}"
        );
        if self.endpoint_limit.outage_expiry_line(name) == Verdict::Say {
            warn!(provider = %name, event = "access_expired", "{text}");
        } else {
            debug!(provider = %name, event = "access_expired",
                "{text} (one of the endpoint's `endpoint_failing` lines counts it)");
        }
    }
}
