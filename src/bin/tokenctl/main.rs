//! `tokenctl`: the command-line helper of tokend.
//!
//! One process, one connection, usually one request: `tokenctl token` runs
//! inside scripts and credential helpers, so it stays a blocking program
//! with no async runtime. Talking to the daemon is [`tokend::client`]; this
//! binary parses the command line, prints, and picks the exit status.

mod exit;
mod format;
mod login;
mod screen;
mod status;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Serialize;
use tokend::client::{self, Client, DEFAULT_TIMEOUT};
use tokend::config::Environment;
use tokend::protocol::{Answer, DEFAULT_MIN_VALID_SECS, PROTOCOL_VERSION};

use crate::exit::Failure;

/// Talk to tokend, the OAuth 2.0 token broker: get access tokens, log in,
/// see and end sessions.
#[derive(Debug, Parser)]
#[command(name = "tokenctl", version, after_help = exit::help_text())]
struct Cli {
    #[arg(
        long,
        global = true,
        env = "TOKEND_SOCKET",
        value_name = "PATH",
        help = "The daemon's socket [default: $RUNTIME_DIRECTORY/tokend.sock or \
                $XDG_RUNTIME_DIR/tokend/tokend.sock; /run/tokend/tokend.sock when \
                only the system daemon runs]"
    )]
    socket: Option<PathBuf>,

    /// Print JSON instead of text (`login`: one object per line)
    #[arg(long, global = true)]
    json: bool,

    /// Seconds to wait for each answer from the daemon
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = DEFAULT_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    timeout: u64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a valid access token for provider NAME on stdout, and nothing else
    Token {
        /// The provider, as named in the config (`[providers.NAME]`)
        name: String,
        /// Seconds of life the token must have left; tokend refreshes it
        /// first when needed
        #[arg(long, value_name = "SECS", default_value_t = DEFAULT_MIN_VALID_SECS)]
        min_valid: u64,
    },
    /// Log in to provider NAME: show the device code, wait for approval
    Login {
        /// The provider, as named in the config
        name: String,
        /// Return once the code is shown; the login goes on in tokend
        #[arg(long)]
        no_wait: bool,
    },
    /// Show the providers' sessions: state, expiry, refreshes, last error
    Status {
        /// Only this provider, in more detail
        name: Option<String>,
    },
    /// Forget the session of provider NAME, in memory and in the store
    Logout {
        /// The provider, as named in the config
        name: String,
    },
    /// Show the versions of tokenctl, tokend and their protocol
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
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

fn run(cli: &Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Token { name, min_valid } => token(cli, name, *min_valid),
        Command::Login { name, no_wait } => {
            let options = login::LoginOptions {
                json: cli.json,
                no_wait: *no_wait,
            };
            login::run(
                &mut connect(cli)?,
                name,
                options,
                screen::Terminal::of_stdout(),
            )
        }
        Command::Status { name } => {
            let providers = connect(cli)?.status(name.as_deref())?;
            if cli.json {
                print_json(&providers)
            } else {
                let now = format::unix_now();
                print(&status::human(&providers, name.is_some(), now))
            }
        }
        Command::Logout { name } => {
            let answer = connect(cli)?.logout(name)?;
            if cli.json {
                print_json(&Answer::success(answer))
            } else {
                print(&format!(
                    "Logged out of {}: its tokens are gone from tokend and its store.\n",
                    format::clean(&answer.provider)
                ))
            }
        }
        Command::Version => version(cli),
    }
}

/// The socket: `--socket`/`TOKEND_SOCKET` (clap reads both), else the default.
fn socket_path(cli: &Cli) -> PathBuf {
    cli.socket
        .clone()
        .unwrap_or_else(|| client::default_socket_path(&Environment::from_process()))
}

fn connect(cli: &Cli) -> Result<Client, Failure> {
    let mut client = Client::connect(&socket_path(cli))?;
    client.set_timeout(Duration::from_secs(cli.timeout));
    Ok(client)
}

/// `tokenctl token`: the one place a token is printed.
fn token(cli: &Cli, name: &str, min_valid: u64) -> Result<(), Failure> {
    let answer = connect(cli)?.token(name, Some(min_valid))?;
    let token = answer.access_token.expose();
    // A newline or escape in a token would split or corrupt the HTTP header
    // a script builds from it: refuse rather than pass it on.
    if token.is_empty() || token.chars().any(char::is_control) {
        return Err(Failure::new(
            exit::FAILURE,
            format!(
                "tokend sent an unusable token for `{name}` (empty, or with control characters)"
            ),
        ));
    }
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
        return print_json(&Versions {
            tokenctl: ours,
            protocol: PROTOCOL_VERSION,
            daemon_version: &daemon.daemon_version,
            daemon_protocol: daemon.protocol,
        });
    }
    print(&format!(
        "tokend {} (protocol {})\n",
        format::clean(&daemon.daemon_version),
        daemon.protocol
    ))?;
    if daemon.protocol != PROTOCOL_VERSION {
        return Err(Failure::new(
            exit::FAILURE,
            "tokenctl and tokend speak different protocol versions: install matching versions",
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_documents_exit_statuses() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit status:"), "{help}");
        assert!(help.contains("4  login required"), "{help}");
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli =
            Cli::try_parse_from(["tokenctl", "token", "gh", "--json", "--socket", "/s"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.socket.as_deref(), Some(std::path::Path::new("/s")));
        let Command::Token { min_valid, .. } = cli.command else {
            panic!("not token")
        };
        assert_eq!(min_valid, DEFAULT_MIN_VALID_SECS);
    }
}
