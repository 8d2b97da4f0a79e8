//! `tokend-emulator`: a local OAuth 2.0 device-grant provider (RFC 8628 or
//! any dialect tokend speaks), for trying tokend without any account or
//! credential.
//!
//! It prints a provider config to paste (or writes a whole tokend config),
//! logs one line per request on stderr (never a token), and serves an
//! approval page where the person types the code the device shows. Only
//! loopback addresses are accepted: it hands tokens to anyone who asks.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::builder::PossibleValuesParser;
use clap::{Parser, ValueEnum};
use tokend_emulator::{Clock, DemoSettings, Emulator, EmulatorOptions, Endpoint, Rfc8628Quirks};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast::error::RecvError;

/// Real providers' deviations from RFC 8628 (with `--dialect rfc8628`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Quirks {
    /// Form-encoded answers without `Accept: application/json`, errors with 200.
    Github,
    /// `verification_url`, pending as 428.
    Google,
    /// `message`, `authorization_declined`.
    Microsoft,
    /// `verification_url`, numbers as strings.
    AzureAdV1,
    /// `expired_token` once, then `invalid_grant`.
    Auth0,
}

impl From<Quirks> for Rfc8628Quirks {
    fn from(quirks: Quirks) -> Self {
        match quirks {
            Quirks::Github => Self::github(),
            Quirks::Google => Self::google(),
            Quirks::Microsoft => Self::microsoft(),
            Quirks::AzureAdV1 => Self::azure_ad_v1(),
            Quirks::Auth0 => Self::auth0(),
        }
    }
}

/// A local device-grant provider for trying tokend offline.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The dialect to speak (the emulated dialects, as tokend's config
    /// names them).
    #[arg(long, value_name = "DIALECT", default_value = "rfc8628",
          value_parser = PossibleValuesParser::new(EmulatorOptions::NAMES))]
    dialect: String,
    /// Reproduce a real provider's deviations (rfc8628 only).
    #[arg(long, value_enum, value_name = "PROVIDER")]
    quirks: Option<Quirks>,
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

/// The emulator options for `args`.
fn options(args: &Args) -> anyhow::Result<EmulatorOptions> {
    let settings = DemoSettings {
        client_id: args.client_id.clone(),
        interval: Duration::from_secs(args.interval),
        access_token_lifetime: Duration::from_secs(args.token_lifetime),
    };
    let Some(mut options) = EmulatorOptions::demo(&args.dialect, &settings) else {
        // clap checked the name against the same list.
        bail!("unknown dialect {}", args.dialect);
    };
    if let Some(quirks) = args.quirks {
        match &mut options {
            EmulatorOptions::Rfc8628(rfc8628) => rfc8628.quirks = quirks.into(),
            _ => bail!("--quirks is for --dialect rfc8628 only"),
        }
    }
    Ok(options)
}

fn write_config(path: &Path, provider: &str) -> anyhow::Result<()> {
    let text = format!(
        "# tokend config for the provider emulator, written by tokend-emulator.\n\
         # Valid only while that emulator runs (its port changes on each start).\n\
         [daemon]\nbus = \"none\"\nstore = \"memory\"\n\n{provider}"
    );
    // 0600: the provider table may hold the emulator's (fake) secrets, and
    // tokend warns about secrets in world-readable files.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
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
    let options = options(&args)?;
    let title = options.title();
    let emu = Emulator::start_on(args.listen, options.clone(), Clock::system())
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // Subscribe before anyone can connect to the printed URL.
    let mut requests = emu.subscribe();
    let base = emu.base_url();
    let origin = base.as_str().trim_end_matches('/');
    let provider = options.tokend_config("demo", origin);
    if let Some(path) = &args.config_out {
        write_config(path, &provider)?;
    }

    println!("tokend-emulator: {title} provider listening on {origin}");
    println!("\nProvider config for tokend:\n\n{provider}");
    if emu.endpoint_url(Endpoint::Discovery).is_some() {
        // The origin is an IP address and a port: nothing to escape.
        println!("(OpenID discovery works too: issuer = \"{origin}\")\n");
    }
    if let Some(path) = &args.config_out {
        println!("A complete tokend config is in {}\n", path.display());
    }
    let page = emu.verification_uri();
    println!(
        "To approve a login, open {page} in a browser,\nor run: curl -d user_code=CODE {page}/approve\n"
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
