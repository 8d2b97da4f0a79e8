//! Reading the config for a reload: once the file has stopped changing,
//! and judged as a start would judge it.
//!
//! A generator that rewrites the file in place while a SIGHUP comes in
//! leaves it half-written for a moment, and a half that parses (it ends
//! between two provider tables) was applied: the providers of the other
//! half were removed, their sessions lost with the memory store. So the
//! file is read only once it has not changed for [`QUIET`] (by its change
//! time, which no one can set back: a file written long before the reload
//! costs no wait), and taken only if it is still the same after the read
//! (device, inode, size, times and content). One that keeps changing is
//! read again, at most [`MAX_READS`] times, then refused. A start does
//! not wait (nothing runs yet that a half file could remove), nor does
//! `tokend --check`; nor does a reload of a config that is not a regular
//! file (a FIFO a tool feeds it through), which can be read only once.
//!
//! A valid file is also judged as the next start would judge it: its
//! socket path and the CA certificates. A reload that took a file the
//! next start refuses (exit status 2, which the units do not restart)
//! asked for a restart that left the daemon down.

use std::hash::Hasher as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tracing::warn;

use super::refusal::Refusal;
use crate::config::{self, Config, ConfigError, Diagnostic, Environment, Severity};

/// How long the file must have stayed unchanged before it is read.
pub(super) const QUIET: Duration = Duration::from_millis(100);

/// How many times a file that keeps changing is read before the reload
/// is refused (about half a second of a file written to all along).
pub(super) const MAX_READS: usize = 5;

/// What identifies one version of the file: where it is, its size, its
/// times and a digest of its content (times alone are as coarse as the
/// kernel's clock tick: two writes within one look alike).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    /// Device, inode, size, and the modification and change times (s, ns).
    meta: Option<[i64; 7]>,
    /// A digest of the content, as far as it could be read.
    content: Option<u64>,
    /// Whether it is a regular file: what is not (a FIFO a tool feeds the
    /// config through) cannot be read twice, and is read once, at once.
    regular: bool,
}

impl Version {
    /// The file at `path` as it is now.
    fn of(path: &Path) -> Self {
        let found = std::fs::metadata(path).ok();
        // A missing file is read (and found missing) at once too.
        let regular = found.as_ref().is_none_or(std::fs::Metadata::is_file);
        let meta = found.map(|m| {
            [
                m.dev().cast_signed(),
                m.ino().cast_signed(),
                m.size().cast_signed(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            ]
        });
        Self {
            meta,
            content: if regular { digest(path) } else { None },
            regular,
        }
    }

    /// How much longer to wait before the file has been unchanged for
    /// [`QUIET`]: nothing for a file changed long ago (or missing).
    fn quiet_left(&self) -> Duration {
        let Some(meta) = self.meta else {
            return Duration::ZERO;
        };
        let changed = u64::try_from(meta[5])
            .ok()
            .and_then(|secs| {
                let nanos = u32::try_from(meta[6]).ok()?;
                SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
            })
            .unwrap_or(SystemTime::UNIX_EPOCH);
        // A change time ahead of the clock (set back since) waits in full.
        let age = SystemTime::now()
            .duration_since(changed)
            .unwrap_or(Duration::ZERO);
        QUIET.saturating_sub(age)
    }
}

/// A digest of the file's content, read as `config::load` reads it (at
/// most [`config::MAX_CONFIG_BYTES`] and one more).
fn digest(path: &Path) -> Option<u64> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)
        .ok()?
        .take(config::MAX_CONFIG_BYTES + 1);
    let mut hasher = std::hash::DefaultHasher::new();
    let mut buf = [0u8; 8 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Some(hasher.finish()),
            Ok(n) => hasher.write(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// The config at `path`, read once the file has stayed unchanged for
/// [`QUIET`] and unchanged through the read, and judged as a start would
/// judge it; or why the reload is refused.
pub(in crate::daemon) async fn load_settled(
    path: &Path,
    env: &Environment,
) -> Result<Config, Refusal> {
    let mut said = false;
    for _ in 0..MAX_READS {
        let before = blocking(path, Version::of).await?;
        let env = env.clone();
        if !before.regular {
            return blocking(path, move |path| load_as_a_start_would(path, &env)).await?;
        }
        let wait = before.quiet_left();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let (loaded, after) = blocking(path, move |path| {
            (load_as_a_start_would(path, &env), Version::of(path))
        })
        .await?;
        if before == after {
            return loaded;
        }
        if !said {
            said = true;
            warn!(
                event = "config_being_written",
                "{}: the config file changed while it was read (still being written?): reading it again once it has not changed for {} ms",
                path.display(),
                QUIET.as_millis()
            );
        }
    }
    Err(Refusal::StillBeingWritten {
        path: path.to_owned(),
        reads: MAX_READS,
    })
}

/// Runs `work` on `path` off the event loop: reading files and asking
/// the user and group database (NSS: sssd or LDAP may take long to
/// answer), while requests and the watchdog's beat go on.
async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce(&Path) -> T + Send + 'static,
) -> Result<T, Refusal> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || work(&path))
        .await
        .map_err(|e| Refusal::Failed(format!("loading the config failed: {e}")))
}

/// `config::load`, then what the start checks after it (as `tokend
/// --check` does): the socket path, and that CA certificates load.
fn load_as_a_start_would(path: &Path, env: &Environment) -> Result<Config, Refusal> {
    let config = match config::load(path, env) {
        Ok(config) => config,
        // Not the file's fault (out of file descriptors, a file system
        // that failed): said so, not as an invalid file that `tokend
        // --check` then calls valid.
        Err(ConfigError::Read { path, source }) => {
            return Err(Refusal::Unreadable { path, source });
        }
        Err(ConfigError::Invalid { diagnostics }) => {
            return Err(Refusal::Invalid {
                path: path.to_owned(),
                diagnostics,
            });
        }
    };
    if let Err(e) = crate::ipc::socket::check_path(&config.daemon.socket, config.owners) {
        // At the `socket` key when the file sets it, as `--check` says it.
        let (line, column) = config.socket_at.unwrap_or((0, 0));
        let problem = Diagnostic {
            file: PathBuf::from(path),
            line,
            column,
            severity: Severity::Error,
            message: e.to_string(),
        };
        return Err(Refusal::WouldNotStart {
            problem: problem.to_string(),
        });
    }
    // The client is built only to see that the certificates load, and
    // dropped: silently, as the proxies it names were said at the start.
    let client =
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            crate::provider::HttpClient::new(config.daemon.http_timeout)
        });
    if let Err(e) = client {
        return Err(Refusal::WouldNotStart {
            problem: format!("{}: {e}", path.display()),
        });
    }
    Ok(config)
}
