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
//! The user database is asked only while some provider grants by group
//! (so a config without group grants never depends on the name service),
//! never for root or the daemon's own user (they manage every provider),
//! once per uid in [`KNOWN_FOR`] (the answers are kept, [`PrimaryGroups`],
//! "no such user" too), off the accept loop, within [`LOOKUP_TIMEOUT`],
//! and at most [`MAX_LOOKUPS`] at once: a name service that hangs (sssd
//! restarting) holds that many blocking threads, not one per connection.
//! Whatever gid is then granted, the answer is kept, so that a reload
//! granting another group applies to connections made before it. A
//! connection counts against its uid's cap while its group is asked for
//! (not the pool of callers with no role, which any local user can fill),
//! and moves to that pool if the answer gives it no role.

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

/// What the user database said of a uid's primary group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    /// Its primary group.
    Primary(u32),
    /// No such user (one of a container's subordinate uids, say).
    NoSuchUser,
}

impl Said {
    fn primary(self) -> Option<u32> {
        match self {
            Self::Primary(gid) => Some(gid),
            Self::NoSuchUser => None,
        }
    }

    /// What the name service said of `uid`, if it answered.
    fn asking(uid: u32) -> Option<Self> {
        crate::config::primary_gid_answer(uid)
            .map(|found| found.map_or(Self::NoSuchUser, Self::Primary))
    }
}

/// The primary groups of socket callers as the user database said them
/// lately, see the module doc.
pub(super) struct PrimaryGroups {
    known: Mutex<HashMap<u32, (Said, Instant)>>,
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
    /// What the user database said of `uid`'s primary group within
    /// [`KNOWN_FOR`], if it was asked.
    fn known(&self, uid: u32, now: Instant) -> Option<Said> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known
            .get(&uid)
            .filter(|(_, at)| now.saturating_duration_since(*at) < KNOWN_FOR)
            .map(|(gid, _)| *gid)
    }

    /// `uid`'s primary group, asked of the user database (within
    /// [`LOOKUP_TIMEOUT`]; `None` when it did not say, or knows no such
    /// user) and kept.
    async fn look_up(&self, uid: u32) -> Option<u32> {
        self.look_up_with(uid, LOOKUP_TIMEOUT, Said::asking)
            .await
            .and_then(Said::primary)
    }

    /// What `ask` says of `uid` (`None`: no answer) within `timeout`, kept.
    async fn look_up_with(
        &self,
        uid: u32,
        timeout: Duration,
        ask: fn(u32) -> Option<Said>,
    ) -> Option<Said> {
        let lookups = Arc::clone(&self.lookups);
        let asked = async move {
            let permit = lookups.acquire_owned().await.ok()?;
            // The permit goes with the thread: one the name service holds
            // past the timeout still counts.
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                ask(uid)
            })
            .await
            .ok()
            .flatten()
        };
        let gid = tokio::time::timeout(timeout, asked).await.ok().flatten()?;
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
    /// the caller holds no group.
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
        let (groups, to_confirm) = if manages_all || !serving.broker.grants_groups() {
            (Arc::from([]), None)
        } else {
            match primary_groups.known(uid, Instant::now()) {
                Some(said) => (groups_of(gid, said.primary()), None),
                None => (Arc::from([]), Some(gid)),
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

    /// What a name service that answers each way says.
    const PRIMARY_1000: fn(u32) -> Option<Said> = |_| Some(Said::Primary(1000));
    const NO_SUCH_USER: fn(u32) -> Option<Said> = |_| Some(Said::NoSuchUser);
    const NO_ANSWER: fn(u32) -> Option<Said> = |_| None;

    /// A sure answer is kept for `KNOWN_FOR` ("no such user" too, or a
    /// flood of a container's uids would ask for each connection); no
    /// answer is not kept, so the next connection asks again.
    #[tokio::test]
    async fn sure_answers_are_kept_for_a_while_and_no_answer_is_not() {
        let groups = PrimaryGroups::default();
        let now = Instant::now();
        let timeout = Duration::from_secs(5);
        assert_eq!(
            groups.look_up_with(1, timeout, PRIMARY_1000).await,
            Some(Said::Primary(1000))
        );
        assert_eq!(groups.known(1, now), Some(Said::Primary(1000)));
        assert_eq!(
            groups.known(1, Instant::now() + KNOWN_FOR),
            None,
            "kept too long"
        );
        assert_eq!(
            groups.look_up_with(2, timeout, NO_SUCH_USER).await,
            Some(Said::NoSuchUser)
        );
        assert_eq!(groups.known(2, now), Some(Said::NoSuchUser));
        assert_eq!(groups.look_up_with(3, timeout, NO_ANSWER).await, None);
        assert_eq!(groups.known(3, now), None);
    }

    /// The gid counts only when it is the user's primary group.
    #[test]
    fn only_the_primary_group_counts() {
        assert_eq!(&*groups_of(100, Some(100)), [100]);
        assert!(groups_of(100, Some(1000)).is_empty());
        assert!(groups_of(100, None).is_empty());
    }

    /// The kept answers stay bounded whatever the uids.
    #[tokio::test]
    async fn the_kept_answers_stay_bounded() {
        let groups = PrimaryGroups::default();
        for uid in 0..u32::try_from(MAX_KNOWN).unwrap() + 10 {
            groups
                .look_up_with(uid, Duration::from_secs(5), NO_SUCH_USER)
                .await;
        }
        let kept = groups.known.lock().unwrap().len();
        assert!(kept <= MAX_KNOWN, "{kept}");
    }
}
