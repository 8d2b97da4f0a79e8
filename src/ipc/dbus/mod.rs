//! The D-Bus front-end: `org.tokend.Broker1` on the session or system bus.
//!
//! Objects (see `dist/dbus/org.tokend.Broker1.xml` for the full interface):
//! - `/org/tokend/Broker1`: interface `org.tokend.Broker1` (methods
//!   `GetToken`, `GetTokenMinValid`, `Login`, `Logout`, `ListProviders`;
//!   signals `LoginPrompt`, `LoginFinished`, `TokenRefreshed`), and
//!   `org.freedesktop.DBus.ObjectManager` so clients can discover:
//! - `/org/tokend/Broker1/providers/NAME` (`-` in NAME becomes `_`):
//!   interface `org.tokend.Provider1` with properties that emit
//!   `PropertiesChanged`.
//!
//! Like the socket front-end, this only translates: the caller's uid comes
//! from the bus (`GetConnectionCredentials`), and the [`Broker`] decides.

use std::collections::HashMap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use zbus::Connection;
use zbus::fdo::{RequestNameFlags, RequestNameReply};
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedObjectPath;

use crate::broker::{Broker, BrokerError, BrokerEvent, Caller};

mod objects;
use crate::config::{BusKind, object_path_element};
use crate::protocol::ProviderStatus;
use objects::{BrokerObject, CallerCache, ProviderObject};

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
    /// Anything else.
    Internal(String),
}

impl From<BrokerError> for DbusError {
    fn from(error: BrokerError) -> Self {
        let message = error.to_string();
        match error {
            BrokerError::LoginRequired { .. } => Self::LoginRequired(message),
            BrokerError::UnknownProvider { .. } => Self::UnknownProvider(message),
            BrokerError::AccessDenied { .. } => Self::AccessDenied(message),
            BrokerError::ProviderUnavailable { .. } => Self::ProviderUnavailable(message),
            BrokerError::ProviderRejected { .. } => Self::ProviderError(message),
            BrokerError::LoginFailed { .. } => Self::LoginFailed(message),
            BrokerError::TokenTooShort { .. } => Self::TokenTooShort(message),
            BrokerError::InvalidArgument { .. } => Self::InvalidArgument(message),
            BrokerError::ShuttingDown => Self::ShuttingDown(message),
            BrokerError::Store { .. } => Self::Internal(message),
        }
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
}

impl DbusService {
    /// Connects to the bus, serves the objects, then takes the name.
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
        let owner = Caller::uid(rustix::process::geteuid().as_raw());
        let providers = broker.status(&owner, None).unwrap_or_default();
        // Every object is served by the builder, before the name is taken.
        // zbus announces each object under the ObjectManager with an
        // InterfacesAdded signal as it is served (whichever is added first),
        // so 10,000 providers cost 10,000 signals here, before READY: the
        // price of a standard ObjectManager, measured by the scale benchmark.
        let connection = builder
            .and_then(|b| {
                let b = b
                    .serve_at(
                        BROKER_PATH,
                        BrokerObject {
                            broker: broker.clone(),
                            callers: CallerCache::default(),
                        },
                    )?
                    .serve_at(BROKER_PATH, zbus::fdo::ObjectManager)?;
                providers.into_iter().try_fold(b, |b, status| {
                    b.serve_at(provider_path(&status.name), ProviderObject { status })
                })
            })
            .map_err(|source| DbusSetupError::Connect {
                bus: bus_label,
                source,
            })?
            .build()
            .await
            .map_err(|source| DbusSetupError::Connect {
                bus: bus_label,
                source,
            })?;
        let serve_error = |source| DbusSetupError::Serve {
            bus: bus_label,
            source,
        };
        // The objects are in place before the name is taken, so a client
        // activated by the name never finds them missing.
        let reply = connection
            .request_name_with_flags(BUS_NAME, RequestNameFlags::DoNotQueue.into())
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
        tasks.spawn(forward_events(connection.clone(), broker, shutdown));
        Ok(Some(Self { connection }))
    }

    /// The bus connection.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }
}

