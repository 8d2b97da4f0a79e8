//! Connections served on a thread of their own, with blocking reads and
//! writes: the fast path for clients that ask for tokens again and again.
//!
//! Why: with many clients asking at once, one event loop answers every
//! request on one CPU and wakes each client from there; a thread per
//! connection that sleeps in `read` is woken by the kernel on whichever CPU
//! is free, and a request costs two system calls (`recv`, `send`) and no
//! `epoll_wait`. On 2 CPUs that is the difference between about three
//! quarters of a blocking server's throughput and all of it (README,
//! Performance).
//!
//! A thread answers `token` requests only, each complete in one line. Any
//! other request, a request split across reads, or a line longer than the
//! thread's buffer hands the connection (with the bytes not yet answered)
//! to the event loop, which serves it from then on with every bound and op
//! of [`super::serve_connection`]. The bounds hold here too: the idle and
//! write timeouts are the socket's own (`SO_RCVTIMEO`, `SO_SNDTIMEO`), and
//! at most [`MAX_THREADED_CONNECTIONS`] connections have a thread; the rest
//! are served by the event loop as before.
//!
//! Threads come from tokio's blocking pool, so a client that connects once
//! per call (`tokenctl`) reuses an idle one instead of starting a thread;
//! they exit after ten idle seconds, so an idle daemon holds none.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::runtime::Handle;
use tracing::debug;
use zeroize::Zeroizing;

use super::wire::{error_body, error_code, token_answer};
use super::{Connection, freshness};
use crate::protocol::{Answer, Request, parse_request};

/// Connections that may have a thread at once; more are served by the
/// event loop. Enough for every CPU to be busy answering, few enough that
/// their stacks stay small beside the daemon.
pub const MAX_THREADED_CONNECTIONS: usize = 32;

/// The bytes a thread reads at a time; a request line longer than this is
/// handed to the event loop (a `token` request is far shorter).
const READ_BUFFER: usize = 4096;

/// The connections served on threads, so that a stopping daemon can wake
/// each one from its blocking read.
#[derive(Debug, Default)]
pub(super) struct ThreadedConnections {
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    next: u64,
    /// A second handle on each connection's socket, for `shutdown(2)`.
    streams: HashMap<u64, UnixStream>,
    /// Set by [`ThreadedConnections::close_all`]: no more are taken.
    closed: bool,
}

/// A connection's place among the threaded ones; given back when dropped.
pub(super) struct ThreadSlot {
    connections: Arc<ThreadedConnections>,
    id: u64,
}

impl ThreadedConnections {
    /// A place for `stream`, or `None` when [`MAX_THREADED_CONNECTIONS`]
    /// have one or the daemon is stopping.
    pub(super) fn take(self: &Arc<Self>, stream: &impl AsFd) -> Option<ThreadSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.closed || open.streams.len() >= MAX_THREADED_CONNECTIONS {
            return None;
        }
        let handle = UnixStream::from(stream.as_fd().try_clone_to_owned().ok()?);
        let id = open.next;
        open.next += 1;
        open.streams.insert(id, handle);
        Some(ThreadSlot {
            connections: Arc::clone(self),
            id,
        })
    }

    /// Ends the reading side of every threaded connection: each thread
    /// finishes the answer it may be writing, then reads the end of its
    /// stream and returns. Later [`take`](Self::take)s get nothing.
    pub(super) fn close_all(&self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.closed = true;
        for stream in open.streams.values() {
            let _ = stream.shutdown(Shutdown::Read);
        }
    }
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        self.connections
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .streams
            .remove(&self.id);
    }
}

/// What a thread needs to hand its connection to the event loop.
pub(super) struct HandOver {
    pub(super) runtime: Handle,
    /// Serves the connection on the event loop, given the bytes read and
    /// not yet answered.
    pub(super) serve: Box<dyn FnOnce(tokio::net::UnixStream, Vec<u8>) + Send>,
}

/// Serves `connection` on the calling (blocking) thread until the client
/// closes it, goes idle, or sends what only the event loop answers.
pub(super) fn serve(mut stream: UnixStream, connection: &Connection, hand_over: HandOver) {
    let limits = connection.limits;
    if let Err(e) = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(limits.idle_timeout)))
        .and_then(|()| stream.set_write_timeout(Some(limits.write_timeout)))
    {
        debug!("connection ended: {e}");
        return;
    }
    // Zeroed when dropped: a request may name a token (`refused`).
    let mut buffer = Zeroizing::new([0u8; READ_BUFFER]);
    loop {
        let filled = match stream.read(&mut buffer[..]) {
            // The client closed the connection (or the daemon stops).
            Ok(0) => return,
            Ok(n) => n,
            // Idle for the whole idle timeout (EAGAIN from SO_RCVTIMEO).
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                debug!("connection ended: {e}");
                return;
            }
        };
        let mut start = 0;
        while let Some(end) = buffer[start..filled].iter().position(|&b| b == b'\n') {
            let line = &buffer[start..start + end + 1];
            let Ok(Request::Token {
                provider,
                min_valid,
                refused,
            }) = parse_request(line)
            else {
                break;
            };
            start += end + 1;
            let want = freshness(min_valid, refused);
            let broker = &connection.broker;
            let result =
                hand_over
                    .runtime
                    .block_on(broker.token(&connection.caller, &provider, want));
            let (answer, error) = match result {
                Ok(token) => {
                    debug!(provider = %provider, uid = connection.caller.uid, "token handed out");
                    (to_line(&Answer::success(token_answer(&token))), None)
                }
                Err(e) => {
                    let body = error_body(&e);
                    let answer = Answer::<()> {
                        ok: false,
                        value: None,
                        error: Some(body),
                    };
                    (to_line(&answer), Some(error_code(e.kind())))
                }
            };
            let written = stream.write_all(&answer);
            broker
                .metrics()
                .socket
                .count("token", error.map(|code| code.as_str()));
            if let Err(e) = written {
                debug!("connection ended: {e}");
                return;
            }
        }
        if start < filled {
            // Not a token request, or not a whole line: the event loop
            // takes the connection with the bytes left.
            let rest = buffer[start..filled].to_vec();
            let _runtime = hand_over.runtime.enter();
            let converted = stream
                .set_nonblocking(true)
                .and_then(|()| tokio::net::UnixStream::from_std(stream));
            match converted {
                Ok(stream) => (hand_over.serve)(stream, rest),
                Err(e) => debug!("connection ended: {e}"),
            }
            return;
        }
    }
}

/// One answer line; zeroed when dropped, as it may hold a token.
fn to_line(answer: &impl serde::Serialize) -> Zeroizing<Vec<u8>> {
    let mut line = Zeroizing::new(serde_json::to_vec(answer).unwrap_or_default());
    line.push(b'\n');
    line
}
