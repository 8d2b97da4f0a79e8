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

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;
use tokend::cli::{TokenctlArgs as Cli, TokenctlCommand as Command};
use tokend::client::{self, Client};
use tokend::config::Environment;
use tokend::protocol::{Answer, PROTOCOL_VERSION, STATUS_STREAM_SINCE};

use crate::exit::Failure;

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
                &mut connect_checked(cli)?.0,
                name,
                options,
                screen::Terminal::of_stdout(),
            )
        }
        Command::Status { name } => status(cli, name.as_deref()),
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

/// Connects and, for the interactive verbs, asks the daemon's protocol
/// version first, warning on stderr when it differs from ours; returns the
/// daemon's version too, when it said. `token` skips this: it is called in
/// loops by scripts and must cost one round trip.
fn connect_checked(cli: &Cli) -> Result<(Client, Option<u32>), Failure> {
    let mut client = connect(cli)?;
    let version = client.version();
    match &version {
        Ok(daemon) if daemon.protocol != PROTOCOL_VERSION => {
            let _ = writeln!(
                io::stderr(),
                "tokenctl: warning: tokend {} speaks protocol {}, tokenctl {} speaks {PROTOCOL_VERSION}; install matching versions",
                format::clean(&daemon.daemon_version),
                daemon.protocol,
                env!("CARGO_PKG_VERSION"),
            );
        }
        // A daemon too old to know `version`, or one that answers it: go on
        // and let the real request tell.
        _ => {}
    }
    Ok((client, version.ok().map(|v| v.protocol)))
}

fn connect(cli: &Cli) -> Result<Client, Failure> {
    let mut client = Client::connect(&socket_path(cli))?;
    client.set_timeout(Duration::from_secs(cli.timeout));
    Ok(client)
}

/// `tokenctl status [NAME]`: printed as the providers arrive, one at a time,
/// from a daemon that streams them (protocol 2 on); from an older one, out
/// of its single answer line.
fn status(cli: &Cli, name: Option<&str>) -> Result<(), Failure> {
    let (mut client, protocol) = connect_checked(cli)?;
    let layout = match (cli.json, name) {
        (true, _) => status::Layout::Json,
        (false, None) => status::Layout::Table,
        (false, Some(_)) => status::Layout::Details,
    };
    let out = BufWriter::new(io::stdout().lock());
    let mut printer = status::Printer::new(out, layout, format::unix_now());
    let mut print = |p: &_| printer.provider(p).map_err(|e| Failure::output(&e));
    let store = if protocol.is_some_and(|p| p >= STATUS_STREAM_SINCE) {
        let mut stream = client.status_stream(name)?;
        for provider in stream.by_ref() {
            print(&provider?)?;
        }
        stream.store().cloned()
    } else {
        client.status(name)?.iter().try_for_each(print)?;
        None
    };
    printer
        .finish(store.as_ref(), io::stderr().lock())
        .map_err(|e| Failure::output(&e))
}

/// `tokenctl token`: the one place a token is printed.
fn token(cli: &Cli, name: &str, min_valid: Option<u64>) -> Result<(), Failure> {
    let answer = connect(cli)?.token(name, min_valid)?;
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
