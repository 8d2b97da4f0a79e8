//! Connections served on a thread of their own, with blocking reads and
//! writes: the fast path for clients that ask for tokens again and again.
//!
//! Why: with many clients asking at once, one event loop answers every
//! request on one CPU and wakes each client from there; a thread per
//! connection that sleeps in `read` is woken by the kernel on whichever CPU
//! is free, and a request costs two system calls (`recv`, `send`) and no
//! `epoll_wait`. With 16 clients on 2 CPUs that took tokend from about
//! three quarters of a blocking server's throughput to about nine tenths
//! (README, Performance).
//!
//! Every connection starts on the event loop; after its second `token`
//! request (and while a thread is free) it moves here
//! ([`super::connection`]). A client that connects for one request, as
//! `tokenctl` does, never pays for the move. A thread answers `token`
//! requests only, each complete in one line. Any other request, a request
//! split across reads, or a line longer than the thread's buffer hands the
//! connection (with the bytes not yet answered) back to the event loop,
//! which serves it from then on with every bound and op. The bounds hold
//! here too: the write timeout is the socket's own (`SO_SNDTIMEO`), an idle
//! connection is closed by [`ThreadedConnections::close_idle`], a stopping
//! daemon wakes every thread ([`ThreadedConnections::close_all`]), and at
//! most [`MAX_THREADED_CONNECTIONS`] connections have a thread.
//!
//! The threads are tokio's blocking pool's: they exit after ten idle
//! seconds, so an idle daemon holds none.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tracing::debug;
use zeroize::Zeroizing;

use super::wire::{answer_line, error_code, failure_answer, token_answer_line};
use super::{Connection, freshness};
use crate::protocol::{Request, parse_request};

/// Connections that may have a thread at once; more are served by the
/// event loop. Enough for every CPU to be busy answering, few enough that
/// their stacks stay small beside the daemon.
pub const MAX_THREADED_CONNECTIONS: usize = 32;

/// The bytes a thread reads at a time; a request line longer than this is
/// handed to the event loop (a `token` request is far shorter).
const READ_BUFFER: usize = 4096;

/// The connections served on threads, so that the daemon can wake each
/// one from its blocking read: when it stops, and when the connection has
/// been idle for the idle timeout.
#[derive(Debug)]
pub(super) struct ThreadedConnections {
    open: Mutex<Open>,
    /// What [`ThreadSlot::touch`] counts from.
    since: Instant,
    /// Told when a connection is taken, so that
    /// [`close_idle`](Self::close_idle) sleeps without a timer while no
    /// connection could turn idle.
    taken: Notify,
}

impl Default for ThreadedConnections {
    fn default() -> Self {
        Self {
            open: Mutex::default(),
            since: Instant::now(),
            taken: Notify::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Open {
    next: u64,
    /// Each connection: a second handle on its socket, for `shutdown(2)`,
    /// and when it last read.
    streams: HashMap<u64, (UnixStream, Arc<AtomicU64>)>,
    /// Set by [`ThreadedConnections::close_all`]: no more are taken.
    closed: bool,
}

/// A connection's place among the threaded ones; given back when dropped.
pub(super) struct ThreadSlot {
    connections: Arc<ThreadedConnections>,
    id: u64,
    /// Milliseconds from `connections.since` to the last read.
    last_read: Arc<AtomicU64>,
}

impl ThreadSlot {
    /// Notes that the connection has just read bytes (it is not idle).
    fn touch(&self) {
        self.last_read
            .store(millis(self.connections.since.elapsed()), Ordering::Relaxed);
    }
}

/// A connection's last read once [`ThreadedConnections::close_idle`] has
/// closed it.
const CLOSED: u64 = u64::MAX;

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
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
        let last_read = Arc::new(AtomicU64::new(millis(self.since.elapsed())));
        // A reaper with no deadline (no connection, or only closed ones)
        // waits for this; one with a deadline finds this one's later.
        self.taken.notify_one();
        open.streams.insert(id, (handle, Arc::clone(&last_read)));
        Some(ThreadSlot {
            connections: Arc::clone(self),
            id,
            last_read,
        })
    }

    /// Ends the reading side of every threaded connection: each thread
    /// finishes the answer it may be writing, then reads the end of its
    /// stream and returns. Later [`take`](Self::take)s get nothing.
    pub(super) fn close_all(&self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.closed = true;
        for (stream, _) in open.streams.values() {
            let _ = stream.shutdown(Shutdown::Read);
        }
    }

    /// Closes each threaded connection that has read nothing for `idle`,
    /// as the event loop does its own; runs until the daemon stops.
    ///
    /// Why not `SO_RCVTIMEO` on each socket: the kernel then arms and
    /// cancels a timer for every blocking read, which costs a few percent
    /// of the throughput with many clients. Here one task sleeps until the
    /// earliest a connection could turn idle (a connection's reads only
    /// move it later), and while no connection has a thread it sleeps with
    /// no timer at all.
    pub(super) async fn close_idle(self: Arc<Self>, idle: Duration) {
        loop {
            let earliest = {
                let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
                open.streams
                    .values()
                    .map(|(_, last)| last.load(Ordering::Relaxed))
                    .filter(|&last| last != CLOSED)
                    .min()
            };
            let Some(earliest) = earliest else {
                self.taken.notified().await;
                continue;
            };
            let at = self.since + Duration::from_millis(earliest) + idle;
            tokio::time::sleep_until(at.into()).await;
            let now = millis(self.since.elapsed());
            let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            for (stream, last) in open.streams.values() {
                let since = last.load(Ordering::Relaxed);
                if since != CLOSED && now.saturating_sub(since) >= millis(idle) {
                    let _ = stream.shutdown(Shutdown::Read);
                    // Until its thread is gone (it may still be writing an
                    // answer), the connection sets no deadline: this loop
                    // would otherwise find it overdue again at once.
                    last.store(CLOSED, Ordering::Relaxed);
                }
            }
        }
    }
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        let last = {
            let mut open = self
                .connections
                .open
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            open.streams.remove(&self.id);
            open.streams.is_empty()
        };
        if last {
            // glibc gives each thread that allocates an arena of its own
            // and keeps the arenas' free pages after the threads are gone:
            // a burst of busy clients would leave the daemon about a
            // megabyte larger for good.
            crate::code_pages::release_free_heap();
        }
    }
}

