//! The real `tokenctl` binary, mostly against a canned daemon on a real Unix
//! socket.
//!
//! The canned daemon stands in for tokend where a test needs exact answers
//! of the protocol, rare ones among them (a daemon gone mid-login, an answer
//! that comes late, every error code): it reads request lines with the
//! shared protocol parser and answers each with lines the test prepared
//! from the shared protocol types. It serves one connection (tokenctl opens
//! exactly one), so joining it after the child exited is the
//! synchronization: no sleeps. Tests that need the daemon's own behaviour
//! start the real one (`support::daemon`), as the other e2e modules do.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::{self, JoinHandle};

use tempfile::TempDir;
use tokend::protocol::{
    Answer, ErrorCode, LoginEvent, LoginPrompt, PROTOCOL_VERSION, ProviderStatus, Request,
    StatusAnswer, StatusEvent, StoreStatus, TokenAnswer, VersionAnswer, parse_request,
};
use tokend::secret::Secret;

/// A one-connection stand-in for tokend.
struct CannedDaemon {
    dir: TempDir,
    server: JoinHandle<Vec<Request>>,
}

impl CannedDaemon {
    /// Serves `answer(request)` lines for each request on one connection;
    /// `version` requests (which `login` and `status` send first) are
    /// answered with this build's protocol and not recorded.
    fn start(answer: impl Fn(&Request) -> Vec<String> + Send + 'static) -> Self {
        Self::start_with_protocol(PROTOCOL_VERSION, answer)
    }

    /// As [`Self::start`], claiming protocol version `protocol`.
    fn start_with_protocol(
        protocol: u32,
        answer: impl Fn(&Request) -> Vec<String> + Send + 'static,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("tokend.sock")).unwrap();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut requests = Vec::new();
            let mut line = String::new();
            // A client that closes with an answer it did not read (`login
            // --no-wait` leaves after the prompt) resets the connection:
            // that ends it as its closing would.
            while match reader.read_line(&mut line) {
                Ok(n) => n > 0,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
                Err(e) => panic!("reading a request: {e}"),
            } {
                let request = parse_request(line.as_bytes()).expect("a valid request line");
                if request == Request::Version {
                    let version = Answer::success(VersionAnswer {
                        protocol,
                        daemon_version: "9.9.9".into(),
                    });
                    let _ = writeln!(writer, "{}", serde_json::to_string(&version).unwrap());
                    line.clear();
                    continue;
                }
                for answer in answer(&request) {
                    // A client that left early (`--no-wait`) is not an error.
                    let _ = writeln!(writer, "{answer}");
                }
                requests.push(request);
                line.clear();
            }
            requests
        });
        Self { dir, server }
    }

    /// Answers every request with the same lines.
    fn answering(lines: Vec<String>) -> Self {
        Self::start(move |_| lines.clone())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("tokend.sock")
    }

    /// The requests served, once the client has hung up.
    fn requests(self) -> Vec<Request> {
        // If tokenctl never connected, this connection ends the wait for
        // one (with no requests, failing the test) instead of hanging it.
        let _ = UnixStream::connect(self.socket());
        self.server.join().unwrap()
    }
}

/// `tokenctl` with a clean environment: no daemon of the machine's is used.
fn tokenctl() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokenctl"));
    command
        .env_remove("TOKEND_SOCKET")
        .env_remove("RUNTIME_DIRECTORY")
        .env_remove("XDG_RUNTIME_DIR")
        .env("NO_COLOR", "1")
        // Its words as a UTF-8 terminal shows them ("…"), whatever the
        // runner's locale (a CI runner in C would get "...").
        .env("LC_ALL", "C.UTF-8");
    command
}

fn run_with_socket(socket: &Path, args: &[&str]) -> Output {
    tokenctl()
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

fn error_line(code: ErrorCode, message: &str) -> String {
    json(&Answer::<TokenAnswer>::failure(code, message))
}

/// The lines of a streamed `status` answer holding `providers`.
fn status_stream(providers: &[ProviderStatus]) -> Vec<String> {
    status_stream_with_store(providers, None)
}

/// The same, with the store's state in the `done` line.
fn status_stream_with_store(
    providers: &[ProviderStatus],
    store: Option<StoreStatus>,
) -> Vec<String> {
    let mut lines: Vec<String> = providers
        .iter()
        .map(|p| json(&StatusEvent::Provider(Box::new(p.clone()))))
        .collect();
    lines.push(json(&StatusEvent::Done {
        ok: true,
        count: providers.len() as u64,
        error: None,
        store,
        config: None,
    }));
    lines
}

mod login;
mod login_terminal;
mod status;
mod status_cut_short;
mod timeout;
mod token;
mod verbs;
