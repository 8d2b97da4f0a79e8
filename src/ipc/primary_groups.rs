//! Callers' primary groups as the user database says them, asked for both
//! front-ends in one bounded way.
//!
//! A grant by group matches a caller's primary group directly (and its
//! membership by the group database's member lists, read again every 30 s:
//! see `broker::group_recheck`). What the kernel (`SO_PEERCRED`) or the
//! bus (`GetConnectionCredentials`) reports of a process's groups is not
//! the user's: a group taken with `sg` or `newgrp`, lent by a setgid
//! program or set by a unit counts only when the user database names it
//! the user's primary group.
//!
//! The front-ends ask only while some provider grants by group (a config
//! without group grants never depends on the name service, which may be
//! sssd or LDAP, restarting), never for root or the daemon's own user
//! (they manage every provider). Each uid is asked about once in
//! [`KNOWN_FOR`] (the answers are kept, "no such user" too), within
//! [`LOOKUP_TIMEOUT`], and at most [`MAX_LOOKUPS`] at once: a name
//! service that hangs holds that many blocking threads, not one per
//! caller, and the blocking pool the stores write through stays free.
//!
//! An answer holds for [`KNOWN_FOR`] on open connections too: a user's
//! primary group may change while it keeps connections (`usermod -g`), and
//! they follow as they follow the member lists. A socket connection asks
//! again at its first request past that (`socket::caller_groups`, from the
//! answers kept here), and the D-Bus front-end asks anew for its peers'
//! uids every [`KNOWN_FOR`] (`dbus::signals::regrouped`), telling the peers
//! of the providers they lose or gain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// How long the name service may take to say a caller's primary group; a
/// caller it did not answer for is served without its group (its
/// membership by the group database's lists still counts).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a uid's primary group, as the user database said it, is
/// taken as known: as long as the group database's member lists are.
pub const KNOWN_FOR: Duration = Duration::from_secs(30);

/// The name service lookups run at once at most.
pub const MAX_LOOKUPS: usize = 4;

/// The uids whose primary groups are kept at most; beyond, the stale ones
/// are dropped, or all (a flood of uids: user namespaces map many).
const MAX_KNOWN: usize = 4096;

/// What the user database said of a uid's primary group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// Its primary group.
    Primary(u32),
    /// No such user (one of a container's subordinate uids, say, or a
    /// user of a directory service that is restarting).
    NoSuchUser,
}

impl Said {
    /// The primary group it said, if any.
    #[must_use]
    pub fn primary(self) -> Option<u32> {
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

/// The groups a grant by group matches directly for a process the kernel
/// or the bus reports in the groups `reported`, whose user's primary group
/// is `primary`: that group, when the process is in it; none else.
#[must_use]
pub fn grantable(reported: &[u32], primary: Option<u32>) -> Arc<[u32]> {
    match primary {
        Some(gid) if reported.contains(&gid) => Arc::from([gid]),
        _ => Arc::from([]),
    }
}

/// Whether `uid` manages every provider whatever its groups: root, and
/// the daemon's own user. Their groups are never asked for.
#[must_use]
pub fn manages_all(uid: u32) -> bool {
    uid == 0 || uid == rustix::process::geteuid().as_raw()
}

/// The primary groups of callers as the user database said them lately,
/// see the module doc.
pub struct PrimaryGroups {
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

impl std::fmt::Debug for PrimaryGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrimaryGroups").finish_non_exhaustive()
    }
}

impl PrimaryGroups {
    /// What the user database said of `uid`'s primary group within
    /// [`KNOWN_FOR`], if it was asked.
    pub fn known(&self, uid: u32, now: Instant) -> Option<Said> {
        self.known_at(uid, now).map(|(said, _)| said)
    }

    /// As [`Self::known`], with when the user database said it: what was
    /// decided by the answer holds until [`KNOWN_FOR`] after that.
    pub fn known_at(&self, uid: u32, now: Instant) -> Option<(Said, Instant)> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known
            .get(&uid)
            .filter(|(_, at)| now.saturating_duration_since(*at) < KNOWN_FOR)
            .copied()
    }

    /// What the user database said of `uid`'s primary group lately, or
    /// says now ([`Self::look_up`]); `None` when it did not answer.
    pub async fn said(&self, uid: u32) -> Option<Said> {
        self.said_at(uid).await.map(|(said, _)| said)
    }

    /// As [`Self::said`], with when the user database said it (see
    /// [`Self::known_at`]).
    pub async fn said_at(&self, uid: u32) -> Option<(Said, Instant)> {
        match self.known_at(uid, Instant::now()) {
            Some(known) => Some(known),
            None => self.look_up_with(uid, LOOKUP_TIMEOUT, Said::asking).await,
        }
    }