/// Turns broker events into signals and `PropertiesChanged`.
async fn forward_events(connection: Connection, broker: Broker, shutdown: CancellationToken) {
    let mut events = broker.subscribe();
    let owner = Caller::uid(rustix::process::geteuid().as_raw());
    let Ok(emitter) = SignalEmitter::new(&connection, BROKER_PATH) else {
        return;
    };
    let mut last: HashMap<String, ProviderStatus> = HashMap::new();
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            () = shutdown.cancelled() => return,
        };
        let event = match event {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                // Events were dropped; property values are recomputed below
                // for whichever provider changes next, so nothing stays stale
                // for long. Refresh them all now.
                warn!("D-Bus event forwarding fell {n} events behind");
                for status in broker.status(&owner, None).unwrap_or_default() {
                    update_properties(&connection, &mut last, status).await;
                }
                continue;
            }
            Err(_) => return,
        };
        if let BrokerEvent::ProvidersChanged {
            added,
            removed,
            changed,
        } = &event
        {
            apply_provider_changes(
                &connection,
                &broker,
                &owner,
                &mut last,
                added,
                removed,
                changed,
            )
            .await;
            continue;
        }
        let result = match &event {
            BrokerEvent::LoginPrompt { provider, prompt } => {
                BrokerObject::login_prompt(
                    &emitter,
                    provider,
                    &prompt.user_code,
                    &prompt.verification_uri,
                    prompt.verification_uri_complete.as_deref().unwrap_or(""),
                    u32::try_from(prompt.expires_in).unwrap_or(u32::MAX),
                )
                .await
            }
            BrokerEvent::LoginFinished {
                provider,
                ok,
                message,
            } => BrokerObject::login_finished(&emitter, provider, *ok, message).await,
            BrokerEvent::TokenRefreshed {
                provider,
                expires_at,
            } => BrokerObject::token_refreshed(&emitter, provider, expires_at.unwrap_or(0)).await,
            BrokerEvent::StateChanged { .. } | BrokerEvent::ProvidersChanged { .. } => Ok(()),
        };
        if let Err(e) = result {
            warn!("could not emit a D-Bus signal: {e}");
        }
        let provider = match &event {
            BrokerEvent::LoginPrompt { provider, .. }
            | BrokerEvent::LoginFinished { provider, .. }
            | BrokerEvent::TokenRefreshed { provider, .. }
            | BrokerEvent::StateChanged { provider } => provider,
            BrokerEvent::ProvidersChanged { .. } => continue,
        };
        if let Some(status) = broker
            .status(&owner, Some(provider))
            .ok()
            .and_then(|mut s| s.pop())
        {
            update_properties(&connection, &mut last, status).await;
        }
    }
}

/// Adds and removes provider objects after a config reload. The
/// `ObjectManager` at the root signals `InterfacesAdded`/`InterfacesRemoved`.
async fn apply_provider_changes(
    connection: &Connection,
    broker: &Broker,
    owner: &Caller,
    last: &mut HashMap<String, ProviderStatus>,
    added: &[String],
    removed: &[String],
    changed: &[String],
) {
    let server = connection.object_server();
    for name in removed {
        last.remove(name);
        if let Err(e) = server
            .remove::<ProviderObject, _>(provider_path(name))
            .await
        {
            warn!(provider = %name, "could not remove the D-Bus object: {e}");
        }
    }
    for name in added {
        let Some(status) = broker
            .status(owner, Some(name))
            .ok()
            .and_then(|mut s| s.pop())
        else {
            continue;
        };
        if let Err(e) = server
            .at(provider_path(name), ProviderObject { status })
            .await
        {
            warn!(provider = %name, "could not add the D-Bus object: {e}");
        }
    }
    for name in changed {
        if let Some(status) = broker
            .status(owner, Some(name))
            .ok()
            .and_then(|mut s| s.pop())
        {
            update_properties(connection, last, status).await;
        }
    }
}

/// Stores the provider's new status in its object and emits
/// `PropertiesChanged` for the properties whose value changed.
async fn update_properties(
    connection: &Connection,
    last: &mut HashMap<String, ProviderStatus>,
    status: ProviderStatus,
) {
    let path = provider_path(&status.name);
    let Ok(iface) = connection
        .object_server()
        .interface::<_, ProviderObject>(&path)
        .await
    else {
        return;
    };
    let before = last.get(&status.name).cloned();
    iface.get_mut().await.status = status.clone();
    let object = iface.get().await;
    let emitter = iface.signal_emitter();
    let changed =
        |f: fn(&ProviderStatus) -> String| before.as_ref().is_none_or(|b| f(b) != f(&status));
    let mut results = Vec::new();
    if changed(|s| s.state.clone()) {
        results.push(object.state_changed(emitter).await);
    }
    if changed(|s| format!("{:?}", s.expires_at)) {
        results.push(object.expires_at_changed(emitter).await);
    }
    if changed(|s| format!("{:?}", s.last_error)) {
        results.push(object.last_error_changed(emitter).await);
    }
    if changed(|s| s.scopes.join(" ")) {
        results.push(object.scopes_changed(emitter).await);
    }
    drop(object);
    for result in results {
        if let Err(e) = result {
            warn!("could not emit PropertiesChanged: {e}");
        }
    }
    last.insert(status.name.clone(), status);
}
