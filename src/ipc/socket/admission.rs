//! Who a just-accepted connection is, and whether it is let in: the
//! caller by `SO_PEERCRED` (its group confirmed in the user database), and
//! the per-uid cap on connections.
//!
//! # The caller's group
//!
//! A grant by group matches a caller's primary group directly (and its
//! membership by the group database's member lists, read again every 30 s:
//! see `broker::group_recheck`). The kernel gives the process's effective
//! gid, which is the primary group of a login, but also a group taken with
//! `sg` or `newgrp` (kept after `gpasswd -d` for as long as that process
//! lives) or lent by a setgid program. So the gid counts only when it is
//! the user's primary group in the user database, as on D-Bus: a user
//! taken out of a group loses the grant on both front-ends within the
//! recheck. The name service is asked only when the gid is one a provider
//! grants, and never for root or the daemon's own user (they manage every
//! provider), so the daemon's owner and most callers pay nothing; it is
//! asked off the accept loop, within [`LOOKUP_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::connection::serve_on_loop;
use super::writer::AnswerWriter;
use super::{Connection, Limits, Serving, caller_unit};
use crate::broker::Caller;
use crate::broker::refusal_log::{self, RefusalLog};
use crate::ipc::per_uid::{Holder, PerUid};
use crate::protocol::ErrorCode;

/// How long the name service may take to say a caller's primary group; a
/// caller it did not answer for is served without its group (its
/// membership by the group database's lists still counts).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

impl Connection {
    /// The caller of a just-accepted `stream`, by `SO_PEERCRED`, and its
    /// gid when that is to be confirmed as its primary group before it
    /// counts ([`Self::with_group_if_primary`]; see the module doc).
    pub(super) fn accepted(
        stream: &UnixStream,
        serving: Arc<Serving>,
    ) -> std::io::Result<(Self, Option<u32>)> {
        let cred = stream.peer_cred()?;
        let (uid, gid) = (cred.uid(), cred.gid());
        // Read only when some provider grants units: it costs a pidfd and
        // three small reads of /proc per connection.
        let unit = serving.broker.grants_units().then(|| {
            let result = caller_unit::of_socket_peer(stream, uid, cred.pid());
            caller_unit::logged(result, uid, cred.pid())
        });
        let manages_all = uid == 0 || uid == rustix::process::geteuid().as_raw();
        let to_confirm = (!manages_all && serving.broker.grants_gid(gid)).then_some(gid);
        let caller = Caller {
            uid,
            groups: Arc::from([]),
            pid: cred.pid(),
            unit: unit.flatten(),
        };
        Ok((Self { caller, serving }, to_confirm))
    }

    /// This connection, its caller given `gid` when the user database
    /// says it is the user's primary group.
    pub(super) async fn with_group_if_primary(mut self, gid: u32) -> Self {
        let uid = self.caller.uid;
        let primary = tokio::task::spawn_blocking(move || crate::config::primary_gid(uid));
        match tokio::time::timeout(LOOKUP_TIMEOUT, primary).await {
            Ok(Ok(Some(primary))) if primary == gid => self.caller.groups = Arc::from([gid]),
            Ok(Ok(Some(_))) => debug!(
                uid,
                gid,
                "the caller's gid is not its primary group: a grant to that group by gid does not count"
            ),
            _ => debug!(
                uid,
                "the name service did not say the caller's primary group: served without it"
            ),
        }
        self
    }

    /// Whom the connection counts against: its uid, or, when the caller
    /// may see no provider, the pool all such callers share (see
    /// [`Holder::NoRole`]). The daemon's own uid is never counted.
    fn holder(&self) -> Option<Holder> {
        let uid = self.caller.uid;
        if uid == rustix::process::geteuid().as_raw() {
            None
        } else if self.serving.broker.may_see_any(&self.caller) {
            Some(Holder::Uid(uid))
        } else {
            Some(Holder::NoRole)
        }
    }
}

/// What lets a connection in: the per-uid cap, counted for its life.
#[derive(Clone)]
pub(super) struct Admission {
    pub(super) per_uid: PerUid,
    pub(super) limits: Limits,
    pub(super) cap_refusals: Arc<RefusalLog>,
    pub(super) tasks: TaskTracker,
}

impl Admission {
    /// Serves `connection` on `stream` if its holder is under the cap,
    /// else answers that it is not, and closes it.
    pub(super) fn admit(
        &self,
        stream: UnixStream,
        connection: Connection,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let connection = Arc::new(connection);
        let holder = connection.holder();
        let held = match self
            .per_uid
            .hold_as(holder, self.limits.max_connections_per_uid)
        {
            Ok(held) => held,
            Err(holder) => return self.refuse_over_cap(stream, holder, permit),
        };
        // Held for the connection's life, wherever it is served. Every
        // connection starts on the event loop: one that asks for tokens
        // again and again moves to a thread of its own (see threaded.rs).
        let held = (held, permit);
        self.tasks
            .spawn(serve_on_loop(stream, connection, Vec::new(), held, true));
    }

    /// Answers a connection over its holder's cap with an error line
    /// naming the cap, and closes it.
    fn refuse_over_cap(
        &self,
        stream: UnixStream,
        holder: Holder,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let cap = self.limits.max_connections_per_uid;
        let who = match holder {
            Holder::Uid(uid) => format!("uid {uid} holds"),
            Holder::NoRole => "callers that may see no provider hold".to_owned(),
        };
        // Any local user can open connections as fast as the kernel
        // accepts them: a line per refusal would flood the journal.
        if let Some(dropped) = self.cap_refusals.admit(std::time::Instant::now()) {
            warn!(
                "refused a connection: {who} {cap} already{}",
                refusal_log::not_logged_note(dropped)
            );
        }
        let write_timeout = self.limits.write_timeout;
        self.tasks.spawn(async move {
            let (_, half) = stream.into_split();
            let mut write = AnswerWriter {
                half,
                timeout: write_timeout,
                stream_timeout: write_timeout,
                // A refusal is one short line, written within the write
                // timeout (10 s at most) even at a stop.
                stopping: CancellationToken::new(),
                error: None,
            };
            let message = format!("{who} {cap} connections already; close some first");
            let _ = write.send_error(ErrorCode::BadRequest, &message).await;
            drop(permit);
        });
    }
}
