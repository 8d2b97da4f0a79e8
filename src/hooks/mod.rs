//! Telling the world when a session needs a person: the `on_event` program
//! and, for a daemon on the session bus, a desktop notification.
//!
//! Both follow broker events: `logged_in` (a login succeeded),
//! `login_required` (the provider ended the session), `refresh_failed`
//! and its end `refresh_recovered`, `refresh_token_expiring`; the program also follows the store:
//! `store_unavailable` (with why) and `store_available`, which concern no
//! provider. The program gets `EVENT` and `PROVIDER` (empty for the store's
//! events) in its environment and nothing secret: no token is in any
//! event. Runs are bounded so a hanging or slow
//! program cannot pile up: at most [`MAX_RUNNING`] at once. The events that
//! find them all busy wait in the broker's [`EventFeed`], which keeps for
//! each provider the latest of each kind (a provider's `refresh_failed`
//! repeated meanwhile runs once): none is skipped however many sessions
//! need a person at once (2,000 revoked together lost 853 of their
//! `login_required` runs to a queue of 1,024), and what waits is bounded by
//! the providers. The store's events wait too, first served: its changes
//! while runs are busy fold to at most two (the outage's start and the
//! state now), so a hook always hears the one that ends an alert. Each
//! run is told when its event happened (`EVENT_TIME`). Each run is killed after
//! [`RUN_TIMEOUT`] with every process it started (the run is a process
//! group of its own: a script's `curl` goes with the script). A stop does
//! not wait for runs: it kills the groups of those still going (systemd
//! would end them with the unit, but not every tokend runs under it), and
//! the events still waiting are not run (the log says how many). The
//! program's file is checked and started on the blocking pool, so a file
//! system that hangs holds that run only. A notification server that does not answer holds nothing: each
//! notification is sent on its own, for at most [`NOTIFY_TIMEOUT`].

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::info;
use zbus::Connection;

use crate::broker::{Broker, BrokerEvent, EventFeed, StoreState};

mod desktop;
mod run;

use desktop::notify_of_events;
use run::{Run, run};

/// Runs of the `on_event` program at once.
pub const MAX_RUNNING: usize = 4;

/// A run still going after this long is killed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// A desktop notification not answered within this long is given up.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// An event for the outside, as hooks name it.
struct Happened<'a> {
    provider: &'a str,
    event: &'static str,
    reason: Option<&'a str>,
}

fn happened(event: &BrokerEvent) -> Option<Happened<'_>> {
    match event {
        BrokerEvent::LoginFinished {
            provider, ok: true, ..
        } => Some(Happened {
            provider,
            event: "logged_in",
            reason: None,
        }),
        BrokerEvent::Attention {
            provider,
            kind,
            reason,
        } => Some(Happened {
            provider,
            event: kind.name(),
            reason: Some(reason),
        }),
        _ => None,
    }
}

/// The feeds the hooks follow, taken before the broker starts (so that a
/// session's first refresh, which may fail at once, is not missed): one for
/// the program's runs and one for the desktop's notifications, so that a
/// slow program holds no notification.
#[derive(Debug)]
pub struct HookFeeds {
    program: EventFeed,
    desktop: EventFeed,
}

impl HookFeeds {
    /// Follows `broker`'s events from now on.
    #[must_use]
    pub fn follow(broker: &Broker) -> Self {
        Self {
            program: broker.follow(),
            desktop: broker.follow(),
        }
    }
}

/// Follows `broker`'s events (`feeds`) until `shutdown`: runs `program`
/// (argv, may be empty: none) and, when `desktop` is a session-bus
/// connection, shows a notification for sessions that need a login.
pub async fn follow_events(
    broker: Broker,
    feeds: HookFeeds,
    program: Vec<String>,
    socket: PathBuf,
    desktop: Option<Connection>,
    shutdown: CancellationToken,
) {
    let HookFeeds {
        program: program_events,
        desktop: desktop_events,
    } = feeds;
    // A feed no one follows is let go: the broker stops filling it.
    let notifications = async {
        if let Some(bus) = desktop {
            notify_of_events(bus, desktop_events, &shutdown).await;
        }
    };
    let runs = async {
        if !program.is_empty() {
            run_for_events(&broker, program_events, &program, &socket, &shutdown).await;
        }
    };
    tokio::join!(notifications, runs);
}

