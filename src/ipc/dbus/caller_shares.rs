//! Each other user's share of the calls answered at once.
//!
//! All calls together hold at most 256 slots (see `calls`). A user whose
//! calls wait long (`Login` against a provider that does not answer holds
//! its slot 20 s; `GetToken` behind a slow refresh) could take them all
//! and have everyone else told to try again. So a user other than the
//! daemon's own may have at most [`CALLS_PER_OTHER_USER`] calls in
//! progress, as on the socket, where such a user may hold 64 connections.
//! Counted once the bus has said who the caller is: a flood's calls hold
//! a slot only for that lookup, then are refused. The daemon's own user
//! (every caller on a session bus) is not limited beyond the slots: its
//! programs are the daemon's own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::broker::Caller;

/// Calls one user other than the daemon's may have in progress.
pub(super) const CALLS_PER_OTHER_USER: usize = 64;

/// The calls in progress per user other than the daemon's.
#[derive(Clone)]
pub(super) struct CallerShares {
    own_uid: u32,
    cap: usize,
    /// A user with no call in progress has no entry.
    in_progress: Arc<Mutex<HashMap<u32, usize>>>,
}

/// One call's part of its user's share, given back when dropped.
pub(super) struct Share {
    uid: u32,
    in_progress: Arc<Mutex<HashMap<u32, usize>>>,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut in_progress = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = in_progress.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                in_progress.remove(&self.uid);
            }
        }
    }
}

impl CallerShares {
    /// Shares of [`CALLS_PER_OTHER_USER`] for users other than `own_uid`.
    pub(super) fn new(own_uid: u32) -> Self {
        Self::with_cap(own_uid, CALLS_PER_OTHER_USER)
    }

    fn with_cap(own_uid: u32, cap: usize) -> Self {
        Self {
            own_uid,
            cap,
            in_progress: Arc::default(),
        }
    }

    /// A part of `caller`'s share for one call (`None` for the daemon's own
    /// user), or the `LimitsExceeded` error that refuses the call.
    pub(super) fn claim(&self, caller: &Caller) -> Result<Option<Share>, zbus::fdo::Error> {
        if caller.uid == self.own_uid {
            return Ok(None);
        }
        let mut in_progress = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = in_progress.entry(caller.uid).or_insert(0);
        if *count >= self.cap {
            return Err(zbus::fdo::Error::LimitsExceeded(format!(
                "tokend is answering {} calls of this user already; try again once some are \
                 answered",
                self.cap
            )));
        }
        *count += 1;
        Ok(Some(Share {
            uid: caller.uid,
            in_progress: Arc::clone(&self.in_progress),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_user_holds_at_most_its_share_and_the_own_user_is_not_counted() {
        let shares = CallerShares::with_cap(0, 2);
        let (other, third) = (Caller::uid(1000), Caller::uid(1001));
        let first = shares.claim(&other).unwrap();
        let second = shares.claim(&other).unwrap();
        let refused = shares.claim(&other).err().expect("refused");
        assert!(
            refused.to_string().contains("2 calls of this user"),
            "{refused}"
        );
        // Another user, and the daemon's own, are not held back by it.
        assert!(shares.claim(&third).unwrap().is_some());
        for _ in 0..10 {
            assert!(shares.claim(&Caller::uid(0)).unwrap().is_none());
        }
        // An answered call gives its part back; an idle user keeps no entry.
        drop(first);
        let again = shares.claim(&other).unwrap();
        drop((second, again));
        assert!(shares.in_progress.lock().unwrap().is_empty());
    }
}
