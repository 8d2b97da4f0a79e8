//! Telling the world when a session needs a person: the `on_event` program
//! and, for a daemon on the session bus, a desktop notification.
//!
//! Both follow broker events: `logged_in` (a login succeeded),
//! `login_required` (the provider ended the session), `refresh_failed`,
//! `refresh_token_expiring`; the program also follows the store:
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
//! the providers. The store's events wait for a run up to
//! [`MAX_STORE_EVENTS_WAITING`] (beyond, skipped and logged). Each run is killed after
//! [`RUN_TIMEOUT`] with every process it started (the run is a process
//! group of its own: a script's `curl` goes with the script). A stop does
//! not wait for runs: it kills the groups of those still going (systemd
//! would end them with the unit, but not every tokend runs under it), and
//! the events still waiting are not run (the log says how many). The
//! program's file is checked and started on the blocking pool, so a file
//! system that hangs holds that run only. A notification server that does not answer holds nothing: each
//! notification is sent on its own, for at most [`NOTIFY_TIMEOUT`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zbus::Connection;

use crate::broker::{Broker, BrokerEvent, EventFeed, StoreState};

mod desktop;
mod run;

use desktop::notify_of_events;
use run::{Run, run};

/// Runs of the `on_event` program at once.
pub const MAX_RUNNING: usize = 4;

/// The store's events (`store_unavailable`, `store_available`) that wait
/// for a run while [`MAX_RUNNING`] are going; one beyond is skipped. Its
/// outages are few, but a store that comes and goes every second behind
/// a hung program must not pile runs up for good.
pub const MAX_STORE_EVENTS_WAITING: usize = 64;

/// Skipped events' lines: a hung hook skips every event that comes (the
/// audit saw 716 lines in a second), so they are counted into a few lines.
static SKIPPED: crate::broker::refusal_log::RefusalLog =
    crate::broker::refusal_log::RefusalLog::new();

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
    let waiting = Arc::new(AtomicUsize::new(0));
    let runner = Runner {
        program,
        socket,
        slots: &slots,
        waiting: &waiting,
    };
    // The hooks follow from the end of start-up: a store already down
    // then (a keyring locked at boot) is said now, as it would have been.
    let mut store_was_available = true;
    let state = store.borrow_and_update().clone();
    runner.store_changed(&mut store_was_available, state);
    // The store's changes are watched while an event waits for a run too:
    // an outage that begins and ends meanwhile is still two runs.
    let mut store_changed = async |store_was_available: &mut bool| -> bool {
        // (The broker, alive here, keeps the sender.)
        if store.changed().await.is_err() {
            return false;
        }
        let state = store.borrow_and_update().clone();
        runner.store_changed(store_was_available, state);
        true
    };
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            going = store_changed(&mut store_was_available) => {
                if going {
                    continue;
                }
                return;
            }
            () = shutdown.cancelled() => {
                runner.say_not_run(&mut events, 0);
                return;
            }
        };
        let Some(event) = event else {
            return;
        };
        let Some(what) = happened(&event) else {
            continue;
        };
        let slot = loop {
            tokio::select! {
                slot = Arc::clone(&slots).acquire_owned() => match slot {
                    Ok(slot) => break slot,
                    Err(_) => return,
                },
                going = store_changed(&mut store_was_available) => {
                    if !going {
                        return;
                    }
                }
                () = shutdown.cancelled() => {
                    runner.say_not_run(&mut events, 1);
                    return;
                }
            }
        };
        runner.start(
            slot,
            what.provider.to_owned(),
            what.event,
            what.reason.map(str::to_owned),
        );
    }
}

/// Starts runs of the `on_event` program, within [`MAX_RUNNING`].
struct Runner<'a> {
    program: &'a [String],
    socket: &'a Path,
    slots: &'a Arc<Semaphore>,
    /// The store's events waiting for a slot.
    waiting: &'a Arc<AtomicUsize>,
}

impl Runner<'_> {
    /// Runs the program when the store became unavailable or available
    /// again (`was_available` says how it was last said to be). A new
    /// reason during an outage is no event for the program.
    fn store_changed(&self, was_available: &mut bool, state: StoreState) {
        if state.is_available() == *was_available {
            return;
        }
        *was_available = state.is_available();
        let (event, reason) = match state {
            StoreState::Available => ("store_available", None),
            StoreState::Unavailable { error, .. } => ("store_unavailable", Some(error.to_string())),
        };
        self.spawn_waiting(event, reason);
    }

    /// Runs the program for the store's `event` at once or when a slot is
    /// free (in order), unless [`MAX_STORE_EVENTS_WAITING`] wait already.
    fn spawn_waiting(&self, event: &'static str, reason: Option<String>) {
        if let Ok(slot) = Arc::clone(self.slots).try_acquire_owned() {
            self.start(slot, String::new(), event, reason);
            return;
        }
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        if waiting >= MAX_STORE_EVENTS_WAITING {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            if let Some(untold) = SKIPPED.admit(std::time::Instant::now()) {
                let earlier = crate::broker::refusal_log::not_logged_note_of(untold, "skips");
                warn!(
                    hook_event = event,
                    event = "on_event_skipped",
                    "on_event skipped: {MAX_RUNNING} runs are still going and {waiting} of the \
                     store's events wait{earlier}"
                );
            }
            return;
        }
        let (slots, waiting) = (Arc::clone(self.slots), Arc::clone(self.waiting));
        let (argv, socket) = (self.program.to_vec(), self.socket.to_owned());
        let at = unix_now();
        tokio::spawn(async move {
            // The semaphore hands slots out in the order they were asked.
            let slot = slots.acquire_owned().await;
            waiting.fetch_sub(1, Ordering::SeqCst);
            let Ok(slot) = slot else { return };
            let what = Run {
                provider: "",
                event,
                reason: reason.as_deref(),
                at,
            };
            run(&argv, &socket, &what, RUN_TIMEOUT).await;
            drop(slot);
        });
    }

    /// Runs the program for `event` of `provider` (empty for the store's
    /// events) in `slot`, now.
    fn start(
        &self,
        slot: tokio::sync::OwnedSemaphorePermit,
        provider: String,
        event: &'static str,
        reason: Option<String>,
    ) {
        let (argv, socket) = (self.program.to_vec(), self.socket.to_owned());
        // When it happened, for a hook that runs late (behind a hung one).
        let at = unix_now();
        // Not a tracked task: a stop does not wait for the program (its
        // run would hold every stop up to the grace, and be reported as a
        // request left unanswered).
        tokio::spawn(async move {
            let what = Run {
                provider: &provider,
                event,
                reason: reason.as_deref(),
                at,
            };
            run(&argv, &socket, &what, RUN_TIMEOUT).await;
            drop(slot);
        });
    }

    /// At a stop: says how many events were not run (`held`: taken from
    /// the feed, waiting for a slot), if any.
    fn say_not_run(&self, events: &mut EventFeed, held: usize) {
        let in_feed = std::iter::from_fn(|| events.try_recv())
            .filter(|event| happened(event).is_some())
            .count();
        let left = self.waiting.load(Ordering::SeqCst) + held + in_feed;
        if left > 0 {
            info!(
                "{left} on_event runs that waited for a free one were not started: tokend is stopping"
            );
        }
    }
}

/// Now, in Unix seconds (`EVENT_TIME`).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
