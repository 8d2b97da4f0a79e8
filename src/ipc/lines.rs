//! Reading request lines: bounded in size, whatever the chunks the bytes
//! arrive in. Its own module so that the property tests can drive it with
//! arbitrary bytes and buffer sizes.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One request line, as [`read_line`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A line of at most the limit, its newline included (none when the
    /// stream ended without one).
    Complete(Vec<u8>),
    /// A line longer than the limit; it was read to its end and dropped,
    /// so the next line starts at a line boundary.
    TooLong,
    /// The stream ended before any byte of a line.
    Eof,
}

/// Reads one line of at most `limit` bytes (newline included). Never holds
/// more than `limit` bytes of a line, however long the line is.
///
/// # Errors
/// Reading failed.
pub async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R, limit: usize) -> io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            // End of stream: a last line without its newline still counts
            // (a client that half-closes after writing).
            return Ok(match (too_long, line.is_empty()) {
                (true, _) => Line::TooLong,
                (false, true) => Line::Eof,
                (false, false) => Line::Complete(line),
            });
        }
        let (chunk, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let used = chunk.len();
        if !too_long {
            if line.len() + chunk.len() > limit {
                // Keep reading to the end of the line, discarding it, so the
                // next request starts at a line boundary.
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if found {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete(line)
            });
        }
    }
}
