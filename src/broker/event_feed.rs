//! A feed of the broker's events that loses none: for the front-ends whose
//! followers act on each one (D-Bus signals, `on_event` and the desktop
//! notification).
//!
//! The broker's broadcast channel holds a fixed number of events and drops
//! the oldest when a follower falls behind it: a burst of refreshes (2,000
//! sessions after a resume, three events each) pushed out a
//! `login_required` the hooks had not run yet, or a `LoginFinished` a D-Bus
//! client waited for. A feed instead keeps, for each provider and kind of
//! event, the latest one not yet taken: a follower that falls behind gets
//! every kind of thing that happened to every provider, in the order of
//! their latest occurrences, with repeats folded into the last (three
//! refreshes of one provider are one `TokenRefreshed` with the newest
//! expiry; a refresh that failed five times is one `refresh_failed`). What
//! it holds is bounded by the providers and kinds, however long the
//! follower is away. A reload's changes are never folded: each one's
//! objects appear and disappear in turn.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::SystemTime;

use tokio::sync::Notify;

use super::events::{AttentionKind, BrokerEvent};

/// The follower's end of a feed (see the module's doc).
#[derive(Debug)]
pub struct EventFeed {
    queue: Arc<Queue>,
}

impl EventFeed {
    /// The next event, waiting for one; `None` once the broker is gone and
    /// every event is taken.
    pub async fn recv(&mut self) -> Option<BrokerEvent> {
        self.recv_dated().await.map(|(event, _)| event)
    }

    /// [`Self::recv`], with when the event was sent (its latest
    /// occurrence's): a follower that acts late says when it happened.
    pub async fn recv_dated(&mut self) -> Option<(BrokerEvent, SystemTime)> {
        let queue = &self.queue;
        loop {
            if let Some(dated) = queue.lock().pop() {
                return Some(dated);
            }
            if queue.closed.load(Ordering::SeqCst) {
                return queue.lock().pop();
            }
            // A push between the look and this wait left its permit
            // (`notify_one`: one follower per feed), which ends it at once.
            queue.ready.notified().await;
        }
    }

    /// The next event if one waits.
    pub fn try_recv(&mut self) -> Option<BrokerEvent> {
        self.queue.lock().pop().map(|(event, _)| event)
    }
}

/// The broker's end: every feed handed out, as long as its follower keeps it.
#[derive(Debug, Default)]
pub(crate) struct FeedHub {
    feeds: Mutex<Vec<Weak<Queue>>>,
}

impl FeedHub {
    /// A new feed, which gets every event sent from now on.
    pub(crate) fn follow(&self) -> EventFeed {
        let queue = Arc::new(Queue::default());
        self.lock().push(Arc::downgrade(&queue));
        EventFeed { queue }
    }

