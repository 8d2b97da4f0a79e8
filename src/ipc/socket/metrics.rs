//! The `metrics` op, and the names under which socket requests are counted.

use std::io;

use super::writer::AnswerWriter;
use crate::broker::{Broker, Caller};
use crate::protocol::{METRICS_CHUNK, MetricsEvent};

/// Answers `metrics`: the text in chunks of whole lines, then `done`.
pub(super) async fn answer(
    caller: &Caller,
    broker: &Broker,
    write: &mut AnswerWriter,
) -> io::Result<()> {
    let text = broker.metrics_text(caller);
    for chunk in chunks(&text, METRICS_CHUNK) {
        write
            .send(&MetricsEvent::Text {
                text: chunk.to_owned(),
            })
            .await?;
    }
    write
        .send(&MetricsEvent::Done {
            ok: true,
            error: None,
        })
        .await
}

/// `text` in runs of whole lines of at most `limit` bytes each; a single
/// longer line goes whole. Cut after a newline, so always at a character
/// boundary.
fn chunks(text: &str, limit: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let bytes = rest.as_bytes();
        let cut = if bytes.len() <= limit {
            bytes.len()
        } else {
            bytes[..limit]
                .iter()
                .rposition(|&b| b == b'\n')
                .or_else(|| bytes.iter().position(|&b| b == b'\n'))
                .map_or(bytes.len(), |i| i + 1)
        };
        let (chunk, tail) = rest.split_at(cut);
        rest = tail;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[test]
    fn chunks_are_whole_lines_within_the_limit() {
        let text = "aaaa\nbb\nccccccccc\nä\n";
        let parts: Vec<&str> = chunks(text, 8).collect();
        assert_eq!(parts, ["aaaa\nbb\n", "ccccccccc\n", "ä\n"]);
        assert_eq!(parts.concat(), text);
        assert_eq!(chunks("", 8).count(), 0);
    }
}