    /// What the user database says of `uid`'s primary group, kept; `None`
    /// when it did not answer within [`LOOKUP_TIMEOUT`] (nor is that kept:
    /// the next caller asks again).
    pub async fn look_up(&self, uid: u32) -> Option<Said> {
        self.look_up_with(uid, LOOKUP_TIMEOUT, Said::asking)
            .await
            .map(|(said, _)| said)
    }

    /// What `ask` says of `uid` (`None`: no answer) within `timeout`, kept,
    /// and when.
    async fn look_up_with(
        &self,
        uid: u32,
        timeout: Duration,
        ask: fn(u32) -> Option<Said>,
    ) -> Option<(Said, Instant)> {
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
        let said = tokio::time::timeout(timeout, asked).await.ok().flatten()?;
        let now = Instant::now();
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= MAX_KNOWN {
            known.retain(|_, (_, at)| now.saturating_duration_since(*at) < KNOWN_FOR);
            if known.len() >= MAX_KNOWN {
                known.clear();
            }
        }
        known.insert(uid, (said, now));
        Some((said, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex as StdMutex};

    /// What a name service that answers each way says.
    const PRIMARY_1000: fn(u32) -> Option<Said> = |_| Some(Said::Primary(1000));
    const NO_SUCH_USER: fn(u32) -> Option<Said> = |_| Some(Said::NoSuchUser);
    const NO_ANSWER: fn(u32) -> Option<Said> = |_| None;

    /// A sure answer is kept for `KNOWN_FOR` ("no such user" too, or a
    /// flood of a container's uids would ask for each connection); no
    /// answer is not kept, so the next caller asks again.
    #[tokio::test]
    async fn sure_answers_are_kept_for_a_while_and_no_answer_is_not() {
        let groups = PrimaryGroups::default();
        let now = Instant::now();
        let timeout = Duration::from_secs(5);
        let (said, at) = groups.look_up_with(1, timeout, PRIMARY_1000).await.unwrap();
        assert_eq!(said, Said::Primary(1000));
        assert_eq!(groups.known(1, now), Some(Said::Primary(1000)));
        // When it was said: what rests on it holds until KNOWN_FOR after.
        assert_eq!(groups.known_at(1, now), Some((said, at)));
        assert_eq!(groups.known_at(1, at + KNOWN_FOR), None, "kept too long");
        assert_eq!(
            groups
                .look_up_with(2, timeout, NO_SUCH_USER)
                .await
                .map(|(said, _)| said),
            Some(Said::NoSuchUser)
        );
        assert_eq!(groups.known(2, now), Some(Said::NoSuchUser));
        assert_eq!(groups.look_up_with(3, timeout, NO_ANSWER).await, None);
        assert_eq!(groups.known(3, now), None);
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

    /// Callers asking into the hanging name service, and whether it may
    /// answer now.
    static HUNG: AtomicUsize = AtomicUsize::new(0);
    static RELEASED: StdMutex<bool> = StdMutex::new(false);
    static RELEASE: Condvar = Condvar::new();

    /// A name service that hangs until the test releases it.
    fn hanging(_: u32) -> Option<Said> {
        HUNG.fetch_add(1, Ordering::SeqCst);
        let mut released = RELEASED.lock().unwrap();
        while !*released {
            released = RELEASE.wait(released).unwrap();
        }
        None
    }

    /// A name service that hangs holds at most `MAX_LOOKUPS` threads,
    /// however many callers ask: the rest give up at the timeout without
    /// a thread, and none of them is kept as known.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hanging_name_service_holds_at_most_max_lookups_threads() {
        let groups = Arc::new(PrimaryGroups::default());
        let callers: Vec<_> = (0..3 * u32::try_from(MAX_LOOKUPS).unwrap())
            .map(|uid| {
                let groups = Arc::clone(&groups);
                tokio::spawn(async move {
                    groups
                        .look_up_with(uid, Duration::from_millis(300), hanging)
                        .await
                })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap(), None, "no answer");
        }
        // The threads that hold the permits get into the name service
        // sooner or later (a loaded machine starts threads slowly).
        for _ in 0..600 {
            if HUNG.load(Ordering::SeqCst) >= MAX_LOOKUPS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let hung = HUNG.load(Ordering::SeqCst);
        let free = groups.lookups.available_permits();
        *RELEASED.lock().unwrap() = true;
        RELEASE.notify_all();
        assert_eq!(hung, MAX_LOOKUPS, "threads in the name service");
        assert_eq!(free, 0, "the hung lookups keep their permits");
        assert!(groups.known.lock().unwrap().is_empty());
    }
}
