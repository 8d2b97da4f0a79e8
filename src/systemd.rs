//! systemd integration: readiness notification and logging set-up.

use std::io::IsTerminal;
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Tells the service manager something (`READY=1`, `STATUS=...`, ...).
/// Does nothing outside systemd (no `NOTIFY_SOCKET`).
pub fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("could not notify the service manager: {e}");
    }
}

/// Whether stderr is connected to the journal (systemd sets
/// `JOURNAL_STREAM` to the device and inode of the stream it gave us).
#[must_use]
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(meta) = rustix::fs::fstat(std::io::stderr()) else {
        return false;
    };
    dev.parse() == Ok(meta.st_dev) && ino.parse() == Ok(meta.st_ino)
}

/// Sets up logging: to the journal with structured fields (`PROVIDER=`,
/// `EVENT=`) when stderr goes there, plain text on stderr otherwise.
/// `RUST_LOG` wins over `level` (the config's `log_level`), default
/// `info`; a `RUST_LOG` that is not valid directives is ignored, and the
/// log says so.
pub fn init_logging(level: Option<&str>) {
    let ignored = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| crate::config::log_directives_problem(&v));
    install_logging(level);
    if let Some(problem) = ignored {
        tracing::warn!(event = "bad_rust_log", "RUST_LOG is ignored: it {problem}");
    }
}

/// `filter`, with `info` for every target it does not name when it gives
/// no bare level: directives such as `tokend::broker=debug` (more detail
/// from one module) or a misspelt target would otherwise drop every other
/// event, errors included, and the daemon would say nothing at all.
fn with_a_default_level(filter: Targets) -> Targets {
    if filter.default_level().is_some() {
        filter
    } else {
        filter.with_default(tracing::Level::INFO)
    }
}

fn install_logging(level: Option<&str>) {
    // `Targets` reads the `target=level,...` directives people write in
    // RUST_LOG without EnvFilter's span and field matching, which needs
    // regular expressions: a quarter of a megabyte of code in the daemon.
    let parse = |directives: &str| {
        crate::config::log_directives_problem(directives)
            .is_none()
            .then(|| directives.parse::<Targets>().ok())
            .flatten()
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| parse(&v))
        .or_else(|| parse(level.unwrap_or("info")))
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let filter = with_a_default_level(filter);
    let registry = tracing_subscriber::registry().with(filter);
    if stderr_is_journal()
        && let Ok(journald) = tracing_journald::layer()
    {
        // Field names go to the journal as they are, upper-cased, so
        // `journalctl PROVIDER=github` works. Levels map to the syslog
        // priorities of the same names (the layer's default puts info at
        // "notice"), so `journalctl -p info` means what it says.
        let priorities = tracing_journald::PriorityMappings {
            info: tracing_journald::Priority::Informational,
            debug: tracing_journald::Priority::Debug,
            ..tracing_journald::PriorityMappings::new()
        };
        registry
            .with(
                journald
                    .with_field_prefix(None)
                    .with_priority_mappings(priorities),
            )
            .init();
        return;
    }
    registry
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false),
        )
        .init();
}

/// The mode bits of a path, for messages.
#[must_use]
pub fn mode_of(path: &std::path::Path) -> Option<u32> {
    std::fs::metadata(path).ok().map(|m| m.mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Directives that name targets but no bare level keep the rest of the
    /// log at `info`: an error elsewhere is still said.
    #[test]
    fn directives_without_a_bare_level_keep_the_rest_at_info() {
        let filter = with_a_default_level("tokend_daemon=debug".parse::<Targets>().unwrap());
        assert!(filter.would_enable("tokend::daemon::reload", &tracing::Level::ERROR));
        assert!(filter.would_enable("tokend::daemon::reload", &tracing::Level::INFO));
        assert!(!filter.would_enable("tokend::daemon::reload", &tracing::Level::DEBUG));
        assert!(filter.would_enable("tokend_daemon", &tracing::Level::DEBUG));
        // A bare level given is kept.
        let filter = with_a_default_level("warn,tokend::broker=debug".parse::<Targets>().unwrap());
        assert!(!filter.would_enable("tokend::daemon", &tracing::Level::INFO));
        assert!(filter.would_enable("tokend::broker", &tracing::Level::DEBUG));
    }
}
