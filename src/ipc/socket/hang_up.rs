//! Noticing that a client has gone while its connection waits on the
//! daemon (a `login` waiting for the person), not on the client.
//!
//! The end of a client's input does not say it has gone: a client that
//! ended its writing side (`shutdown(SHUT_WR)`, as `nc -N` and `socat` do
//! once their input ends) still reads, and a client that sent more bytes
//! behind its request is not read until its answer is done. What does say
//! it is the hang-up: a Unix stream socket reports `POLLHUP` once its peer
//! has closed both directions (the peer's process exited, or closed its
//! end), and `POLLERR` when it closed with the daemon's lines unread; a
//! shutdown of the peer's writing side alone reports neither.
//!
//! The hang-up is waited for on a second handle of the socket (`dup`),
//! registered with the event loop on its own: the kernel wakes it at the
//! peer's shutdown, at its close, when it reads what was written to it and
//! when it sends bytes (a few hundred writes at most: the socket's buffer
//! then holds them unread and the client waits), and each wake-up is a
//! look at the socket. The connection's own handle cannot be used: its
//! readiness would have to be cleared to wait for the next change, and a
//! write of the login's `done` line would then wait for a change that
//! never comes.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::UnixStream;
use tracing::debug;

/// How often the socket is looked at when no second handle could be had
/// (tokend out of file descriptors): rare, and still bounded.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Resolves once the client at the other end of `stream` has gone:
/// closed the connection, whether or not it ended its writing side or
/// sent bytes before. Never for a client that is still there.
pub(super) async fn watch(stream: &UnixStream) {
    let registered = stream
        .as_fd()
        .try_clone_to_owned()
        .and_then(|handle| UnixStream::from_std(std::os::unix::net::UnixStream::from(handle)));
    match registered {
        Ok(handle) => {
            if wait_on(&handle).await.is_ok() {
                return;
            }
        }
        Err(e) => debug!("a client's hang-up is looked for every second: {e}"),
    }
    // No wake-ups to wait on: look every so often.
    let mut every = tokio::time::interval(LOOK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if hung_up(stream) {
            return;
        }
    }
}

/// Waits for wake-ups on `handle` (writable, or closed for writing)
/// until one finds the client gone.
async fn wait_on(handle: &UnixStream) -> io::Result<()> {
    loop {
        let ready = handle.ready(Interest::WRITABLE).await?;
        if ready.is_write_closed() || hung_up(handle) {
            return Ok(());
        }
        // Until the next change (the kernel wakes the handle at each):
        // one that came since `ready` is not lost, as the readiness is
        // cleared only if nothing newer came.
        let _ = handle.try_io(Interest::WRITABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
    }
}

/// The error a connection ends with when its client has gone.
pub(super) fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the client closed the connection while its login waited",
    )
}

/// Whether the client has closed the connection, not only its writing
/// side: a look at the socket now.
fn hung_up(stream: &impl AsFd) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(stream, PollFlags::empty())];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match rustix::event::poll(&mut fds, Some(&now)) {
        Ok(_) => fds[0].revents().intersects(PollFlags::HUP | PollFlags::ERR),
        Err(rustix::io::Errno::INTR) => false,
        // The socket cannot be looked at (never seen): as gone, which
        // ends the connection and keeps the login.
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Shutdown;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// Whether `watching` has resolved, after letting the event loop see
    /// what the kernel said (each `yield_now` lets the I/O driver run).
    async fn resolved(watching: &mut std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
        for _ in 0..20 {
            tokio::select! {
                biased;
                () = watching.as_mut() => return true,
                () = tokio::task::yield_now() => {}
            }
        }
        false
    }

    /// A client that ended its writing side, or sent bytes, is still
    /// there; once it closes, it has gone, whatever it did before.
    #[tokio::test]
    async fn a_client_is_gone_when_it_closes_not_when_its_input_ends() {
        for send_behind in [false, true] {
            let (server, client) = UnixStream::pair().unwrap();
            let watching = watch(&server);
            tokio::pin!(watching);
            assert!(!resolved(&mut watching).await);
            let mut client = client.into_std().unwrap();
            if send_behind {
                std::io::Write::write_all(&mut client, b"{\"op\":\"version\"}\n").unwrap();
            }
            client.shutdown(Shutdown::Write).unwrap();
            assert!(!resolved(&mut watching).await, "half-closed: still there");
            drop(client);
            // A guard against hanging forever, not a measure of speed.
            tokio::time::timeout(Duration::from_secs(60), watching)
                .await
                .expect("the close was noticed");
        }
    }

    /// The connection's own handle still writes and reads as before while
    /// its hang-up is watched.
    #[tokio::test]
    async fn watching_leaves_the_connection_usable() {
        let (server, mut client) = UnixStream::pair().unwrap();
        let (mut read, mut write) = server.into_split();
        {
            let watching = watch(read.as_ref());
            tokio::pin!(watching);
            client.shutdown().await.unwrap();
            assert!(!resolved(&mut watching).await);
            write.write_all(b"prompt\n").await.unwrap();
            let mut line = [0_u8; 7];
            client.read_exact(&mut line).await.unwrap();
            assert!(!resolved(&mut watching).await);
        }
        write.write_all(b"done\n").await.unwrap();
        let mut line = [0_u8; 5];
        client.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"done\n");
        let mut rest = Vec::new();
        assert_eq!(read.read_to_end(&mut rest).await.unwrap(), 0);
    }
}
