//! A connection's group grant, confirmed again while the connection lives.
//!
//! The kernel's gid of a connection's process counts for a grant by group
//! only while the user database names it the user's primary group
//! (`admission`), and an administrator may change that while the
//! connection is open (`usermod -g`): the group grant must then go from
//! the connections the user holds, as it goes within 30 s when the user
//! is taken out of a group's member list (`broker::group_recheck`). So a
//! connection's answer is taken again, from the per-uid answers of
//! `ipc::primary_groups`, at its first request [`KNOWN_FOR`] after the
//! user database gave it: no request is ever judged on an older word.
//!
//! At a request, not by a timer: a socket connection's caller matters only
//! to its requests (nothing is sent to it unasked), and an idle connection
//! then costs nothing. A request costs a look at the clock; the name
//! service is asked at most once per uid in [`KNOWN_FOR`], whatever the
//! number of the uid's connections, and never for root or the daemon's own
//! user (no check at all: every benchmark connects as the latter) nor
//! while no provider grants by group. A name service that does not answer
//! changes nothing, as for the member lists, and is asked again
//! [`KNOWN_FOR`] later: a connection whose first lookup went unanswered
//! gets its group then, not never.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::Connection;
use crate::broker::Caller;
use crate::ipc::primary_groups::{KNOWN_FOR, PrimaryGroups, grantable};

/// The groups a grant by group matches directly of one connection's
/// caller, and when to ask the user database again.
#[derive(Debug)]
pub(super) struct CallerGroups {
    /// The gid of the connection's process (`SO_PEERCRED`), fixed for its
    /// life.
    gid: u32,
    /// The per-uid answers, shared by every connection.
    primary_groups: Arc<PrimaryGroups>,
    /// A mutex, not a lock-free cell: a connection moves between the event
    /// loop and a thread of its own, and is served by one at a time, so
    /// the lock is never contended; it is never held across an await.
    confirmed: Mutex<Confirmed>,
}

/// What the last answer gave, and until when it holds.
#[derive(Debug)]
struct Confirmed {
    groups: Arc<[u32]>,
    due: Instant,
}

impl CallerGroups {
    /// The groups of a process of `gid`: `groups`, until `due` (the last
    /// answer's time and [`KNOWN_FOR`]; now when none was asked for).
    pub(super) fn new(
        gid: u32,
        primary_groups: Arc<PrimaryGroups>,
        groups: Arc<[u32]>,
        due: Instant,
    ) -> Self {
        Self {
            gid,
            primary_groups,
            confirmed: Mutex::new(Confirmed { groups, due }),
        }
    }

    /// The groups of the connection's caller `uid` for a request now:
    /// those last confirmed, asked again once they are due and some
    /// provider grants by group (`groups_granted`).
    async fn now(&self, uid: u32, groups_granted: bool) -> Arc<[u32]> {
        let now = Instant::now();
        {
            let confirmed = self.lock();
            // While nothing grants by group the groups matter to no
            // answer, and the user database is not asked.
            if now < confirmed.due || !groups_granted {
                return Arc::clone(&confirmed.groups);
            }
        }
        let answer = self.primary_groups.said_at(uid).await;
        let mut confirmed = self.lock();
        match answer {
            Some((said, at)) => {
                let groups = grantable(&[self.gid], said.primary());
                // The same groups kept as they were: the caller is then
                // borrowed, not copied, at each request.
                if groups != confirmed.groups {
                    confirmed.groups = groups;
                }
                confirmed.due = at + KNOWN_FOR;
            }
            None => confirmed.due = Instant::now() + KNOWN_FOR,
        }
        Arc::clone(&confirmed.groups)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Confirmed> {
        self.confirmed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Connection {
    /// The caller for a request now: as accepted, with its groups as the
    /// user database says them lately (see the module doc).
    pub(super) async fn caller_now(&self) -> Cow<'_, Caller> {
        let Some(groups) = &self.groups else {
            return Cow::Borrowed(&self.caller);
        };
        let granted = self.serving.broker.grants_groups();
        let now = groups.now(self.caller.uid, granted).await;
        if Arc::ptr_eq(&now, &self.caller.groups) {
            Cow::Borrowed(&self.caller)
        } else {
            Cow::Owned(Caller {
                groups: now,
                ..self.caller.clone()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Groups not due are what was confirmed, whether a provider grants by
    /// group or not; due ones are not asked for while none does (the user
    /// database is not asked, as the module doc says); asked for, they
    /// follow the answer, taken from the per-uid answers kept.
    #[tokio::test]
    async fn groups_are_asked_for_again_when_due_and_granted() {
        // Debian's user `daemon`, uid 1, has the primary group 1.
        if crate::config::primary_gid_answer(1) != Some(Some(1)) {
            eprintln!(
                "SKIPPED groups_are_asked_for_again_when_due_and_granted: no user of uid 1 in group 1"
            );
            return;
        }
        let answers = Arc::new(PrimaryGroups::default());
        let later = Instant::now() + Duration::from_secs(3600);
        let none: Arc<[u32]> = Arc::from([]);
        // A process of gid 1, once taken for none (its lookup unanswered).
        let groups = CallerGroups::new(1, Arc::clone(&answers), Arc::clone(&none), later);
        assert!(groups.now(1, true).await.is_empty(), "not due");
        groups.lock().due = Instant::now();
        assert!(groups.now(1, false).await.is_empty(), "no group grant");
        assert_eq!(answers.known(1, Instant::now()), None, "asked");
        assert_eq!(&*groups.now(1, true).await, [1], "due and granted");
        assert!(answers.known(1, Instant::now()).is_some(), "kept per uid");
        assert!(groups.lock().due > Instant::now(), "due again later");
        // A process whose gid is not the user's primary group: none.
        let other = CallerGroups::new(5, answers, none, Instant::now());
        assert!(other.now(1, true).await.is_empty());
    }
}
