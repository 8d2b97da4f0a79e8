//! Reaching tokend: the socket to use, the connection (with the version
//! check the interactive verbs make first), and the notice of a slow answer.

use std::io::{self, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use tokend::client::{self, Client, ClientError, SlowRequest};
use tokend::config::Environment;
use tokend::protocol::PROTOCOL_VERSION;

use crate::Cli;
use crate::format;

/// The user `--socket-owner` or `TOKEND_SOCKET_OWNER` names, as a uid:
/// trusted to serve the socket beside root, this user and tokend's.
pub(crate) static SOCKET_OWNER: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();

/// The socket: `--socket`/`TOKEND_SOCKET` (clap reads both; an empty
/// variable counts as unset), else the default.
pub(crate) fn socket_path(cli: &Cli) -> PathBuf {
    cli.socket
        .clone()
        .unwrap_or_else(|| client::default_socket_path(&Environment::from_process()))
}

/// How to restart a daemon still running the version before an upgrade
/// (which restarts only the system service, and not one that keeps its
/// sessions in memory).
pub(crate) const RESTART_HINT: &str =
    "`systemctl --user restart tokend`, or `systemctl restart tokend` for the system service";

/// Connects and, for the interactive verbs, asks the daemon's protocol
/// version first, warning on stderr when it differs from ours; returns the
/// daemon's version too, when it said. `token` skips this: it is called in
/// loops by scripts and must cost one round trip.
pub(crate) fn connect_checked(cli: &Cli) -> Result<(Client, Option<u32>), ClientError> {
    let mut client = connect(cli)?;
    match client.version() {
        Ok(daemon) => {
            if daemon.protocol != PROTOCOL_VERSION {
                let _ = writeln!(
                    io::stderr(),
                    "tokenctl: warning: tokend {} speaks protocol {}, tokenctl {} speaks {PROTOCOL_VERSION}; install matching versions (after an upgrade, restart tokend: {RESTART_HINT})",
                    format::clean(&daemon.daemon_version),
                    daemon.protocol,
                    env!("CARGO_PKG_VERSION"),
                );
            }
            Ok((client, Some(daemon.protocol)))
        }
        // A daemon too old to know `version` says so (serde's "unknown
        // variant `version`"): go on and let the real request tell. Any
        // other refusal is the answer: the connection cap's, sent before
        // the daemon closes the connection, was read as "too old", and
        // the real request then found the connection closed ("did it stop
        // or crash?").
        Err(ClientError::Daemon(body)) if body.message.contains("unknown variant `version`") => {
            Ok((client, None))
        }
        // No answer in time, an unreadable one, a closed connection: the
        // connection is out of step (an answer may still come, and would
        // be read as the next request's), so the verb fails with it.
        Err(e) => Err(e),
    }
}

pub(crate) fn connect(cli: &Cli) -> Result<Client, ClientError> {
    let owner = SOCKET_OWNER.get().copied().flatten();
    // `--timeout` bounds the wait for a hung daemon's connect too.
    let within = client::CONNECT_TIMEOUT.min(Duration::from_secs(cli.timeout));
    let mut client = Client::connect_served_by_within(&socket_path(cli), owner, within)?;
    client.set_timeout(Duration::from_secs(cli.timeout));
    notice_slow_answers(&mut client);
    Ok(client)
}

/// How long a token (or a logout) may take before a person at a terminal
/// is told why: from memory a token comes in a millisecond, after a
/// refresh in a second or so even from a distant provider, and a logout
/// deletes a record in milliseconds.
const SLOW_ANSWER_NOTICE: Duration = Duration::from_secs(3);

/// When stderr is a terminal (a person waits: `tokenctl token`, `exec`,
/// `logout`, git or kubectl running a credential helper), says once why an
/// answer is slow; never on a pipe or a log, where scripts read stderr.
pub(crate) fn notice_slow_answers(client: &mut Client) {
    fn say(request: SlowRequest<'_>, waited: Duration, gives_up_after: Duration) {
        let why = match request {
            SlowRequest::Token(provider) => format!(
                "no token of `{}` yet after {} s: tokend is refreshing it at a provider \
                 that is slow to answer, or waiting for its keyring (unlock it if asked)",
                format::clean(provider),
                waited.as_secs()
            ),
            SlowRequest::Logout(provider) => format!(
                "the logout of `{}` is not done after {} s: tokend is waiting for its store \
                 to delete the session's record (a keyring to unlock, or one that does not \
                 answer)",
                format::clean(provider),
                waited.as_secs()
            ),
        };
        let _ = writeln!(
            io::stderr(),
            "tokenctl: {why}; waiting up to {} s (--timeout)",
            gives_up_after.as_secs()
        );
    }
    if io::stderr().is_terminal() {
        client.notice_slow_answers(SLOW_ANSWER_NOTICE, say);
    }
}
