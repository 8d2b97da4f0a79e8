//! The journal's file: its lines read and written (Unix time, provider),
//! atomically, through a temporary file beside it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::OFlags;

use super::FILE_NAME;

/// The first line of the file, for a person who finds it.
pub(super) const HEADER: &str = "# tokend: logouts whose stored session is not deleted yet \
                      (Unix time, provider); deleted at the next start once the store works\n";

/// Now in Unix seconds, as records' `obtained_at` counts (the store does
/// not use the broker's clock: the journal is read before any broker).
pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Reads the journal's lines (`UNIX_TIME PROVIDER`); other lines are
/// skipped (the header, and anything a person wrote).
pub(super) fn parse(text: &str) -> BTreeMap<String, i64> {
    text.lines()
        .filter_map(|line| {
            let (at, provider) = line.trim().split_once(' ')?;
            let provider = provider.trim();
            let at = at.parse().ok()?;
            (!provider.is_empty()).then(|| (provider.to_owned(), at))
        })
        .collect()
}

/// The most a journal is read of: a line per logout not carried out (a
/// provider name, at most 128 bytes, and a time), so a journal of 10,000
/// providers is under 1.5 MiB. A file longer than this is no journal tokend
/// wrote, and reading it whole (a 2 GB sparse file, say) cost that much
/// memory at the start.
pub(super) const MAX_LEN: u64 = 16 << 20;

/// Reads the journal at `path`: its lines, none when there is no journal
/// (see [`cannot_exist`]). Opened as the lock and the records are: not
/// through a symbolic link (one to `/dev/zero` filled memory until the
/// start was killed), without waiting (a FIFO held the start in `open`
/// until a writer came), and only a regular file of at most [`MAX_LEN`]
/// bytes is read.
///
/// # Errors
/// What is wrong with the file, in words that name no path (the caller
/// names it).
pub(super) fn read(path: &Path) -> io::Result<BTreeMap<String, i64>> {
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits().cast_signed())
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if cannot_exist(&e) => return Ok(BTreeMap::new()),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            let target = fs::read_link(path)
                .map(|target| format!(" to {}", target.display()))
                .unwrap_or_default();
            return Err(io::Error::other(format!(
                "it is a symbolic link{target}, which tokend does not follow"
            )));
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if meta.is_dir() {
        // Nothing was ever noted there (as `cannot_exist` says of a read).
        return Ok(BTreeMap::new());
    }
    if !meta.is_file() {
        return Err(io::Error::other(format!(
            "it is not a regular file but a {}",
            kind_of(meta.file_type())
        )));
    }
    if meta.len() > MAX_LEN {
        return Err(too_long(meta.len()));
    }
    // Bounded again as it is read: a file that grows meanwhile.
    let mut bytes = Vec::new();
    file.take(MAX_LEN + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_LEN {
        return Err(too_long(bytes.len() as u64));
    }
    Ok(parse(&String::from_utf8_lossy(&bytes)))
}

/// Why a journal of `len` bytes is not read.
fn too_long(len: u64) -> io::Error {
    io::Error::other(format!(
        "it is {len} bytes long, more than a journal holds (at most {MAX_LEN}): not a \
         journal tokend wrote"
    ))
}

/// A file type in words, for a journal that is not a regular file.
fn kind_of(file_type: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if file_type.is_fifo() {
        "FIFO (named pipe)"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "device"
    } else {
        "special file"
    }
}

/// Whether a read failed because there is no journal: none was written,
/// there is no directory it could be in (a path component that is a
/// file), or a directory is in its place: nothing was ever noted there.
pub(super) fn cannot_exist(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory
    )
}

/// The temporary file the journal at `path` is written to before it is
/// renamed over it (`.NAME.tmp`).
pub(super) fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or(FILE_NAME.as_ref());
    path.with_file_name(format!(".{}.tmp", name.to_string_lossy()))
}

/// Replaces the journal with `pending`, durably (written beside it,
/// flushed, renamed over it, the directory flushed), or removes it when
/// nothing is pending. Makes the directory (private) if it is missing and
/// `make_directory` says so.
pub(super) fn write(
    path: &Path,
    pending: &BTreeMap<String, i64>,
    make_directory: bool,
) -> io::Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    if pending.is_empty() {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => return File::open(directory)?.sync_all(),
        }
    }
    if make_directory {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(directory)?;
    }
    let mut text = String::from(HEADER);
    for (provider, at) in pending {
        // Writing to a String cannot fail.
        let _ = writeln!(text, "{at} {provider}");
    }
    let temp = temp_path(path);
    // Made anew, never opened as found: a symbolic link there made the
    // write truncate its target, and a FIFO held it. What a crash left is
    // removed first (a directory stays, and fails the write).
    let _ = fs::remove_file(&temp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags((OFlags::NOFOLLOW | OFlags::CLOEXEC).bits().cast_signed())
        .open(&temp)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written?;
    File::open(directory)?.sync_all()
}
