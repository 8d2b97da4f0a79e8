//! The D-Bus front-end: `org.tokend.Broker1` on the session or system bus.
//!
//! Objects (see `dist/dbus/org.tokend.Broker1.xml` for the full interface):
//! - `/org/tokend/Broker1`: interface `org.tokend.Broker1` (methods
//!   `GetToken`, `GetTokenMinValid`, `Login`, `Logout`, `CancelLogin`,
//!   `ListProviders`, `GetMetrics`;
//!   signals `LoginPrompt`, `LoginFinished`, `TokenRefreshed`), and
//!   `org.freedesktop.DBus.ObjectManager` so clients can discover:
//! - `/org/tokend/Broker1/providers/NAME` (`-` in NAME becomes `_`):
//!   interface `org.tokend.Provider1` with properties that emit
//!   `PropertiesChanged`.
//!
//! Like the socket front-end, this only translates: the caller's uid and
//! groups come from the bus (`GetConnectionCredentials`), and the
//! [`Broker`] decides. Need to know holds on every path: a caller sees
//! only the providers it has a role on, in method answers, properties,
//! `GetManagedObjects` and introspection (`calls`), and signals go only to
//! peers that may see them (`peers`, `signals`).
//!
//! A connection lost (the bus daemon stopped or restarted) is not mended
//! here: [`DbusService::lost`] reports it, and the daemon stops so that
//! the service manager starts it again (see `daemon::run`).

use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tracing::info;
use zbus::Connection;
use zbus::fdo::{RequestNameFlags, RequestNameReply};
use zbus::zvariant::OwnedObjectPath;

use crate::broker::{Broker, BrokerError, ErrorKind};
use crate::config::{BusKind, object_path_element};

mod caller_shares;
mod calls;
mod introspect;
mod methods;
mod objects;
mod peer_groups;
mod peer_table;
mod peers;
mod properties;
mod signalled;
mod signals;
use peers::Peers;

/// The well-known bus name.
pub const BUS_NAME: &str = "org.tokend.Broker1";

/// The broker object's path.
pub const BROKER_PATH: &str = "/org/tokend/Broker1";

/// The broker interface's name.
pub const BROKER_INTERFACE: &str = "org.tokend.Broker1";

/// Where provider objects live.
pub const PROVIDERS_PATH: &str = "/org/tokend/Broker1/providers";

/// Errors as D-Bus callers see them: `org.tokend.Error.<Name>` with a
/// human message.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.tokend.Error")]
pub enum DbusError {
    /// An error of the bus itself.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// There is no usable session: log in first.
    LoginRequired(String),
    /// No provider of that name.
    UnknownProvider(String),
    /// The caller may not use this provider.
    AccessDenied(String),
    /// The provider is temporarily unreachable or failing.
    ProviderUnavailable(String),
    /// The provider refused for good.
    ProviderError(String),
    /// The device login ended without tokens.
    LoginFailed(String),
    /// Tokens live shorter than asked for.
    TokenTooShort(String),
    /// An argument is unusable.
    InvalidArgument(String),
    /// The daemon is stopping.
    ShuttingDown(String),
    /// The session store cannot give or keep this session now.
    StoreError(String),
    /// Anything else.
    Internal(String),
}

