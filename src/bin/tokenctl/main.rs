//! `tokenctl`: the command-line helper of tokend.
//!
//! One process, one connection, usually one request: `tokenctl token` runs
//! inside scripts and credential helpers, so it stays a blocking program
//! with no async runtime. Talking to the daemon is [`tokend::client`]; this
//! binary parses the command line, prints, and picks the exit status.

mod connect;
mod credential;
mod docker;
mod exit;
mod format;
mod kubernetes;
mod login;
mod metrics_json;
mod screen;
mod status;
mod status_command;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use tokend::cli::{CredentialProtocol, TokenctlArgs as Cli, TokenctlCommand as Command};
use tokend::client::{self, Client};
use tokend::config::Environment;
use tokend::protocol::{Answer, CANCEL_LOGIN_SINCE, LogoutAnswer, METRICS_SINCE, PROTOCOL_VERSION};

use crate::connect::{RESTART_HINT, SOCKET_OWNER, connect, connect_checked, notice_slow_answers};
use crate::exit::Failure;

fn main() -> ExitCode {
    // Installed under the docker credential helper's name, tokenctl speaks
    // that protocol instead of its own command line.
    let mut args = std::env::args_os();
    let invoked_as = args.next().map(PathBuf::from);
    let file_name = invoked_as
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(named) = docker::named_by(&file_name) {
        return docker_helper(&file_name, named.provider(), args.next());
    }
    let cli = Cli::parse_command_line();
    match cli.socket_owner_uid() {
        Ok(owner) => SOCKET_OWNER.get_or_init(|| owner),
        Err(message) => {
            let _ = writeln!(io::stderr(), "tokenctl: {}", format::clean(&message));
            return ExitCode::from(exit::USAGE);
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(failure) if failure.message.is_empty() => ExitCode::from(failure.status),
        Err(failure) => {
            // One line, whatever the daemon sent: scripts log stderr.
            let _ = writeln!(
                io::stderr(),
                "tokenctl: {}",
                format::clean(&failure.message)
            );
            ExitCode::from(failure.status)
        }
    }
}

/// `docker-credential-tokend ACTION` (run as `helper`): errors go to
/// stdout, as the protocol's clients read them, and most to stderr too,
/// named by the helper, where docker shows them (see
/// [`docker::said_on_stderr`]).
fn docker_helper(
    helper: &str,
    named: Option<&str>,
    action: Option<std::ffi::OsString>,
) -> ExitCode {
    let action = action
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let connect = || {
        let socket = Cli::socket_from_environment()
            .unwrap_or_else(|| client::default_socket_path(&Environment::from_process()));
        let owner = Cli::socket_owner_from_environment()
            .map_err(|message| Failure::new(exit::USAGE, message))?;
        let mut client = Client::connect_served_by(&socket, owner)?;
        client.set_timeout(client::DEFAULT_TIMEOUT);
        notice_slow_answers(&mut client);
        let protocol = client.version().ok().map(|v| v.protocol);
        Ok((client, protocol))
    };
    match docker::run(
        connect,
        named,
        &action,
        io::stdin().lock(),
        io::stdout().lock(),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let message = format::clean(&failure.message);
            let _ = writeln!(io::stdout(), "{message}");
            if docker::said_on_stderr(&action, &failure) {
                let _ = writeln!(io::stderr(), "{}: {message}", format::clean(helper));
            }
            ExitCode::from(failure.status)
        }
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Token {
            name,
            min_valid,
            replace,
        } => token(cli, name, *min_valid, *replace),
        Command::Login {
            name, cancel: true, ..
        } => cancel_login(cli, name),
        Command::Login { name, no_wait, .. } => {
            let options = login::LoginOptions {
                json: cli.json,
                no_wait: *no_wait,
            };
            // Handed over unconnected too: with --json a `done` line says
            // that tokend could not be reached.
            login::run(
                connect_checked(cli).map(|(client, _)| client),
                name,
                options,
                screen::Terminal::of_stdout(),
            )
        }
        Command::Status { name, check: false } => status_command::status(cli, name.as_deref()),
        Command::Status { name, check: true } => status_command::status_check(cli, name.as_deref()),
        Command::Logout { name } => {
            let answer = connect(cli)?.logout(name)?;
            if cli.json {
                print_json(&Answer::success(answer))
            } else {
                print(&logout_sentence(&answer))
            }
        }
        Command::Exec {
            name,
            env,
            min_valid,
            command,
        } => exec(cli, name, env, *min_valid, command),
        Command::Credential {
            protocol: CredentialProtocol::Git { provider, action },
        } => credential::git(
            || Ok(connect_checked(cli)?),
            provider.as_deref(),
            action,
            io::stdin().lock(),
            io::stdout().lock(),
        ),
        Command::Credential {
            protocol: CredentialProtocol::Kubernetes { name },
        } => kubernetes::exec_credential(
            &mut connect(cli)?,
            name,
            std::env::var("KUBERNETES_EXEC_INFO").ok().as_deref(),
            io::stdout().lock(),
        ),
        Command::Metrics => metrics(cli),
        Command::Version => version(cli),
    }
}

