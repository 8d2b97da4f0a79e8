//! The encrypted file store's files: a record read from its path, and the
//! temporary file a save writes before renaming it over the record.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::{STORE, TEMP_SUFFIX, failed};
use crate::store::StoreError;
use crate::store::sealed::MAX_FILE_LEN;

/// A temporary file made for one record's save, before the save found no
/// spare (see the `spare` module): removed when dropped before it became the
/// spare.
#[derive(Debug)]
pub struct TempFile {
    /// The open file.
    pub(super) file: File,
    /// Its path; empty once it is the spare.
    pub(super) path: PathBuf,
    /// Whose record it is for, and where: a save checks both.
    pub(super) provider: String,
    pub(super) directory: PathBuf,
}

impl TempFile {
    /// Where it is, until it is the spare.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` into this file, flushes it and renames it to
    /// `spare`, the name a save swaps into the record's place; returns the
    /// path it is at: `spare`, or its own when something tokend could not
    /// remove holds that name (a directory: the swap then leaves the old
    /// record here, and the save removes it). On failure the file is
    /// removed as it drops; once this returns, the caller removes it.
    pub(super) fn write_as_spare(mut self, spare: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
        self.file.write_all(bytes)?;
        self.file.sync_all()?;
        Ok(self.rename_to_spare(spare))
    }

    /// Renames this file to `spare`, as [`Self::write_as_spare`] does once
    /// it is written.
    pub(super) fn rename_to_spare(mut self, spare: &Path) -> PathBuf {
        let at = match fs::rename(&self.path, spare) {
            Ok(()) => spare.to_owned(),
            Err(_) => self.path.clone(),
        };
        self.path = PathBuf::new();
        at
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Reads a record file; `None` when there is none. With `directory`
/// (the records' directory, open) the file is opened by its name in it
/// (`openat`): the kernel then walks one path component, not the whole
/// path, which made reading 10,000 records a fifth faster (measured).
pub(super) fn read_record_file(
    directory: Option<&File>,
    path: &Path,
    provider: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    // Non-blocking, so that a FIFO planted at a record's path is found to
    // be no file at once instead of holding the reader (and the start)
    // until a writer comes; a regular file reads the same either way.
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let opened = match (directory, path.file_name()) {
        (Some(directory), Some(name)) => rustix::fs::openat(directory, name, flags, Mode::empty())
            .map(File::from)
            .map_err(io::Error::from),
        _ => OpenOptions::new()
            .read(true)
            .custom_flags(OFlags::NONBLOCK.bits().cast_signed())
            .open(path),
    };
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_failure(path, provider, &e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| read_failure(path, provider, &e))?;
    if !meta.is_file() || meta.len() > MAX_FILE_LEN {
        let reason = if meta.is_file() {
            format!(
                "{} is not a session file (more than {MAX_FILE_LEN} bytes); \
                 run `tokenctl logout {provider}` to remove it",
                path.display()
            )
        } else {
            not_a_file(path)
        };
        return Err(StoreError::Corrupt {
            store: STORE,
            provider: provider.to_owned(),
            reason,
        });
    }
    // Sealed bytes are no secret: a plain buffer will do. The length just
    // read is the record's: a record file is never written while it is
    // the record (a save swaps another file in; the old one, now the
    // spare, is written at the next save), so its bytes are read up to that
    // length and no further read looks for more, which `read_to_end`
    // would make (a system call a record, that a start with 10,000
    // sessions pays 10,000 times). A file cut short meanwhile reads short,
    // and fails its authentication as any damaged record does.
    let mut bytes = vec![0; usize::try_from(meta.len()).unwrap_or(0)];
    let mut filled = 0;
    while filled < bytes.len() {
        match file.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_failure(path, provider, &e)),
        }
    }
    bytes.truncate(filled);
    Ok(Some(bytes))
}

/// What a failure to read the record file at `path` is: that record's
/// own trouble when the file alone is at fault (not ours to read, as after
/// a restore from a backup as root; a symbolic link loop), so that the
/// other records, and saves, go on; else the store's, said without the
/// record's name: a store-wide reason is shown to every caller that may
/// see any provider, and the name is the provider's.
pub(super) fn read_failure(path: &Path, provider: &str, error: &io::Error) -> StoreError {
    use rustix::io::Errno;
    let directory = path.parent().unwrap_or(Path::new("."));
    let files_own = match Errno::from_io_error(error) {
        Some(Errno::LOOP) => true,
        // Not for want of the directory's own permissions, which would
        // keep every record from tokend.
        Some(Errno::ACCESS | Errno::PERM) => {
            let usable = rustix::fs::Access::READ_OK | rustix::fs::Access::EXEC_OK;
            rustix::fs::access(directory, usable).is_ok()
        }
        _ => false,
    };
    if files_own {
        return StoreError::Corrupt {
            store: STORE,
            provider: provider.to_owned(),
            reason: format!(
                "cannot read {}: {error}; give it back to the user tokend runs as (tokend \
                 reads it again by itself: no restart, no login), or run `tokenctl logout \
                 {provider}` to remove it",
                path.display()
            ),
        };
    }
    failed(format!(
        "cannot read a record in {}: {error}",
        directory.display()
    ))
}

/// The records' directory, open for [`read_record_file`]; `None` when it
/// cannot be opened (each read then opens its file by path and says what
/// is wrong).
pub(super) fn open_directory(directory: &Path) -> Option<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::DIRECTORY | OFlags::NOFOLLOW).bits().cast_signed())
        .open(directory)
        .ok()
}

