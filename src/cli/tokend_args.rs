//! `tokend`'s command line.

use std::path::PathBuf;

use clap::Parser;

/// Keeps OAuth 2.0 device-grant sessions fresh and hands access tokens to
/// local programs over a Unix socket and D-Bus.
#[derive(Debug, Parser)]
#[command(name = "tokend", version, about, long_about = None)]
pub struct TokendArgs {
    /// Config file [default: $TOKEND_CONFIG, else
    /// $XDG_CONFIG_HOME/tokend/config.toml, /etc/tokend/config.toml for root]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Validate the config, print every problem as file:line:col: message,
    /// and exit (0 when valid).
    #[arg(long)]
    pub check: bool,

    /// Remove the stored sessions of providers that are no longer in the
    /// config, print what was removed, and exit. The daemon may be running,
    /// but reload it first (systemctl reload tokend): one that still has
    /// the provider saves its session again at the next refresh.
    #[arg(long, conflicts_with = "check")]
    pub prune: bool,
}
