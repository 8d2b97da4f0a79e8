//! What each user other than the daemon's own holds at once: its socket
//! connections, its D-Bus calls in progress. Each front-end caps them, so
//! that one local user cannot take every connection or call slot from the
//! others. The daemon's own uid is not counted: its sessions are its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Who a hold is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holder {
    /// One user, counted alone.
    Uid(u32),
    /// Every caller that may see no provider, whatever its uid, counted
    /// together: such a caller can learn nothing but that, and a person
    /// with many uids (the subordinate uids of a user namespace, which
    /// `SO_PEERCRED` reports as distinct) could otherwise hold the cap
    /// once per uid, and every connection between them.
    NoRole,
}

/// The count per holder; a holder that holds nothing has no entry.
#[derive(Debug, Default, Clone)]
pub struct PerUid {
    // A std Mutex: a map update when a hold starts and ends, never held
    // across an await.
    held: Arc<Mutex<HashMap<Holder, usize>>>,
}

/// One counted hold; uncounted when dropped.
#[derive(Debug)]
pub struct Held {
    held: Arc<Mutex<HashMap<Holder, usize>>>,
    holder: Option<Holder>,
}

impl PerUid {
    /// Counts `holder` in, or `Err(holder)` when it holds `cap` already.
    /// The daemon's own uid, and `None` (not known), are not counted.
    ///
    /// # Errors
    /// The holder, when it is at `cap`.
    pub fn hold_as(&self, holder: Option<Holder>, cap: usize) -> Result<Held, Holder> {
        let own = rustix::process::geteuid().as_raw();
        let counted = holder.filter(|&h| h != Holder::Uid(own));
        if let Some(holder) = counted {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            let count = held.entry(holder).or_default();
            if *count >= cap {
                return Err(holder);
            }
            *count += 1;
        }
        Ok(Held {
            held: Arc::clone(&self.held),
            holder: counted,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(holder) = self.holder {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = held.get_mut(&holder) {
                *count -= 1;
                if *count == 0 {
                    held.remove(&holder);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_uid_holds_at_most_cap_and_the_own_uid_is_not_counted() {
        let own = rustix::process::geteuid().as_raw();
        let (other, third) = (own.wrapping_add(1000), own.wrapping_add(1001));
        let per_uid = PerUid::default();
        let first = per_uid.hold_as(Some(Holder::Uid(other)), 2).unwrap();
        let second = per_uid.hold_as(Some(Holder::Uid(other)), 2).unwrap();
        assert_eq!(
            per_uid.hold_as(Some(Holder::Uid(other)), 2).unwrap_err(),
            Holder::Uid(other)
        );
        // Another uid, the daemon's own and an unknown one are not held
        // back by it.
        let _third = per_uid.hold_as(Some(Holder::Uid(third)), 2).unwrap();
        for _ in 0..10 {
            drop(per_uid.hold_as(Some(Holder::Uid(own)), 2).unwrap());
            drop(per_uid.hold_as(None, 2).unwrap());
        }
        // A hold that ends gives its place back; a uid that holds nothing
        // keeps no entry.
        drop(first);
        let again = per_uid.hold_as(Some(Holder::Uid(other)), 2).unwrap();
        drop((second, again));
        assert_eq!(per_uid.held.lock().unwrap().get(&Holder::Uid(other)), None);
    }

    #[test]
    fn callers_with_no_role_share_one_cap_whatever_their_uids() {
        let per_uid = PerUid::default();
        let first = per_uid.hold_as(Some(Holder::NoRole), 2).unwrap();
        let _second = per_uid.hold_as(Some(Holder::NoRole), 2).unwrap();
        assert_eq!(
            per_uid.hold_as(Some(Holder::NoRole), 2).unwrap_err(),
            Holder::NoRole
        );
        // A user with a role is not held back by them.
        let other = rustix::process::geteuid().as_raw().wrapping_add(1000);
        let _user = per_uid.hold_as(Some(Holder::Uid(other)), 2).unwrap();
        drop(first);
        let _again = per_uid.hold_as(Some(Holder::NoRole), 2).unwrap();
    }
}
