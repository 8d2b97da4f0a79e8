//! `tokenctl`'s command line.

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use super::exit_status;
use crate::client::DEFAULT_TIMEOUT;

/// `--min-valid`: whole seconds, up to the longest a token may live (400
/// days), a usage error naming the flag past it rather than the daemon's
/// refusal (exit 1, in its own words).
fn min_valid_seconds(text: &str) -> Result<u64, String> {
    let max = crate::broker::MAX_MIN_VALID.as_secs();
    let seconds: u64 = text
        .parse()
        .map_err(|_| "a whole number of seconds, 0 or more".to_owned())?;
    if seconds > max {
        return Err(format!(
            "at most {max} seconds ({} days), the longest tokend lets a token live",
            max / 86_400
        ));
    }
    Ok(seconds)
}

/// Talk to tokend, the OAuth 2.0 token broker: get access tokens, log in,
/// see and end sessions.
#[derive(Debug, Parser)]
#[command(name = "tokenctl", version, after_help = exit_status::help_text())]
pub struct TokenctlArgs {
    /// The daemon's socket [default: $XDG_RUNTIME_DIR/tokend/tokend.sock
    /// (without XDG_RUNTIME_DIR, /run/user/UID/tokend/tokend.sock);
    /// /run/tokend/tokend.sock for root, or when only the system daemon
    /// runs]. An empty TOKEND_SOCKET counts as unset
    #[arg(long, global = true, env = SOCKET_VARIABLE, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// The user whose tokend serves --socket, when that is not root, you or
    /// tokend's own user: a user service sharing its socket with you (its
    /// `socket_group`). A name or a uid [env: TOKEND_SOCKET_OWNER]
    #[arg(long, global = true, value_name = "USER")]
    pub socket_owner: Option<String>,

    /// Print JSON instead of text (`login`: one object per line; `status
    /// --check`: one report object; `metrics`: an array of samples)
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for each answer from the daemon
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = DEFAULT_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub timeout: u64,

    /// What to do.
    #[command(subcommand)]
    pub command: TokenctlCommand,
}

/// The environment variable naming the daemon's socket, read by `tokenctl`
/// (as `--socket`'s default) and by `docker-credential-tokend`.
const SOCKET_VARIABLE: &str = "TOKEND_SOCKET";

/// The environment variable naming the user whose tokend serves the
/// socket (`--socket-owner`'s default), read by `tokenctl` and by
/// `docker-credential-tokend`.
const SOCKET_OWNER_VARIABLE: &str = "TOKEND_SOCKET_OWNER";

impl TokenctlArgs {
    /// The uid `--socket-owner` or `$TOKEND_SOCKET_OWNER` names (an empty
    /// variable counts as unset), if either does.
    ///
    /// # Errors
    /// The name, when no user has it.
    pub fn socket_owner_uid(&self) -> Result<Option<u32>, String> {
        let named = self.socket_owner.clone().or_else(|| {
            std::env::var(SOCKET_OWNER_VARIABLE)
                .ok()
                .filter(|value| !value.is_empty())
        });
        named.map(|name| uid_of(&name)).transpose()
    }

    /// [`Self::socket_owner_uid`] from the environment alone, for
    /// `docker-credential-tokend`.
    ///
    /// # Errors
    /// The name, when no user has it.
    pub fn socket_owner_from_environment() -> Result<Option<u32>, String> {
        std::env::var(SOCKET_OWNER_VARIABLE)
            .ok()
            .filter(|value| !value.is_empty())
            .map(|name| uid_of(&name))
            .transpose()
    }

    /// The socket `$TOKEND_SOCKET` names, if it names one: an empty
    /// variable (`TOKEND_SOCKET= cmd`) counts as unset. For
    /// `docker-credential-tokend`, which has no command line to parse.
    #[must_use]
    pub fn socket_from_environment() -> Option<PathBuf> {
        std::env::var_os(SOCKET_VARIABLE)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    }