impl DbusError {
    /// The outcome metrics count this error under: the name of the
    /// broker's [`ErrorKind`] it came from, as the socket sends it, so both
    /// front-ends' counts use one vocabulary.
    #[must_use]
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::LoginRequired(_) => ErrorKind::LoginRequired.name(),
            Self::UnknownProvider(_) => ErrorKind::UnknownProvider.name(),
            Self::AccessDenied(_) => ErrorKind::AccessDenied.name(),
            Self::ProviderUnavailable(_) => ErrorKind::ProviderUnavailable.name(),
            Self::ProviderError(_) => ErrorKind::ProviderRejected.name(),
            Self::LoginFailed(_) => ErrorKind::LoginFailed.name(),
            Self::TokenTooShort(_) => ErrorKind::TokenTooShort.name(),
            Self::InvalidArgument(_) => ErrorKind::InvalidArgument.name(),
            Self::ShuttingDown(_) => ErrorKind::ShuttingDown.name(),
            Self::StoreError(_) => ErrorKind::Store.name(),
            Self::ZBus(_) | Self::Internal(_) => "internal",
        }
    }

    /// The D-Bus error for a broker failure of `kind`, carrying `message`.
    fn of_kind(kind: ErrorKind, message: String) -> Self {
        match kind {
            ErrorKind::LoginRequired => Self::LoginRequired(message),
            ErrorKind::UnknownProvider => Self::UnknownProvider(message),
            ErrorKind::AccessDenied => Self::AccessDenied(message),
            ErrorKind::ProviderUnavailable => Self::ProviderUnavailable(message),
            ErrorKind::ProviderRejected => Self::ProviderError(message),
            ErrorKind::LoginFailed => Self::LoginFailed(message),
            ErrorKind::TokenTooShort => Self::TokenTooShort(message),
            ErrorKind::InvalidArgument => Self::InvalidArgument(message),
            ErrorKind::ShuttingDown => Self::ShuttingDown(message),
            ErrorKind::Store => Self::StoreError(message),
        }
    }
}

impl From<BrokerError> for DbusError {
    fn from(error: BrokerError) -> Self {
        Self::of_kind(error.kind(), error.to_string())
    }
}

/// Why the D-Bus front-end could not start.
#[derive(Debug, thiserror::Error)]
pub enum DbusSetupError {
    /// No connection to the bus.
    #[error("cannot connect to the {bus} bus: {source}")]
    Connect {
        /// Which bus.
        bus: &'static str,
        /// Why.
        source: zbus::Error,
    },
    /// Another process owns the name.
    #[error("{BUS_NAME} is already owned on the {bus} bus (is another tokend running?)")]
    NameTaken {
        /// Which bus.
        bus: &'static str,
    },
    /// Serving the objects or taking the name failed.
    #[error("cannot serve on the {bus} bus: {source}")]
    Serve {
        /// Which bus.
        bus: &'static str,
        /// Why.
        source: zbus::Error,
    },
}

/// The connection to the bus ended without the daemon asking: the bus
/// daemon stopped, or was restarted (see [`DbusService::lost`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error("lost the connection to the {bus} bus ({reason})")]
pub struct BusLost {
    /// Which bus.
    pub bus: &'static str,
    /// What the connection's last read said.
    pub reason: String,
}

/// Why `calls::serve_calls` returned.
enum CallsEnded {
    /// The daemon is stopping.
    Stop,
    /// The stream of calls ended by itself, as zbus ends every stream of a
    /// connection whose socket failed or that the bus closed; with the
    /// error the stream gave last, if any.
    ConnectionLost(Option<zbus::Error>),
}

/// The provider object path of `name`.
///
/// # Panics
/// Never for names the config accepted (letters, digits, `-`, `_`).
#[must_use]
pub fn provider_path(name: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("{PROVIDERS_PATH}/{}", object_path_element(name)))
        .expect("provider names are valid object path elements")
}

/// The running D-Bus front-end.
#[derive(Debug)]
pub struct DbusService {
    connection: Connection,
    /// Cancels, when the service is dropped, the token the calls' loop
    /// waits on: the loop, refusing calls since the stop began, ends, and
    /// the bus name goes.
    _release: DropGuard,
    /// Set once, when the incoming calls end without a stop: a watch, so
    /// that [`Self::lost`] can be awaited again and again from a loop.
    lost: watch::Receiver<Option<BusLost>>,
}

