//! The Secret Service store against a real gnome-keyring on a private bus.
//!
//! keyring's Secret Service store connects to the session bus named by the
//! process environment and cannot be given an address, and tests never
//! change their own environment. So the store runs in a child process: this
//! test binary again, with only the ignored [`store_child`] test selected and
//! `DBUS_SESSION_BUS_ADDRESS` set on the child. [`StoreChild`] sends it one
//! JSON request per line on stdin; it runs each through `spawn_blocking`, as
//! the broker does, and answers one JSON line on stdout.

use crate::support;

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use support::bus::PrivateBus;
use support::keyring::TestKeyring;
use tokend::secret::Secret;
use tokend::store::secret_service::{PROVIDER_ATTRIBUTE, SCHEMA, SERVICE};
use tokend::store::{STORED_SESSION_VERSION, SecretServiceStore, Store, StoreError, StoredSession};

/// Set on the child process only: "you are the store's side".
const CHILD_ENV: &str = "TOKEND_TEST_STORE_CHILD";

/// Marks the child's answers among libtest's own output.
const REPLY_PREFIX: &str = "@store-child ";

/// How long one store call may take before the child counts as hung (a
/// prompt nobody answers would hang it forever).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What the parent asks the child's store to do.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Save {
        provider: String,
        session: StoredSession,
    },
    Load {
        provider: String,
    },
    Delete {
        provider: String,
    },
    List,
    /// `SecretServiceStore::connect`, which fails early rather than lazily.
    Connect,
}

/// The child's answer; errors keep both renderings so the parent can check
/// neither leaks a secret.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
enum Reply {
    Done,
    Loaded {
        session: Option<StoredSession>,
    },
    Listed {
        providers: Vec<String>,
    },
    Error {
        kind: String,
        display: String,
        debug: String,
    },
}

impl Reply {
    fn from_error(error: &StoreError) -> Self {
        let kind = match error {
            StoreError::Unavailable { .. } => "Unavailable",
            StoreError::Locked { .. } => "Locked",
            StoreError::Corrupt { .. } => "Corrupt",
            StoreError::WrongKey { .. } => "WrongKey",
            StoreError::Failed { .. } => "Failed",
            StoreError::Unconfirmed { .. } => "Unconfirmed",
            StoreError::Unchangeable { .. } => "Unchangeable",
        };
        Self::Error {
            kind: kind.to_owned(),
            display: error.to_string(),
            debug: format!("{error:?}"),
        }
    }

    /// The error's kind and message, after checking that neither rendering
    /// holds any of `secrets`.
    #[track_caller]
    fn expect_error(self, secrets: &[&str]) -> (String, String) {
        let Self::Error {
            kind,
            display,
            debug,
        } = self
        else {
            panic!("expected an error, got {self:?}");
        };
        for secret in secrets {
            assert!(
                !display.contains(secret) && !debug.contains(secret),
                "a secret leaked into an error: {display} / {debug}"
            );
        }
        (kind, display)
    }
}

/// The store's side: runs requests from stdin until it closes.
#[test]
#[ignore = "the store's side of the other tests, run by them in a child process"]
fn store_child() {
    // Run directly (`cargo test -- --ignored`), there is nothing to serve.
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let store = Arc::new(SecretServiceStore::new());
    for line in std::io::stdin().lock().lines() {
        let request: Request = serde_json::from_str(&line.expect("read a request"))
            .expect("a request from the parent");
        let store = Arc::clone(&store);
        // Like the broker: blocking store calls on tokio's blocking pool.
        let reply = runtime
            .block_on(runtime.spawn_blocking(move || serve(&*store, request)))
            .expect("the store call panicked");
        println!("{REPLY_PREFIX}{}", serde_json::to_string(&reply).unwrap());
    }
}

fn serve(store: &dyn Store, request: Request) -> Reply {
    let result = match request {
        Request::Save { provider, session } => {
            store.save(&provider, &session).map(|()| Reply::Done)
        }
        Request::Load { provider } => store
            .load(&provider)
            .map(|session| Reply::Loaded { session }),
        Request::Delete { provider } => store.delete(&provider).map(|()| Reply::Done),
        Request::List => store.list().map(|providers| Reply::Listed { providers }),
        Request::Connect => SecretServiceStore::connect().map(|_| Reply::Done),
    };
    result.unwrap_or_else(|e| Reply::from_error(&e))
}

