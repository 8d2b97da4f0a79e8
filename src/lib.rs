//! tokend: a token broker for Linux.
//!
//! The daemon keeps OAuth 2.0 device-grant sessions for several providers,
//! refreshes their access tokens before they expire, keeps refresh tokens in
//! a secret store, and hands fresh access tokens to local programs over a
//! Unix socket and D-Bus.
//!
//! The library holds everything; the binaries in `src/bin/` only wire it up.
//!
//! - [`config`]: the TOML config, validated with `file:line:col` diagnostics.
//! - [`provider`]: one file per wire dialect behind [`provider::ProviderDialect`],
//!   listed in the registry [`provider::dialects`].
//! - [`protocol`]: the Unix socket protocol shared by daemon and `tokenctl`.
//! - [`broker`]: the core: sessions, device login, refresh scheduling, access policy.
//! - [`ipc`]: the Unix socket and D-Bus front-ends.
//! - [`secret`]: redacting, zeroizing wrappers for tokens and secrets.
//! - [`client`]: the blocking socket client `tokenctl` is built on.
//! - [`cli`]: the command lines of both binaries (also the source of the man pages).
//! - [`world`]: the network coming back and the machine resuming, which end a wait.

pub mod broker;
pub mod cli;
pub mod client;
pub mod code_pages;
pub mod config;
pub mod daemon;
pub mod hooks;
pub mod ipc;
pub mod protocol;
pub mod provider;
pub mod secret;
pub mod store;
pub mod systemd;
pub mod trusted_path;
pub mod world;
