//! A blocking client for the tokend Unix socket protocol (see [`crate::protocol`]).
//!
//! `tokenctl token` is often run once per HTTP request by scripts and
//! credential helpers, so it must start fast: this client is plain blocking
//! std I/O with timeouts, no async runtime. One [`Client`] is one connection;
//! it may carry several requests, one after the other.
//!
//! Every read is bounded: an answer line longer than [`MAX_ANSWER_LINE`] is an
//! error, so a broken daemon cannot make the client eat memory, and no read
//! waits longer than the request timeout (or, for a login, one tick).
//!
//! After any error other than [`ClientError::Daemon`] the connection may be
//! out of step with the daemon; drop the client instead of reusing it.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

mod error;
mod lines;
mod login;
mod metrics;
mod permission_advice;
mod status;
mod token;
pub mod user_namespace;
pub use error::{ClientError, DAEMON_USER};
use lines::LineBuffer;
pub use login::{LoginStream, LoginUpdate};
pub use status::StatusStream;
pub use token::{SlowAnswerNotice, SlowRequest};

use crate::config::Environment;
use crate::protocol::{Answer, ErrorBody, ProviderStatus, Request, StatusAnswer, VersionAnswer};

/// The longest answer line the client accepts, newline excluded.
pub use crate::protocol::MAX_ANSWER_LINE;

/// How long a request waits for its answer unless [`Client::set_timeout`] says otherwise.
///
/// Generous because a `token` request may make the daemon refresh the token
/// over HTTP first.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a [`LoginStream`] wakes up when no event arrives, so a caller can
/// redraw a countdown.
pub const LOGIN_TICK: Duration = Duration::from_secs(1);

/// The socket of a system-wide daemon (`tokend` run as root by systemd).
pub const SYSTEM_SOCKET_PATH: &str = "/run/tokend/tokend.sock";

/// How long past the code's expiry a login waits for the daemon's `done` line
/// before giving up: the daemon polls the provider at an interval, so its
/// verdict may come a little after the code expired.
const LOGIN_GRACE: Duration = Duration::from_secs(60);

/// The longest a code may claim to live, so a silly `expires_in` cannot
/// overflow an `Instant` (a device code lives minutes, not days).
const MAX_LOGIN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Writing a request line to a healthy daemon never takes long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client whose request could not be written (the daemon closed
/// the connection) looks for the error line the daemon sent before it
/// closed: it is already in the socket, or there is none.
const REFUSAL_READ_WAIT: Duration = Duration::from_millis(100);

/// The socket to use when none is given: the caller's own daemon, or the
/// system daemon when only that one is running.
///
/// A user's own daemon is looked for in `$XDG_RUNTIME_DIR/tokend`, and,
/// when that is not set (cron, `sudo -u`, a service's `User=`), in
/// `/run/user/UID/tokend`, where logind makes every user's runtime
/// directory (when there is one): a sync job run by cron would otherwise be sent to the system
/// daemon, and told to start it, while its user's daemon runs.
///
/// Root of a user namespace that maps it to a user (rootless podman and
/// buildah run credential helpers so) looks for that user's daemon: see
/// [`user_namespace`].
#[must_use]
pub fn default_socket_path(env: &Environment) -> PathBuf {
    default_socket_path_as(env, user_namespace::outer_uid_of_root())
}

/// [`default_socket_path`] for a process whose uid 0 is `outer_uid` outside
/// its user namespace, if it is.
fn default_socket_path_as(env: &Environment, outer_uid: Option<u32>) -> PathBuf {
    let (uid, own) = match outer_uid {
        Some(outer) if env.uid == 0 => (
            outer,
            env.xdg_runtime_dir
                .as_ref()
                .map(|dir| dir.join("tokend/tokend.sock")),
        ),
        _ => (env.uid, env.client_socket_path()),
    };
    let own = own.or_else(|| {
        // Only where the user has a runtime directory (a user manager, a
        // login): a service's `User=` without one is sent to the system
        // daemon, and told to start that one.
        let runtime = PathBuf::from(format!("/run/user/{uid}"));
        (uid != 0 && runtime.is_dir()).then(|| runtime.join("tokend/tokend.sock"))
    });
    choose_default_socket(own, Path::exists)
}

/// The policy of [`default_socket_path`], with the file check passed in so it
/// can be tested.
fn choose_default_socket(own: Option<PathBuf>, exists: impl Fn(&Path) -> bool) -> PathBuf {
    let system = Path::new(SYSTEM_SOCKET_PATH);
    match own {
        // A user daemon that is not running still makes the better error
        // message, unless a system daemon is there to answer instead.
        Some(path) if exists(&path) || !exists(system) => path,
        _ => system.to_owned(),
    }
}

/// How long a connect may wait for the daemon to take it. A daemon that
/// is hung (stopped, stuck) leaves connections in its queue; once the
/// queue is full, a plain connect waits for ever.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to the socket at `path`, giving up after `within` when the
/// daemon takes no more connections (its queue full: it does not accept).
fn connect_within(path: &Path, within: Duration) -> io::Result<UnixStream> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType, sockopt};
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    // A Unix connect waits for room in the queue as long as a send may.
    sockopt::set_socket_timeout(&socket, sockopt::Timeout::Send, Some(within))?;
    let address = SocketAddrUnix::new(path)?;
    match rustix::net::connect(&socket, &address) {
        Ok(()) => {}
        Err(rustix::io::Errno::AGAIN) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the daemon took no connection within {} s",
                    within.as_secs()
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    sockopt::set_socket_timeout(&socket, sockopt::Timeout::Send, None)?;
    Ok(UnixStream::from(socket))
}

