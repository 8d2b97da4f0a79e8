//! `metrics`: the daemon's OpenMetrics text, read from its stream of chunks.

use super::{Client, ClientError, parse_event_line};
use crate::protocol::{MetricsEvent, Request};

impl Client {
    /// The daemon's metrics as OpenMetrics text, ending with `# EOF`. Needs
    /// a daemon of protocol [`crate::protocol::METRICS_SINCE`] or later
    /// (ask [`Client::version`]); an older one answers `bad_request`.
    ///
    /// # Errors
    /// Transport errors, a timeout between two lines, or
    /// [`ClientError::Daemon`] when the daemon refuses.
    pub fn metrics(&mut self) -> Result<String, ClientError> {
        self.send(&Request::Metrics)?;
        let mut text = String::new();
        loop {
            let line = self.next_line(self.timeout)?.ok_or(ClientError::Timeout {
                timeout: self.timeout,
            })?;
            match parse_event_line::<MetricsEvent>(&line)? {
                MetricsEvent::Text { text: chunk } => text.push_str(&chunk),
                MetricsEvent::Done { error: Some(e), .. } => return Err(ClientError::Daemon(e)),
                MetricsEvent::Done { .. } => return Ok(text),
            }
        }
    }
}
