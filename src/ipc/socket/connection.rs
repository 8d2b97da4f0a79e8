//! A connection on the event loop: its requests read within the bounds and
//! answered by the broker, and its move to a thread of its own
//! ([`super::threaded`]) when it turns out to ask for tokens again and again.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::UnixStream;
use tracing::debug;

use super::threaded::{self, ThreadSlot};
use super::writer::AnswerWriter;
use super::{Connection, ConnectionReader, Serving, freshness, login, metrics, status, wire};
use crate::broker::{Broker, Caller};
use crate::ipc::lines::{Line, read_line};
use crate::protocol::{
    Answer, CancelLoginAnswer, ErrorCode, LogoutAnswer, MAX_REQUEST_LINE, PROTOCOL_VERSION,
    Request, VersionAnswer, parse_request,
};

/// How a connection's time on the event loop ended.
enum Served {
    /// The connection is over.
    Ended,
    /// It asks for tokens again and again: a thread serves it from now on.
    ToThread(std::os::unix::net::UnixStream, ThreadSlot),
}

/// Serves `stream` on the event loop (`read`: bytes already read from it,
/// answered first), moving it to a thread when it turns out to be a busy
/// token client and `may_move`; lets go of what the connection `held` (its
/// slot and its uid's count) once it is over.
pub(super) async fn serve_on_loop<H: Send + 'static>(
    stream: UnixStream,
    connection: Arc<Connection>,
    read: Vec<u8>,
    held: H,
    may_move: bool,
) {
    match serve_connection(stream, &connection, read, may_move).await {
        Ok(Served::Ended) => {}
        Ok(Served::ToThread(stream, slot)) => move_to_thread(stream, slot, connection, held),
        Err(e) => debug!("connection ended: {e}"),
    }
}

/// Serves `stream` on a thread of its own from now on; back on the event
/// loop (for good) if it sends what only the loop answers.
fn move_to_thread<H: Send + 'static>(
    stream: std::os::unix::net::UnixStream,
    slot: ThreadSlot,
    connection: Arc<Connection>,
    held: H,
) {
    let tasks = connection.serving.tasks.clone();
    let runtime = tokio::runtime::Handle::current();
    tasks.spawn_blocking(move || {
        let back = threaded::serve(stream, &slot, &connection, &runtime);
        drop(slot);
        if let Some((stream, rest)) = back {
            // Not to move again: a client that mixes ops would otherwise
            // go back and forth.
            let tasks = connection.serving.tasks.clone();
            tasks.spawn(serve_on_loop(stream, connection, rest, held, false));
        }
    });
}

/// The token requests after which a connection moves to a thread (at the
/// first answer after which it has sent nothing more yet, and while a
/// thread is free): the second, so that a client that connects for one
/// request (`tokenctl`) never costs a thread hand-off.
const TOKENS_BEFORE_MOVING: u32 = 2;

