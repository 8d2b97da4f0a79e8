//! The TOML config: parsed, validated and typed.
//!
//! [`load`] reads a file and returns either a [`Config`] that is complete and
//! consistent, or every problem found, each at its `file:line:col`. There is
//! no half-valid config: the daemon starts with all of it or none of it.
//! The accepted keys are documented in `config/example.toml`.

mod daemon_keys;
mod daemon_table;
#[cfg(test)]
pub(crate) use daemon_table::TOKENCTL_WAIT;
mod diagnostic;
mod dialect;
mod endpoints;
mod environment;
mod file_access;
mod load;
mod parse;
mod placeholder;
mod provider_table;
pub use provider_table::{MAX_PROVIDER_NAME, comparable_host};
mod reader;
mod secrets;
mod store;
mod units;
mod users;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

pub use daemon_table::log_directives_problem;
pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use endpoints::derived_refresh_endpoint;
pub use environment::Environment;
pub(crate) use load::trusted_owners;
pub use load::{MAX_CONFIG_BYTES, load};
pub use parse::object_path_element;
pub use store::{DEFAULT_KEY_CREDENTIAL, EncryptedFileConfig};
pub use units::UnitPattern;
pub use users::{current_group_members, primary_gid, primary_gid_answer};

use crate::provider::{ClientIdentity, DialectSettings, DialectSpec, ProviderDialect};
use crate::secret::Secret;

/// Defined by the provider layer, which sends them; re-exported because
/// they are config values too.
pub use crate::provider::{ClientAuth, EndpointSource};

/// The longest socket path a Unix socket's address holds (`sun_path` is
/// 108 bytes with its terminating NUL): no daemon can listen at, and no
/// client connect to, a longer one.
pub const MAX_SOCKET_PATH_BYTES: usize = 107;

/// Which D-Bus bus to serve on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    /// The user's session bus.
    Session,
    /// The system bus.
    System,
    /// No D-Bus front-end.
    None,
}

/// Where refresh tokens are kept between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The Secret Service (gnome-keyring, KWallet, KeePassXC) via `keyring`.
    SecretService,
    /// Memory only: sessions do not survive a restart.
    Memory,
    /// Encrypted files in the state directory, for the system service.
    EncryptedFile,
}

impl StoreKind {
    const NAMES: &'static [(&'static str, StoreKind)] = &[
        ("secret-service", StoreKind::SecretService),
        ("memory", StoreKind::Memory),
        ("encrypted-file", StoreKind::EncryptedFile),
    ];

    /// The config name.
    #[must_use]
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(n, _)| n)
    }
}

/// The `[daemon]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Path of the Unix socket.
    pub socket: PathBuf,
    /// Permission bits of the socket (default 0600).
    pub socket_mode: u32,
    /// Group owning the socket, when access is granted to a group.
    pub socket_group: Option<u32>,
    /// Which bus to serve on.
    pub bus: BusKind,
    /// Where refresh tokens live.
    pub store: StoreKind,
    /// The encrypted file store's directory and key: `Some` exactly when
    /// `store` is [`StoreKind::EncryptedFile`].
    pub encrypted_file: Option<EncryptedFileConfig>,
    /// Log filter (`info`, `debug`, `tokend=debug`, ...); `RUST_LOG` wins.
    pub log_level: Option<String>,
    /// Total time limit of every HTTP request to a provider.
    pub http_timeout: Duration,
    /// How long the daemon waits for one store call before it counts the
    /// store as down (`store_timeout`, default 30 s).
    pub store_timeout: Duration,
    /// At most this many refreshes run at once against one token endpoint.
    pub max_concurrent_refreshes: usize,
    /// A program and its arguments run (no shell) on session events
    /// (`login_required`, `logged_in`, `refresh_failed`) with `PROVIDER` and
    /// `EVENT` in its environment; empty: none.
    pub on_event: Vec<String>,
    /// Whether a daemon on the session bus shows a desktop notification
    /// when a session needs a login (default true).
    pub notify: bool,
    /// How long before a refresh token expires (when the provider says) the
    /// daemon warns that a new login is needed (`refresh_token_warning_days`,
    /// default 7; zero: never).
    pub refresh_token_warning: Duration,
}

