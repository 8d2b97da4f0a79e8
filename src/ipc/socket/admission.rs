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
//! recheck.
//!
//! The user database is asked as `ipc::primary_groups` says (only while
//! some provider grants by group, never for root or the daemon's own
//! user, bounded), off the accept loop. Whatever gid is then granted, the
//! answer is kept, so that a reload granting another group applies to
//! connections made before it; and asked again while the connection lives
//! (`caller_groups`), so that a user whose primary group changes
//! (`usermod -g`) loses or gains the grant on the connections it holds as
//! on new ones. A connection counts against its uid's cap
//! while its group is asked for (not the pool of callers with no role,
//! which any local user can fill), and moves to that pool if the answer
//! gives it no role.

use std::sync::Arc;
use std::time::Instant;

use tokio::net::UnixStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::caller_groups::CallerGroups;
use super::connection::serve_on_loop;
use super::writer::AnswerWriter;
use super::{Connection, Limits, Serving, caller_unit};
use crate::broker::Caller;
use crate::broker::refusal_log::{self, RefusalLog};
use crate::ipc::per_uid::{Held, Holder, PerUid};
use crate::ipc::primary_groups::{KNOWN_FOR, PrimaryGroups, Said, grantable, manages_all};
use crate::protocol::ErrorCode;

/// The groups a grant by group matches directly for a process of `gid`
/// whose user's primary group is `primary`.
fn groups_of(gid: u32, primary: Option<u32>) -> Arc<[u32]> {
    grantable(&[gid], primary)
}

impl Connection {
    /// The caller of a just-accepted `stream`, by `SO_PEERCRED`, and its
    /// gid when that is still to be confirmed as its primary group
    /// ([`Self::with_group_if_primary`]; see the module doc). Until then
    /// the caller holds no group.
    pub(super) fn accepted(
        stream: &UnixStream,
        serving: Arc<Serving>,
        primary_groups: &Arc<PrimaryGroups>,
    ) -> std::io::Result<(Self, Option<u32>)> {
        let cred = stream.peer_cred()?;
        let (uid, gid) = (cred.uid(), cred.gid());
        // Read only when some provider grants units: it costs a pidfd and
        // three small reads of /proc per connection.
        let unit = serving.broker.grants_units().then(|| {
            let result = caller_unit::of_socket_peer(stream, uid, cred.pid());
            caller_unit::logged(result, uid, cred.pid())
        });
        let now = Instant::now();
        // Until when what is known holds: none known is due at once (at
        // the first request once some provider grants by group).
        let (groups, due, to_confirm) = if manages_all(uid) || !serving.broker.grants_groups() {
            (Arc::from([]), now, None)
        } else {
            match primary_groups.known_at(uid, now) {
                Some((said, at)) => (groups_of(gid, said.primary()), at + KNOWN_FOR, None),
                None => (Arc::from([]), now, Some(gid)),
            }
        };
        let caller = Caller {
            uid,
            groups: Arc::clone(&groups),
            pid: cred.pid(),
            unit: unit.flatten(),
        };
        let groups = (!manages_all(uid))
            .then(|| CallerGroups::new(gid, Arc::clone(primary_groups), groups, due));
        let connection = Self {
            caller,
            groups,
            serving,
        };
        Ok((connection, to_confirm))
    }

    /// This connection, its caller given `gid` only when the user
    /// database says it is the user's primary group; asked again
    /// [`KNOWN_FOR`] later (see `caller_groups`).
    pub(super) async fn with_group_if_primary(
        mut self,
        gid: u32,
        primary_groups: &Arc<PrimaryGroups>,
    ) -> Self {
        let uid = self.caller.uid;
        let primary = primary_groups.look_up(uid).await.and_then(Said::primary);
        if primary.is_none() {
            debug!(
                uid,
                "the name service did not say the caller's primary group: served without it for now"
            );
        }
        let groups = groups_of(gid, primary);
        self.caller.groups = Arc::clone(&groups);
        let due = Instant::now() + KNOWN_FOR;
        self.groups = Some(CallerGroups::new(
            gid,
            Arc::clone(primary_groups),
            groups,
            due,
        ));
        self
    }

    /// Whom a connection whose group is still asked for counts against:
    /// its uid, until the answer says (see [`Admission::hold_again`]). Not
    /// the pool of callers with no role, which any local user can fill and
    /// would then lock out a user granted by its primary group alone.
    pub(super) fn unconfirmed_holder(&self) -> Option<Holder> {
        let uid = self.caller.uid;
        (uid != rustix::process::geteuid().as_raw()).then_some(Holder::Uid(uid))
    }

    /// Whom the connection counts against: its uid, or, when the caller
    /// may see no provider, the pool all such callers share (see
    /// [`Holder::NoRole`]). The daemon's own uid is never counted.
    pub(super) fn holder(&self) -> Option<Holder> {
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

/// What lets a connection in: the per-uid cap, counted for its life, and
/// the primary groups its caller's group is confirmed by.
#[derive(Clone)]
pub(super) struct Admission {
    pub(super) per_uid: PerUid,
    pub(super) limits: Limits,
    pub(super) cap_refusals: Arc<RefusalLog>,
    pub(super) tasks: TaskTracker,
    pub(super) primary_groups: Arc<PrimaryGroups>,
}

/// A connection's hold on its uid's count and on a connection slot.
pub(super) type Holds = (Held, OwnedSemaphorePermit);

impl Admission {
    /// Counts `connection` against its holder's cap: its holds, or `None`
    /// when the holder is at the cap (answered so, and closed).
    pub(super) fn hold(
        &self,
        stream: UnixStream,
        holder: Option<Holder>,
        permit: OwnedSemaphorePermit,
    ) -> Option<(UnixStream, Holds)> {
        match self
            .per_uid
            .hold_as(holder, self.limits.max_connections_per_uid)
        {
            Ok(held) => Some((stream, (held, permit))),
            Err(holder) => {
                self.refuse_over_cap(stream, holder, permit);
                None
            }
        }
    }

    /// `connection`'s holds, once its group is known: moved to the count
    /// its group now makes it (the pool of callers with no role, or its
    /// uid's), or `None` when that is at its cap (answered so, and closed).
    pub(super) fn hold_again(
        &self,
        stream: UnixStream,
        connection: &Connection,
        holds: Holds,
        before: Option<Holder>,
    ) -> Option<(UnixStream, Holds)> {
        let now = connection.holder();
        if now == before {
            return Some((stream, holds));
        }
        let (old, permit) = holds;
        drop(old);
        self.hold(stream, now, permit)
    }

    /// Serves `connection` on `stream`, its `holds` kept for its life,
    /// wherever it is served. Every connection starts on the event loop:
    /// one that asks for tokens again and again moves to a thread of its
    /// own (see threaded.rs).
    pub(super) fn serve(&self, stream: UnixStream, connection: Connection, holds: Holds) {
        self.tasks.spawn(serve_on_loop(
            stream,
            Arc::new(connection),
            Vec::new(),
            holds,
            true,
        ));
    }

    /// Answers a connection over its holder's cap with an error line
    /// naming the cap, and closes it.
    fn refuse_over_cap(&self, stream: UnixStream, holder: Holder, permit: OwnedSemaphorePermit) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The gid counts only when it is the user's primary group.
    #[test]
    fn only_the_primary_group_counts() {
        assert_eq!(&*groups_of(100, Some(100)), [100]);
        assert!(groups_of(100, Some(1000)).is_empty());
        assert!(groups_of(100, None).is_empty());
    }
}
