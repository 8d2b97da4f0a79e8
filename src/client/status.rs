//! The streamed `status` answer, read one provider at a time.

use super::{Client, ClientError, parse_event_line};
use crate::protocol::{ConfigStatus, ProviderStatus, StatusEvent, StoreStatus};

/// The providers of one streamed `status` request, in name order, read one
/// line at a time: whatever the number of providers, the client holds one.
///
/// Ends after the daemon's `done` line, or at the first error (the daemon's,
/// such as an unknown provider, or a transport error). Borrows the client:
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
}

impl<'a> StatusStream<'a> {
    pub(super) fn new(client: &'a mut Client) -> Self {
        Self {
            client,
            received: 0,
            finished: false,
            store: None,
            config: None,
        }
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
}

impl Iterator for StatusStream<'_> {
    type Item = Result<ProviderStatus, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.next_status() {
            Ok(Some(status)) => Some(Ok(status)),
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(error) => {
                self.finished = true;
                Some(Err(error))
            }
        }
    }
}