/// Why a record's path that holds something other than a file (a
/// directory, a FIFO, a device) is that one provider's problem: the store
/// works for every other record, so it is no outage, and tokend does not
/// remove what it did not make.
pub(super) fn not_a_file(path: &Path) -> String {
    format!(
        "{} is not a session file but another kind of file system object, which tokend does not remove: remove it by hand",
        path.display()
    )
}

/// Sets the no-copy-on-write attribute (`chattr +C`) on the records'
/// `directory` where its file system has one (btrfs): files made in it
/// from then on inherit it, so that a save writing over a record's spare
/// in place needs no new space. Without it btrfs writes every overwrite
/// somewhere new, and on a full disk the spare's write failed with
/// `ENOSPC` like a new file's (a disk that fills up after a login stopped
/// the saves the spares are there for). Such files have no data checksums
/// on btrfs; a record's own authentication tag still finds any damage.
/// Files made before keep copying on write until replaced by new ones.
/// Best effort: elsewhere (ext4, tmpfs, XFS) there is no such attribute,
/// and nothing is said.
pub(super) fn no_copy_on_write(directory: &Path) {
    use rustix::fs::{IFlags, ioctl_getflags, ioctl_setflags};
    let Some(opened) = open_directory(directory) else {
        return;
    };
    let set = ioctl_getflags(&opened).and_then(|flags| {
        if flags.contains(IFlags::NOCOW) {
            Ok(())
        } else {
            ioctl_setflags(&opened, flags | IFlags::NOCOW)
        }
    });
    if let Err(e) = set {
        tracing::debug!(
            "{} keeps copying on write (no NOCOW attribute here): {e}",
            directory.display()
        );
    }
}

/// Flushes a directory, so that renames and removals in it are durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes the temporary files in `directory` that no live process is
/// writing (see [`EncryptedFileStore::remove_stale_temp_files`]); returns
/// how many.
///
/// [`EncryptedFileStore::remove_stale_temp_files`]: super::EncryptedFileStore::remove_stale_temp_files
pub(super) fn remove_stale_temp_files(directory: &Path) -> usize {
    let Ok(entries) = fs::read_dir(directory) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.')
            && name.ends_with(TEMP_SUFFIX)
            && !made_by_another_live_process(&name)
            && fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Whether a temporary file's name (`.PROVIDER.PID.COUNTER.tmp`, see
/// `create_temp`) names a live process other than this one.
pub(super) fn made_by_another_live_process(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(TEMP_SUFFIX) else {
        return false;
    };
    let mut parts = stem.rsplitn(3, '.');
    let (_counter, pid) = (parts.next(), parts.next());
    let Some(pid) = pid.and_then(|p| p.parse::<i32>().ok()) else {
        return false;
    };
    if u32::try_from(pid).ok() == Some(std::process::id()) {
        return false;
    }
    // Alive: signal 0 reaches it, or is refused only for want of rights.
    rustix::process::Pid::from_raw(pid).is_some_and(|pid| {
        matches!(
            rustix::process::test_kill_process(pid),
            Ok(()) | Err(rustix::io::Errno::PERM)
        )
    })
}

/// `e` in words, with what is full when it is "no space left": a file
/// system out of inodes says so too, while `df -h` shows free space.
pub(super) fn with_what_is_full(directory: &Path, e: &io::Error) -> String {
    if e.raw_os_error() != Some(rustix::io::Errno::NOSPC.raw_os_error()) {
        return e.to_string();
    }
    let inodes = rustix::fs::statvfs(directory)
        .ok()
        .map(|fs| (fs.f_files, fs.f_favail));
    format!("{e}: {}", what_is_full(inodes))
}

/// Which of a full file system's limits was reached, by its inodes (all,
/// and free): none free of some. A file system that counts none (btrfs,
/// a tmpfs without a limit: all 0) is full of blocks.
pub(super) fn what_is_full(inodes: Option<(u64, u64)>) -> &'static str {
    match inodes {
        Some((all, 0)) if all > 0 => "no free inodes left on its file system (`df -i`)",
        _ => "its file system is full (`df -h`)",
    }
}

/// Whether `directory` is immutable or append-only (`chattr +i`/`+a`), as
/// far as the file system says.
pub(super) fn immutable_or_append_only(directory: &Path) -> bool {
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};
    let frozen = StatxAttributes::IMMUTABLE | StatxAttributes::APPEND;
    rustix::fs::statx(
        rustix::fs::CWD,
        directory,
        AtFlags::empty(),
        StatxFlags::BASIC_STATS,
    )
    .is_ok_and(|st| {
        st.stx_attributes_mask.intersects(frozen) && st.stx_attributes.intersects(frozen)
    })
}

/// Whether `e` is the kernel refusing to change one file (`EPERM`: the
/// file is immutable or append-only, `chattr +i`/`+a`), not the directory
/// refusing writes (`EACCES`, or a read-only file system's `EROFS`). Such a
/// record is that provider's own trouble: taken for the store's, every
/// probe failed on it and the outage never ended, every other session's
/// saves waiting with it.
pub(super) fn refuses_change(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error())
}

/// What [`refuses_change`] found, naming the file.
pub(super) fn cannot_change(path: &Path, e: &io::Error) -> String {
    format!(
        "{} ({e}): is it immutable or append-only (`lsattr`)?",
        path.display()
    )
}
