//! `tokend-emulator`: a local OAuth 2.0 device-grant provider (RFC 8628),
//! for trying tokend without any account or credential.
//!
//! It prints a provider config to paste (or writes a whole tokend config),
//! logs one line per request on stderr (never a token), and serves an
//! approval page where the person types the code the device shows. Only
//! loopback addresses are accepted: it hands tokens to anyone who asks.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use tokend::emulator::{Emulator, Rfc8628Options};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast::error::RecvError;

/// A local RFC 8628 device-grant provider for trying tokend offline.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; only loopback addresses are accepted (port 0
    /// picks a free port).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The client id the emulator accepts (a public client, no secret).
    #[arg(long, value_name = "ID", default_value = "demo")]
    client_id: String,
    /// Minimum seconds between polls; polling faster gets `slow_down`.
    #[arg(long, value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    interval: u64,
    /// Lifetime of access tokens in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    token_lifetime: u64,
    /// Also write a complete tokend config file (no D-Bus, memory store) here.
    #[arg(long, value_name = "PATH")]
    config_out: Option<PathBuf>,
}

/// A TOML basic string: quoted, with `"`, `\` and control characters escaped.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn provider_table(emu: &Emulator, client_id: &str) -> String {
    format!(
        "[providers.demo]\ndevice_authorization_endpoint = {}\ntoken_endpoint = {}\nclient_id = {}\n",
        toml_string(emu.device_authorization_endpoint().as_str()),
        toml_string(emu.token_endpoint().as_str()),
        toml_string(client_id),
    )
}

fn write_config(path: &Path, provider: &str) -> anyhow::Result<()> {
    let text = format!(
        "# tokend config for the provider emulator, written by tokend-emulator.\n\
         # Valid only while that emulator runs (its port changes on each start).\n\
         [daemon]\nbus = \"none\"\nstore = \"memory\"\n\n{provider}"
    );
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {}: the emulator gives tokens to anyone who asks, so it \
             listens on loopback only (try --listen 127.0.0.1:{})",
            args.listen,
            args.listen.port()
        );
    }
    let options = Rfc8628Options {
        client_id: args.client_id.clone(),
        interval: Duration::from_secs(args.interval),
        access_token_lifetime: Duration::from_secs(args.token_lifetime),
        ..Rfc8628Options::default()
    };
    let emu = Emulator::start_on(args.listen, options)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // Subscribe before anyone can connect to the printed URL.
    let mut requests = emu.subscribe();
    let base = emu.base_url();
    let origin = base.as_str().trim_end_matches('/');
    let provider = provider_table(&emu, &args.client_id);
    if let Some(path) = &args.config_out {
        write_config(path, &provider)?;
    }

    println!("tokend-emulator: RFC 8628 provider listening on {origin}");
    println!("\nProvider config for tokend:\n\n{provider}");
    println!(
        "(OpenID discovery works too: issuer = {})\n",
        toml_string(origin)
    );
    if let Some(path) = &args.config_out {
        println!("A complete tokend config is in {}\n", path.display());
    }
    println!(
        "To approve a login, open {} in a browser,\nor run: curl -d user_code=CODE {origin}/device/approve\n",
        emu.verification_uri()
    );
    println!("Requests are logged on stderr. Stop with Ctrl-C.");

    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            received = requests.recv() => match received {
                Ok(request) => {
                    eprintln!("{request}");
                    for violation in &request.violations {
                        eprintln!("    protocol violation: {violation}");
                    }
                }
                Err(RecvError::Lagged(missed)) => eprintln!("({missed} requests not shown)"),
                Err(RecvError::Closed) => break,
            },
        }
    }
    emu.shutdown().await;
    eprintln!("tokend-emulator: stopped");
    Ok(())
}
