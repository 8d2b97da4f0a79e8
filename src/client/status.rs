//! The streamed `status` answer, read one provider at a time.

use std::time::{Duration, Instant};

use super::{Client, ClientError, parse_event_line};
use crate::protocol::{
    ConfigStatus, ProviderStatus, STATUS_STREAM_PAUSE_LIMIT, StatusEvent, StoreStatus,
};

/// The providers of one streamed `status` request, in name order, read one
/// line at a time: whatever the number of providers, the client holds one.
///
/// Ends after the daemon's `done` line, or at the first error (the daemon's,
/// such as an unknown provider, or a transport error); an error after a
/// provider is [`ClientError::StatusCutShort`], saying how many came, so
/// that no one takes them for the whole list. Borrows the client:
/// the connection carries nothing else until the stream is over; a stream
/// dropped before its end leaves the connection out of step, so drop the
/// client with it. After the last provider, [`StatusStream::store`] has
/// the store's state, which the daemon sends once for the whole answer.
pub struct StatusStream<'a> {
    client: &'a mut Client,
    /// `provider` lines read so far, to check against the `done` count.
    received: u64,
    finished: bool,
    /// The store's state from the `done` line.
    store: Option<StoreStatus>,
    /// The config's standing from the `done` line.
    config: Option<ConfigStatus>,
    /// When the caller was handed the last provider: the time from then
    /// to its next call is the caller's (its output), not the daemon's.
    handed_out: Option<Instant>,
    /// The longest the caller kept the stream unread so far.
    longest_pause: Duration,
    /// A pause this long is why a connection closed mid-stream
    /// ([`STATUS_STREAM_PAUSE_LIMIT`]; shorter in tests).
    pause_limit: Duration,
}

impl<'a> StatusStream<'a> {
    pub(super) fn new(client: &'a mut Client) -> Self {
        Self {
            client,
            received: 0,
            finished: false,
            store: None,
            config: None,
            handed_out: None,
            longest_pause: Duration::ZERO,
            pause_limit: STATUS_STREAM_PAUSE_LIMIT,
        }
    }

    /// The stream, taking a pause of `limit` as the daemon's.
    #[cfg(test)]
    pub(super) fn with_pause_limit(mut self, limit: Duration) -> Self {
        self.pause_limit = limit;
        self
    }

    /// The store's state, once the stream has ended (a daemon older than
    /// this field, or one that sent no provider, sends none).
    #[must_use]
    pub fn store(&self) -> Option<&StoreStatus> {
        self.store.as_ref()
    }

    /// What the daemon has not taken from its config file, once the stream
    /// has ended (sent only when anything).
    #[must_use]
    pub fn config(&self) -> Option<&ConfigStatus> {
        self.config.as_ref()
    }

    /// The next provider, or `None` after a complete stream.
    fn next_status(&mut self) -> Result<Option<ProviderStatus>, ClientError> {
        // Each line gets the whole request timeout: a long stream may take
        // longer than that in all, a stalled one is caught at its next line.
        let timeout = self.client.timeout;
        let line = self
            .client
            .next_line(timeout)?
            .ok_or(ClientError::Timeout { timeout })?;
        match parse_event_line(&line)? {
            StatusEvent::Provider(status) => {
                self.received += 1;
                Ok(Some(*status))
            }
            StatusEvent::Done {
                error: Some(error), ..
            } => Err(ClientError::Daemon(error)),
            StatusEvent::Done {
                ok: true,
                count,
                store,
                config,
                ..
            } if count == self.received => {
                self.store = store;
                self.config = config;
                Ok(None)
            }
            StatusEvent::Done {
                ok: true, count, ..
            } => Err(ClientError::BadAnswer {
                reason: format!(
                    "the status stream announced {count} providers but sent {}",
                    self.received
                ),
            }),
            StatusEvent::Done { ok: false, .. } => Err(ClientError::BadAnswer {
                reason: "the status stream failed without saying why".into(),
            }),
        }
    }

    /// `error` as it ends the stream: said to cut it short once a
    /// provider came. A single pause of the caller as long as the daemon
    /// waits for a page of the stream to be read is then the likely
    /// reason the daemon hung up; shorter ones are not named (a slow
    /// reader could add up to it, but so could a daemon that crashed).
    fn cut_short(&self, error: ClientError) -> ClientError {
        if self.received == 0 {
            return error;
        }
        let paused = (matches!(error, ClientError::Closed)
            && self.longest_pause >= self.pause_limit)
            .then_some(self.longest_pause);
        ClientError::StatusCutShort {
            received: self.received,
            paused,
            cause: Box::new(error),
        }
    }
}

impl Iterator for StatusStream<'_> {
    type Item = Result<ProviderStatus, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        if let Some(at) = self.handed_out.take() {
            self.longest_pause = self.longest_pause.max(at.elapsed());
        }
        match self.next_status() {
            Ok(Some(status)) => {
                self.handed_out = Some(Instant::now());
                Some(Ok(status))
            }
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(error) => {
                self.finished = true;
                Some(Err(self.cut_short(error)))
            }
        }
    }
}
