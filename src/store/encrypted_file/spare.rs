//! The spare file of a provider's record: the file its next save writes.
//!
//! A save into a new file pays for the file before the rename: an inode
//! made, its blocks allocated and its length set, which `fsync` must make
//! durable with a journal commit of their own (on ext4) ahead of the
//! rename's. So a save swaps its file with the record
//! (`renameat2(RENAME_EXCHANGE)`) instead of renaming over it: the old
//! record's file, allocated and a record long, stays behind under the
//! spare's name, and the next save writes over it in place and flushes its
//! data alone (`fdatasync`: nothing about the file changed but its
//! contents, as the new record is as long as the old one; see
//! [`super::save::padded_record`]), then swaps again. Measured on ext4 on this
//! project's machine: a fifth to a third less time for a save.
//!
//! A crash at any point still leaves the old record or the new one: the
//! record's name only ever names a complete record, flushed before the
//! swap, and the swap is one step; what the spare holds matters to nobody
//! until it has been flushed and swapped in. A record file is never
//! written while it is the record.
//!
//! One spare per record, `.NAME.spare` (hidden, as the temporary files
//! are), kept across restarts: the first save after a start uses it too.
//! It is written in place, so two writers of one spare at once could swap
//! a mix of two records in: the saves of one record never run at once in
//! a daemon (the broker's `record_writes` slots run them one at a time),
//! and a second daemon on the store is refused by the store's lock (see
//! [`crate::store::lock`]). A logout removes the spare with the record (it
//! holds an earlier record, sealed with the same key), and so does
//! `tokend --prune`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, OFlags, RenameFlags};
use rustix::io::Errno;

/// The suffix of a spare's name (`.NAME.spare`): not a temporary file's
/// (`.tmp`), which the daemon removes at its start.
const SPARE_SUFFIX: &str = ".spare";

/// The provider whose spare is named `file_name`, if it is a spare's name.
pub(super) fn provider_of(file_name: &str) -> Option<&str> {
    file_name.strip_prefix('.')?.strip_suffix(SPARE_SUFFIX)
}

/// The spare of `provider`'s record, in `directory`.
pub(super) fn path_of(directory: &Path, provider: &str) -> PathBuf {
    directory.join(format!(".{provider}{SPARE_SUFFIX}"))
}

/// The spare at `path`, open for writing, and its length; `None` when
/// there is none. A file there that is not one tokend made as it makes
/// spares (another kind of object, another owner, a mode others may read,
/// a second name) is removed, not written: the save then makes a new file.
pub(super) fn open(path: &Path) -> Option<(File, u64)> {
    // Non-blocking: a FIFO at the name would otherwise hold the save until
    // a reader came (it fails with ENXIO instead).
    let opened = OpenOptions::new()
        .write(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits().cast_signed())
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(_) => {
            let _ = fs::remove_file(path);
            return None;
        }
    };
    let suitable = file.metadata().ok().filter(|meta| {
        let others_bits = meta.mode() & 0o077;
        meta.is_file()
            && meta.nlink() == 1
            && meta.uid() == rustix::process::geteuid().as_raw()
            && others_bits == 0
    });
    if let Some(meta) = suitable {
        Some((file, meta.len()))
    } else {
        let _ = fs::remove_file(path);
        None
    }
}

/// Writes `bytes` over the spare `file`, `length` bytes long, from its
/// start, and flushes them: the data alone when the length stays (no
/// journal commit on ext4), the file's length too when it does not.
pub(super) fn write(file: &File, length: u64, bytes: &[u8]) -> io::Result<()> {
    file.write_all_at(bytes, 0)?;
    let new_length = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if new_length == length {
        file.sync_data()
    } else {
        file.set_len(new_length)?;
        file.sync_all()
    }
}

/// Puts the spare at `spare` in the record's place at `record`: swapped
/// with the record when that is a file, so that the old record's file
/// stays behind as the next spare; renamed over it otherwise (no record
/// yet, or something else at its path, which the rename refuses as
/// before; or a file system that cannot swap, such as some network and
/// overlay file systems). The caller flushes the directory.
pub(super) fn swap_in(spare: &Path, record: &Path) -> io::Result<()> {
    // A swap with a directory would succeed: only a file is swapped.
    if fs::symlink_metadata(record).is_ok_and(|meta| meta.is_file()) {
        match rustix::fs::renameat_with(CWD, spare, CWD, record, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(()),
            // Not supported here, or the record went meanwhile (a
            // `tokend --prune`): a plain rename does.
            Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP | Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    fs::rename(spare, record)
}

/// Overwrites the spare at `path` with zeros and flushes them, or, when
/// that cannot be done, removes it: after an ended session's record (no
/// token in it) is swapped in, the spare holds the record before it, with
/// the dead refresh token and an access token that may still work.
pub(super) fn clear(path: &Path) -> io::Result<()> {
    let Some((file, length)) = open(path) else {
        return Ok(());
    };
    // A record's length (sealed records are bounded); anything longer is
    // no spare tokend wrote, and is removed rather than written.
    let bounded = (length <= crate::store::sealed::MAX_FILE_LEN)
        .then(|| usize::try_from(length).ok())
        .flatten();
    match bounded {
        Some(zeros) => write(&file, length, &vec![0; zeros]).or_else(|_| fs::remove_file(path)),
        None => fs::remove_file(path),
    }
}

/// Removes `provider`'s spare in `directory`, if there is one. A failure
/// is the delete's: the spare holds an earlier record, whose refresh
/// token still works at a provider that does not rotate them.
pub(super) fn remove(directory: &Path, provider: &str) -> io::Result<()> {
    match fs::remove_file(path_of(directory, provider)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        result => result,
    }
}

#[cfg(test)]
#[path = "spare_tests.rs"]
mod tests;