impl DbusService {
    /// Connects to the bus, starts answering calls and sending signals,
    /// then takes the name (so a client activated by the name finds the
    /// broker answering).
    ///
    /// # Errors
    /// No bus, or the name is owned by another process.
    pub async fn start(
        bus: BusKind,
        broker: Broker,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> Result<Option<Self>, DbusSetupError> {
        let (bus_label, builder) = match bus {
            BusKind::None => return Ok(None),
            BusKind::Session => ("session", zbus::connection::Builder::session()),
            BusKind::System => ("system", zbus::connection::Builder::system()),
        };
        let connect_error = |source| DbusSetupError::Connect {
            bus: bus_label,
            source,
        };
        // No object is served through zbus's object server: calls are
        // answered per caller by `calls`, which zbus's server cannot do.
        let connection = builder
            .map_err(connect_error)?
            .build()
            .await
            .map_err(connect_error)?;
        let peers = Peers::new(matches!(bus, BusKind::Session));
        let signalled = signalled::Signalled::default();
        if let Some(stream) = peers.watch_arrivals_and_departures(&connection).await {
            tasks.spawn(
                peers
                    .clone()
                    .follow_arrivals_and_departures(stream, shutdown.clone()),
            );
        }
        let incoming =
            calls::incoming_calls(&connection)
                .await
                .map_err(|source| DbusSetupError::Serve {
                    bus: bus_label,
                    source,
                })?;
        let (report_loss, lost) = watch::channel(None);
        let released = CancellationToken::new();
        // Dropped with the service, or with a start that fails from here
        // on: either way the loop begun below ends.
        let release = released.clone().drop_guard();
        let serving = calls::serve_calls(
            connection.clone(),
            incoming,
            broker.clone(),
            peers.clone(),
            signalled.clone(),
            calls::StopSignals {
                begun: shutdown.clone(),
                released: released.clone(),
            },
            tasks.clone(),
        );
        // Not a tracked task: during a stop it answers calls until the
        // daemon drops this service, after the tracked work is done.
        tokio::spawn(async move {
            // The calls' stream is the one every call comes in on: when it
            // ends by itself, nothing reaches the broker over this bus any
            // more, and the daemon must hear of it rather than carry on.
            if let CallsEnded::ConnectionLost(error) = serving.await {
                let reason = error.map_or_else(
                    || "the bus closed the connection".to_owned(),
                    |e| e.to_string(),
                );
                report_loss.send_replace(Some(BusLost {
                    bus: bus_label,
                    reason,
                }));
            }
        });
        signals::start(
            tasks,
            connection.clone(),
            broker,
            peers,
            signalled,
            shutdown,
        );
        let serve_error = |source| DbusSetupError::Serve {
            bus: bus_label,
            source,
        };
        // Asked of the bus directly: zbus's own `request_name` warns on
        // every start that calls may be lost when its object server is not
        // set up, which is not so here (`incoming` already receives them).
        let name = zbus::names::WellKnownName::try_from(BUS_NAME).map_err(zbus::Error::from);
        let reply = async {
            zbus::fdo::DBusProxy::new(&connection)
                .await?
                .request_name(name?, RequestNameFlags::DoNotQueue.into())
                .await
                .map_err(zbus::Error::from)
        }
        .await
        .map_err(|e| match e {
            zbus::Error::NameTaken => DbusSetupError::NameTaken { bus: bus_label },
            source => serve_error(source),
        })?;
        if !matches!(
            reply,
            RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner
        ) {
            return Err(DbusSetupError::NameTaken { bus: bus_label });
        }
        info!(bus = bus_label, name = BUS_NAME, "serving on D-Bus");
        Ok(Some(Self {
            connection,
            _release: release,
            lost,
        }))
    }

    /// The bus connection.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Waits until the connection to the bus is lost; never ends while it
    /// lives, nor once the front-end stopped at the daemon's stop. May be
    /// cancelled and called again.
    pub async fn lost(&self) -> BusLost {
        let mut lost = self.lost.clone();
        if let Ok(reported) = lost.wait_for(Option::is_some).await
            && let Some(reported) = reported.as_ref()
        {
            return reported.clone();
        }
        // The calls were served until the stop: nothing to report.
        std::future::pending().await
    }
}

#[cfg(test)]
mod tests {
    use super::{DbusError, ErrorKind};

    #[test]
    fn every_broker_failure_is_counted_under_its_kind() {
        for kind in ErrorKind::ALL {
            let error = DbusError::of_kind(kind, String::new());
            assert_eq!(error.outcome(), kind.name(), "{kind:?}");
        }
    }
}
