//! Extra event loops for socket connections, started when clients come at
//! once.
//!
//! The daemon's main thread serves everything, and one client at a time
//! needs nothing more. But a single thread writes every answer from one
//! CPU, and each answer wakes its client: with many clients at once, those
//! on other CPUs are woken across CPUs (an inter-processor interrupt, dear
//! on a VM) while those on the daemon's CPU take turns with it, and the
//! daemon's thread becomes the bottleneck while the other CPUs idle.
//! Measured on 2 CPUs with 16 clients (`cargo bench --bench socket`): one
//! thread answered 0.75× what a thread-per-connection floor does, with a
//! fifth of the machine idle; two event loops, 0.85–0.94×.
//!
//! So when a connection arrives while every event loop already has one
//! open, it goes to a new event loop on its own thread, up to one per CPU
//! (at most [`MAX_REACTORS`] in all, the main thread included); otherwise
//! to the loop with the fewest open connections, the main thread first on a
//! tie. An extra loop is a current-thread tokio runtime, like the main one;
//! a connection stays on the loop it was given. Nothing else moves: every
//! task the broker starts (refreshes, logins, store retries) runs on the
//! main runtime whichever loop asked for it (`Shared::spawn`), D-Bus stays
//! on the main thread, and a daemon whose clients come one at a time never
//! starts a second thread. The extra threads end once the socket is closed
//! and their last connection has ended.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// The most event loops serving the socket, the main thread included:
/// local clients asking for tokens gain nothing from more.
pub const MAX_REACTORS: usize = 4;

/// The extra event loops serving the socket, started on demand.
pub(super) struct Reactors {
    /// The main thread's open connections.
    main: Arc<AtomicUsize>,
    /// The extra loops started so far.
    extra: Vec<Reactor>,
    /// How many extra loops may be started.
    max_extra: usize,
    /// The connections running on extra loops; closed when the socket
    /// closes, after which each extra thread ends with its last connection.
    running: TaskTracker,
}

/// One extra event loop.
struct Reactor {
    handle: Handle,
    open: Arc<AtomicUsize>,
}

/// Where a connection is served, and its count on that loop, given back
/// when the connection ends (the guard is dropped).
pub(super) enum Placement {
    /// On the main thread.
    Main(OpenConnection),
    /// On an extra event loop.
    Extra(Handle, OpenConnection),
}

/// One open connection of an event loop; uncounted when dropped.
pub(super) struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn on(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(open))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Reactors {
    /// Up to one event loop per CPU the process may use, at most
    /// [`MAX_REACTORS`], the main thread included.
    pub(super) fn for_this_machine() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::new(cpus.clamp(1, MAX_REACTORS) - 1)
    }

    /// At most `max_extra` event loops besides the main thread.
    pub(super) fn new(max_extra: usize) -> Self {
        Self {
            main: Arc::new(AtomicUsize::new(0)),
            extra: Vec::new(),
            max_extra,
            running: TaskTracker::new(),
        }
    }

    /// Where the next connection goes (see the module doc).
    pub(super) fn place(&mut self) -> Placement {
        let main_open = self.main.load(Ordering::Relaxed);
        let least = self
            .extra
            .iter()
            .map(|r| r.open.load(Ordering::Relaxed))
            .enumerate()
            .min_by_key(|(_, open)| *open);
        let fewest = least.map_or(main_open, |(_, open)| open.min(main_open));
        if fewest > 0
            && let Some(placement) = self.start_one()
        {
            return placement;
        }
        match least {
            Some((i, open)) if open < main_open => {
                let r = &self.extra[i];
                Placement::Extra(r.handle.clone(), OpenConnection::on(&r.open))
            }
            _ => Placement::Main(OpenConnection::on(&self.main)),
        }
    }

    /// Starts one more event loop, if allowed and possible, and places a
    /// connection on it.
    fn start_one(&mut self) -> Option<Placement> {
        if self.extra.len() >= self.max_extra {
            return None;
        }
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                debug!("no extra event loop for the socket: {e}");
                return None;
            }
        };
        let handle = runtime.handle().clone();
        let running = self.running.clone();
        let started = std::thread::Builder::new()
            .name(format!("tokend-socket{}", self.extra.len() + 1))
            .spawn(move || runtime.block_on(running.wait()));
        if let Err(e) = started {
            debug!("no extra event loop for the socket: {e}");
            return None;
        }
        let open = Arc::new(AtomicUsize::new(0));
        let placement = Placement::Extra(handle.clone(), OpenConnection::on(&open));
        self.extra.push(Reactor { handle, open });
        Some(placement)
    }

    /// Runs `connection` on the extra loop `handle`, tracked so that the
    /// loop's thread outlives it.
    pub(super) fn spawn_on<F>(&self, handle: &Handle, connection: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        handle.spawn(self.running.track_future(connection));
    }

    /// The event loops started so far, the main thread included.
    #[cfg(test)]
    fn count(&self) -> usize {
        1 + self.extra.len()
    }
}

impl Drop for Reactors {
    fn drop(&mut self) {
        // The socket is closed: each extra thread ends once its
        // connections have.
        self.running.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_main(p: &Placement) -> bool {
        matches!(p, Placement::Main(_))
    }

    #[tokio::test]
    async fn one_client_at_a_time_stays_on_the_main_thread() {
        let mut reactors = Reactors::new(3);
        for _ in 0..10 {
            let placement = reactors.place();
            assert!(is_main(&placement));
            drop(placement);
        }
        assert_eq!(reactors.count(), 1);
    }

    #[tokio::test]
    async fn clients_at_once_spread_over_loops_up_to_the_limit() {
        let mut reactors = Reactors::new(1);
        let placements: Vec<Placement> = (0..6).map(|_| reactors.place()).collect();
        let on_main = placements.iter().filter(|p| is_main(p)).count();
        assert_eq!(reactors.count(), 2, "one extra loop, not more");
        assert_eq!(on_main, 3, "three connections on each loop");
    }

    #[tokio::test]
    async fn a_new_loop_starts_only_when_every_loop_has_a_connection() {
        let mut reactors = Reactors::new(3);
        let first = reactors.place();
        let second = reactors.place();
        assert!(is_main(&first));
        assert!(!is_main(&second));
        assert_eq!(reactors.count(), 2);
        drop(second);
        // The extra loop is idle again: it takes the next one, no new loop.
        let third = reactors.place();
        assert!(!is_main(&third));
        assert_eq!(reactors.count(), 2);
    }
}
