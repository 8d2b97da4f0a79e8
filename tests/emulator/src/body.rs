//! Answer bodies, including the misbehaving ones that faults need.
//!
//! One hand-written [`Body`] instead of boxed streams: every shape a fault
//! needs (too long, never ending, dripping, cut short) is a few lines of
//! state here, and hyper writes each frame only as fast as the client
//! reads, so an endless body costs the emulator no memory.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Filler for oversized and endless bodies.
static FILLER: [u8; 16 * 1024] = [b'x'; 16 * 1024];

/// How long a cut body waits after its first bytes before the connection
/// is reset, so the status line and those bytes reach the client first.
const CUT_PAUSE: Duration = Duration::from_millis(50);

/// The body of an answer.
#[derive(Debug)]
pub(crate) enum ReplyBody {
    /// A complete body, sent at once (`None` once sent).
    Full(Option<Bytes>),
    /// `remaining` bytes of filler, announced with an exact `Content-Length`.
    Sized {
        /// Bytes still to send.
        remaining: u64,
    },
    /// Filler forever, without a length (chunked).
    Endless,
    /// One space per `period`, forever: a provider that trickles.
    Drip {
        /// Time between bytes.
        period: Duration,
        /// When the next byte goes; `None` before the first, which goes at once.
        next: Option<Pin<Box<Sleep>>>,
    },
    /// `head`, then an error: hyper drops the connection although the
    /// `Content-Length` promised `declared` bytes.
    Cut {
        /// The bytes sent before the cut (`None` once sent).
        head: Option<Bytes>,
        /// The announced length, larger than `head`.
        declared: u64,
        /// The pause between `head` and the cut, started once `head` is sent.
        pause: Option<Pin<Box<Sleep>>>,
    },
}

impl ReplyBody {
    /// A complete body.
    pub(crate) fn full(data: impl Into<Bytes>) -> Self {
        Self::Full(Some(data.into()))
    }

    /// An empty body.
    pub(crate) fn empty() -> Self {
        Self::Full(None)
    }

    /// One space every `period`, forever.
    pub(crate) fn drip(period: Duration) -> Self {
        Self::Drip { period, next: None }
    }

    /// `head`, then a cut although `declared` bytes were announced.
    pub(crate) fn cut(head: Bytes, declared: u64) -> Self {
        Self::Cut {
            head: Some(head),
            declared,
            pause: None,
        }
    }

    /// The body's bytes when it is complete and not yet sent (for tests,
    /// and for a real answer a fault spoils).
    pub(crate) fn bytes(&self) -> Option<&Bytes> {
        match self {
            Self::Full(data) => data.as_ref(),
            _ => None,
        }
    }
}

fn filler(len: usize) -> Bytes {
    Bytes::from_static(&FILLER[..len.min(FILLER.len())])
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match self.get_mut() {
            Self::Full(data) => data.take().map(Frame::data),
            Self::Sized { remaining } => {
                if *remaining == 0 {
                    None
                } else {
                    let chunk = filler(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    *remaining -= chunk.len() as u64;
                    Some(Frame::data(chunk))
                }
            }
            Self::Endless => Some(Frame::data(filler(FILLER.len()))),
            Self::Drip { period, next } => {
                // Timers are made on first use: bodies may be built outside
                // a runtime (unit tests), they are only polled inside one.
                if let Some(sleep) = next {
                    ready!(sleep.as_mut().poll(cx));
                    sleep.as_mut().reset(Instant::now() + *period);
                } else {
                    *next = Some(Box::pin(tokio::time::sleep(*period)));
                }
                Some(Frame::data(Bytes::from_static(b" ")))
            }
            Self::Cut { head, pause, .. } => {
                if let Some(head) = head.take() {
                    // The pause starts now, so the next poll is Pending.
                    *pause = Some(Box::pin(tokio::time::sleep(CUT_PAUSE)));
                    Some(Frame::data(head))
                } else {
                    // Pending first lets hyper flush what it has written.
                    if let Some(pause) = pause {
                        ready!(pause.as_mut().poll(cx));
                    }
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "injected fault: connection cut mid-body",
                    ))));
                }
            }
        };
        Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Full(None) | Self::Sized { remaining: 0 })
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Self::Sized { remaining } => SizeHint::with_exact(*remaining),
            Self::Cut { declared, .. } => SizeHint::with_exact(*declared),
            Self::Endless | Self::Drip { .. } => SizeHint::default(),
        }
    }
}