/// Runs `program` for each event of the feed and of the store, until
/// `shutdown`. An event is taken from the feed only once a run is free for
/// it: those behind it wait there, folded per provider and kind.
async fn run_for_events(
    broker: &Broker,
    mut events: EventFeed,
    program: &[String],
    socket: &Path,
    shutdown: &CancellationToken,
) {
    let mut store = broker.store_changes();
    let slots = Arc::new(Semaphore::new(MAX_RUNNING));
    let runner = Runner { program, socket };
    let mut store_events = StoreEvents::default();
    // The hooks follow from the end of start-up: a store already down
    // then (a keyring locked at boot) is said now, as it would have been.
    store_events.take_change(true, &mut store);
    loop {
        // The next thing to run: the store's first, then the feed's.
        let next = if let Some(next) = store_events.take() {
            next
        } else {
            tokio::select! {
                e = events.recv_dated() => match e {
                    Some((event, at)) => match happened(&event) {
                        Some(what) => Pending {
                            provider: what.provider.to_owned(),
                            event: what.event,
                            reason: what.reason.map(str::to_owned),
                            at,
                        },
                        None => continue,
                    },
                    None => return,
                },
                changed = store.changed() => {
                    if !store_events.take_change(changed.is_ok(), &mut store) {
                        return;
                    }
                    continue;
                }
                () = shutdown.cancelled() => {
                    say_not_run(&mut events, &store_events, 0);
                    return;
                }
            }
        };
        // One wait for a slot, kept while the store changes meanwhile (a
        // new wait would queue behind every other).
        let free = Arc::clone(&slots).acquire_owned();
        tokio::pin!(free);
        let slot = loop {
            tokio::select! {
                slot = &mut free => match slot {
                    Ok(slot) => break slot,
                    Err(_) => return,
                },
                changed = store.changed() => {
                    if !store_events.take_change(changed.is_ok(), &mut store) {
                        return;
                    }
                }
                () = shutdown.cancelled() => {
                    say_not_run(&mut events, &store_events, 1);
                    return;
                }
            }
        };
        runner.start(slot, next);
    }
}

/// An event waiting for its run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    provider: String,
    event: &'static str,
    reason: Option<String>,
    /// When it happened.
    at: SystemTime,
}

/// The store's changes not yet run: at most two, since they alternate
/// (unavailable, available, ...): a third undoes the second, and the
/// first and the state now are what a hook needs to hear (an outage
/// began; it is over, or not).
#[derive(Debug, Default)]
struct StoreEvents {
    waiting: VecDeque<Pending>,
    /// Whether the store was last said to be down.
    said_down: bool,
}

impl StoreEvents {
    /// Takes the change the store's watch announced (`announced`: its
    /// `changed()` was Ok); false once the watch is gone, with the broker.
    fn take_change(
        &mut self,
        announced: bool,
        store: &mut tokio::sync::watch::Receiver<StoreState>,
    ) -> bool {
        if !announced {
            return false;
        }
        let state = store.borrow_and_update().clone();
        self.changed(state);
        true
    }

    /// Takes the store's `state`. A new reason during an outage is no
    /// event.
    fn changed(&mut self, state: StoreState) {
        if state.is_available() != self.said_down {
            return;
        }
        self.said_down = !state.is_available();
        let (event, reason) = match state {
            StoreState::Available => ("store_available", None),
            StoreState::Unavailable { error, .. } => ("store_unavailable", Some(error.to_string())),
        };
        if self.waiting.len() >= 2 {
            // [A, B] then A again: B undone, A stands.
            self.waiting.pop_back();
            return;
        }
        self.waiting.push_back(Pending {
            provider: String::new(),
            event,
            reason,
            at: SystemTime::now(),
        });
    }

    fn take(&mut self) -> Option<Pending> {
        self.waiting.pop_front()
    }
}

/// Starts runs of the `on_event` program.
struct Runner<'a> {
    program: &'a [String],
    socket: &'a Path,
}

