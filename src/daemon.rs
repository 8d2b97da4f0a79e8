//! The daemon's life: build the broker, serve, stop cleanly.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::broker::{Broker, BrokerParts, SystemClock};
use crate::config::{Config, StoreKind};
use crate::ipc::dbus::DbusService;
use crate::ipc::socket;
use crate::provider::HttpClient;
use crate::store::{MemoryStore, SecretServiceStore, Store};
use crate::systemd::notify;

/// How long requests and refreshes in flight get to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Makes the process harder to attack from the same uid, as ssh-agent
/// does: no core dumps and no ptrace attach (non-dumpable), and files it
/// creates are private (umask 077).
pub fn harden_process() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        warn!("could not make the process non-dumpable: {e}");
    }
}

/// The store the config asks for.
fn open_store(config: &Config) -> Arc<dyn Store> {
    match config.daemon.store {
        StoreKind::Memory => Arc::new(MemoryStore::new()),
        StoreKind::SecretService => Arc::new(SecretServiceStore::new()),
    }
}

/// Says once, at start, when the store cannot be used; sessions then live
/// in memory until it can (each later save tries again).
async fn probe_store(store: &Arc<dyn Store>) {
    let probe = Arc::clone(store);
    if let Err(e) = crate::broker::store_call(move || probe.list()).await {
        warn!("{e}; sessions are kept in memory until the store works again");
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
///
/// # Errors
/// Set-up failed (socket, HTTP client, signal handlers).
pub async fn run(config: Config) -> anyhow::Result<()> {
    for warning in &config.warnings {
        warn!("{warning}");
    }
    let http = HttpClient::new(config.daemon.http_timeout)?;
    let store = open_store(&config);
    probe_store(&store).await;
    let broker = Broker::new(
        &config,
        BrokerParts {
            store,
            clock: Arc::new(SystemClock),
            http,
            owner_uid: rustix::process::geteuid().as_raw(),
        },
    );
    broker.start().await;

    let listener = socket::bind(
        &config.daemon.socket,
        config.daemon.socket_mode,
        config.daemon.socket_group,
    )?;
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let server = tokio::spawn(socket::serve(
        listener,
        broker.clone(),
        stop.clone(),
        connections.clone(),
    ));
    info!(socket = %config.daemon.socket.display(), "listening");
    let dbus = DbusService::start(
        config.daemon.bus,
        broker.clone(),
        stop.clone(),
        &connections,
    )
    .await?;
    notify(&[NotifyState::Ready, NotifyState::Status(&broker.summary())]);

    wait_for_stop_signal().await?;
    info!("stopping");
    notify(&[NotifyState::Stopping]);
    stop.cancel();
    let _ = server.await;
    drop(dbus);
    connections.close();
    let answered = tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
        .await
        .is_ok();
    let finished = broker.shutdown(SHUTDOWN_GRACE).await;
    if !(answered && finished) {
        warn!(
            "some work did not finish within {} s",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    remove_socket(&config.daemon.socket);
    Ok(())
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

fn remove_socket(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!("could not remove {}: {e}", path.display());
    }
}
