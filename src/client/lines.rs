//! The read side of a connection: bytes in, bounded lines out.

use std::io::{self, Read};

use zeroize::{Zeroize, Zeroizing};

use super::MAX_ANSWER_LINE;

/// How much one `read` asks for.
const READ_CHUNK: usize = 8 * 1024;

/// Bytes read from the socket and not yet returned as lines.
///
/// Zeroed when lines are taken out and when dropped, because answer lines
/// may carry an access token.
#[derive(Default)]
pub(super) struct LineBuffer {
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no newline.
    scanned: usize,
}

impl LineBuffer {
    /// The next complete line, without its newline.
    pub(super) fn take_line(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        let end = self.buf[self.scanned..].iter().position(|&b| b == b'\n');
        let Some(end) = end.map(|i| i + self.scanned) else {
            self.scanned = self.buf.len();
            return None;
        };
        let line = Zeroizing::new(self.buf[..end].to_vec());
        let rest = self.buf.len() - end - 1;
        self.buf.copy_within(end + 1.., 0);
        self.buf[rest..].zeroize();
        self.buf.truncate(rest);
        self.scanned = 0;
        Some(line)
    }

    /// Bytes of the incomplete line held.
    pub(super) fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Reads once from `reader`, at most up to one byte past the line bound.
    /// Callers stop calling once [`LineBuffer::pending`] is past the bound.
    pub(super) fn fill(&mut self, mut reader: impl Read) -> io::Result<usize> {
        let len = self.buf.len();
        let want = (MAX_ANSWER_LINE + 1)
            .saturating_sub(len)
            .clamp(1, READ_CHUNK);
        // Read straight into the buffer: a stack chunk would be one more
        // copy of the token to wipe.
        self.buf.resize(len + want, 0);
        let result = reader.read(&mut self.buf[len..]);
        self.buf.truncate(len + *result.as_ref().unwrap_or(&0));
        result
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_keeps_the_rest() {
        let mut lines = LineBuffer::default();
        lines.fill(&b"one\ntwo\nthr"[..]).unwrap();
        assert_eq!(&**lines.take_line().unwrap(), b"one");
        assert_eq!(&**lines.take_line().unwrap(), b"two");
        assert!(lines.take_line().is_none());
        assert_eq!(lines.pending(), 3);
        lines.fill(&b"ee\n"[..]).unwrap();
        assert_eq!(&**lines.take_line().unwrap(), b"three");
        assert_eq!(lines.pending(), 0);
    }

    #[test]
    fn reads_at_most_one_byte_past_the_bound() {
        let mut lines = LineBuffer::default();
        let long = vec![b'a'; MAX_ANSWER_LINE + 100];
        let mut reader = &long[..];
        while lines.pending() <= MAX_ANSWER_LINE {
            lines.fill(&mut reader).unwrap();
        }
        assert_eq!(lines.pending(), MAX_ANSWER_LINE + 1);
        assert!(lines.take_line().is_none());
    }
}
