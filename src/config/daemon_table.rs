//! The `[daemon]` table: the socket, the store, logging, `on_event` and
//! the other keys that are the daemon's, not a provider's.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::daemon_keys::DAEMON_KEYS;
use super::file_access::FileAccess;
use super::reader::{self, TableReader};
use super::users::UserDb;
use super::{BusKind, DaemonConfig, Diagnostics, Environment, StoreKind};

pub(super) fn daemon_config(
    table: &mut TableReader<'_, '_>,
    config_path: &Path,
    file_mode: Option<FileAccess>,
    env: &Environment,
    diags: &mut Diagnostics<'_>,
) -> Option<DaemonConfig> {
    let span = table.span.clone();
    let socket = socket_path(table, env, diags);
    let socket_mode = match table.take("socket_mode") {
        Some(value) => socket_mode(value, diags),
        None => Some(0o600),
    };
    let socket_group = socket_group(table, socket_mode, diags);
    let bus = match table.take("bus") {
        Some(value) => reader::expect_str(diags, "bus", value).and_then(|s| match s {
            "session" => Some(BusKind::Session),
            "system" => Some(BusKind::System),
            "none" => Some(BusKind::None),
            other => {
                diags.error(
                    &value.span(),
                    format!("`bus` must be \"session\", \"system\" or \"none\", not \"{other}\""),
                );
                None
            }
        }),
        // Root's and the system service's: a system user has no session
        // bus (`/run/user/UID/bus` is made only for a login).
        None => Some(if env.uid == 0 || env.service_user {
            BusKind::System
        } else {
            BusKind::Session
        }),
    };
    let store = match table.take("store") {
        Some(value) => reader::expect_str(diags, "store", value).and_then(|s| {
            let found = StoreKind::NAMES
                .iter()
                .find(|(n, _)| *n == s)
                .map(|(_, k)| (*k, value.span()));
            if found.is_none() {
                let names: Vec<_> = StoreKind::NAMES
                    .iter()
                    .map(|(n, _)| format!("\"{n}\""))
                    .collect();
                diags.error(
                    &value.span(),
                    format!("`store` must be one of {}, not \"{s}\"", names.join(", ")),
                );
            }
            found
        }),
        None => Some((StoreKind::SecretService, span.clone())),
    };
    warn_of_keyring_on_system_bus(bus, store.as_ref(), &span, env, diags);
    let encrypted_file =
        super::store::encrypted_file_config(table, store.clone(), config_path, env, diags);
    let log_level = table.take("log_level").and_then(|v| {
        let text = reader::expect_str(diags, "log_level", v)?;
        match log_directives_problem(text) {
            Some(problem) => {
                diags.error(&v.span(), format!("`log_level` {problem}"));
                None
            }
            None => Some(text.to_owned()),
        }
    });
    let http_timeout = http_timeout(table, diags);
    // At least 5 s: a start reads the Secret Service 256 records a call,
    // a few milliseconds each. At most two minutes: longer, and tokenctl
    // (60 s) and D-Bus clients (25 s by default) would give up first on a
    // request that found the store hanging, with a message that blames
    // something else.
    let store_timeout = seconds(
        table,
        diags,
        "store_timeout",
        5..=120,
        crate::store::DEFAULT_TIMEOUT,
    );
    let max_concurrent_refreshes = table
        .integer(diags, "max_concurrent_refreshes", 1..=1024)
        .map_or(8, |n| usize::try_from(n).unwrap_or(8));
    let owners = super::trusted_owners(env, config_path, file_mode.map(|access| access.uid));
    let (on_event, notify) = (on_event(table, owners, diags), notify(table, diags));
    let refresh_token_warning = refresh_token_warning(table, diags);
    table.finish(diags, &[DAEMON_KEYS, super::store::KEYS].concat());
    Some(DaemonConfig {
        socket: socket?,
        socket_mode: socket_mode?,
        socket_group,
        bus: bus?,
        store: store?.0,
        encrypted_file: encrypted_file.ok()?,
        log_level,
        http_timeout,
        store_timeout,
        max_concurrent_refreshes,
        on_event: on_event.ok()?,
        notify,
        refresh_token_warning,
    })
}