/// Serves requests on the event loop; `read` holds bytes already read from
/// the stream (by a thread that handed the connection over), answered first.
async fn serve_connection(
    stream: UnixStream,
    connection: &Connection,
    read: Vec<u8>,
    may_move: bool,
) -> io::Result<Served> {
    let Serving {
        broker,
        shutdown,
        limits,
        threaded: threads,
        ..
    } = &*connection.serving;
    let limits = *limits;
    let mut tokens_asked = 0;
    let (read_half, half) = stream.into_split();
    let mut write = AnswerWriter {
        half,
        timeout: limits.write_timeout,
        stream_timeout: limits.idle_timeout,
        stopping: connection.serving.shutdown.clone(),
        error: None,
    };
    let read = std::io::Cursor::new(read).chain(read_half);
    let mut reader: ConnectionReader = BufReader::with_capacity(4096, read);
    // One shutdown waiter and one timer for the connection's whole life,
    // re-armed per request: registering fresh ones for every request costs
    // more than the request itself on a cached token.
    let shutdown = shutdown.cancelled();
    tokio::pin!(shutdown);
    let deadline = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(deadline);
    loop {
        // Wait for the first byte of the next request (idle timeout), then
        // for the rest of the line (request timeout).
        deadline
            .as_mut()
            .reset(tokio::time::Instant::now() + limits.idle_timeout);
        let ready = tokio::select! {
            biased;
            r = reader.fill_buf() => r,
            () = &mut deadline => {
                // A request that came while the daemon could not run (a
                // freeze, a VM paused past the idle timeout) is answered:
                // at the resume the timer may be seen before the socket's
                // readiness, and the waiting request was dropped unread.
                if request_waiting(reader.get_ref()) {
                    continue;
                }
                return Ok(Served::Ended);
            }
            () = &mut shutdown => return Ok(Served::Ended),
        };
        match ready {
            // The client closed the connection.
            Ok([]) => return Ok(Served::Ended),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
        deadline
            .as_mut()
            .reset(tokio::time::Instant::now() + limits.request_timeout);
        let mut bounded = (&mut reader).take(MAX_DISCARDED_LINE);
        let line = tokio::select! {
            biased;
            line = read_line(&mut bounded, MAX_REQUEST_LINE) => line,
            // A line begun and not finished (a client that stalls) does
            // not hold the stop for the request timeout.
            () = &mut shutdown => {
                write.send_error(ErrorCode::ShuttingDown, "tokend is stopping; send the request again once it is back").await?;
                return Ok(Served::Ended);
            }
            () = &mut deadline => {
                let message = unfinished_line(limits.request_timeout);
                refuse_line(broker, &mut write, ErrorCode::BadRequest, &message).await?;
                return Ok(Served::Ended);
            }
        };
        let endless = bounded.limit() == 0;
        let request = match line? {
            Line::Eof => return Ok(Served::Ended),
            Line::TooLong => {
                if refuse_too_long(broker, &mut write, endless).await? {
                    return Ok(Served::Ended);
                }
                continue;
            }
            Line::Complete(bytes) => match parse_request(&bytes) {
                Ok(request) => request,
                Err(message) => {
                    refuse_line(broker, &mut write, ErrorCode::BadRequest, &message).await?;
                    continue;
                }
            },
        };
        let op = request.op();
        write.error = None;
        // The caller as of now: its groups follow the user database.
        let caller = connection.caller_now().await;
        let handled = handle(request, &caller, broker, &mut write, &reader).await;
        // Counted once the answer is written (or could not be): the
        // outcome is the error code the answer carried, if any.
        broker
            .metrics()
            .socket
            .count(op, write.error.map(ErrorCode::as_str));
        handled?;
        tokens_asked += u32::from(op == "token");
        if may_move
            && op == "token"
            && tokens_asked >= TOKENS_BEFORE_MOVING
            && nothing_read_ahead(&reader)
            && let Some(slot) = threads.take(write.half.as_ref())
        {
            return to_thread(reader, write, slot);
        }
    }
}

/// How much of a request line too long is read to find its end, so that
/// the next request on the connection is answered: a line that goes on
/// past this is no client's request but a stream of bytes without a
/// newline, and reading it to the request timeout kept a core busy (2 GB
/// in 10 s from one connection, slowing every other client's answers);
/// the connection is closed instead.
const MAX_DISCARDED_LINE: u64 = 1 << 20;

/// Refuses a request line too long; whether the connection ends: when
/// the line had no end (`endless`, see [`MAX_DISCARDED_LINE`]). Otherwise
/// the next line is the next request.
async fn refuse_too_long(
    broker: &Broker,
    write: &mut AnswerWriter,
    endless: bool,
) -> io::Result<bool> {
    let message = if endless {
        format!(
            "request line longer than {MAX_REQUEST_LINE} bytes, with no end in {} MiB: the connection is closed",
            MAX_DISCARDED_LINE >> 20
        )
    } else {
        format!("request line longer than {MAX_REQUEST_LINE} bytes (or cut short)")
    };
    refuse_line(broker, write, ErrorCode::RequestTooLarge, &message).await?;
    Ok(endless)
}

/// Answers a line that is no request with `code`, counted as `invalid`.
async fn refuse_line(
    broker: &Broker,
    write: &mut AnswerWriter,
    code: ErrorCode,
    message: &str,
) -> io::Result<()> {
    broker
        .metrics()
        .socket
        .count("invalid", Some(code.as_str()));
    write.send_error(code, message).await
}

/// What a client whose request line did not end within `limit` is told.
fn unfinished_line(limit: std::time::Duration) -> String {
    format!(
        "request line not completed in time: a line must end within {} of its first byte",
        spoken(limit)
    )
}

/// A bound as a message says it: whole seconds as `10 s`, else `300 ms`.
fn spoken(bound: std::time::Duration) -> String {
    if bound.subsec_nanos() == 0 {
        format!("{} s", bound.as_secs())
    } else {
        format!("{} ms", bound.as_millis())
    }
}

/// Whether every byte read from the connection has been answered, so that
/// a thread can start at a request boundary with an empty buffer.
fn nothing_read_ahead(reader: &ConnectionReader) -> bool {
    let (ahead, _) = reader.get_ref().get_ref();
    reader.buffer().is_empty()
        && usize::try_from(ahead.position()).is_ok_and(|at| at >= ahead.get_ref().len())
}

/// The connection's halves, put back together for a thread.
fn to_thread(
    reader: ConnectionReader,
    write: AnswerWriter,
    slot: ThreadSlot,
) -> io::Result<Served> {
    let (_, read_half) = reader.into_inner().into_inner();
    let stream = read_half.reunite(write.half).map_err(io::Error::other)?;
    Ok(Served::ToThread(stream.into_std()?, slot))
}

async fn handle(
    request: Request,
    caller: &Caller,
    broker: &Broker,
    write: &mut AnswerWriter,
    reader: &ConnectionReader,
) -> io::Result<()> {
    match request {
        Request::Token {
            provider,
            min_valid,
            refused,
        } => {
            let want = freshness(min_valid, refused);
            match broker.token(caller, &provider, want).await {
                Ok(token) => {
                    debug!(provider = %provider, uid = caller.uid, "token handed out");
                    write.write_bytes(&wire::token_answer_line(&token)).await
                }
                Err(e) => {
                    let answer = write.failure::<()>(&e);
                    write.send(&answer).await
                }
            }
        }
        Request::Status { provider, stream } => {
            status::answer(provider.as_deref(), stream, caller, broker, write).await
        }
        Request::Logout { provider } => {
            let answer = match broker.logout(caller, &provider).await {
                Ok(outcome) => Answer::success(LogoutAnswer {
                    provider,
                    had_tokens: outcome.had_tokens,
                    cancelled_login: outcome.cancelled_login,
                }),
                Err(e) => write.failure(&e),
            };
            write.send(&answer).await
        }
        Request::CancelLogin { provider } => {
            let answer = match broker.cancel_login(caller, &provider) {
                Ok(cancelled) => Answer::success(CancelLoginAnswer {
                    provider,
                    cancelled,
                }),
                Err(e) => write.failure(&e),
            };
            write.send(&answer).await
        }
        Request::Version => {
            let answer = Answer::success(VersionAnswer {
                protocol: PROTOCOL_VERSION,
                daemon_version: env!("CARGO_PKG_VERSION").to_owned(),
            });
            write.send(&answer).await
        }
        Request::Login { provider } => login::answer(provider, caller, broker, write, reader).await,
        Request::Metrics => metrics::answer(caller, broker, write).await,
    }
}

/// Whether the client has sent bytes (or closed its end) that the
/// connection has not read: a look at the socket itself, not at what the
/// event loop has been told of it.
fn request_waiting(
    read: &tokio::io::Chain<std::io::Cursor<Vec<u8>>, tokio::net::unix::OwnedReadHalf>,
) -> bool {
    let (already_read, socket) = read.get_ref();
    if already_read.position() < already_read.get_ref().len() as u64 {
        return true;
    }
    let stream: &tokio::net::UnixStream = socket.as_ref();
    let mut byte = [0_u8; 1];
    rustix::net::recv(
        stream,
        &mut byte,
        rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT,
    )
    .is_ok_and(|(read, _)| read > 0)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// The request line's limit is said, as the daemon's (10 s) or as a
    /// test's shorter one.
    #[test]
    fn an_unfinished_line_is_told_its_limit() {
        assert_eq!(
            unfinished_line(super::super::REQUEST_TIMEOUT),
            "request line not completed in time: a line must end within 10 s of its first byte"
        );
        assert_eq!(spoken(std::time::Duration::from_millis(300)), "300 ms");
    }

    /// What the idle timeout looks at before it closes a connection: bytes
    /// the client sent and the connection has not read, in the socket or
    /// left in what was read before; a client's close counts as nothing
    /// waiting.
    #[tokio::test]
    async fn a_request_waiting_unread_is_seen() {
        let (server, mut client) = tokio::net::UnixStream::pair().unwrap();
        let (read_half, _write_half) = server.into_split();
        let mut read = std::io::Cursor::new(Vec::new()).chain(read_half);
        assert!(!request_waiting(&read));
        client.write_all(b"{\"op\":\"version\"}\n").await.unwrap();
        assert!(request_waiting(&read));
        let mut line = [0_u8; 17];
        read.read_exact(&mut line).await.unwrap();
        assert!(!request_waiting(&read));
        drop(client);
        assert!(!request_waiting(&read));

        let (server, _client) = tokio::net::UnixStream::pair().unwrap();
        let (read_half, _write_half) = server.into_split();
        let read = std::io::Cursor::new(b"{\"op\"".to_vec()).chain(read_half);
        assert!(request_waiting(&read));
    }
}
