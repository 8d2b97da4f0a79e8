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

use std::ffi::CStr;
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
/// `None` when the descriptor fails. Events of tokend's own temporary
/// files are no news (see [`read_queued`]).
async fn next_change(ready: &AsyncFd<OwnedFd>) -> Option<()> {
    loop {
        let mut guard = ready.readable().await.ok()?;
        let news = read_queued(ready.get_ref()).ok()?;
        guard.clear_ready();
        if news {
            return Some(());
        }
    }
}

/// Reads every event queued on the (non-blocking) inotify descriptor `fd`:
/// whether one is news of the store, that is anything but tokend's own
/// temporary files (`.NAME….tmp`) coming and going. The retry loop's probe
/// writes one (a session's save) and removes it when the write fails: on a
/// full disk those events made the next probe come a second later, each
/// with its warning, for as long as the disk stayed full.
fn read_queued(fd: &OwnedFd) -> Result<bool, Errno> {
    // Room for several events with names of any length (NAME_MAX is 255).
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut events = inotify::Reader::new(fd, &mut buf);
    let mut news = false;
    loop {
        match events.next() {
            Ok(event) => news |= !is_own_temp_file(event.file_name().map(CStr::to_bytes)),
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Ok(news),
            Err(e) => return Err(e),
        }
    }
}

/// Whether an event's file name is one of tokend's own temporary files: a
/// record being written (`.NAME.PID.N.tmp`), a record's spare
/// (`.NAME.spare`, made, renamed and removed by saves) or the logout
/// journal's (`.pending-logouts.tmp`). An event of the directory itself (no name),
/// or a queue overflow, is news.
fn is_own_temp_file(name: Option<&[u8]>) -> bool {
    name.is_some_and(|name| {
        name.starts_with(b".") && (name.ends_with(b".tmp") || name.ends_with(b".spare"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A probe's save on a full disk makes and removes its temporary file:
    /// no news. A directory made, a record removed or a mode changed is.
    #[test]
    fn own_temporary_files_are_no_news() {
        let dir = tempfile::tempdir().unwrap();
        let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC).unwrap();
        inotify::add_watch(&fd, dir.path(), watched_changes()).unwrap();
        assert_eq!(read_queued(&fd), Ok(false), "nothing happened");
        for temp in [".demo.4242.1.tmp", ".pending-logouts.tmp", ".demo.spare"] {
            let path = dir.path().join(temp);
            std::fs::write(&path, b"x").unwrap();
            std::fs::remove_file(&path).unwrap();
        }
        // inotify queues an event as the call that caused it returns.
        assert_eq!(read_queued(&fd), Ok(false), "tokend's own files");
        std::fs::write(dir.path().join("demo.session"), b"x").unwrap();
        assert_eq!(read_queued(&fd), Ok(true), "a record made");
        std::fs::create_dir(dir.path().join("sessions")).unwrap();
        assert_eq!(read_queued(&fd), Ok(true), "a directory made");
        assert!(is_own_temp_file(Some(b".gh.1.2.tmp")));
        assert!(!is_own_temp_file(None));
        assert!(!is_own_temp_file(Some(b"gh.session")));
    }
}
