//! Why a request to the daemon failed, in words that say what to do.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::SYSTEM_SOCKET_PATH;
use super::permission_advice::permission_advice;
use crate::config::Environment;
use crate::protocol::{ErrorBody, STATUS_STREAM_PAUSE_LIMIT};

/// Why a request to the daemon failed.
///
/// No variant carries a token: `Display` and `Debug` are safe to print.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be connected.
    #[error("cannot connect to tokend at {}: {source} — {}", path.display(), connect_advice(path, source))]
    Connect {
        /// The socket path tried.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// What answers on the socket runs as a user tokend never runs as:
    /// another user may have put a socket of their own at the path (to
    /// collect the tokens clients send as `refused`, or to hand out
    /// tokens of their choosing). Nothing was sent.
    #[error(
        "refusing to talk to the socket at {}: {}",
        path.display(),
        untrusted_server_reason(*uid, *outside_the_namespace)
    )]
    UntrustedServer {
        /// The socket path.
        path: PathBuf,
        /// The uid of the process that answers on it.
        uid: u32,
        /// `uid` is the kernel's stand-in for a user this process's user
        /// namespace does not map (this process is root of one).
        outside_the_namespace: bool,
    },
    /// The daemon closed the connection before the answer was complete.
    #[error("tokend closed the connection before answering (did it stop or crash?)")]
    Closed,
    /// A streamed `status` failed after some of its providers and before
    /// its end: what the caller was handed is not every provider.
    #[error(
        "tokend's answer was cut short after {received} provider{}: {}",
        if *received == 1 { "" } else { "s" },
        cut_short_reason(cause, *paused)
    )]
    StatusCutShort {
        /// Providers received before it failed.
        received: u64,
        /// The longest the caller left the stream unread between two
        /// providers (printing them to a pager that waited, say), when that
        /// was as long as the daemon waits for a reader
        /// ([`STATUS_STREAM_PAUSE_LIMIT`]): the likely reason it closed.
        paused: Option<Duration>,
        /// What ended it: [`ClientError::Closed`], or any other error.
        cause: Box<ClientError>,
    },
    /// No answer within the request timeout.
    #[error(
        "tokend did not answer within {} s (it may be waiting on a slow provider, up to its `http_timeout`, or serving as many connections as it takes, which its log says; `--timeout` waits longer)",
        timeout.as_secs()
    )]
    Timeout {
        /// How long the client waited.
        timeout: Duration,
    },
    /// No login code within the request timeout: tokend is still asking
    /// the provider for one (a slow provider, up to tokend's
    /// `http_timeout`), and the login goes on there without anyone to see
    /// its code.
    #[error(
        "tokend did not show a login code within {} s (it may still be asking a slow provider, up to its `http_timeout`): the login goes on in tokend; `tokenctl login {provider}` again joins it and shows the code, `tokenctl login {provider} --cancel` stops it, and `--timeout` waits longer",
        timeout.as_secs()
    )]
    NoLoginCode {
        /// The provider whose login was asked for.
        provider: String,
        /// How long the client waited.
        timeout: Duration,
    },
    /// The login's code expired long ago and the daemon still did not say
    /// how the login ended.
    #[error(
        "tokend did not report how the login ended although the code has expired; see `tokenctl status`"
    )]
    LoginUnfinished,
    /// Reading from or writing to the socket failed.
    #[error("lost the connection to tokend: {source}")]
    Io {
        /// The I/O error.
        source: io::Error,
    },
    /// An answer line that is not valid protocol.
    #[error("tokend sent an answer tokenctl cannot read ({reason}); are both the same version?")]
    BadAnswer {
        /// What is wrong with it; never the line itself, which may hold a token.
        reason: String,
    },
    /// The daemon answered with an error.
    #[error("{}", daemon_message(.0))]
    Daemon(ErrorBody),
}

/// Why a streamed `status` ended early, for [`ClientError::StatusCutShort`].
fn cut_short_reason(cause: &ClientError, paused: Option<Duration>) -> String {
    match (cause, paused) {
        (ClientError::Closed, Some(paused)) => format!(
            "tokend closed the connection after its answer went unread for {} s (tokenctl's \
             output was not read), as it does when a status stream's reader pauses for {} s: \
             to page through the list, write it to a file first",
            paused.as_secs(),
            STATUS_STREAM_PAUSE_LIMIT.as_secs()
        ),
        (ClientError::Closed, None) => {
            "tokend closed the connection (did it stop or crash?)".into()
        }
        (other, _) => other.to_string(),
    }
}

