//! The journal's file: its lines read and written (Unix time, provider),
//! atomically, through a temporary file beside it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

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
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
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