/// What `tokenctl logout` says: what there was to forget.
fn logout_sentence(answer: &LogoutAnswer) -> String {
    let name = format::clean(&answer.provider);
    match (answer.had_tokens, answer.cancelled_login) {
        (true, false) => {
            format!("Logged out of {name}: its tokens are gone from tokend and its store.\n")
        }
        (true, true) => format!(
            "Logged out of {name}: its tokens are gone from tokend and its store, and the device login that waited is cancelled.\n"
        ),
        (false, true) => format!(
            "Logged out of {name}: the device login that waited is cancelled; it had no tokens.\n"
        ),
        (false, false) => format!(
            "Logged out of {name}: it was not logged in (no tokens in tokend); its store holds no record of it now.\n"
        ),
    }
}

/// `tokenctl login NAME --cancel`: the login that waits for approval is
/// cancelled, the session left as it is (`logout` would end it too).
fn cancel_login(cli: &Cli, name: &str) -> Result<(), Failure> {
    let (mut client, protocol) = connect_checked(cli)?;
    if let Some(protocol) = protocol.filter(|&p| p < CANCEL_LOGIN_SINCE) {
        return Err(Failure::new(
            exit::FAILURE,
            format!(
                "tokend speaks protocol {protocol}, and cancelling a login needs protocol {CANCEL_LOGIN_SINCE}: upgrade tokend, or restart it if it was just upgraded ({RESTART_HINT}) (`tokenctl logout {}` cancels it too, but ends the session as well)",
                format::clean(name)
            ),
        ));
    }
    let answer = client.cancel_login(name)?;
    if cli.json {
        return print_json(&Answer::success(answer));
    }
    let name = format::clean(&answer.provider);
    if answer.cancelled {
        print(&format!(
            "Cancelled the login of {name}; its session is as it was.\n"
        ))
    } else {
        print(&format!("No login of {name} was waiting.\n"))
    }
}

/// `tokenctl metrics`: the daemon's OpenMetrics text, as it sends it; with
/// `--json`, its samples as one JSON array (see [`metrics_json`]).
fn metrics(cli: &Cli) -> Result<(), Failure> {
    let (mut client, protocol) = connect_checked(cli)?;
    if let Some(protocol) = protocol.filter(|&p| p < METRICS_SINCE) {
        return Err(Failure::new(
            exit::FAILURE,
            format!(
                "tokend speaks protocol {protocol}, and metrics need protocol {METRICS_SINCE}: upgrade tokend, or restart it if it was just upgraded ({RESTART_HINT})"
            ),
        ));
    }
    let text = client.metrics()?;
    if cli.json {
        print_json(&metrics_json::samples(&text))
    } else {
        print(&text)
    }
}

/// `tokenctl token`: the one place a token is printed.
/// `tokenctl token`: the token on stdout; with `replace`, one other than
/// the current one (said refused: tokend refreshes, within its limits).
fn token(cli: &Cli, name: &str, min_valid: Option<u64>, replace: bool) -> Result<(), Failure> {
    let mut client = connect(cli)?;
    let answer = if replace {
        // The token the caller was refused is the one tokend hands out now
        // (a refresh in between makes this the new one, and tokend then
        // hands that out again without another refresh).
        let current = client.token(name, None)?;
        client.token_replacing(name, current.access_token.expose())?
    } else {
        client.token(name, min_valid)?
    };
    let token = usable(name, answer.access_token.expose())?;
    if cli.json {
        print_json(&answer)
    } else {
        let mut out = io::stdout().lock();
        out.write_all(token.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .map_err(|e| Failure::output(&e))
    }
}

/// `token` itself, unless it is unusable: a newline or escape in a token
/// would split or corrupt the HTTP header a script builds from it.
pub(crate) fn usable<'t>(name: &str, token: &'t str) -> Result<&'t str, Failure> {
    if token.is_empty() || token.chars().any(char::is_control) {
        return Err(Failure::new(
            exit::FAILURE,
            format!(
                "tokend sent an unusable token for `{name}` (empty, or with control characters)"
            ),
        ));
    }
    Ok(token)
}