/// The `http_timeout` key, warned of when tokenctl gives up first.
fn http_timeout(table: &mut TableReader<'_, '_>, diags: &mut Diagnostics<'_>) -> Duration {
    let http_timeout_span = table.key_span("http_timeout");
    let http_timeout = seconds(
        table,
        diags,
        "http_timeout",
        1..=600,
        crate::provider::http::DEFAULT_TIMEOUT,
    );
    // A request waits for its refresh up to `http_timeout`: from 60 s on,
    // `tokenctl token` (its `--timeout`, 60 s by default) gives up first,
    // with exit 1 rather than the provider's exit 6, which scripts retry
    // on (raising it is what an operator of a slow provider does).
    if let Some(span) = http_timeout_span
        && http_timeout >= TOKENCTL_WAIT
    {
        diags.warning(
            &span,
            format!(
                "`http_timeout` of {} s: a `tokenctl token` waiting for a refresh gives up first \
                 (after its `--timeout`, {} s by default), exit 1 rather than 6; pass it a longer \
                 `--timeout`, or keep `http_timeout` under {} s",
                http_timeout.as_secs(),
                TOKENCTL_WAIT.as_secs(),
                TOKENCTL_WAIT.as_secs()
            ),
        );
    }
    http_timeout
}

/// How long `tokenctl` waits for an answer by default (its `--timeout`,
/// `client::DEFAULT_TIMEOUT`, which the core may not name; a test there
/// ties the two).
pub(crate) const TOKENCTL_WAIT: Duration = Duration::from_secs(60);

/// A key of whole seconds within `range`, or `default` when it is unset
/// (or wrong: the error is in `diags`).
fn seconds(
    table: &mut TableReader<'_, '_>,
    diags: &mut Diagnostics<'_>,
    key: &str,
    range: std::ops::RangeInclusive<i64>,
    default: Duration,
) -> Duration {
    table
        .integer(diags, key, range)
        .map_or(default, |s| Duration::from_secs(s.unsigned_abs()))
}

/// The `socket` key, or the default for this environment.
fn socket_path(
    table: &mut TableReader<'_, '_>,
    env: &Environment,
    diags: &mut Diagnostics<'_>,
) -> Option<PathBuf> {
    if let Some(value) = table.take("socket") {
        return reader::expect_str(diags, "socket", value).and_then(|s| {
            let p = PathBuf::from(s);
            if !p.is_absolute() {
                diags.error(&value.span(), "`socket` must be an absolute path");
                None
            } else if let Some(problem) = too_long_for_a_socket(&p) {
                diags.error(
                    &value.span(),
                    format!("`socket` {problem}; use a shorter one"),
                );
                None
            } else {
                Some(p)
            }
        });
    }
    let default = env.default_socket_path();
    match &default {
        None => diags.error(
            &table.span,
            format!(
                "no default socket path: XDG_RUNTIME_DIR is not set (or not an absolute path), and there is no {}/{} (this user has no login session, and no lingering: `loginctl enable-linger`); set `socket` in [daemon]",
                crate::config::environment::LOGIND_RUNTIME_ROOT,
                env.uid
            ),
        ),
        // A long XDG_RUNTIME_DIR: found here, not by the start's bind
        // after it made the directories (exit 1, restarted for nothing).
        Some(path) => {
            if let Some(problem) = too_long_for_a_socket(path) {
                diags.error(
                    &table.span,
                    format!(
                        "the default socket path {} {problem}; set `socket` in [daemon] to a \
                         shorter one",
                        path.display()
                    ),
                );
                return None;
            }
        }
    }
    default
}

/// Why `path` cannot be a Unix socket's: longer than its address holds.
fn too_long_for_a_socket(path: &std::path::Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt as _;
    let length = path.as_os_str().as_bytes().len();
    (length > crate::config::MAX_SOCKET_PATH_BYTES).then(|| {
        format!(
            "is {length} bytes long: a Unix socket's address holds {} bytes of path",
            crate::config::MAX_SOCKET_PATH_BYTES
        )
    })
}

