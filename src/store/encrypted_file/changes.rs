//! Notices that the encrypted file store's directory may be usable again,
//! for the broker's retry loop during an outage (see
//! [`Store::change_feed`](crate::store::Store::change_feed)).
//!
//! Without them, an outage ends at the retry loop's next probe (15 to 30 s
//! after it began, then up to 5 minutes apart). What an operator does to
//! end one is mostly seen by inotify: the records' directory or the state
//! directory made again, moved back or replaced (`mkdir`, `mv`, `rm` of a
//! file in its place), their owner or mode changed (`chown`, `chmod`). So
//! the feed watches the records' directory, the state directory and the
//! directory above it for entries made, moved or removed and for changed
//! attributes. What it cannot see is left to the schedule: a disk with room
//! again, a file system mounted or remounted writable.
//!
//! A notice only makes the loop probe (at most once a second): a change
//! that mends nothing costs one probe. The watches are made when the outage
//! begins and dropped with the feed when it ends.

use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;

use futures_util::stream;
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use rustix::io::Errno;
use tokio::io::unix::AsyncFd;

use crate::store::ChangeFeed;

/// What is watched in each directory.
fn watched_changes() -> WatchFlags {
    WatchFlags::ATTRIB
        | WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
}

/// Watches `records` (the records' directory), its parent and the one
/// above; `None` when none of them could be watched (none exists, or
/// inotify's limits are reached): the loop then has only its schedule.
pub(super) fn feed(records: &Path) -> Option<ChangeFeed> {
    let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC).ok()?;
    let watches = records
        .ancestors()
        .take(3)
        .filter(|dir| inotify::add_watch(&fd, *dir, watched_changes()).is_ok())
        .count();
    if watches == 0 {
        return None;
    }
    // Registered with the runtime at the first poll: the feed is made on
    // the blocking pool, and read by the retry loop's task.
    let notices = stream::unfold(Watch::Made(fd), |watch| async move {
        let ready = match watch {
            // See `broker::wall_timer`: an `OwnedFd` held by the `AsyncFd`
            // is the sound use of the deprecated constructor.
            #[allow(deprecated)]
            Watch::Made(fd) => AsyncFd::new(fd).ok()?,
            Watch::Registered(ready) => ready,
        };
        next_change(&ready).await?;
        Some(((), Watch::Registered(ready)))
    });
    Some(Box::pin(notices))
}

/// The inotify descriptor, before and after it is registered with the
/// runtime.
enum Watch {
    Made(OwnedFd),
    Registered(AsyncFd<OwnedFd>),
}

/// Waits for events and reads every one queued (a burst is one notice);
/// `None` when the descriptor fails.
async fn next_change(ready: &AsyncFd<OwnedFd>) -> Option<()> {
    // Room for several events with names of any length (NAME_MAX is 255).
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    loop {
        let mut guard = ready.readable().await.ok()?;
        let mut read_any = false;
        loop {
            match rustix::io::read(ready.get_ref(), &mut buf) {
                Ok(_) => read_any = true,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => break,
                Err(_) => return None,
            }
        }
        guard.clear_ready();
        if read_any {
            return Some(());
        }
    }
}
