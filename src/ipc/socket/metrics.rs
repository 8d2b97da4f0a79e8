//! The `metrics` op, and the names under which socket requests are counted.

use std::io;

use super::AnswerWriter;
use crate::broker::{Broker, Caller};
use crate::protocol::{METRICS_CHUNK, MetricsEvent, Request};

/// The op's name, as metrics count it.
pub(super) fn op_name(request: &Request) -> &'static str {
    match request {
        Request::Token { .. } => "token",
        Request::Login { .. } => "login",
        Request::Status { .. } => "status",
        Request::Logout { .. } => "logout",
        Request::Version => "version",
        Request::Metrics => "metrics",
    }
}

/// Answers `metrics`: the text in chunks of whole lines, then `done`.
pub(super) async fn answer(
    caller: &Caller,
    broker: &Broker,
    write: &mut AnswerWriter,
) -> io::Result<()> {
    let text = broker.metrics_text(caller);
    let mut rest = text.as_str();
    while !rest.is_empty() {
        // Cut after the last newline that fits; a single longer line (a
        // very long provider name) goes whole.
        let cut = if rest.len() <= METRICS_CHUNK {
            rest.len()
        } else {
            rest[..METRICS_CHUNK]
                .rfind('\n')
                .or_else(|| rest.find('\n'))
                .map_or(rest.len(), |i| i + 1)
        };
        let (chunk, tail) = rest.split_at(cut);
        write
            .send(&MetricsEvent::Text {
                text: chunk.to_owned(),
            })
            .await?;
        rest = tail;
    }
    write
        .send(&MetricsEvent::Done {
            ok: true,
            error: None,
        })
        .await
}