/// The `refresh_token_warning_days` key (default 7, 0: never).
fn refresh_token_warning(table: &mut TableReader<'_, '_>, diags: &mut Diagnostics<'_>) -> Duration {
    let days = table.integer(diags, "refresh_token_warning_days", 0..=365);
    Duration::from_secs(days.map_or(7, i64::unsigned_abs) * 24 * 3600)
}

/// The `notify` key (default true).
fn notify(table: &mut TableReader<'_, '_>, diags: &mut Diagnostics<'_>) -> bool {
    let Some(value) = table.take("notify") else {
        return true;
    };
    if let toml::de::DeValue::Boolean(b) = value.get_ref() {
        *b
    } else {
        diags.error(&value.span(), "`notify` must be true or false");
        true
    }
}

/// The `on_event` key: a program (absolute path) and its arguments, run
/// without a shell.
fn on_event(
    table: &mut TableReader<'_, '_>,
    owners: crate::trusted_path::Owners,
    diags: &mut Diagnostics<'_>,
) -> Result<Vec<String>, ()> {
    let span = table.key_span("on_event").unwrap_or(0..0);
    let Some(argv) = table.string_list(diags, "on_event") else {
        return if span == (0..0) {
            Ok(Vec::new())
        } else {
            Err(())
        };
    };
    match argv.first() {
        None => {
            diags.error(&span, "`on_event` is empty: give a program and its arguments, e.g. [\"/usr/local/bin/tokend-hook\"]");
            Err(())
        }
        Some(program) if !Path::new(program).is_absolute() => {
            diags.error(&span, format!("`on_event`: `{program}` must be an absolute path (the program is run without a shell or PATH search)"));
            Err(())
        }
        Some(program) => {
            // A warning, not an error: the program may be installed after
            // the config, but a typo should show at `--check`.
            use std::os::unix::fs::PermissionsExt as _;
            match std::fs::metadata(program) {
                Err(e) => diags.warning(
                    &span,
                    format!("`on_event`: cannot use `{program}` ({e}): events will not run it"),
                ),
                Ok(meta) if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 => {
                    diags.warning(
                        &span,
                        format!("`on_event`: `{program}` is not an executable file: events will not run it"),
                    );
                }
                Ok(_) => {
                    // Run as the daemon's user, with its socket at hand:
                    // whoever may change the program gets every token.
                    if let Err(untrusted) =
                        crate::trusted_path::check_file(Path::new(program), owners)
                    {
                        diags.error(
                            &span,
                            format!("`on_event`: tokend will not run `{program}`: {untrusted}"),
                        );
                        return Err(());
                    }
                    if !starts_as_a_program(Path::new(program)) {
                        // A shell runs such a file itself; the kernel,
                        // which tokend asks, refuses it (ENOEXEC) at
                        // every event.
                        diags.warning(
                            &span,
                            format!("`on_event`: `{program}` starts with neither `#!` nor an ELF header: it cannot be run (a script needs a first line such as `#!/bin/sh`)"),
                        );
                    }
                }
            }
            Ok(argv)
        }
    }
}

/// Whether the file at `path` starts as something the kernel runs: `#!`
/// (a script naming its interpreter) or an ELF header. One that cannot be
/// read counts as such (the run will say why).
fn starts_as_a_program(path: &Path) -> bool {
    use std::io::Read as _;
    let mut start = [0u8; 4];
    let Ok(read) = std::fs::File::open(path).and_then(|mut f| f.read(&mut start)) else {
        return true;
    };
    start[..read].starts_with(b"#!") || start[..read] == *b"\x7fELF"
}

/// Warns of the Secret Service store on the system bus: the system service
/// has no session bus, so no keyring, and would start in an outage that
/// never ends, each session waiting.
fn warn_of_keyring_on_system_bus(
    bus: Option<BusKind>,
    store: Option<&(StoreKind, Range<usize>)>,
    daemon_span: &Range<usize>,
    env: &Environment,
    diags: &mut Diagnostics<'_>,
) {
    let (Some(BusKind::System), Some((StoreKind::SecretService, store_span))) = (bus, store) else {
        return;
    };
    diags.warning(
        store_span,
        format!(
            "store = \"secret-service\"{} is a user's keyring on the user's session bus, which a daemon on the system bus (bus = \"system\"{}) does not have: set store = \"encrypted-file\" (with a store key)",
            if daemon_span == store_span { " (the default)" } else { "" },
            if env.uid == 0 || env.service_user {
                ", the system service's default"
            } else {
                ""
            }
        ),
    );
}