impl DaemonConfig {
    /// The keys, by their names in the file, whose values differ between
    /// `self` and `other`: what a reload found changed in `[daemon]`,
    /// which only a restart applies. (The store's location and key are
    /// one setting under several keys.)
    #[must_use]
    pub fn changed_keys(&self, other: &Self) -> Vec<&'static str> {
        // Every field named, so that a new one cannot be left out.
        let Self {
            socket,
            socket_mode,
            socket_group,
            bus,
            store,
            encrypted_file,
            log_level,
            http_timeout,
            store_timeout,
            max_concurrent_refreshes,
            on_event,
            notify,
            refresh_token_warning,
        } = self;
        let mut changed = Vec::new();
        let mut compare = |same: bool, key: &'static str| {
            if !same {
                changed.push(key);
            }
        };
        compare(*socket == other.socket, "socket");
        compare(*socket_mode == other.socket_mode, "socket_mode");
        compare(*socket_group == other.socket_group, "socket_group");
        compare(*bus == other.bus, "bus");
        compare(*store == other.store, "store");
        // A change of store brings or drops the encrypted file's settings:
        // that is the store's change, not one of those keys.
        compare(
            *store != other.store || *encrypted_file == other.encrypted_file,
            "state_directory/store_key_file/store_key_credential",
        );
        compare(*log_level == other.log_level, "log_level");
        compare(*http_timeout == other.http_timeout, "http_timeout");
        compare(*store_timeout == other.store_timeout, "store_timeout");
        compare(
            *max_concurrent_refreshes == other.max_concurrent_refreshes,
            "max_concurrent_refreshes",
        );
        compare(*on_event == other.on_event, "on_event");
        compare(*notify == other.notify, "notify");
        compare(
            *refresh_token_warning == other.refresh_token_warning,
            "refresh_token_warning_days",
        );
        changed
    }
}

/// One `[providers.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    /// The table key.
    pub name: String,
    /// Wire dialect, from the registry ([`crate::provider::dialects`]).
    pub dialect: &'static DialectSpec,
    /// Where the endpoints come from.
    pub endpoints: EndpointSource,
    /// OAuth client id.
    pub client_id: String,
    /// Client secret, read from the config text, a file or a credential.
    pub client_secret: Option<Secret>,
    /// Where the secret goes.
    pub client_auth: ClientAuth,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// Extra fields for the device authorization request.
    pub device_params: BTreeMap<String, String>,
    /// Page shown to the person when the provider sends none.
    pub verification_uri: Option<Url>,
    /// The values of the dialect's own keys, as the dialect read them.
    pub dialect_settings: DialectSettings,
    /// Uids that may use this provider (get tokens, see its status).
    pub allow_users: Vec<u32>,
    /// Groups whose members may use this provider.
    pub allow_groups: Vec<GroupGrant>,
    /// systemd units (names or glob patterns) whose processes may use
    /// this provider, whatever their uid.
    pub allow_units: Vec<UnitPattern>,
    /// Uids that may also log in and out (besides root and the daemon's
    /// own uid, which always may).
    pub manage_users: Vec<u32>,
    /// Groups whose members may also log in and out.
    pub manage_groups: Vec<GroupGrant>,
    /// Hosts whose credentials this provider's tokens are (the credential
    /// helpers for git and container registries pick the provider by
    /// host), lowercase.
    pub hosts: Vec<String>,
    /// The user name the credential helpers send with the token; `None`:
    /// [`DEFAULT_USERNAME`].
    pub username: Option<String>,
    /// How `tokenctl credential git` hands git the token (`git_auth`).
    pub git_auth: GitAuth,
}

