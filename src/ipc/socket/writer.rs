//! The writing half of a connection: answer lines within a timeout, and
//! the outcome each request is counted with.

use std::io;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio_util::sync::CancellationToken;

use super::wire::{answer_line, error_code, failure_answer};
use crate::broker::BrokerError;
use crate::protocol::{Answer, ErrorCode};

/// How long a write still waits for its client once the daemon is
/// stopping: enough for a client that reads, not the write timeout.
const WRITE_WAIT_WHEN_STOPPING: Duration = Duration::from_secs(1);

/// The writing half of a connection, with its write timeout.
pub(super) struct AnswerWriter {
    pub(super) half: OwnedWriteHalf,
    pub(super) timeout: Duration,
    /// How long a page of a stream (a streamed `status`) may wait for the
    /// client to read: the idle timeout, as a client that pauses in the
    /// middle of a long answer (`tokenctl status | less`) holds no more
    /// than an idle connection may.
    pub(super) stream_timeout: Duration,
    /// Cancelled when the daemon begins to stop: a write then waits at
    /// most [`WRITE_WAIT_WHEN_STOPPING`] more, so that a client that does
    /// not read does not hold the stop for the whole write timeout.
    pub(super) stopping: CancellationToken,
    /// The error code of the current request's answer, for metrics: set
    /// where an error answer is made.
    pub(super) error: Option<ErrorCode>,
}

impl AnswerWriter {
    pub(super) async fn send_error(&mut self, code: ErrorCode, message: &str) -> io::Result<()> {
        self.error = Some(code);
        self.send(&Answer::<()>::failure(code, message)).await
    }

    /// The error answer for `error`, noted as the request's outcome.
    pub(super) fn failure<T>(&mut self, error: &BrokerError) -> Answer<T> {
        self.note(error);
        failure_answer(error)
    }

    /// Notes `error` as the request's outcome.
    pub(super) fn note(&mut self, error: &BrokerError) {
        self.error = Some(error_code(error.kind()));
    }

    /// Writes one answer line. The buffer may hold a token: it is zeroed after.
    pub(super) async fn send(&mut self, answer: &impl Serialize) -> io::Result<()> {
        self.write_bytes(&answer_line(answer)?).await
    }

    /// Writes bytes as they are: whole lines, or a part of one.
    pub(super) async fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_within(self.timeout, bytes).await
    }

    /// Writes a page of a stream, waiting up to the stream timeout.
    pub(super) async fn write_stream_page(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_within(self.stream_timeout, bytes).await
    }

    async fn write_within(&mut self, timeout: Duration, bytes: &[u8]) -> io::Result<()> {
        let stopping = &self.stopping;
        // Polled only when the write does not complete at once (biased):
        // a client that reads costs no waiter on the token.
        let cut_short = async {
            stopping.cancelled().await;
            tokio::time::sleep(WRITE_WAIT_WHEN_STOPPING).await;
        };
        tokio::select! {
            biased;
            written = tokio::time::timeout(timeout, self.half.write_all(bytes)) => match written {
                Ok(result) => result,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client did not read its answer",
                )),
            },
            () = cut_short => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client did not read its answer before the stop",
            )),
        }
    }
}
