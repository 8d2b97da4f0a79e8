//! `tokend`: the token broker daemon.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use tokend::cli::TokendArgs;
use tokend::config::{self, ConfigError, Diagnostic, Environment, Severity};

/// Exit code for an invalid or unreadable config.
const EXIT_CONFIG: u8 = 2;

/// How long the exit waits for threads of the blocking pool still busy.
const EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The environment the config is read in, and the config's path.
fn environment_and_config(args: &TokendArgs) -> (Environment, std::path::PathBuf) {
    let mut env = Environment::from_process();
    // Checked or pruned from a shell, not run by systemd: the service's
    // credentials are not there, and need not be.
    env.checking = args.check || args.prune;
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| env.default_config_path());
    // Root checking a user's own config: judged with her daemon's defaults.
    if env.checking
        && let Some(user) = tokend::trusted_path::home_owner_for_check(&path, &env.etc)
    {
        env = Environment::for_check_as(&user, &env.etc);
    }
    (env, path)
}

/// The HTTP client's CA certificates, as the daemon loads them at start
/// (`SSL_CERT_FILE`, `SSL_CERT_DIR`, the system's store): none is an
/// error (the start would stop), and a path among them that cannot be
/// read, which the loader passes over while another gives a certificate,
/// a warning.
fn check_ca_certificates(
    path: &std::path::Path,
    http_timeout: std::time::Duration,
) -> Result<(), ExitCode> {
    if let Err(e) = tokend::provider::HttpClient::new(http_timeout) {
        eprint_error(&format!("{}: {e}", path.display()));
        eprint_error(NOT_STARTING_FOR_ONE);
        return Err(ExitCode::from(EXIT_CONFIG));
    }
    for problem in tokend::provider::ca_paths::unusable_ca_paths(&|name| std::env::var(name).ok()) {
        // The environment's, not the file's: named so.
        eprintln!("environment: warning: {problem}");
    }
    Ok(())
}

/// The signals held since `main` began, kept for the daemon; released
/// for a check or a prune, which are commands: Ctrl-C ends them.
fn held_for_the_daemon(
    held: tokend::daemon::HeldSignals,
    args: &TokendArgs,
) -> Option<tokend::daemon::HeldSignals> {
    if args.check || args.prune {
        held.release();
        return None;
    }
    Some(held)
}