/// A child process running [`store_child`] on a given session bus.
struct StoreChild {
    child: Child,
    stdin: ChildStdin,
    replies: Receiver<Reply>,
}

impl StoreChild {
    fn on(bus: &PrivateBus) -> Self {
        Self::with_address(bus.command(std::env::current_exe().expect("the test binary")))
    }

    /// `command` is this test binary with the session bus in its environment.
    fn with_address(mut command: Command) -> Self {
        let mut child = command
            .args([
                "store_secret_service::store_child",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the store child");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        // A reader thread, so a hung child is a timeout rather than a hung test.
        let (sender, replies) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(json) = line.strip_prefix(REPLY_PREFIX) {
                    let reply = serde_json::from_str(json).expect("a reply from the child");
                    if sender.send(reply).is_err() {
                        return;
                    }
                }
            }
        });
        Self {
            child,
            stdin,
            replies,
        }
    }

    #[track_caller]
    fn call(&mut self, request: &Request) -> Reply {
        let line = serde_json::to_string(request).unwrap();
        writeln!(self.stdin, "{line}").expect("send a request to the store child");
        self.replies
            .recv_timeout(CALL_TIMEOUT)
            .unwrap_or_else(|e| panic!("no answer from the store child to {request:?}: {e}"))
    }

    #[track_caller]
    fn save(&mut self, provider: &str, session: &StoredSession) -> Reply {
        self.call(&Request::Save {
            provider: provider.to_owned(),
            session: session.clone(),
        })
    }

    #[track_caller]
    fn load(&mut self, provider: &str) -> Reply {
        self.call(&Request::Load {
            provider: provider.to_owned(),
        })
    }

    #[track_caller]
    fn delete(&mut self, provider: &str) -> Reply {
        self.call(&Request::Delete {
            provider: provider.to_owned(),
        })
    }

    #[track_caller]
    fn list(&mut self) -> Reply {
        self.call(&Request::List)
    }
}

impl Drop for StoreChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A record whose refresh token is `refresh_token`.
fn session(refresh_token: &str) -> StoredSession {
    StoredSession {
        version: STORED_SESSION_VERSION,
        identity: "rfc8628|http://127.0.0.1:1/token|client".into(),
        refresh_token: Some(Secret::from(refresh_token)),
        obtained_at: 1_790_000_000,
        scope: Some("repo read:org".into()),
        access_token: Some(Secret::from(format!("at-of-{refresh_token}"))),
        token_type: Some("Bearer".into()),
        expires_at: Some(1_790_003_600),
        refresh_expires_at: None,
        ended: None,
    }
}

fn loaded(session: &StoredSession) -> Reply {
    Reply::Loaded {
        session: Some(session.clone()),
    }
}

fn listed(providers: &[&str]) -> Reply {
    Reply::Listed {
        providers: providers.iter().map(|&p| p.to_owned()).collect(),
    }
}

/// `secret-tool ARGS` on `bus`, with `stdin` as its input.
fn secret_tool(bus: &PrivateBus, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = bus
        .command("secret-tool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run secret-tool (install libsecret-tools)");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin)
        .expect("write to secret-tool");
    child.wait_with_output().expect("secret-tool's output")
}

/// One item as `secret-tool search` shows it.
#[derive(Debug, Default)]
struct FoundItem {
    label: String,
    secret: String,
    schema: String,
}

/// `secret-tool search --all service tokend`: the items (from stdout) and
/// every `attribute.KEY = VALUE` line (secret-tool prints those on stderr).
fn search_tokend_items(bus: &PrivateBus) -> (Vec<FoundItem>, Vec<String>) {
    let output = secret_tool(bus, &["search", "--all", "service", SERVICE], b"");
    let mut items = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if line.starts_with('[') {
            items.push(FoundItem::default());
        } else if let (Some(item), Some((key, value))) = (items.last_mut(), line.split_once(" = "))
        {
            let value = value.to_owned();
            match key {
                "label" => item.label = value,
                "secret" => item.secret = value,
                "schema" => item.schema = value,
                _ => {}
            }
        }
    }
    let attributes = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| l.starts_with("attribute."))
        .map(str::to_owned)
        .collect();
    (items, attributes)
}

mod availability;
mod confirmed_delete;
mod not_the_default;
mod records;