/// What to do about a failed connect, by the kind of failure.
pub(super) fn connect_advice(path: &Path, error: &io::Error) -> String {
    if error.kind() == io::ErrorKind::TimedOut {
        return "it is there but does not take connections: is it hung? (`systemctl status tokend`)".into();
    }
    if error.kind() == io::ErrorKind::PermissionDenied {
        return permission_advice(path);
    }
    // A Unix socket's address holds 107 bytes of path: no daemon can be
    // listening at a longer one.
    if error.raw_os_error() == Some(rustix::io::Errno::NAMETOOLONG.raw_os_error()) {
        return format!(
            "the path is longer than a Unix socket's address holds ({} bytes): use a shorter one",
            crate::config::MAX_SOCKET_PATH_BYTES
        );
    }
    // Something else at the path ("connection refused" would send the
    // reader looking for a daemon that is not the problem).
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::FileTypeExt as _;
        if !meta.file_type().is_socket() {
            let what = if meta.is_dir() {
                "a directory"
            } else {
                "not a socket"
            };
            return format!(
                "that path is {what}: pass the daemon's socket with --socket or TOKEND_SOCKET (its config's `socket`)"
            );
        }
    }
    // A path that is none of the default places was named (--socket,
    // TOKEND_SOCKET, a program's own setting): telling the reader to pass
    // --socket would send them back to what they did.
    if !is_default_place(path, &Environment::from_process()) {
        return "no tokend listens there: start the one whose config's `socket` names this path, or check the path given (--socket, TOKEND_SOCKET)".into();
    }
    // The system daemon is a system unit; everyone else runs a user unit.
    let start = if path == Path::new(SYSTEM_SOCKET_PATH) {
        "`systemctl start tokend` (as root)"
    } else {
        "`systemctl --user start tokend`"
    };
    format!("is tokend running? start it with {start}, or pass --socket / set TOKEND_SOCKET")
}

/// Whether `path` is where [`default_socket_path`] looks: the system
/// daemon's socket or this user's daemon's.
pub(super) fn is_default_place(path: &Path, env: &Environment) -> bool {
    path == Path::new(SYSTEM_SOCKET_PATH)
        || env.client_socket_path().as_deref() == Some(path)
        || path == Path::new(&format!("/run/user/{}/tokend/tokend.sock", env.uid))
}

/// The daemon's message, which already says what to do; the code when it sent none.
fn daemon_message(body: &ErrorBody) -> String {
    if body.message.trim().is_empty() {
        format!("tokend reported an error: {}", body.code.as_str())
    } else {
        body.message.clone()
    }
}

impl ClientError {
    pub(super) fn from_io(source: io::Error) -> Self {
        match source.kind() {
            // A daemon that stopped or crashed: with the request unread, the
            // kernel resets the connection rather than closing it.
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted => Self::Closed,
            _ => Self::Io { source },
        }
    }

    /// A parse error, with quoted values cut out: serde quotes the offending
    /// value (`invalid type: string "..."`), and that value may be a token.
    pub(super) fn bad_answer(error: &serde_json::Error) -> Self {
        let mut reason = String::new();
        for (i, part) in error.to_string().split('"').enumerate() {
            reason.push_str(if i % 2 == 0 { part } else { "\"…\"" });
        }
        Self::BadAnswer { reason }
    }
}

/// The system user the packaged system service runs as.
pub const DAEMON_USER: &str = crate::trusted_path::SERVICE_USER;

/// Why a socket served by `uid` is refused, for [`ClientError::UntrustedServer`].
fn untrusted_server_reason(uid: u32, outside_the_namespace: bool) -> String {
    if outside_the_namespace {
        format!(
            "it is served by a user outside this user namespace (the kernel shows every such user as uid {uid}), so tokenctl cannot tell whether that is tokend; a rootless container tool (podman, buildah) runs its helpers so: your own tokend's socket is found through $XDG_RUNTIME_DIR, or name it with TOKEND_SOCKET"
        )
    } else {
        format!(
            "it is served by uid {uid}, not by root, you or the `{DAEMON_USER}` user tokend runs as; another user may have put it there (check the path and the directories above it); if it is that user's tokend sharing its socket with you, name them with --socket-owner or TOKEND_SOCKET_OWNER"
        )
    }
}