/// `tokenctl exec`: becomes `command` with the token in `variable`.
/// Returns only on failure: exit 2 for a bad variable name (or one that
/// breaks running the command: [`breaks_running_the_command`]), the usual
/// statuses when no token can be had (the command is not run), and 127 or
/// 126, as shells use, when the command cannot be run.
fn exec(
    cli: &Cli,
    name: &str,
    variable: &str,
    min_valid: Option<u64>,
    command: &[std::ffi::OsString],
) -> Result<(), Failure> {
    use std::os::unix::process::CommandExt as _;
    let valid_name = variable
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && variable
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "`--env {variable}` is not a variable name (letters, digits and _, not first a digit)"
            ),
        ));
    }
    if let Some(why) = breaks_running_the_command(variable) {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "`--env {variable}` {why}: name another variable (the default is {})",
                tokend::cli::DEFAULT_TOKEN_VARIABLE
            ),
        ));
    }
    let Some((program, args)) = command.split_first() else {
        return Err(Failure::new(exit::USAGE, "no command to run after `--`"));
    };
    let answer = connect(cli)?.token(name, min_valid)?;
    let token = usable(name, answer.access_token.expose())?;
    // The token goes in the environment only: a command line is readable
    // by every local user in /proc. The daemon's socket is close-on-exec.
    let error = std::process::Command::new(program)
        .args(args)
        .env(variable, token)
        .exec();
    let status = if error.kind() == io::ErrorKind::NotFound {
        exit::COMMAND_NOT_FOUND
    } else {
        exit::COMMAND_NOT_RUNNABLE
    };
    Err(Failure::new(
        status,
        format!("cannot run {}: {error}", program.to_string_lossy()),
    ))
}

/// Why the token in `variable` would keep the command from running as
/// meant, for the variables the system reads in every program rather
/// than the command: `None` for any other. Refused rather than worked
/// around: even with the program found first, what it runs would fail
/// the same way, and no one means a token as either.
fn breaks_running_the_command(variable: &str) -> Option<&'static str> {
    match variable {
        // The program is looked up in the new environment's PATH, and so
        // is every program it runs: "cannot run sh: No such file or
        // directory", exit 127, said no more.
        "PATH" => Some(
            "would make the token the command search path, where neither the command nor \
             what it runs is found",
        ),
        // The dynamic loader of every program the command runs reads its
        // `LD_` variables: it tries to load the value (the token) as a
        // library or audit module and prints it on stderr (`LD_PRELOAD`,
        // `LD_AUDIT`), or changes what is loaded (`LD_LIBRARY_PATH`).
        loader if loader.starts_with("LD_") => Some(
            "would hand the token to the dynamic loader of every program the command runs (an \
             `LD_` variable), which tries to use it as a library path or module and prints it \
             on stderr",
        ),
        // Read by every shell the command starts, as a file to run.
        "BASH_ENV" | "ENV" => Some(
            "would have every shell the command starts run the token as the path of a file, and \
             print it in its error",
        ),
        _ => None,
    }
}

/// `tokenctl version`: this program's version, then the daemon's.
fn version(cli: &Cli) -> Result<(), Failure> {
    let ours = env!("CARGO_PKG_VERSION");
    if !cli.json {
        print(&format!("tokenctl {ours} (protocol {PROTOCOL_VERSION})\n"))?;
    }
    let daemon = connect(cli)?.version()?;
    if cli.json {
        #[derive(Serialize)]
        struct Versions<'a> {
            tokenctl: &'a str,
            protocol: u32,
            daemon_version: &'a str,
            daemon_protocol: u32,
        }
        print_json(&Versions {
            tokenctl: ours,
            protocol: PROTOCOL_VERSION,
            daemon_version: &daemon.daemon_version,
            daemon_protocol: daemon.protocol,
        })?;
    } else {
        print(&format!(
            "tokend {} (protocol {})\n",
            format::clean(&daemon.daemon_version),
            daemon.protocol
        ))?;
    }
    // The same exit status with `--json`: a script checking that the
    // daemon was restarted after an upgrade reads the status (it was 0).
    if daemon.protocol != PROTOCOL_VERSION {
        return Err(Failure::new(
            exit::FAILURE,
            format!(
                "tokenctl and tokend speak different protocol versions: install matching versions (after an upgrade, restart tokend: {RESTART_HINT})"
            ),
        ));
    }
    Ok(())
}

fn print(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::output(&e))
}

/// One compact JSON document and a newline.
fn print_json(value: &impl Serialize) -> Result<(), Failure> {
    let line = serde_json::to_string(value).map_err(|e| Failure::output(&e.into()))?;
    print(&(line + "\n"))
}