/// Whether a process running as `uid` may be tokend: root, this user (a
/// user service), or [`DAEMON_USER`] (the system service): the owners
/// [`crate::trusted_path`] trusts beside the daemon.
fn is_trusted_server(uid: u32) -> bool {
    crate::trusted_path::Owners::beside_the_daemon().trusts(uid)
}

/// A connection to the daemon.
pub struct Client {
    stream: UnixStream,
    lines: LineBuffer,
    timeout: Duration,
    /// Said once when a token's answer takes longer than its delay (see
    /// [`Client::notice_slow_answers`]).
    slow_answer_notice: Option<(Duration, SlowAnswerNotice)>,
}

impl Client {
    /// Connects to the daemon's socket at `path`.
    ///
    /// # Errors
    /// [`ClientError::Connect`] naming the path and what to do.
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        Self::connect_served_by(path, None)
    }

    /// [`Client::connect`], taking `owner` too for a user tokend may run
    /// as: the user whose own daemon shares its socket with this one
    /// (`socket_group` in that daemon's config; `tokenctl --socket-owner`).
    /// Only a user named on purpose: a socket anyone serves could show a
    /// device login's code of theirs for this user to approve.
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub fn connect_served_by(path: &Path, owner: Option<u32>) -> Result<Self, ClientError> {
        Self::connect_served_by_within(path, owner, CONNECT_TIMEOUT)
    }

    /// [`Client::connect_served_by`], waiting at most `within` (at least
    /// 1 ms) for a daemon that takes no connections.
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub fn connect_served_by_within(
        path: &Path,
        owner: Option<u32>,
        within: Duration,
    ) -> Result<Self, ClientError> {
        let connect_error = |source| ClientError::Connect {
            path: path.to_owned(),
            source,
        };
        let within = within.max(Duration::from_millis(1));
        let stream = connect_within(path, within).map_err(connect_error)?;
        let server =
            nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
                .map_err(|e| connect_error(e.into()))?
                .uid();
        if !is_trusted_server(server) && owner != Some(server) {
            return Err(ClientError::UntrustedServer {
                path: path.to_owned(),
                uid: server,
                outside_the_namespace: server == user_namespace::overflow_uid()
                    && user_namespace::outer_uid_of_root().is_some(),
            });
        }
        Self::from_stream(stream).map_err(|e| match e {
            ClientError::Io { source } => connect_error(source),
            other => other,
        })
    }

    /// Wraps a stream already connected to the daemon (an inherited socket,
    /// or one end of a socket pair in tests).
    ///
    /// # Errors
    /// [`ClientError::Io`] when the socket's write timeout cannot be set.
    pub fn from_stream(stream: UnixStream) -> Result<Self, ClientError> {
        stream
            .set_write_timeout(Some(WRITE_TIMEOUT))
            .map_err(ClientError::from_io)?;
        Ok(Self {
            stream,
            lines: LineBuffer::default(),
            timeout: DEFAULT_TIMEOUT,
            slow_answer_notice: None,
        })
    }

    /// Sets how long each request waits for its answer (at least 1 ms).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout.max(Duration::from_millis(1));
    }

    /// The state of `provider`, or of every provider this user may see, in
    /// one answer line (the request of protocol 1, which every daemon
    /// serves). Holds every status at once; [`Client::status_stream`] holds
    /// one at a time.
    ///
    /// # Errors
    /// As for [`Client::token`]; from a daemon of protocol 2 or later,
    /// `answer_too_large` when the line would be longer than
    /// [`crate::protocol::MAX_STATUS_LINE`].
    pub fn status(&mut self, provider: Option<&str>) -> Result<Vec<ProviderStatus>, ClientError> {
        let answer: StatusAnswer = self.call(&Request::Status {
            provider: provider.map(str::to_owned),
            stream: false,
        })?;
        Ok(answer.providers)
    }

    /// The state of `provider`, or of every provider this user may see, one
    /// provider at a time as the daemon sends them, in name order. Needs a
    /// daemon of protocol [`crate::protocol::STATUS_STREAM_SINCE`] or later
    /// (ask [`Client::version`]); an older one answers `bad_request`.
    ///
    /// # Errors
    /// A transport error while sending the request; the stream yields the
    /// rest.
    pub fn status_stream(
        &mut self,
        provider: Option<&str>,
    ) -> Result<StatusStream<'_>, ClientError> {
        self.send(&Request::Status {
            provider: provider.map(str::to_owned),
            stream: true,
        })?;
        Ok(StatusStream::new(self))
    }

    /// The daemon's protocol and program versions.
    ///
    /// # Errors
    /// Transport errors, or [`ClientError::Daemon`] from a daemon too old to know the op.
    pub fn version(&mut self) -> Result<VersionAnswer, ClientError> {
        self.call(&Request::Version)
    }

    /// Starts (or joins) the device login of `provider`; the events follow on
    /// the returned stream.
    ///
    /// # Errors
    /// A transport error while sending the request.
    pub fn login(&mut self, provider: &str) -> Result<LoginStream<'_>, ClientError> {
        self.send(&Request::Login {
            provider: provider.to_owned(),
        })?;
        // Until the prompt arrives the daemon is asking the provider for a
        // code: that gets the ordinary request timeout.
        let deadline = deadline_after(self.timeout);
        Ok(LoginStream::new(self, provider, deadline))
    }

    /// Sends one request line.
    fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        let mut line = serde_json::to_vec(request).map_err(|e| ClientError::from_io(e.into()))?;
        line.push(b'\n');
        let Err(e) = self.stream.write_all(&line) else {
            return Ok(());
        };
        Err(match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
                timeout: WRITE_TIMEOUT,
            },
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => self
                .refusal_before_the_request()
                .unwrap_or_else(|| ClientError::from_io(e)),
            _ => ClientError::from_io(e),
        })
    }

    /// The error line the daemon sent before it closed a connection it
    /// would not serve (one over its caller's cap of connections), if there
    /// is one: it answers and closes at once, often before the request is
    /// written, and the write then fails. Without this, the refusal read as
    /// a daemon that stopped or crashed.
    fn refusal_before_the_request(&mut self) -> Option<ClientError> {
        let line = self.next_line(REFUSAL_READ_WAIT).ok()??;
        match parse_answer::<serde::de::IgnoredAny>(&line) {
            Err(refused @ ClientError::Daemon(_)) => Some(refused),
            _ => None,
        }
    }

    /// Sends `request` and reads its one-line answer.
    fn call<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, ClientError> {
        self.send(request)?;
        self.answer_since(Instant::now())
    }

    /// The one-line answer to a request sent at `sent`, waited for until
    /// the timeout, counted from then, runs out.
    fn answer_since<T: DeserializeOwned>(&mut self, sent: Instant) -> Result<T, ClientError> {
        let left = self.timeout.saturating_sub(sent.elapsed());
        let line = self.next_line(left)?.ok_or(ClientError::Timeout {
            timeout: self.timeout,
        })?;
        parse_answer(&line)
    }

    /// The next answer line, or `None` when none is complete within `wait`
    /// (a `wait` too long for the clock has no end: see [`deadline_after`]).
    fn next_line(&mut self, wait: Duration) -> Result<Option<Zeroizing<Vec<u8>>>, ClientError> {
        let deadline = deadline_after(wait);
        loop {
            if let Some(line) = self.lines.take_line() {
                return Ok(Some(line));
            }
            if self.lines.pending() > MAX_ANSWER_LINE {
                return Err(ClientError::BadAnswer {
                    reason: format!("an answer line is longer than {MAX_ANSWER_LINE} bytes"),
                });
            }
            let left = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(left)
                }
                // No deadline: a read waits as long as the daemon takes.
                None => None,
            };
            // Re-armed on every read, so a daemon trickling bytes cannot
            // stretch the wait past the deadline.
            self.stream
                .set_read_timeout(left)
                .map_err(ClientError::from_io)?;
            match self.lines.fill(&self.stream) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(ClientError::from_io(e)),
            }
        }
    }
}

