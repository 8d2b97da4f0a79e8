//! The `login` answer as the client reads it: events, and ticks between
//! them for a countdown.

use std::time::{Duration, Instant};

use super::{Client, ClientError, LOGIN_GRACE, LOGIN_TICK, MAX_LOGIN_LIFETIME, parse_event_line};
use crate::protocol::LoginEvent;

/// What a [`LoginStream`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginUpdate {
    /// An event from the daemon; after [`LoginEvent::Done`] the stream ends.
    Event(LoginEvent),
    /// A tick went by without an event: time to redraw a countdown.
    Tick,
}

/// The events of one `login` request, with a [`LoginUpdate::Tick`] whenever
/// a tick passes without one.
///
/// Ends after the `done` event or the first error. Borrows the client: the
/// connection carries nothing else until the login is over.
pub struct LoginStream<'a> {
    client: &'a mut Client,
    /// When to give up waiting for the next event; `None` for never (a
    /// request timeout too long for the clock, see `deadline_after`).
    deadline: Option<Instant>,
    /// The provider asked for, named in the message of a code that does
    /// not come.
    provider: String,
    prompted: bool,
    tick: Duration,
    finished: bool,
}

impl<'a> LoginStream<'a> {
    /// A stream of the login `client` has just asked for, giving up at
    /// `deadline` (never when `None`) unless a prompt comes first.
    pub(super) fn new(client: &'a mut Client, provider: &str, deadline: Option<Instant>) -> Self {
        Self {
            client,
            provider: provider.to_owned(),
            deadline,
            prompted: false,
            tick: LOGIN_TICK,
            finished: false,
        }
    }
}

impl LoginStream<'_> {
    /// Sets how often the stream wakes up without an event (at least 1 ms).
    #[must_use]
    pub fn with_tick(mut self, tick: Duration) -> Self {
        self.tick = tick.max(Duration::from_millis(1));
        self
    }

    fn next_update(&mut self) -> Result<LoginUpdate, ClientError> {
        let wait = match self.deadline {
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(if self.prompted {
                        ClientError::LoginUnfinished
                    } else {
                        ClientError::NoLoginCode {
                            provider: self.provider.chars().filter(|c| !c.is_control()).collect(),
                            timeout: self.client.timeout,
                        }
                    });
                }
                self.tick.min(deadline - now)
            }
            None => self.tick,
        };
        let Some(line) = self.client.next_line(wait)? else {
            return Ok(LoginUpdate::Tick);
        };
        let event: LoginEvent = parse_event_line(&line)?;
        match &event {
            LoginEvent::Prompt { prompt, .. } => {
                // From now on the code's lifetime bounds the wait, not the
                // request timeout: a person may take minutes to approve.
                let lifetime = Duration::from_secs(prompt.expires_in).min(MAX_LOGIN_LIFETIME);
                self.deadline = Some(Instant::now() + lifetime + LOGIN_GRACE);
                self.prompted = true;
            }
            LoginEvent::Polling { .. } => {}
            LoginEvent::Done { .. } => self.finished = true,
        }
        Ok(LoginUpdate::Event(event))
    }
}

impl Iterator for LoginStream<'_> {
    type Item = Result<LoginUpdate, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let update = self.next_update();
        if update.is_err() {
            self.finished = true;
        }
        Some(update)
    }
}
