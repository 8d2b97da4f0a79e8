//! `tokend-emulator`: a local OAuth 2.0 device-grant provider (RFC 8628 or
//! any dialect tokend speaks), for trying tokend without any account or
//! credential.
//!
//! It prints a provider config to paste (or writes a whole tokend config),
//! logs one line per request on stderr (never a token), and serves an
//! approval page where the person types the code the device shows. Only
//! loopback addresses are accepted: it hands tokens to anyone who asks.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use tokend_emulator::{
    Emulator, EmulatorOptions, GenericV1Options, OracleOptions, Rfc8628Options, Rfc8628Quirks,
    TraktOptions, TwilioOptions,
};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast::error::RecvError;

/// The dialects the emulator can speak (config names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Dialect {
    /// RFC 8628 + RFC 6749 (GitHub, Google, Microsoft, Keycloak, ...).
    Rfc8628,
    /// Trakt.
    Trakt,
    /// Twilio OAuth v1.
    Twilio,
    /// Oracle identity domains.
    Oracle,
    /// The generic device API v1.
    GenericV1,
}

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
}

/// A local device-grant provider for trying tokend offline.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The dialect to speak.
    #[arg(long, value_enum, default_value_t = Dialect::Rfc8628)]
    dialect: Dialect,
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

/// The emulator options for `args`.
fn options(args: &Args) -> anyhow::Result<EmulatorOptions> {
    let interval = Duration::from_secs(args.interval);
    let lifetime = Duration::from_secs(args.token_lifetime);
    let client_id = args.client_id.clone();
    if args.quirks.is_some() && args.dialect != Dialect::Rfc8628 {
        bail!("--quirks is for --dialect rfc8628 only");
    }
    Ok(match args.dialect {
        Dialect::Rfc8628 => Rfc8628Options {
            client_id,
            interval,
            access_token_lifetime: lifetime,
            quirks: match args.quirks {
                None => Rfc8628Quirks::default(),
                Some(Quirks::Github) => Rfc8628Quirks::github(),
                Some(Quirks::Google) => Rfc8628Quirks::google(),
                Some(Quirks::Microsoft) => Rfc8628Quirks::microsoft(),
                Some(Quirks::AzureAdV1) => Rfc8628Quirks::azure_ad_v1(),
            },
            ..Rfc8628Options::default()
        }
        .into(),
        Dialect::Trakt => TraktOptions {
            client_id,
            interval,
            access_token_lifetime: lifetime,
            ..TraktOptions::default()
        }
        .into(),
        Dialect::Twilio => TwilioOptions {
            client_sid: client_id,
            interval,
            access_token_lifetime: lifetime,
            ..TwilioOptions::default()
        }
        .into(),
        // Oracle sends no interval: clients poll every 5 s whatever is set.
        Dialect::Oracle => OracleOptions {
            client_id,
            access_token_lifetime: lifetime,
            ..OracleOptions::default()
        }
        .into(),
        Dialect::GenericV1 => GenericV1Options {
            client_id,
            interval,
            access_token_lifetime: lifetime,
            ..GenericV1Options::default()
        }
        .into(),
    })
}

/// The `[providers.demo]` table pointing at `emu`.
fn provider_table(emu: &Emulator, args: &Args) -> String {
    let client_id = toml_string(&args.client_id);
    if args.dialect == Dialect::Rfc8628 {
        return format!(
            "[providers.demo]\ndevice_authorization_endpoint = {}\ntoken_endpoint = {}\nclient_id = {client_id}\n",
            toml_string(emu.device_authorization_endpoint().as_str()),
            toml_string(emu.token_endpoint().as_str()),
        );
    }
    let (dialect, keys) = match args.dialect {
        Dialect::Trakt => (
            "trakt",
            format!(
                "client_secret = {}\n",
                toml_string(&TraktOptions::default().client_secret)
            ),
        ),
        Dialect::Twilio => {
            let account = TwilioOptions::default();
            (
                "twilio",
                format!(
                    "account_sid = {}\nauth_token = {}\nscopes = [\"offline_access\"]\n",
                    toml_string(&account.account_sid),
                    toml_string(&account.auth_token)
                ),
            )
        }
        Dialect::Oracle => (
            "oracle",
            "scopes = [\"openid\", \"offline_access\"]\n".to_owned(),
        ),
        Dialect::GenericV1 | Dialect::Rfc8628 => ("generic-v1", String::new()),
    };
    let base = emu.base_url();
    format!(
        "[providers.demo]\ndialect = \"{dialect}\"\nbase_url = {}\nclient_id = {client_id}\n{keys}",
        toml_string(base.as_str().trim_end_matches('/')),
    )
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
    let emu = Emulator::start_on(args.listen, options(&args)?)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // Subscribe before anyone can connect to the printed URL.
    let mut requests = emu.subscribe();
    let base = emu.base_url();
    let origin = base.as_str().trim_end_matches('/');
    let provider = provider_table(&emu, &args);
    if let Some(path) = &args.config_out {
        write_config(path, &provider)?;
    }

    let name = match args.dialect {
        Dialect::Rfc8628 => "RFC 8628",
        Dialect::Trakt => "Trakt",
        Dialect::Twilio => "Twilio",
        Dialect::Oracle => "Oracle",
        Dialect::GenericV1 => "generic-v1",
    };
    println!("tokend-emulator: {name} provider listening on {origin}");
    println!("\nProvider config for tokend:\n\n{provider}");
    if args.dialect == Dialect::Rfc8628 {
        println!(
            "(OpenID discovery works too: issuer = {})\n",
            toml_string(origin)
        );
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