/// When a wait of `wait` starting now ends, or `None` when that instant is
/// past what the clock can represent: a timeout of billions of years
/// (`tokenctl --timeout 9223372036854775807`) means "wait as long as it
/// takes", not a crash on the overflow.
fn deadline_after(wait: Duration) -> Option<Instant> {
    Instant::now().checked_add(wait)
}

/// Parses a one-line answer into its payload or the daemon's error.
fn parse_answer<T: DeserializeOwned>(line: &[u8]) -> Result<T, ClientError> {
    let answer: Answer<T> =
        serde_json::from_slice(line).map_err(|e| ClientError::bad_answer(&e))?;
    match answer {
        Answer {
            ok: true,
            value: Some(value),
            ..
        } => Ok(value),
        Answer {
            ok: false,
            error: Some(error),
            ..
        } => Err(ClientError::Daemon(error)),
        // A flattened payload that does not parse comes out as `None`;
        // parse it alone to learn what is wrong with it.
        Answer { ok: true, .. } => Err(match serde_json::from_slice::<T>(line) {
            Err(e) => ClientError::bad_answer(&e),
            Ok(_) => ClientError::BadAnswer {
                reason: "success answer without payload".into(),
            },
        }),
        Answer { ok: false, .. } => Err(ClientError::BadAnswer {
            reason: "error answer without an error object".into(),
        }),
    }
}

/// Parses one line of an event stream (`login`, streamed `status`). A
/// daemon that rejects the request itself (`bad_request`, `shutting_down`)
/// answers with a plain error line instead of a `done` event; that becomes
/// [`ClientError::Daemon`].
fn parse_event_line<T: DeserializeOwned>(line: &[u8]) -> Result<T, ClientError> {
    #[derive(Deserialize)]
    struct ErrorLine {
        ok: bool,
        error: Option<ErrorBody>,
    }
    match serde_json::from_slice::<T>(line) {
        Ok(event) => Ok(event),
        Err(event_error) => match serde_json::from_slice::<ErrorLine>(line) {
            Ok(ErrorLine {
                ok: false,
                error: Some(error),
            }) => Err(ClientError::Daemon(error)),
            _ => Err(ClientError::bad_answer(&event_error)),
        },
    }
}

#[cfg(test)]
mod socket_path_tests;
#[cfg(test)]
mod tests;