    /// Parses the process's command line as [`Parser::parse`] does (usage
    /// errors and `--help` exit), except that an empty `$TOKEND_SOCKET`
    /// counts as unset. clap takes a variable that is set, even empty, for
    /// a value given, and refuses an empty one as it refuses `--socket ""`
    /// (`a value is required for '--socket <PATH>'`, exit 2).
    ///
    /// And a usage error's `Usage:` line is the command's own: clap lists
    /// an argument set from the environment there as if it had been typed
    /// (`Usage: tokenctl token --socket <PATH> <NAME>` with `TOKEND_SOCKET`
    /// set), so the error shown is that of a parse without the variable,
    /// which the variable cannot change otherwise.
    #[must_use]
    pub fn parse_command_line() -> Self {
        let empty = std::env::var_os(SOCKET_VARIABLE).is_some_and(|v| v.is_empty());
        let mut matches = match Self::command_reading_socket_variable(!empty).try_get_matches() {
            Ok(matches) => matches,
            // `--help` and `--version` (on stdout) show the variable's value.
            Err(e) if !e.use_stderr() => super::exit_for("tokenctl", &e),
            Err(e) => Self::command_reading_socket_variable(false)
                .try_get_matches()
                .err()
                .unwrap_or(e)
                .exit(),
        };
        Self::from_arg_matches_mut(&mut matches)
            .unwrap_or_else(|e| e.format(&mut Self::command()).exit())
    }

    /// The command line, with `--socket` read from `$TOKEND_SOCKET` or not.
    fn command_reading_socket_variable(read: bool) -> clap::Command {
        let command = Self::command();
        if read {
            command
        } else {
            command.mut_arg("socket", |arg| arg.env(None::<&str>))
        }
    }
}

/// `tokenctl`'s verbs.
#[derive(Debug, Subcommand)]
pub enum TokenctlCommand {
    /// Print a valid access token for provider NAME on stdout, and nothing else
    ///
    /// When stderr is a terminal and the token has not come after 3 s (a
    /// refresh at a provider slow to answer, a keyring waiting to be
    /// unlocked), one line on stderr says so; the wait goes on.
    Token {
        /// The provider, as named in the config (`[providers.NAME]`)
        name: String,
        /// Seconds of life the token must have left; tokend refreshes it
        /// first when needed, and fails when even a fresh token has less.
        /// Without it: a token tokend would not refresh yet (a share of the
        /// provider's token lifetime, however short), else any still-valid one
        #[arg(long, value_name = "SECS", value_parser = min_valid_seconds)]
        min_valid: Option<u64>,
        /// The current token was refused where it was presented (a server
        /// that revoked it, a cluster's 401): have tokend replace it and
        /// print the new one. A replacement refused too is replaced no
        /// sooner than a minute later (it is printed meanwhile)
        #[arg(long, conflicts_with = "min_valid")]
        replace: bool,
    },
    /// Log in to provider NAME: show the device code, wait for approval
    ///
    /// Ctrl-C (or any end of tokenctl) stops the waiting, not the login:
    /// tokend goes on with it until its code expires, so the person may
    /// still approve it (`tokenctl status NAME` shows how it ends), and
    /// `tokenctl login NAME --cancel` cancels it (the session stays;
    /// `tokenctl logout NAME` would end it too). A second `tokenctl login
    /// NAME` joins it and shows the same code.
    Login {
        /// The provider, as named in the config
        name: String,
        /// Return once the code is shown; the login goes on in tokend
        #[arg(long)]
        no_wait: bool,
        /// Cancel the login of NAME that waits for approval, and nothing
        /// else: its session, an active one too, stays
        #[arg(long, conflicts_with = "no_wait")]
        cancel: bool,
    },
    /// Show the providers' sessions: state, expiry, refreshes, last error
    Status {
        /// Only this provider, in more detail
        name: Option<String>,
        /// Health check: print one line per problem (a session that needs a
        /// login or whose login waits for approval, a failing refresh, an
        /// expired token, tokens not saved, the store down, a config the
        /// daemon refused or has not taken) and exit 1 if there is any, 0
        /// and nothing printed if none; for monitoring and ExecCondition=
        #[arg(long)]
        check: bool,
    },
    /// Forget the session of provider NAME, in memory and in the store
    Logout {
        /// The provider, as named in the config
        name: String,
    },
    /// Run COMMAND with a fresh access token of provider NAME in its
    /// environment (never on a command line); tokenctl becomes COMMAND, so
    /// its exit status is COMMAND's
    Exec {
        /// The provider, as named in the config
        name: String,
        /// The environment variable that carries the token (not PATH, an
        /// LD_ variable, BASH_ENV or ENV, which the system reads in every
        /// program or shell)
        #[arg(long, value_name = "VAR", default_value = DEFAULT_TOKEN_VARIABLE)]
        env: String,
        /// Seconds of life the token must have left (as for `token`)
        #[arg(long, value_name = "SECS", value_parser = min_valid_seconds)]
        min_valid: Option<u64>,
        /// The program and its arguments, after `--`
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<std::ffi::OsString>,
    },
    /// Be a credential helper of another tool (git, kubectl)
    Credential {
        /// Which tool's protocol.
        #[command(subcommand)]
        protocol: CredentialProtocol,
    },
    /// Print tokend's metrics as OpenMetrics text (sessions by state,
    /// refreshes and logins by outcome, refresh latency, the store, requests
    /// by outcome), for node_exporter's textfile collector or a scraper;
    /// series about a provider only for providers you may use
    Metrics,
    /// Show the versions of tokenctl, tokend and their protocol
    Version,
}

