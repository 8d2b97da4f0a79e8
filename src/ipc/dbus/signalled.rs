//! What `PropertiesChanged` said last for each provider object, so that
//! one saying the same again to the same peers is left out.
//!
//! One change of a provider can raise more than one `StateChanged` (a
//! login that ends: the session's new state, then the end of the login
//! task), and since each signal carries the report read when it is sent,
//! both then say the same. The second may be left out only while every
//! peer it would go to knows what it says, which holds when:
//!
//! - the last `PropertiesChanged` of that object went to the same peers
//!   with the same properties, and
//! - no call that reads properties (`Get`, `GetAll` or any other call on a
//!   provider object, `GetManagedObjects`) was answered since the report of
//!   that last signal was read, nor is one being answered now.
//!
//! The second condition covers a client that reads a state between two
//! signals: say the last signal said F, the state went to G and back to F
//! before the events were forwarded, and a `Get` answered G meanwhile. Each
//! event's report then says F, the same as the last signal; without the
//! second condition the client would keep G. A read counts from before the
//! broker is asked until its answer is sent ([`Signalled::reading`]), and
//! a signal's report is dated by the count of reads begun or ended before
//! it was read ([`Signalled::epoch`]): a signal whose report is older than
//! the last read, or that coincides with one, is always sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use zbus::zvariant::Value;

use super::peers::Recipients;

/// One provider object's `PropertiesChanged`: to whom, with which
/// properties (one entry per view: managers, use-only peers).
pub(super) type PropertiesSent = Vec<(Recipients, Vec<(&'static str, Value<'static>)>)>;

/// The last `PropertiesChanged` of each provider object (see the module).
#[derive(Debug, Clone, Default)]
pub(super) struct Signalled {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// By object path: the last signal, and the epoch before its report
    /// was read.
    last: HashMap<String, (Arc<PropertiesSent>, u64)>,
    /// Reads of properties begun or ended, ever.
    epoch: u64,
    /// Reads of properties being answered now.
    reading: usize,
}

impl Signalled {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The date of a report read after this call, for [`Self::replace`].
    pub(super) fn epoch(&self) -> u64 {
        self.state().epoch
    }

    /// A call that reads properties: from now until the guard is dropped,
    /// after its answer is sent, no signal is left out.
    pub(super) fn reading(&self) -> Reading {
        let mut state = self.state();
        state.epoch += 1;
        state.reading += 1;
        Reading {
            signalled: self.clone(),
        }
    }

    /// Forgets the last signal of the object at `path` (a provider that
    /// is gone, or whose access rule changed; a signal that could not be
    /// sent): its next one is sent whatever it says.
    pub(super) fn forget(&self, path: &str) {
        self.state().last.remove(path);
    }

    /// Takes `sent`, made of reports read after [`Self::epoch`] answered
    /// `epoch`, as the last `PropertiesChanged` of `path`; or answers false
    /// when it need not be sent (see the module): it is the last one sent,
    /// and no read came between.
    pub(super) fn replace(&self, path: &str, sent: &Arc<PropertiesSent>, epoch: u64) -> bool {
        let mut state = self.state();
        let known = state.reading == 0
            && state
                .last
                .get(path)
                .is_some_and(|(last, last_epoch)| *last_epoch == state.epoch && last == sent);
        if known {
            return false;
        }
        state
            .last
            .insert(path.to_owned(), (Arc::clone(sent), epoch));
        true
    }
}

/// A read of properties being answered (see [`Signalled::reading`]).
#[derive(Debug)]
pub(super) struct Reading {
    signalled: Signalled,
}

impl Drop for Reading {
    fn drop(&mut self) {
        let mut state = self.signalled.state();
        state.epoch += 1;
        state.reading -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/org/tokend/Broker1/providers/demo";

    fn sent(state: &str, to: &[&str]) -> Arc<PropertiesSent> {
        let to = Recipients::Unicast(to.iter().map(|n| (*n).to_owned()).collect());
        Arc::new(vec![(to, vec![("State", Value::from(state.to_owned()))])])
    }

    #[test]
    fn the_same_signal_to_the_same_peers_is_left_out() {
        let signalled = Signalled::default();
        assert!(signalled.replace(PATH, &sent("active", &[":1.1"]), signalled.epoch()));
        assert!(!signalled.replace(PATH, &sent("active", &[":1.1"]), signalled.epoch()));
        // Other values, other peers, another object: sent.
        assert!(signalled.replace(PATH, &sent("logged_out", &[":1.1"]), signalled.epoch()));
        assert!(signalled.replace(PATH, &sent("logged_out", &[":1.1", ":1.2"]), 0));
        assert!(signalled.replace("/other", &sent("logged_out", &[":1.1", ":1.2"]), 0));
        // What was sent in between counts, not an older signal to the
        // same peers: :1.1 last heard "logged_out".
        assert!(signalled.replace(PATH, &sent("active", &[":1.1"]), signalled.epoch()));
        assert!(signalled.replace(PATH, &sent("logged_out", &[":1.1", ":1.2"]), 0));
        assert!(signalled.replace(PATH, &sent("active", &[":1.1"]), signalled.epoch()));
        assert!(!signalled.replace(PATH, &sent("active", &[":1.1"]), signalled.epoch()));
    }

    #[test]
    fn a_read_of_properties_lets_the_next_signal_through() {
        let signalled = Signalled::default();
        assert!(signalled.replace(PATH, &sent("active", &[]), signalled.epoch()));
        // While a read is being answered, and once it has been.
        let reading = signalled.reading();
        assert!(signalled.replace(PATH, &sent("active", &[]), signalled.epoch()));
        assert!(signalled.replace(PATH, &sent("active", &[]), signalled.epoch()));
        drop(reading);
        assert!(signalled.replace(PATH, &sent("active", &[]), signalled.epoch()));
        assert!(!signalled.replace(PATH, &sent("active", &[]), signalled.epoch()));
        // A report read before a read began is older than what it may have
        // answered: the signal made of it does not stand for the state.
        let before = signalled.epoch();
        drop(signalled.reading());
        assert!(signalled.replace(PATH, &sent("active", &[]), before));
        assert!(signalled.replace(PATH, &sent("active", &[]), signalled.epoch()));
        assert!(!signalled.replace(PATH, &sent("active", &[]), signalled.epoch()));
    }

    #[test]
    fn a_forgotten_signal_is_sent_again() {
        let signalled = Signalled::default();
        assert!(signalled.replace(PATH, &sent("active", &[]), 0));
        signalled.forget(PATH);
        assert!(signalled.replace(PATH, &sent("active", &[]), 0));
        assert!(!signalled.replace(PATH, &sent("active", &[]), 0));
    }
}
