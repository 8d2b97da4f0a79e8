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

use crate::broker::Caller;
use crate::ipc::per_uid::{Held, Holder, PerUid};

/// Calls one user other than the daemon's may have in progress.
pub(super) const CALLS_PER_OTHER_USER: usize = 64;

/// The calls in progress per user other than the daemon's.
#[derive(Clone, Default)]
pub(super) struct CallerShares {
    in_progress: PerUid,
}

impl CallerShares {
    /// Counts one call of `caller` in until the returned hold drops, or
    /// the `LimitsExceeded` error that refuses the call.
    pub(super) fn claim(&self, caller: &Caller) -> Result<Held, zbus::fdo::Error> {
        self.in_progress
            .hold_as(Some(Holder::Uid(caller.uid)), CALLS_PER_OTHER_USER)
            .map_err(|_| {
                zbus::fdo::Error::LimitsExceeded(format!(
                    "tokend is answering {CALLS_PER_OTHER_USER} calls of this user already; \
                     try again once some are answered"
                ))
            })
    }
}
