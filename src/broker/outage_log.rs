//! What the log says while a token endpoint fails for many sessions: one
//! session's lines in full, and for the rest one line for the endpoint.
//!
//! Each session thins its own failure lines (the 1st, 2nd, 4th, 8th... of
//! a run, `machine::refresh_failed`), but 300 sessions of one provider
//! through a 3-minute outage still wrote some 1,200 warnings, the same
//! words with another provider's name, and hid whatever else the log had
//! to say. The outage is the endpoint's, so it is said once for it: the
//! first session to fail there (the *leader*) says its lines as before;
//! when a second session fails there too, one `endpoint_failing` warning
//! says so, and the other sessions' failure and expiry lines go to debug
//! level, summed up in an `endpoint_failing` line at most once a minute
//! (at the next failure past the minute: an outage keeps failing) and in
//! the `endpoint_answers` line when the endpoint answers again. Only
//! passing failures are folded (the provider unreachable, unavailable,
//! hanging): a refusal is the session's own news.
//!
//! The state is plain and dated by the caller, so that the rules are
//! unit-tested without a clock.

use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How often at most the endpoint's summary is said while it fails.
pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// The outage log of one token endpoint: empty while it answers.
#[derive(Debug, Default)]
pub(crate) struct OutageLog {
    outage: Option<Outage>,
}

/// An outage under way: since the first passing failure after an answer.
#[derive(Debug)]
struct Outage {
    /// When the first failure came.
    since: Instant,
    /// The session whose lines are said in full.
    leader: String,
    /// When the endpoint's last line was said; `None` until a second
    /// session failed (until then only the leader's lines were said, and
    /// nothing was folded).
    last_said: Option<Instant>,
    /// Every session that failed here during the outage.
    sessions: HashSet<String>,
    /// Failures of the outage, all sessions'.
    failures: u64,
    /// What was folded since the endpoint's last line.
    folded: Folded,
    /// The last failure's words (without the session's name).
    last_error: String,
}

/// Lines put at debug level since the endpoint's last line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Folded {
    /// Failure lines.
    pub(crate) failures: u64,
    /// Distinct sessions whose failure lines they were.
    pub(crate) sessions: usize,
    /// Access tokens said to have expired.
    pub(crate) expired: u64,
    /// The sessions, to count them distinctly (cleared with the count).
    names: HashSet<String>,
}

/// What the endpoint's line says: the outage so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    /// How long the endpoint has failed.
    pub(crate) lasted: Duration,
    /// Sessions that failed there.
    pub(crate) sessions: usize,
    /// Failures there, all sessions'.
    pub(crate) failures: u64,
    /// What went to debug level since the endpoint's last line.
    pub(crate) folded: Folded,
    /// The last failure's words.
    pub(crate) last_error: String,
}

/// What to do with a session's line during an outage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Say it as ever.
    Say,
    /// Put it at debug level: the endpoint's lines say it.
    Fold,
    /// Put it at debug level, and say the endpoint's line first:
    /// `first` for the line that says a second session fails there.
    FoldAndSay { summary: Summary, first: bool },
}

impl OutageLog {
    /// A passing failure of `session`'s refresh at the endpoint, in the
    /// words `error` (without the session's name).
    pub(crate) fn failure(&mut self, now: Instant, session: &str, error: &str) -> Verdict {
        let outage = self.outage.get_or_insert_with(|| Outage {
            since: now,
            leader: session.to_owned(),
            last_said: None,
            sessions: HashSet::new(),
            failures: 0,
            folded: Folded::default(),
            last_error: String::new(),
        });
        outage.failures += 1;
        outage.sessions.insert(session.to_owned());
        error.clone_into(&mut outage.last_error);
        if outage.leader == session {
            return Verdict::Say;
        }
        outage.folded.failures += 1;
        if outage.folded.names.insert(session.to_owned()) {
            outage.folded.sessions += 1;
        }
        match outage.last_said {
            None => Verdict::FoldAndSay {
                summary: outage.said(now),
                first: true,
            },
            Some(at) if now.saturating_duration_since(at) >= SUMMARY_EVERY => Verdict::FoldAndSay {
                summary: outage.said(now),
                first: false,
            },
            Some(_) => Verdict::Fold,
        }
    }

    /// `session`'s access token expired while its refreshes failed: folded
    /// (and counted) once the endpoint's lines speak for its sessions.
    pub(crate) fn expired(&mut self, session: &str) -> Verdict {
        match &mut self.outage {
            // Only a session that failed here: one whose refreshes were
            // held back is not among the endpoint's lines' counts.
            Some(outage)
                if outage.last_said.is_some()
                    && outage.leader != session
                    && outage.sessions.contains(session) =>
            {
                outage.folded.expired += 1;
                Verdict::Fold
            }
            _ => Verdict::Say,
        }
    }