impl ProviderConfig {
    /// What the dialect needs to know about the client.
    #[must_use]
    pub fn client_identity(&self) -> ClientIdentity {
        ClientIdentity {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            client_auth: self.client_auth,
            scopes: self.scopes.clone(),
            device_params: self.device_params.clone(),
        }
    }

    /// Builds the wire dialect this provider speaks.
    #[must_use]
    pub fn build_dialect(&self) -> Box<dyn ProviderDialect> {
        (self.dialect.build)(self.client_identity(), &self.dialect_settings)
    }

    /// Whether `other` differs from this table at most in keys a reload
    /// can apply to the running session: who may use and manage it
    /// (`allow_*`, `manage_*`) and what the credential helpers are told
    /// (`hosts`, `username`, `git_auth`). Every other key shapes the
    /// session's requests (client, endpoints, scopes, the device request),
    /// so a change to one rebuilds the session and ends a pending login.
    #[must_use]
    pub fn same_session_keys(&self, other: &Self) -> bool {
        let mut other = other.clone();
        other.allow_users.clone_from(&self.allow_users);
        other.allow_groups.clone_from(&self.allow_groups);
        other.allow_units.clone_from(&self.allow_units);
        other.manage_users.clone_from(&self.manage_users);
        other.manage_groups.clone_from(&self.manage_groups);
        other.hosts.clone_from(&self.hosts);
        other.username.clone_from(&self.username);
        other.git_auth = self.git_auth;
        *self == other
    }
}

/// The user name the credential helpers send with a token when the
/// provider sets no `username`: GitLab's and others' convention for
/// OAuth tokens (GitHub takes any; its preset says `x-access-token`).
pub const DEFAULT_USERNAME: &str = "oauth2";

/// How the git credential helper hands git the token (`git_auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GitAuth {
    /// As a Bearer token when the server asks only for Bearer (its
    /// `WWW-Authenticate` challenges, which git passes on) and git can send
    /// one (2.46 or later); else as HTTP Basic's password, which most
    /// forges take (GitHub, GitLab, Gitea, Bitbucket).
    #[default]
    Auto,
    /// Always as HTTP Basic's password, with the user name.
    Basic,
    /// Always as `Authorization: Bearer` (a server that offers Basic too
    /// but takes tokens only as Bearer); needs git 2.46 or later.
    Bearer,
}

impl GitAuth {
    /// The config's spelling, also sent in `status`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Basic => "basic",
            Self::Bearer => "bearer",
        }
    }

    /// The value `git_auth = NAME` gives, if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Auto, Self::Basic, Self::Bearer]
            .into_iter()
            .find(|auth| auth.as_str() == name)
    }
}

/// A group allowed to use a provider, resolved when the config is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupGrant {
    /// The group id: callers with it as primary group are allowed.
    pub gid: u32,
    /// Uids listed as members of the group (supplementary membership).
    pub member_uids: Vec<u32>,
}

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The `[daemon]` table.
    pub daemon: DaemonConfig,
    /// Providers, sorted by name.
    pub providers: Vec<ProviderConfig>,
    /// Problems that do not stop the daemon.
    pub warnings: Vec<Diagnostic>,
    /// Who may own the paths tokend trusts (the config, the `on_event`
    /// program, the socket's directories and those above them), as this
    /// config was judged: by the daemon for itself, or by `tokend --check`.
    pub owners: crate::trusted_path::Owners,
    /// Line and column of the `socket` key's value, when the file sets it:
    /// `tokend --check` points there at a socket path the daemon would
    /// refuse, as at any other problem of the file.
    pub socket_at: Option<(usize, usize)>,
}

impl Config {
    /// The provider named `name`.
    #[must_use]
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name == name)
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the config: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file has problems; all of them are listed (errors and warnings).
    #[error("{}", render(.diagnostics))]
    Invalid {
        /// Every problem, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests;
