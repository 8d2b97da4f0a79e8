//! The Unix socket front-end: newline-delimited JSON over a stream socket.
//!
//! It reads request lines (bounded in size and time), identifies the caller
//! by `SO_PEERCRED`, calls the [`Broker`], and writes the answers. The
//! framing and message types live in [`crate::protocol`]; what a caller may
//! do is the broker's decision.
//!
//! A misbehaving client cannot hurt others: lines are bounded
//! ([`MAX_REQUEST_LINE`](crate::protocol::MAX_REQUEST_LINE)), a
//! half-written request times out, a client that does not read its answers
//! times out, idle connections are closed, and the number of connections is
//! bounded ([`MAX_CONNECTIONS`]). An answer of any
//! size (`status` of 10,000 providers) is written a page at a time, never
//! built whole.
//!
//! Connections are served on one event loop (`connection.rs`), except
//! those that ask for tokens again and again: each of those moves to a
//! thread of its own (`threaded.rs`, up to [`MAX_THREADED_CONNECTIONS`]),
//! which is what keeps many busy clients fast.

mod admission;
mod bind;
mod caller_groups;
mod connection;
mod directory;
mod error;
mod hang_up;
mod login;
mod metrics;
mod status;
mod threaded;
mod wire;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use self::admission::Admission;
use self::threaded::ThreadedConnections;
use super::caller_unit;
use super::per_uid::PerUid;
use crate::broker::refusal_log::{self, RefusalLog};
use crate::broker::{Broker, Caller, Freshness, TokenFingerprint};

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 512;

/// Connections one uid other than the daemon's own may hold at once, so
/// that one local user cannot take every slot from the others.
pub const MAX_CONNECTIONS_PER_UID: usize = 64;

pub use bind::{bind, check_path, identity, remove_bound};
pub use directory::{group_not_given_warning, group_reach_warning};
pub use error::SocketError;
pub use threaded::MAX_THREADED_CONNECTIONS;

/// A connection with no request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// A request line must be complete this long after its first byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer must be taken by the client within this time.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The bounds a connection lives within. [`Default`] is what the daemon
/// uses; tests of the bounds themselves pass short ones to [`serve_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once ([`MAX_CONNECTIONS`]).
    pub max_connections: usize,
    /// Connections one uid other than the daemon's own may hold
    /// ([`MAX_CONNECTIONS_PER_UID`]); more are answered with an error line
    /// and closed.
    pub max_connections_per_uid: usize,
    /// A connection with no request for this long is closed ([`IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
    /// A request line must be complete this long after its first byte
    /// ([`REQUEST_TIMEOUT`]).
    pub request_timeout: Duration,
    /// An answer must be taken by the client within this time ([`WRITE_TIMEOUT`]).
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            max_connections_per_uid: MAX_CONNECTIONS_PER_UID,
            idle_timeout: IDLE_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
        }
    }
}

/// Serves connections on `listener` until `shutdown`; connection tasks are
/// tracked by `tasks` so the caller can wait for answers in flight.
pub async fn serve(
    listener: UnixListener,
    broker: Broker,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    serve_with(listener, broker, shutdown, tasks, Limits::default()).await;
}

