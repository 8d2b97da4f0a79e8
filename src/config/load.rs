//! Reading the config file: bounded, UTF-8, from a trusted place, then
//! parsed into a [`Config`] or every problem found.

use std::path::Path;

use super::file_access::{self, FileAccess};
use super::{Config, ConfigError, Diagnostic, Diagnostics, Environment, Severity, parse};

/// Who may own the config, the `on_event` program, the socket's directory
/// and the directories above them: root and the daemon's user, or for
/// `tokend --check` (run by root or by the user concerned, not necessarily
/// the daemon's) what [`Owners::for_check`](crate::trusted_path::Owners::for_check)
/// trusts given the config's path and owner.
pub(crate) fn trusted_owners(
    env: &Environment,
    config: &Path,
    config_owner: Option<u32>,
) -> crate::trusted_path::Owners {
    if env.checking {
        crate::trusted_path::Owners::for_check(config, config_owner, &env.etc)
    } else {
        crate::trusted_path::Owners::daemon()
    }
}

/// A config file that is not UTF-8 (a Latin-1 "café" in a comment), said
/// at the line and column of its first such byte, as every other problem
/// of the file is: "stream did not contain valid UTF-8" named no place in
/// a file of thousands of lines.
fn not_utf8(path: &Path, error: &std::string::FromUtf8Error) -> ConfigError {
    let bytes = error.as_bytes();
    let at = error.utf8_error().valid_up_to();
    // The part before it is valid: lines and characters counted there.
    let before = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    ConfigError::Invalid {
        diagnostics: vec![Diagnostic {
            file: path.to_owned(),
            line,
            column,
            severity: Severity::Error,
            message: format!(
                "the file is not UTF-8 here (byte 0x{:02X}): TOML files are UTF-8; save it as UTF-8",
                bytes[at]
            ),
        }],
    }
}

/// The largest config file read: 10,000 providers take about 2 MiB.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

/// The file at `path`, refused past [`MAX_CONFIG_BYTES`]: `TOKEND_CONFIG`
/// naming `/dev/zero` (or a log file) was read until memory ran out.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!(
                "it is larger than {} MiB: not a config file?",
                MAX_CONFIG_BYTES / 1024 / 1024
            ),
        ));
    }
    Ok(bytes)
}

/// Reads and validates the config at `path`.
///
/// # Errors
/// [`ConfigError::Read`] when the file cannot be read, [`ConfigError::Invalid`]
/// with every problem when it is not a valid config.
pub fn load(path: &Path, env: &Environment) -> Result<Config, ConfigError> {
    let bytes = read_bounded(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| not_utf8(path, &e))?;
    let mut diags = Diagnostics::new(path, &text);
    let access = std::fs::metadata(path).ok().map(|m| FileAccess::of(&m));
    let writable_by_others = access
        .filter(|a| crate::trusted_path::others_may_write(a.uid, a.gid, a.mode))
        .map(|a| a.mode);
    if let Some(mode) = writable_by_others {
        // Whoever can write the config can point a provider at their own
        // server and collect its tokens: refuse it, as ssh refuses a
        // writable authorized_keys.
        diags.file_error(format!(
            "the config file is writable by {} (mode {:04o}); tokend will not trust it: chmod go-w it",
            if mode & 0o002 != 0 { "anyone" } else { "its group" },
            mode & 0o7777
        ));
    }
    // Its owner and the directories above it too: whoever owns it, or may
    // rename a directory above it, can put a config of their own in its
    // place. (A file others may write is named above already.)
    let owners = trusted_owners(env, path, access.map(|a| a.uid));
    let untrusted = if writable_by_others.is_some() {
        crate::trusted_path::check_ancestors(path.parent().unwrap_or(Path::new("/")), owners)
    } else {
        crate::trusted_path::check_file(path, owners)
    };
    if let Err(untrusted) = untrusted {
        diags.file_error(format!("tokend will not trust the config: {untrusted}"));
    }
    // Root's check reads every file: the config too, which the service's
    // user may not (`install -m 0600` as root), and would then fail to
    // start on, or refuse at a reload, after a check that said "valid".
    if env.checking
        && let Some(access) = access
        && let Some(problem) = file_access::unreadable_by_daemon(path, access, path, env)
    {
        diags.file_warning(problem);
    }
    let parsed = parse::parse(&text, path, access, env, &mut diags);
    if diags.has_errors() {
        return Err(ConfigError::Invalid {
            diagnostics: diags.into_sorted(),
        });
    }
    let warnings = diags.into_sorted();
    // parse() returns None only after recording an error.
    parsed
        .map(|(daemon, providers, socket_at)| Config {
            path: path.to_owned(),
            daemon,
            providers,
            warnings,
            owners,
            socket_at,
        })
        .ok_or_else(|| ConfigError::Invalid {
            diagnostics: Vec::new(),
        })
}