impl Runner<'_> {
    /// Runs the program for `pending` in `slot`, now.
    fn start(&self, slot: tokio::sync::OwnedSemaphorePermit, pending: Pending) {
        let (argv, socket) = (self.program.to_vec(), self.socket.to_owned());
        // Not a tracked task: a stop does not wait for the program (its
        // run would hold every stop up to the grace, and be reported as a
        // request left unanswered).
        tokio::spawn(async move {
            let what = Run {
                provider: &pending.provider,
                event: pending.event,
                reason: pending.reason.as_deref(),
                at: unix_secs(pending.at),
            };
            run(&argv, &socket, &what, RUN_TIMEOUT).await;
            drop(slot);
        });
    }
}

/// At a stop: says how many events were not run (`held`: one taken,
/// waiting for a slot), if any.
fn say_not_run(events: &mut EventFeed, store_events: &StoreEvents, held: usize) {
    let in_feed = std::iter::from_fn(|| events.try_recv())
        .filter(|event| happened(event).is_some())
        .count();
    let left = store_events.waiting.len() + held + in_feed;
    if left > 0 {
        info!(
            "{left} on_event runs that waited for a free one were not started: tokend is stopping"
        );
    }
}

/// `at` in Unix seconds (`EVENT_TIME`).
fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::AttentionKind;
    use crate::store::StoreError;

    /// A login that worked is `logged_in`; one that failed or was
    /// cancelled is no event of the hooks (it ran the `logged_in` hook,
    /// and notified nothing); a session needing a person is its kind's
    /// event, and so notifies: now (`login_required`) or soon
    /// (`refresh_token_expiring`); a refresh that failed notifies nothing.
    #[test]
    fn only_a_login_that_worked_is_logged_in_and_only_a_need_notifies() {
        let finished = |ok| BrokerEvent::LoginFinished {
            provider: "demo".into(),
            ok,
            message: String::new(),
            policy: std::sync::Arc::new(crate::broker::AccessPolicy::owner_only(1000)),
        };
        let worked = finished(true);
        let said = happened(&worked).expect("an event");
        assert_eq!((said.provider, said.event), ("demo", "logged_in"));
        assert!(happened(&finished(false)).is_none());
        let attention = |kind| BrokerEvent::Attention {
            provider: "demo".into(),
            kind,
            reason: "why".into(),
        };
        for (kind, notified) in [
            (AttentionKind::LoginRequired, true),
            (AttentionKind::RefreshTokenExpiring, true),
            (AttentionKind::RefreshFailed, false),
            (AttentionKind::RefreshRecovered, false),
        ] {
            let event = attention(kind);
            assert_eq!(happened(&event).map(|h| h.event), Some(kind.name()));
            assert_eq!(desktop::notifies(&event), notified, "{kind:?}");
        }
        assert!(!desktop::notifies(&finished(false)));
    }

    fn down(reason: &str) -> StoreState {
        StoreState::Unavailable {
            error: StoreError::Locked {
                store: "test store",
                reason: reason.into(),
            },
            since: SystemTime::UNIX_EPOCH,
        }
    }

    fn waiting(store_events: &StoreEvents) -> Vec<&'static str> {
        store_events.waiting.iter().map(|p| p.event).collect()
    }

    /// The store's changes while every run is busy fold to at most two:
    /// the first outage's start and the state now, so a hook that raised
    /// an alert always hears the change that ends it (a cap of 64 waiting
    /// skipped the 65th, a `store_available` among them); a new reason
    /// during an outage is no change.
    #[test]
    fn the_stores_changes_fold_to_the_first_and_the_last() {
        let mut events = StoreEvents::default();
        events.changed(StoreState::Available);
        assert!(waiting(&events).is_empty());
        events.changed(down("locked"));
        events.changed(down("still locked"));
        events.changed(StoreState::Available);
        assert_eq!(waiting(&events), ["store_unavailable", "store_available"]);
        for _ in 0..100 {
            events.changed(down("locked again"));
            events.changed(StoreState::Available);
        }
        assert_eq!(waiting(&events), ["store_unavailable", "store_available"]);
        events.changed(down("locked again"));
        assert_eq!(waiting(&events), ["store_unavailable"]);
        let first = events.take().unwrap();
        assert!(
            first
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("locked")),
            "{first:?}"
        );
        assert!(events.take().is_none());
    }
}