fn main() -> ExitCode {
    // First of all: a SIGHUP or SIGTERM from here on waits for the
    // daemon's handlers (in `daemon::run`) instead of killing the process
    // while it reads its config, before those handlers can exist.
    let held = tokend::daemon::hold_signals();
    let args = TokendArgs::try_parse().unwrap_or_else(|e| tokend::cli::exit_for("tokend", &e));
    let held = held_for_the_daemon(held, &args);
    // Before anything is read: the config holds client secrets, and a
    // process of the same uid must not read them from our memory.
    if let Err(e) = tokend::daemon::harden_process() {
        eprint_with_priority(
            4,
            &format!("tokend: could not make the process non-dumpable: {e}"),
        );
    }
    let (env, path) = environment_and_config(&args);
    say_ignored_variables();
    let config = match config::load(&path, &env) {
        Ok(config) => config,
        Err(e) => {
            report_config_error(&e);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.check {
        for warning in &config.warnings {
            eprintln!("{warning}");
        }
        // What the daemon refuses as it binds the socket: not a config
        // error, but a start that would fail. Whoever runs the check need
        // not be the daemon's user: the owners are judged as for the
        // config (`Owners::for_check`).
        let daemon = &config.daemon;
        if let Err(e) = tokend::ipc::socket::check_path(&daemon.socket, config.owners) {
            // At the `socket` key when the file sets it, as every other
            // problem of the file is said (`file:line:col: message`).
            let (line, column) = config.socket_at.unwrap_or((0, 0));
            let problem = Diagnostic {
                file: path.clone(),
                line,
                column,
                severity: Severity::Error,
                message: e.to_string(),
            };
            eprint_error(&problem.to_string());
            eprint_error(NOT_STARTING_FOR_ONE);
            return ExitCode::from(EXIT_CONFIG);
        }
        if let Err(exit) = check_ca_certificates(&path, daemon.http_timeout) {
            return exit;
        }
        // What the daemon warns of as it binds the socket, and a group it
        // could not give the socket.
        let socket_warnings = [
            tokend::ipc::socket::group_reach_warning,
            tokend::ipc::socket::group_not_given_warning,
        ];
        for warning in socket_warnings
            .iter()
            .filter_map(|warn| warn(&daemon.socket, daemon.socket_mode, daemon.socket_group))
        {
            eprintln!("{}: warning: {warning}", path.display());
        }
        let mut report = format!(
            "{}: valid ({} provider{})\n",
            path.display(),
            config.providers.len(),
            if config.providers.len() == 1 { "" } else { "s" }
        );
        // Who may do what, so a mistake in the roles shows before it matters.
        for provider in &config.providers {
            let _ = writeln!(
                report,
                "  {}: {}",
                provider.name,
                tokend::broker::describe_roles(provider)
            );
        }
        // A reader that stops early (`| head -1`) is not an error of the
        // config: the verdict is the exit status.
        let _ = std::io::stdout().lock().write_all(report.as_bytes());
        return ExitCode::SUCCESS;
    }

    // One thread serves everything: the work per request is tiny, and a
    // single-threaded runtime answers a cached token faster than a pool
    // that wakes a second worker for each request.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprint_error(&format!("tokend: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    // Held for the daemon only: none for `--prune` (`--check` is done).
    let Some(held) = held else {
        return prune(&runtime, &config);
    };
    tokend::systemd::init_logging(config.daemon.log_level.as_deref());
    let result = runtime.block_on(tokend::daemon::run(config, env, held));
    // The daemon has waited for its work by now (`run`'s grace); a store
    // call still stuck on a thread of the blocking pool (a keyring that
    // never answers) must not hold the exit, as dropping the runtime
    // would: it waits for every such thread.
    runtime.shutdown_timeout(EXIT_WAIT);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Logged as it happened, before the stop's own lines.
        Err(e) if e.is::<tokend::daemon::DaemonFailure>() => ExitCode::FAILURE,
        // A socket path only a person can make safe: as a config error, not
        // restarted (the same start fails the same way).
        Err(e)
            if e.downcast_ref::<tokend::ipc::socket::SocketError>()
                .is_some_and(tokend::ipc::socket::SocketError::needs_a_person)
                // No CA certificates (SSL_CERT_FILE wrong): the same.
                || e.is::<tokend::provider::http::HttpSetupError>() =>
        {
            tracing::error!("{}", error_chain(&e));
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            // Logging is set up by now, to the journal or to stderr.
            tracing::error!("{}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn prune(runtime: &tokio::runtime::Runtime, config: &config::Config) -> ExitCode {
    // This process's memory store would be a new, empty one: the daemon's
    // is out of reach, and "holds 0 sessions" would be false.
    if config.daemon.store == config::StoreKind::Memory {
        return print_prune_report(
            "nothing to prune: store = \"memory\" keeps the sessions in the running daemon's memory, which this command cannot reach; a provider removed from the config has its session forgotten by the reload that removes it\n",
            false,
        );
    }
    match runtime.block_on(tokend::daemon::prune(config)) {
        Ok(pruned) => {
            let store = match &pruned.directory {
                Some(directory) => format!("{} in {}", pruned.store, directory.display()),
                None => pruned.store.to_owned(),
            };
            let mut report = String::new();
            for name in &pruned.removed {
                let _ = writeln!(
                    report,
                    "removed the stored session of `{name}` (not in the config) from the {store}"
                );
            }
            let _ = match &pruned.directory {
                _ if !pruned.removed.is_empty() => Ok(()),
                Some(directory) if !directory.exists() => writeln!(
                    report,
                    "nothing to prune: {} does not exist (check `state_directory`)",
                    directory.display()
                ),
                _ => writeln!(
                    report,
                    "nothing to prune: the {store} holds {} session(s), all of configured providers",
                    pruned.kept.len()
                ),
            };
            print_prune_report(&report, !pruned.removed.is_empty())
        }
        Err(e) => {
            eprint_error(&format!("tokend: cannot prune: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each cause once: many errors
/// quote their cause in their own message (zbus's do, and ours), and
/// `{:#}` would repeat it.
fn error_chain(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Writes `line` to stderr as an error: under systemd, whose journal reads
/// stderr's lines at the "info" priority, with the `<3>` prefix that makes
/// it an error there (before logging is set up, `journalctl -p err` would
/// not show why the daemon did not start).
fn eprint_error(line: &str) {
    eprint_with_priority(3, line);
}

/// Writes `--prune`'s report to stdout. One that cannot be written (a full
/// disk, a reader gone) is said on stderr and fails the command: the
/// sessions it lists are gone all the same (`removed`), and the list of
/// them was about to be lost with a panic's trace.
fn print_prune_report(report: &str, removed: bool) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(report.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let listed = if removed {
                " (the sessions were removed all the same: this was the list)"
            } else {
                ""
            };
            eprint_error(&format!("tokend: cannot write the output: {e}{listed}"));
            for line in report.lines().filter(|_| removed) {
                eprint_with_priority(5, line);
            }
            ExitCode::FAILURE
        }
    }
}

/// As [`eprint_error`], at syslog `priority` (3 error, 4 warning, 5 notice).
/// Says each directory variable ignored for not being an absolute path,
/// before anything else: a relative `XDG_STATE_HOME` that an older tokend
/// used held the sessions this start will not find.
fn say_ignored_variables() {
    for ignored in Environment::ignored_relative_variables() {
        eprint_with_priority(
            4,
            &format!(
                "tokend: {ignored} is not an absolute path and is ignored (as the XDG Base Directory spec says): \
                 set it to an absolute path, or unset it (anything an older tokend kept under it is not read)"
            ),
        );
    }
}

fn eprint_with_priority(priority: u8, line: &str) {
    let prefix = if tokend::systemd::stderr_is_journal() {
        format!("<{priority}>")
    } else {
        String::new()
    };
    let mut stderr = std::io::stderr().lock();
    for part in line.lines() {
        let _ = writeln!(stderr, "{prefix}{part}");
    }
}

/// `--check`'s last line for a start that would fail on one problem found
/// after the file's own (the socket path, the CA certificates), as the
/// file's problems end with theirs.
const NOT_STARTING_FOR_ONE: &str = "tokend: the config has 1 error; not starting";

fn report_config_error(error: &ConfigError) {
    match error {
        ConfigError::Invalid { diagnostics } => {
            for d in diagnostics {
                let priority = if d.severity == Severity::Error { 3 } else { 4 };
                eprint_with_priority(priority, &d.to_string());
            }
            let errors = diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            eprint_error(&format!(
                "tokend: the config has {errors} error{}; not starting",
                if errors == 1 { "" } else { "s" }
            ));
        }
        ConfigError::Read { .. } => eprint_error(&error.to_string()),
    }
}
