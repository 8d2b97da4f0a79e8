//! What each user other than the daemon's own holds at once: its socket
//! connections, its D-Bus calls in progress. Each front-end caps them, so
//! that one local user cannot take every connection or call slot from the
//! others. The daemon's own uid is not counted: its sessions are its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The count per uid; a uid that holds nothing has no entry.
#[derive(Debug, Default, Clone)]
pub struct PerUid {
    // A std Mutex: a map update when a hold starts and ends, never held
    // across an await.
    held: Arc<Mutex<HashMap<u32, usize>>>,
}

/// One counted hold of a uid; uncounted when dropped.
#[derive(Debug)]
pub struct Held {
    held: Arc<Mutex<HashMap<u32, usize>>>,
    uid: Option<u32>,
}

impl PerUid {
    /// Counts `uid` in, or `Err(uid)` when it holds `cap` already. The
    /// daemon's own uid, and a uid not known (`None`), are not counted.
    ///
    /// # Errors
    /// The uid, when it is at `cap`.
    pub fn hold(&self, uid: Option<u32>, cap: usize) -> Result<Held, u32> {
        let counted = uid.filter(|&u| u != rustix::process::geteuid().as_raw());
        if let Some(uid) = counted {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            let count = held.entry(uid).or_default();
            if *count >= cap {
                return Err(uid);
            }
            *count += 1;
        }
        Ok(Held {
            held: Arc::clone(&self.held),
            uid: counted,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(uid) = self.uid {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = held.get_mut(&uid) {
                *count -= 1;
                if *count == 0 {
                    held.remove(&uid);
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
        let first = per_uid.hold(Some(other), 2).unwrap();
        let second = per_uid.hold(Some(other), 2).unwrap();
        assert_eq!(per_uid.hold(Some(other), 2).unwrap_err(), other);
        // Another uid, the daemon's own and an unknown one are not held
        // back by it.
        let _third = per_uid.hold(Some(third), 2).unwrap();
        for _ in 0..10 {
            drop(per_uid.hold(Some(own), 2).unwrap());
            drop(per_uid.hold(None, 2).unwrap());
        }
        // A hold that ends gives its place back; a uid that holds nothing
        // keeps no entry.
        drop(first);
        let again = per_uid.hold(Some(other), 2).unwrap();
        drop((second, again));
        assert_eq!(per_uid.held.lock().unwrap().get(&other), None);
    }
}