/// The `socket_group` key: a group's id, warned of when `socket_mode` gives
/// that group nothing.
fn socket_group(
    table: &mut TableReader<'_, '_>,
    socket_mode: Option<u32>,
    diags: &mut Diagnostics<'_>,
) -> Option<u32> {
    table.take("socket_group").and_then(|value| {
        let name = reader::expect_str(diags, "socket_group", value)?;
        let gid = UserDb::group(name).map(|g| g.gid);
        if gid.is_none() {
            diags.error(
                &value.span(),
                format!("`socket_group`: no group named `{name}`"),
            );
        }
        if gid.is_some() && socket_mode.is_some_and(|mode| mode & 0o070 == 0) {
            // connect(2) needs write permission on the socket.
            diags.warning(
                &value.span(),
                format!(
                    "`socket_group` has no effect: `socket_mode` {:04o} does not let the group write to the socket, which connecting needs (use \"0660\")",
                    socket_mode.unwrap_or_default()
                ),
            );
        }
        gid
    })
}

/// The `socket_mode` key: an octal mode, as a string ("0660") or a TOML
/// octal integer (0o660). The owner must read and write, others must not
/// write; a group that may read but not write is warned of, since
/// connect(2) needs write permission and such a group cannot connect.
fn socket_mode(value: &reader::Value<'_>, diags: &mut Diagnostics<'_>) -> Option<u32> {
    let mode = match value.get_ref() {
        toml::de::DeValue::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8).ok(),
        toml::de::DeValue::Integer(int) => {
            let digits = int.as_str().replace('_', "");
            match reader::integer_of(int).and_then(|n| u32::try_from(n).ok()) {
                Some(m) if int.radix() == 10 && m > 7 => {
                    // `socket_mode = 600` reads as six hundred, not 0o600:
                    // one message saying so, not a range error as well.
                    diags.error(
                        &value.span(),
                        format!(
                            "`socket_mode` {digits} is a decimal number in TOML, not an octal mode: write \"0{digits}\" or 0o{digits}"
                        ),
                    );
                    return None;
                }
                other => other,
            }
        }
        _ => None,
    };
    match mode {
        Some(m) if m <= 0o777 && m & 0o600 == 0o600 && m & 0o002 == 0 => {
            if m & 0o070 != 0 && m & 0o020 == 0 {
                diags.warning(
                    &value.span(),
                    format!(
                        "`socket_mode` {m:04o} gives the group no write permission on the socket, which connecting needs: only the owner can connect (use \"0660\" for the group, \"0600\" for the owner alone)"
                    ),
                );
            }
            Some(m)
        }
        Some(m) if m <= 0o777 => {
            diags.error(&value.span(), format!(
                "`socket_mode` {m:04o} must give the owner read and write and others no write (e.g. \"0600\" or \"0660\")"
            ));
            None
        }
        _ => {
            diags.error(
                &value.span(),
                "`socket_mode` must be an octal mode such as \"0600\" or 0o660",
            );
            None
        }
    }
}

/// The level names a log directive may use.
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// What is wrong with log directives (`log_level`, `RUST_LOG`): each
/// comma-separated part must be a level or `target=level`. A part such as
/// `verbose` would otherwise be read as a target with no level and leave
/// the default at nothing: a typo must not silence the log.
#[must_use]
pub fn log_directives_problem(directives: &str) -> Option<String> {
    let is_level = |s: &str| LOG_LEVELS.iter().any(|l| l.eq_ignore_ascii_case(s.trim()));
    let bad = directives
        .split(',')
        .find(|part| match part.split_once('=') {
            Some((target, level)) => target.trim().is_empty() || !is_level(level),
            None => !is_level(part),
        })?;
    Some(format!(
        "must be a level ({}) or `target=level` directives separated by commas; `{}` is neither",
        LOG_LEVELS.join(", "),
        bad.trim()
    ))
}