/// As [`serve`], within `limits`.
pub async fn serve_with(
    listener: UnixListener,
    broker: Broker,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    limits: Limits,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_uid = PerUid::default();
    let threaded = Arc::new(threaded::ThreadedConnections::default());
    // However the loop ends, threads blocked in reads are woken.
    let _close_threads = CloseOnDrop {
        threaded: Arc::clone(&threaded),
        close_idle: tokio::spawn(Arc::clone(&threaded).close_idle(limits.idle_timeout))
            .abort_handle(),
    };
    let serving = Arc::new(Serving {
        broker,
        shutdown: shutdown.clone(),
        limits,
        threaded,
        tasks: tasks.clone(),
    });
    let admission = Admission {
        per_uid,
        limits,
        cap_refusals: Arc::new(RefusalLog::default()),
        tasks: tasks.clone(),
        primary_groups: Arc::default(),
    };
    let full_warnings = RefusalLog::default();
    let accept_failures = RefusalLog::default();
    loop {
        // Wait for a free slot before accepting, so excess clients wait in
        // the backlog instead of costing a task each. Said (a few times a
        // minute at most): those clients wait with nothing else telling
        // why, and their requests time out as if a provider were slow.
        let permit = if let Ok(permit) = Arc::clone(&slots).try_acquire_owned() {
            permit
        } else {
            if let Some(dropped) = full_warnings.admit(std::time::Instant::now()) {
                warn!(
                    event = "connections_full",
                    "all {} connections are in use: new ones wait in the kernel's queue until one closes (a client that keeps connections open? `ss -xp` lists them){}",
                    limits.max_connections,
                    refusal_log::not_logged_note(dropped)
                );
            }
            tokio::select! {
                p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                () = shutdown.cancelled() => return,
            }
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off a little rather than
                    // spin, and say it a few times a minute (it was ten
                    // lines a second for as long as it lasted).
                    if let Some(dropped) = accept_failures.admit(std::time::Instant::now()) {
                        warn!(
                            event = "accept_failed",
                            "cannot take a new connection: {e}{}; new clients wait in the kernel's queue{}",
                            descriptor_limit_note(&e),
                            refusal_log::not_logged_note_of(dropped, "failures")
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let accepted =
            Connection::accepted(&stream, Arc::clone(&serving), &admission.primary_groups);
        let (connection, gid_to_confirm) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                debug!("connection ended: {e}");
                continue;
            }
        };
        let holder = if gid_to_confirm.is_some() {
            connection.unconfirmed_holder()
        } else {
            connection.holder()
        };
        let Some((stream, holds)) = admission.hold(stream, holder, permit) else {
            continue;
        };
        match gid_to_confirm {
            None => admission.serve(stream, connection, holds),
            // Asked of the name service off the accept loop: one that
            // hangs (sssd restarting) holds this connection alone.
            Some(gid) => {
                let admission = admission.clone();
                let shutdown = shutdown.clone();
                tasks.spawn(async move {
                    let primary_groups = Arc::clone(&admission.primary_groups);
                    tokio::select! {
                        connection = connection.with_group_if_primary(gid, &primary_groups) => {
                            if let Some((stream, holds)) =
                                admission.hold_again(stream, &connection, holds, holder)
                            {
                                admission.serve(stream, connection, holds);
                            }
                        }
                        () = shutdown.cancelled() => {}
                    }
                });
            }
        }
    }
}

/// Wakes every threaded connection when the accept loop ends, and ends
/// the task that closes the idle ones.
struct CloseOnDrop {
    threaded: Arc<threaded::ThreadedConnections>,
    close_idle: tokio::task::AbortHandle,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.close_idle.abort();
        self.threaded.close_all();
    }
}

/// What serves every connection: the broker, the bounds, and the
/// threads a busy connection may move to. One for all connections.
struct Serving {
    broker: Broker,
    shutdown: CancellationToken,
    limits: Limits,
    threaded: Arc<ThreadedConnections>,
    tasks: TaskTracker,
}

/// Who is at the other end of a connection and what serves it: what the
/// event loop and a connection's thread both need.
struct Connection {
    /// The caller as accepted, its groups as first confirmed: a request
    /// is answered for [`Connection::caller_now`], whose groups follow the
    /// user database.
    caller: Caller,
    /// The caller's groups as confirmed lately; `None` for root and the
    /// daemon's own user, who manage every provider whatever their groups.
    groups: Option<caller_groups::CallerGroups>,
    serving: Arc<Serving>,
}

/// The reading half of a connection on the event loop: first the bytes a
/// thread read and did not answer, then the socket.
type ConnectionReader =
    BufReader<tokio::io::Chain<std::io::Cursor<Vec<u8>>, tokio::net::unix::OwnedReadHalf>>;

/// What a `token` request asks for. No `min_valid`: the daemon's own idea
/// of fresh (see [`Freshness`]).
fn freshness(min_valid: Option<u64>, refused: Option<crate::secret::Secret>) -> Freshness {
    match (min_valid, refused) {
        (Some(secs), _) => Freshness::AtLeast(Duration::from_secs(secs)),
        (None, Some(refused)) => Freshness::Replacing(TokenFingerprint::of(refused.expose())),
        (None, None) => Freshness::Default,
    }
}

/// For a failure to accept for want of file descriptors, the limit that
/// was reached and what raises it.
fn descriptor_limit_note(error: &std::io::Error) -> String {
    if error.raw_os_error() != Some(rustix::io::Errno::MFILE.raw_os_error()) {
        return String::new();
    }
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    format!(
        " (tokend's limit of open files, {limit}, is reached: clients holding connections open? \
         `ss -xp` lists them; LimitNOFILE= in the unit raises it)"
    )
}