    /// Hands `event` to every feed still followed.
    pub(crate) fn send(&self, event: &BrokerEvent) {
        let at = SystemTime::now();
        let mut feeds = self.lock();
        feeds.retain(|feed| {
            let Some(queue) = feed.upgrade() else {
                return false;
            };
            queue.lock().push(event.clone(), at);
            queue.ready.notify_one();
            true
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Queue>>> {
        self.feeds.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FeedHub {
    /// The broker is gone: followers take what is left, then hear the end.
    fn drop(&mut self) {
        for queue in self.lock().iter().filter_map(Weak::upgrade) {
            queue.closed.store(true, Ordering::SeqCst);
            queue.ready.notify_one();
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    pending: Mutex<Pending>,
    ready: Notify,
    closed: AtomicBool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a later event replaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// The latest of one kind of event of one provider.
    Provider { provider: String, kind: Kind },
    /// One event that replaces none (a reload's changes), by its number.
    Own(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    LoginPrompt,
    /// Apart by outcome: a login that failed after one that worked must
    /// not hide the success (a hook's `logged_in`, a D-Bus client's
    /// `LoginFinished` true).
    LoginFinished {
        ok: bool,
    },
    TokenRefreshed,
    Attention(AttentionKind),
    StateChanged,
}

/// The events not yet taken: the latest of each key, and the keys in the
/// order their latest events came.
#[derive(Debug, Default)]
struct Pending {
    /// Each key with the number of its latest event; an entry whose number
    /// is not its key's latest any more was replaced, and is skipped.
    order: VecDeque<(Key, u64)>,
    latest: HashMap<Key, (u64, BrokerEvent, SystemTime)>,
    /// The number of the next event.
    next: u64,
}

/// Replaced entries of `order` beyond which it is compacted, so that a
/// follower away for long holds no more than its latest events (and this).
const MAX_REPLACED: usize = 64;

impl Pending {
    fn push(&mut self, event: BrokerEvent, at: SystemTime) {
        let number = self.next;
        self.next += 1;
        let key = key_of(&event, number);
        self.order.push_back((key.clone(), number));
        match self.latest.entry(key) {
            Entry::Occupied(mut entry) => {
                entry.insert((number, event, at));
            }
            Entry::Vacant(entry) => {
                entry.insert((number, event, at));
            }
        }
        if self.order.len() > 2 * self.latest.len() + MAX_REPLACED {
            let latest = &self.latest;
            self.order
                .retain(|(key, number)| latest.get(key).is_some_and(|(n, ..)| n == number));
        }
    }

    fn pop(&mut self) -> Option<(BrokerEvent, SystemTime)> {
        while let Some((key, number)) = self.order.pop_front() {
            if let Entry::Occupied(entry) = self.latest.entry(key)
                && entry.get().0 == number
            {
                let (_, event, at) = entry.remove();
                return Some((event, at));
            }
        }
        None
    }
}

fn key_of(event: &BrokerEvent, number: u64) -> Key {
    let (provider, kind) = match event {
        BrokerEvent::LoginPrompt { provider, .. } => (provider, Kind::LoginPrompt),
        BrokerEvent::LoginFinished { provider, ok, .. } => {
            (provider, Kind::LoginFinished { ok: *ok })
        }
        BrokerEvent::TokenRefreshed { provider, .. } => (provider, Kind::TokenRefreshed),
        BrokerEvent::Attention { provider, kind, .. } => (provider, Kind::Attention(*kind)),
        BrokerEvent::StateChanged { provider } => (provider, Kind::StateChanged),
        BrokerEvent::ProvidersChanged { .. } => return Key::Own(number),
    };
    Key::Provider {
        provider: provider.clone(),
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refreshed(provider: &str, expires_at: i64) -> BrokerEvent {
        BrokerEvent::TokenRefreshed {
            provider: provider.into(),
            expires_at: Some(expires_at),
        }
    }

    fn changed(provider: &str) -> BrokerEvent {
        BrokerEvent::StateChanged {
            provider: provider.into(),
        }
    }

    fn attention(provider: &str, kind: AttentionKind, reason: &str) -> BrokerEvent {
        BrokerEvent::Attention {
            provider: provider.into(),
            kind,
            reason: reason.into(),
        }
    }

    fn reload(added: &str) -> BrokerEvent {
        BrokerEvent::ProvidersChanged {
            added: vec![added.into()],
            removed: Vec::new(),
            changed: Vec::new(),
            previous_policies: Vec::new(),
        }
    }

    fn drain(feed: &mut EventFeed) -> Vec<BrokerEvent> {
        std::iter::from_fn(|| feed.try_recv()).collect()
    }

    /// A follower that keeps up gets every event as it came; one that
    /// waited gets a repeat once, where it last came.
    #[test]
    fn events_come_in_order() {
        let hub = FeedHub::default();
        let mut feed = hub.follow();
        let sent = [changed("a"), refreshed("a", 10), changed("b"), changed("a")];
        for event in &sent {
            hub.send(event);
        }
        // Sent before any was taken: `changed a` twice, the later one
        // stands, in its own place.
        assert_eq!(
            drain(&mut feed),
            [refreshed("a", 10), changed("b"), changed("a")]
        );
        for event in &sent {
            hub.send(event);
            assert_eq!(feed.try_recv().as_ref(), Some(event));
        }
        assert_eq!(feed.try_recv(), None);
    }

    /// Far more events than the broadcast channel holds, none taken: the
    /// `login_required` sent first is still there, and each provider's
    /// latest expiry; the feed holds one event per provider and kind.
    #[test]
    fn a_follower_behind_a_burst_loses_no_kind_of_event() {
        let hub = FeedHub::default();
        let mut feed = hub.follow();
        hub.send(&attention("x", AttentionKind::LoginRequired, "revoked"));
        for round in 0..5 {
            for n in 0..2_000 {
                let provider = format!("p{n}");
                hub.send(&changed(&provider));
                hub.send(&refreshed(&provider, round));
                hub.send(&changed(&provider));
            }
        }
        {
            let pending = feed.queue.lock();
            assert_eq!(pending.latest.len(), 1 + 2 * 2_000);
            assert!(
                pending.order.len() <= 2 * pending.latest.len() + MAX_REPLACED,
                "{}",
                pending.order.len()
            );
        }
        let got = drain(&mut feed);
        assert_eq!(got.len(), 1 + 2 * 2_000);
        assert_eq!(
            got[0],
            attention("x", AttentionKind::LoginRequired, "revoked")
        );
        for n in 0..2_000 {
            let provider = format!("p{n}");
            assert_eq!(got[1 + 2 * n], refreshed(&provider, 4));
            assert_eq!(got[2 + 2 * n], changed(&provider));
        }
    }

    /// Kinds of one provider are kept apart (a failure and the login
    /// required after it), and so are a reload's changes.
    #[test]
    fn kinds_and_reloads_are_not_folded_together() {
        let hub = FeedHub::default();
        let mut feed = hub.follow();
        hub.send(&attention("a", AttentionKind::RefreshFailed, "503"));
        hub.send(&reload("b"));
        hub.send(&attention("a", AttentionKind::LoginRequired, "revoked"));
        hub.send(&reload("c"));
        hub.send(&attention("a", AttentionKind::RefreshFailed, "timeout"));
        assert_eq!(
            drain(&mut feed),
            [
                reload("b"),
                attention("a", AttentionKind::LoginRequired, "revoked"),
                reload("c"),
                attention("a", AttentionKind::RefreshFailed, "timeout"),
            ]
        );
    }

    fn finished(provider: &str, ok: bool) -> BrokerEvent {
        BrokerEvent::LoginFinished {
            provider: provider.into(),
            ok,
            message: if ok { "logged in" } else { "cancelled" }.into(),
            policy: Arc::new(crate::broker::AccessPolicy::owner_only(0)),
        }
    }

    /// A login that worked and one that failed after it, both waiting: the
    /// success stays (a hook's `logged_in` was lost behind the failure of
    /// a second login, and a D-Bus client was told only of the failure);
    /// two successes are one.
    #[test]
    fn a_failed_login_does_not_hide_the_one_that_worked() {
        let hub = FeedHub::default();
        let mut feed = hub.follow();
        hub.send(&finished("a", true));
        hub.send(&finished("a", false));
        hub.send(&finished("b", true));
        hub.send(&finished("b", true));
        assert_eq!(
            drain(&mut feed),
            [
                finished("a", true),
                finished("a", false),
                finished("b", true)
            ]
        );
    }

    /// An event is dated when it was sent, not when it is taken: a hook
    /// run late (behind busy ones) was told the time it started.
    #[tokio::test]
    async fn an_event_is_dated_when_it_was_sent() {
        let hub = FeedHub::default();
        let mut feed = hub.follow();
        let before = SystemTime::now();
        hub.send(&changed("a"));
        let after = SystemTime::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (event, at) = feed.recv_dated().await.unwrap();
        assert_eq!(event, changed("a"));
        assert!(before <= at && at <= after, "{at:?}");
    }

    /// A waiting follower wakes for an event; once the broker is gone it
    /// takes what is left and then hears the end. A dropped feed is no
    /// longer sent to.
    #[tokio::test]
    async fn a_follower_waits_and_hears_the_end() {
        let hub = FeedHub::default();
        let mut feed = hub.follow();
        let dropped = hub.follow();
        drop(dropped);
        let waiting = tokio::spawn(async move {
            let first = feed.recv().await;
            (first, feed)
        });
        tokio::task::yield_now().await;
        hub.send(&changed("a"));
        let (first, mut feed) = waiting.await.unwrap();
        assert_eq!(first, Some(changed("a")));
        assert_eq!(hub.lock().len(), 1);
        hub.send(&changed("b"));
        drop(hub);
        assert_eq!(feed.recv().await, Some(changed("b")));
        assert_eq!(feed.recv().await, None);
    }
}
