//! Store writes of one provider's record, in the order they were made.
//!
//! A write runs on the blocking pool and may outlive the future that
//! asked for it: the broker stops waiting after the store's call timeout,
//! and a login cancelled mid-save drops its future, but the thread goes on
//! writing. Without order, such a late write could land after a newer one:
//! a logged-out session would come back at the next start, or an older,
//! already rotated refresh token would replace the current one (which a
//! provider with reuse detection punishes by revoking the whole family).
//!
//! So every write of a record takes a generation when it is made, and the
//! writes of one record run one at a time (a lock held for the store
//! call); a write that finds a newer generation already applied is
//! dropped. The newest write made is the one the store ends with, and a
//! logout's delete, made after every earlier save, wins over all of them.
//! The slots are kept per provider name, not per session object, so the
//! rule also holds across a reload that rebuilds the session. After a
//! reload the slots of names the config no longer has are dropped
//! ([`RecordWrites::prune`]), but only those no write holds: a generated
//! config renames providers for months, and a slot per name ever
//! configured would grow without bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tracing::debug;

use crate::store::StoreError;

/// The write slots of every provider's record.
#[derive(Debug, Default)]
pub(crate) struct RecordWrites {
    slots: Mutex<HashMap<String, Arc<RecordSlot>>>,
}

impl RecordWrites {
    /// The slot of `provider`'s record.
    pub(crate) fn slot(&self, provider: &str) -> Arc<RecordSlot> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(slots.entry(provider.to_owned()).or_default())
    }

    /// Drops the slot of every provider `keep` says no to (after a reload:
    /// the names the new config no longer has), unless a write still
    /// holds it.
    pub(crate) fn prune(&self, keep: impl Fn(&str) -> bool) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        // A write holds a clone of its slot from the moment it takes its
        // generation until its store call has returned (the blocking
        // closure owns one even when the future that asked was dropped),
        // and clones are made only in `slot`, under this lock. So a slot
        // whose only holder is this map has no write in flight: a later
        // write of that name may start on a fresh slot, there is nothing
        // to order it after. One still held stays, so a retired session's
        // late write and its successor's keep their order.
        slots.retain(|name, slot| keep(name) || Arc::strong_count(slot) > 1);
        // The table would otherwise stay as large as its largest config.
        slots.shrink_to_fit();
    }
}

/// One record's writes: generations handed out, and the newest applied.
#[derive(Debug, Default)]
pub(crate) struct RecordSlot {
    // The number of writes made, which is the newest generation; a watch
    // so that a test can await a write being made.
    issued: watch::Sender<u64>,
    // A std Mutex held for the length of a (blocking) store call, on the
    // blocking pool only: it orders the writes, never an async task.
    applied: Mutex<u64>,
}

impl RecordSlot {
    /// A new write's generation: later than every write made before.
    pub(crate) fn issue(&self) -> u64 {
        let mut generation = 0;
        self.issued.send_modify(|issued| {
            *issued += 1;
            generation = *issued;
        });
        generation
    }

    /// The number of writes made so far, as it changes.
    #[cfg(test)]
    pub(crate) fn writes_made(&self) -> watch::Receiver<u64> {
        self.issued.subscribe()
    }

    /// Runs `write` (a blocking store call) as the write of `generation`,
    /// after any write of this record still running, unless a newer one was
    /// applied meanwhile: then nothing is written and the answer is `Ok`,
    /// since what the caller meant to store is out of date.
    pub(crate) fn apply(
        &self,
        generation: u64,
        write: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        if *applied > generation {
            debug!(
                generation,
                newer = *applied,
                "a late store write was dropped: a newer one was written"
            );
            return Ok(());
        }
        // Claimed before the call: even a failed write supersedes older
        // ones, which must not land after it either.
        *applied = generation;
        write()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_older_write_is_dropped_and_a_newer_one_runs() {
        let slot = RecordSlot::default();
        let (first, second) = (slot.issue(), slot.issue());
        let mut log = Vec::new();
        slot.apply(second, || {
            log.push("second");
            Ok(())
        })
        .unwrap();
        slot.apply(first, || {
            log.push("first");
            Ok(())
        })
        .unwrap();
        assert_eq!(log, ["second"]);
        let third = slot.issue();
        slot.apply(third, || {
            log.push("third");
            Ok(())
        })
        .unwrap();
        assert_eq!(log, ["second", "third"]);
    }

    #[test]
    fn slots_are_per_provider_and_shared_by_name() {
        let writes = RecordWrites::default();
        assert!(Arc::ptr_eq(&writes.slot("a"), &writes.slot("a")));
        assert!(!Arc::ptr_eq(&writes.slot("a"), &writes.slot("b")));
    }

    fn names(writes: &RecordWrites) -> Vec<String> {
        let mut names: Vec<String> = writes.slots.lock().unwrap().keys().cloned().collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn a_prune_drops_free_slots_of_removed_names_and_keeps_held_ones() {
        let writes = RecordWrites::default();
        for name in ["kept", "gone", "busy"] {
            writes.slot(name);
        }
        // A write of "busy" in flight: it holds the slot with its generation.
        let busy = writes.slot("busy");
        let generation = busy.issue();
        writes.prune(|name| name == "kept");
        assert_eq!(names(&writes), ["busy", "kept"]);
        // The successor of "busy" writes through the same slot, so the
        // late write is ordered before the successor's.
        let successor = writes.slot("busy");
        assert!(Arc::ptr_eq(&busy, &successor));
        assert!(successor.issue() > generation);
        drop((busy, successor));
        // Once the write is over, the slot goes at the next prune; the name
        // comes back with a fresh slot if it is used again.
        writes.prune(|name| name == "kept");
        assert_eq!(names(&writes), ["kept"]);
        assert_eq!(writes.slot("busy").issue(), 1);
    }
}