/// Serves `connection` on the calling (blocking) thread until the client
/// closes it or goes idle, or sends what only the event loop answers: then
/// the stream and the bytes read and not answered, for the event loop.
pub(super) fn serve(
    mut stream: UnixStream,
    slot: &ThreadSlot,
    connection: &Connection,
    runtime: &Handle,
) -> Option<(tokio::net::UnixStream, Vec<u8>)> {
    let limits = connection.serving.limits;
    if let Err(e) = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_write_timeout(Some(limits.write_timeout)))
    {
        debug!("connection ended: {e}");
        return None;
    }
    // In the runtime's context, so that what a request starts (a refresh)
    // is spawned on it.
    let _context = runtime.enter();
    // Zeroed when dropped: a request may name a token (`refused`).
    let mut buffer = Zeroizing::new([0u8; READ_BUFFER]);
    loop {
        let filled = match stream.read(&mut buffer[..]) {
            // The client closed the connection, or the daemon stops, or
            // the connection was idle (ThreadedConnections::close_idle).
            Ok(0) => return None,
            Ok(n) => {
                slot.touch();
                n
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                debug!("connection ended: {e}");
                return None;
            }
        };
        let mut start = 0;
        while let Some(end) = buffer[start..filled].iter().position(|&b| b == b'\n') {
            let line = &buffer[start..=start + end];
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
            let broker = &connection.serving.broker;
            // Ready at once but every KNOWN_FOR (see caller_groups).
            let caller = answer_now_or_wait(runtime, connection.caller_now());
            let result = answer_now_or_wait(runtime, broker.token(&caller, &provider, want));
            let (answer, error) = match result {
                Ok(token) => {
                    debug!(provider = %provider, uid = caller.uid, "token handed out");
                    (token_answer_line(&token), None)
                }
                Err(e) => match answer_line(&failure_answer::<()>(&e)) {
                    Ok(line) => (line, Some(error_code(e.kind()))),
                    Err(e) => {
                        debug!("connection ended: {e}");
                        return None;
                    }
                },
            };
            let written = stream.write_all(&answer);
            broker
                .metrics()
                .socket
                .count("token", error.map(crate::protocol::ErrorCode::as_str));
            if let Err(e) = written {
                debug!("connection ended: {e}");
                return None;
            }
        }
        if start < filled {
            // Not a token request, or not a whole line: the event loop
            // takes the connection with the bytes left.
            let rest = buffer[start..filled].to_vec();
            let converted = stream
                .set_nonblocking(true)
                .and_then(|()| tokio::net::UnixStream::from_std(stream));
            return match converted {
                Ok(stream) => Some((stream, rest)),
                Err(e) => {
                    debug!("connection ended: {e}");
                    None
                }
            };
        }
    }
}

/// The outcome of `future`: polled once on this thread, which is all a
/// cached token takes, else waited for with the runtime driving what it
/// waits on (a refresh). Not [`Handle::block_on`] at once: each call of it
/// takes a lock the runtime shares between threads (its seed of random
/// numbers), which every connection's thread would contend for.
fn answer_now_or_wait<F: Future>(runtime: &Handle, future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        // Polled again by block_on with a waker that wakes this thread.
        std::task::Poll::Pending => runtime.block_on(future),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (on a blocking thread) for `stream` to read its end: what a
    /// connection's thread sees when the daemon closes its reading side.
    async fn reads_its_end(stream: UnixStream) {
        let read = tokio::task::spawn_blocking(move || {
            let mut stream = stream;
            stream.read(&mut [0u8; 16])
        });
        // A guard against hanging forever, not a measure of speed.
        let read = tokio::time::timeout(Duration::from_secs(20), read).await;
        assert_eq!(read.expect("closed in time").unwrap().unwrap(), 0);
    }

    /// An idle connection is closed; one taken while the closed one's
    /// thread still holds its place (still writing, say) is closed too
    /// once idle, and the closed one sets no deadline meanwhile.
    #[tokio::test]
    async fn idle_connections_are_closed_even_beside_a_closed_one_still_held() {
        let connections = Arc::new(ThreadedConnections::default());
        let idle = Duration::from_millis(50);
        let reaper = tokio::spawn(Arc::clone(&connections).close_idle(idle));

        let (first, _first_client) = UnixStream::pair().unwrap();
        let first_slot = connections.take(&first).unwrap();
        reads_its_end(first).await;
        // Still held: its thread has not returned yet.
        let (second, _second_client) = UnixStream::pair().unwrap();
        let second_slot = connections.take(&second).unwrap();
        reads_its_end(second).await;

        drop((first_slot, second_slot));
        reaper.abort();
    }

    /// `close_all` ends every connection, after which none is taken.
    #[tokio::test]
    async fn close_all_ends_every_connection_and_takes_no_more() {
        let connections = Arc::new(ThreadedConnections::default());
        let (busy, _client) = UnixStream::pair().unwrap();
        let slot = connections.take(&busy).unwrap();
        connections.close_all();
        reads_its_end(busy).await;
        let (late, _late_client) = UnixStream::pair().unwrap();
        assert!(connections.take(&late).is_none());
        drop(slot);
    }
}