/// The credential-helper protocols `tokenctl credential` speaks.
#[derive(Debug, Subcommand)]
pub enum CredentialProtocol {
    /// git's credential helper: `git config --global credential.helper
    /// '!tokenctl credential git'`. `get` answers a token for the https
    /// host git names (the provider whose `hosts` has it; other protocols,
    /// such as a certificate's passphrase, get no answer): as Basic's
    /// password, or as a Bearer token (git 2.46 or later) when the
    /// provider's `git_auth` says "bearer" or the server asks only for
    /// Bearer; `store` does nothing, `erase` (a refused token) makes
    /// tokend refresh it
    Git {
        /// Use this provider, for any host its `hosts` list (any host at
        /// all when it lists none)
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
        /// What git asks: get, store or erase (others are ignored, as git's
        /// protocol says)
        action: String,
    },
    /// kubectl's exec credential plugin: prints an ExecCredential
    /// (client.authentication.k8s.io/v1, or v1beta1 when
    /// $KUBERNETES_EXEC_INFO asks for it) with provider NAME's token
    Kubernetes {
        /// The provider, as named in the config
        name: String,
    },
}

/// The variable `tokenctl exec` puts the token in unless `--env` names
/// another.
pub const DEFAULT_TOKEN_VARIABLE: &str = "ACCESS_TOKEN";

/// The uid of the user `name` names (a user name, or a uid in digits).
fn uid_of(name: &str) -> Result<u32, String> {
    if let Ok(uid) = name.parse::<u32>() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => Ok(user.uid.as_raw()),
        Ok(None) => Err(format!(
            "--socket-owner/{SOCKET_OWNER_VARIABLE}: no user named `{name}`"
        )),
        Err(e) => Err(format!(
            "--socket-owner/{SOCKET_OWNER_VARIABLE}: cannot look up user `{name}`: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With the variable not read (it was empty), `--socket` has no value
    /// and the verb parses; given, `--socket` still wins.
    #[test]
    fn an_unread_socket_variable_leaves_socket_unset() {
        let command = TokenctlArgs::command_reading_socket_variable(false);
        let matches = command
            .clone()
            .try_get_matches_from(["tokenctl", "token", "gh"])
            .unwrap();
        let args = TokenctlArgs::from_arg_matches(&matches).unwrap();
        assert_eq!(args.socket, None);
        let matches = command
            .try_get_matches_from(["tokenctl", "token", "gh", "--socket", "/s"])
            .unwrap();
        let args = TokenctlArgs::from_arg_matches(&matches).unwrap();
        assert_eq!(args.socket, Some(PathBuf::from("/s")));
    }
}
