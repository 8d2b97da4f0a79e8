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
//! The user database is asked once per uid in [`KNOWN_FOR`] (the answers
//! are kept, [`PrimaryGroups`]), never for root or the daemon's own user
//! (they manage every provider), off the accept loop, within
//! [`LOOKUP_TIMEOUT`], and at most [`MAX_LOOKUPS`] at once: a name service
//! that hangs (sssd restarting) holds that many blocking threads, not one
//! per connection. A connection counts against its uid's cap while its
//! group is asked for. The group is known whatever the config grants, so
//! that a reload granting it applies to connections made before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::UnixStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::connection::serve_on_loop;
use super::writer::AnswerWriter;
use super::{Connection, Limits, Serving, caller_unit};
use crate::broker::Caller;
use crate::broker::refusal_log::{self, RefusalLog};
use crate::ipc::per_uid::{Held, Holder, PerUid};
use crate::protocol::ErrorCode;

/// How long the name service may take to say a caller's primary group; a
/// caller it did not answer for is served without its group (its
/// membership by the group database's lists still counts).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a uid's primary group, as the user database said it, is
/// taken as known: as long as the group database's member lists are.
pub(super) const KNOWN_FOR: Duration = Duration::from_secs(30);

/// The name service lookups run at once at most.
pub(super) const MAX_LOOKUPS: usize = 4;

/// The uids whose primary groups are kept at most; beyond, the stale ones
/// are dropped, or all (a flood of uids: user namespaces map many).
const MAX_KNOWN: usize = 4096;

/// The primary groups of socket callers as the user database said them
/// lately (see the module doc).
pub(super) struct PrimaryGroups {
    known: Mutex<HashMap<u32, (u32, Instant)>>,
    lookups: Arc<Semaphore>,
}

impl Default for PrimaryGroups {
    fn default() -> Self {
        Self {
            known: Mutex::default(),
            lookups: Arc::new(Semaphore::new(MAX_LOOKUPS)),
        }
    }
}

impl PrimaryGroups {
    /// `uid`'s primary group, if the user database said it within
    /// [`KNOWN_FOR`].
    fn known(&self, uid: u32, now: Instant) -> Option<u32> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known
            .get(&uid)
            .filter(|(_, at)| now.saturating_duration_since(*at) < KNOWN_FOR)
            .map(|(gid, _)| *gid)
    }

    /// `uid`'s primary group, asked of the user database (within
    /// [`LOOKUP_TIMEOUT`]; `None` when it did not say) and kept.
    async fn look_up(&self, uid: u32) -> Option<u32> {
        let lookups = Arc::clone(&self.lookups);
        let asked = async move {
            let permit = lookups.acquire_owned().await.ok()?;
            // The permit goes with the thread: one the name service holds
            // past the timeout still counts.
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                crate::config::primary_gid(uid)
            })
            .await
            .ok()
            .flatten()
        };
        let gid = tokio::time::timeout(LOOKUP_TIMEOUT, asked)
            .await
            .ok()
            .flatten()?;
        let now = Instant::now();
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= MAX_KNOWN {
            known.retain(|_, (_, at)| now.saturating_duration_since(*at) < KNOWN_FOR);
            if known.len() >= MAX_KNOWN {
                known.clear();
            }
        }
        known.insert(uid, (gid, now));
        Some(gid)
    }
}

/// The groups a grant by group matches directly for a process of `gid`
/// whose user's primary group is `primary`.
fn groups_of(gid: u32, primary: Option<u32>) -> Arc<[u32]> {
    if primary == Some(gid) {
        Arc::from([gid])
    } else {
        Arc::from([])
    }
}

impl Connection {
    /// The caller of a just-accepted `stream`, by `SO_PEERCRED`, and its
    /// gid when that is still to be confirmed as its primary group
    /// ([`Self::with_group_if_primary`]; see the module doc). Until then
    /// the caller holds that gid, for the per-uid cap's count alone.
    pub(super) fn accepted(
        stream: &UnixStream,
        serving: Arc<Serving>,
        primary_groups: &PrimaryGroups,
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
        let (groups, to_confirm) = if manages_all {
            (Arc::from([]), None)
        } else {
            match primary_groups.known(uid, Instant::now()) {
                Some(primary) => (groups_of(gid, Some(primary)), None),
                None => (Arc::from([gid]), Some(gid)),
            }
        };
        let caller = Caller {
            uid,
            groups,
            pid: cred.pid(),
            unit: unit.flatten(),
        };
        Ok((Self { caller, serving }, to_confirm))
    }

    /// This connection, its caller given `gid` only when the user
    /// database says it is the user's primary group.
    pub(super) async fn with_group_if_primary(
        mut self,
        gid: u32,
        primary_groups: &PrimaryGroups,
    ) -> Self {
        let uid = self.caller.uid;
        let primary = primary_groups.look_up(uid).await;
        if primary.is_none() {
            debug!(
                uid,
                "the name service did not say the caller's primary group: served without it"
            );
        }
        self.caller.groups = groups_of(gid, primary);
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
        connection: &Connection,
        permit: OwnedSemaphorePermit,
    ) -> Option<(UnixStream, Holds)> {
        match self
            .per_uid
            .hold_as(connection.holder(), self.limits.max_connections_per_uid)
        {
            Ok(held) => Some((stream, (held, permit))),
            Err(holder) => {
                self.refuse_over_cap(stream, holder, permit);
                None
            }
        }
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