    /// The endpoint answered: the outage is over. Its summary, if the
    /// endpoint's lines spoke for its sessions (a failure of one session
    /// alone was said in full).
    pub(crate) fn answered(&mut self, now: Instant) -> Option<Summary> {
        let mut outage = self.outage.take()?;
        outage.last_said?;
        Some(outage.said(now))
    }
}

impl Outage {
    /// The summary to say now; what was folded counts afresh from here.
    fn said(&mut self, now: Instant) -> Summary {
        self.last_said = Some(now);
        Summary {
            lasted: now.saturating_duration_since(self.since),
            sessions: self.sessions.len(),
            failures: self.failures,
            folded: std::mem::take(&mut self.folded),
            last_error: self.last_error.clone(),
        }
    }
}

impl Summary {
    /// What was put at debug level, for a line: empty if nothing was.
    pub(crate) fn folded_words(&self) -> String {
        let Folded {
            failures,
            sessions,
            expired,
            ..
        } = &self.folded;
        let mut words = Vec::new();
        if *failures > 0 {
            words.push(format!(
                "{failures} failure line(s) of {sessions} session(s)"
            ));
        }
        if *expired > 0 {
            words.push(format!("{expired} access token expiry line(s)"));
        }
        if words.is_empty() {
            return String::new();
        }
        format!("{} logged at debug level", words.join(" and "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(verdict: Verdict) -> (Summary, bool) {
        match verdict {
            Verdict::FoldAndSay { summary, first } => (summary, first),
            other => panic!("expected the endpoint's line, got {other:?}"),
        }
    }

    #[test]
    fn one_session_failing_alone_says_every_line_and_no_summary() {
        let start = Instant::now();
        let mut log = OutageLog::default();
        for i in 0..5 {
            let at = start + Duration::from_secs(i * 100);
            assert_eq!(log.failure(at, "a", "HTTP 503"), Verdict::Say);
            assert_eq!(log.expired("a"), Verdict::Say);
        }
        assert_eq!(log.answered(start + Duration::from_secs(600)), None);
    }

    #[test]
    fn a_second_session_failing_is_said_once_for_the_endpoint_and_folded_after() {
        let start = Instant::now();
        let at = |s| start + Duration::from_secs(s);
        let mut log = OutageLog::default();
        assert_eq!(log.failure(at(0), "a", "HTTP 503"), Verdict::Say);
        // The leader's expiry before anyone else failed: its own news.
        assert_eq!(log.expired("a"), Verdict::Say);
        let (first, is_first) = summary(log.failure(at(1), "b", "HTTP 502"));
        assert!(is_first);
        assert_eq!(first.sessions, 2);
        assert_eq!(first.failures, 2);
        assert_eq!(first.last_error, "HTTP 502");
        assert_eq!(first.folded.failures, 1);
        for (s, name) in [(2, "c"), (3, "d"), (4, "b"), (59, "e")] {
            assert_eq!(
                log.failure(at(s), name, "HTTP 503"),
                Verdict::Fold,
                "{name}"
            );
        }
        assert_eq!(log.expired("c"), Verdict::Fold);
        // A session that did not fail here says its own expiry.
        assert_eq!(log.expired("z"), Verdict::Say);
        // The leader is said in full throughout.
        assert_eq!(log.failure(at(30), "a", "HTTP 503"), Verdict::Say);
        assert_eq!(log.expired("a"), Verdict::Say);
        // A minute after the endpoint's line, the next failure says how
        // the minute went.
        let (minute, is_first) = summary(log.failure(at(61), "c", "HTTP 503"));
        assert!(!is_first);
        assert_eq!(minute.lasted, Duration::from_secs(61));
        assert_eq!(minute.sessions, 5);
        assert_eq!(minute.failures, 8);
        assert_eq!(minute.folded.failures, 5);
        assert_eq!(minute.folded.sessions, 4);
        assert_eq!(minute.folded.expired, 1);
        assert_eq!(
            minute.folded_words(),
            "5 failure line(s) of 4 session(s) and 1 access token expiry line(s) logged at debug level"
        );
        assert_eq!(log.failure(at(62), "d", "HTTP 503"), Verdict::Fold);
        let end = log.answered(at(90)).expect("the outage's summary");
        assert_eq!(end.lasted, Duration::from_secs(90));
        assert_eq!(end.failures, 9);
        assert_eq!(end.folded.failures, 1);
        assert_eq!(end.folded.sessions, 1);
        // Over: the next failure starts another outage, led by whoever
        // fails first.
        assert_eq!(log.failure(at(100), "d", "HTTP 503"), Verdict::Say);
        assert_eq!(log.answered(at(101)), None);
    }

    #[test]
    fn nothing_folded_says_no_words() {
        let summary = Summary {
            lasted: Duration::ZERO,
            sessions: 1,
            failures: 1,
            folded: Folded::default(),
            last_error: String::new(),
        };
        assert_eq!(summary.folded_words(), "");
    }
}
