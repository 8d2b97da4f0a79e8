//! The objects served on the bus: `org.tokend.Broker1` and `org.tokend.Provider1`.

// zbus's `interface` macro generates signal-emitting helpers without docs.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::time::Duration;

use tracing::debug;
use zbus::fdo::DBusProxy;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{Connection, interface};

use super::DbusError;
use crate::broker::{Broker, Caller, Freshness};
use crate::protocol::ProviderStatus;

/// Callers by unique bus name. The bus never reuses a unique name while it
/// runs, and a connection's credentials never change, so an entry stays
/// right as long as it exists; asking the bus once per client rather than
/// once per call halves the cost of a `GetToken`. Bounded by starting over
/// when full.
#[derive(Debug, Default)]
pub(super) struct CallerCache(std::sync::Mutex<HashMap<String, Caller>>);

/// Entries kept before the cache starts over.
const CALLER_CACHE_LIMIT: usize = 4096;

impl CallerCache {
    /// Identifies the sender of a method call by uid.
    async fn caller(
        &self,
        connection: &Connection,
        header: &Header<'_>,
    ) -> Result<Caller, DbusError> {
        let sender = header
            .sender()
            .ok_or_else(|| DbusError::Internal("the call has no sender".into()))?;
        if let Some(caller) = self.map().get(sender.as_str()) {
            return Ok(*caller);
        }
        let credentials = DBusProxy::new(connection)
            .await?
            .get_connection_credentials(sender.clone().into())
            .await
            .map_err(|e| DbusError::Internal(format!("cannot identify the caller: {e}")))?;
        let uid = credentials.unix_user_id().ok_or_else(|| {
            DbusError::AccessDenied("the bus does not know the caller's uid".into())
        })?;
        let caller = Caller {
            uid,
            gid: None,
            pid: credentials.process_id().and_then(|p| i32::try_from(p).ok()),
        };
        let mut map = self.map();
        if map.len() >= CALLER_CACHE_LIMIT {
            map.clear();
        }
        map.insert(sender.as_str().to_owned(), caller);
        Ok(caller)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Caller>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `org.tokend.Broker1` at `/org/tokend/Broker1`.
pub(super) struct BrokerObject {
    pub(super) broker: Broker,
    pub(super) callers: CallerCache,
}

#[interface(name = "org.tokend.Broker1")]
impl BrokerObject {
    /// A fresh access token (one the daemon would not refresh yet, else any
    /// still-valid one), and its expiry (Unix seconds, 0 when unknown).
    #[zbus(out_args("access_token", "expires_at_unix"))]
    async fn get_token(
        &self,
        provider: &str,
        #[zbus(connection)] connection: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(String, i64), DbusError> {
        self.token(provider, Freshness::Default, connection, &header)
            .await
    }

    /// As `GetToken`, with the minimum remaining life in seconds.
    #[zbus(out_args("access_token", "expires_at_unix"))]
    async fn get_token_min_valid(
        &self,
        provider: &str,
        min_valid: u32,
        #[zbus(connection)] connection: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(String, i64), DbusError> {
        let want = Freshness::AtLeast(Duration::from_secs(u64::from(min_valid)));
        self.token(provider, want, connection, &header).await
    }

    /// Starts (or joins) the device login; returns the prompt at once.
    /// Completion is signalled by `LoginFinished`.
    #[zbus(out_args(
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in"
    ))]
    async fn login(
        &self,
        provider: &str,
        #[zbus(connection)] connection: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(String, String, String, u32), DbusError> {
        let caller = self.callers.caller(connection, &header).await?;
        let mut watch = self.broker.login(&caller, provider)?;
        let prompt = watch.prompt().await?;
        Ok((
            prompt.user_code,
            prompt.verification_uri,
            prompt.verification_uri_complete.unwrap_or_default(),
            u32::try_from(prompt.expires_in).unwrap_or(u32::MAX),
        ))
    }

    /// Forgets the session: tokens dropped from memory and store.
    async fn logout(
        &self,
        provider: &str,
        #[zbus(connection)] connection: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), DbusError> {
        let caller = self.callers.caller(connection, &header).await?;
        Ok(self.broker.logout(&caller, provider).await?)
    }

    /// Names of the providers the caller may use.
    #[zbus(out_args("providers"))]
    async fn list_providers(
        &self,
        #[zbus(connection)] connection: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<String>, DbusError> {
        let caller = self.callers.caller(connection, &header).await?;
        Ok(self.broker.provider_names(&caller))
    }

    /// A device login has a code for the person.
    #[zbus(signal)]
    pub(super) async fn login_prompt(
        emitter: &SignalEmitter<'_>,
        provider: &str,
        user_code: &str,
        verification_uri: &str,
        verification_uri_complete: &str,
        expires_in: u32,
    ) -> zbus::Result<()>;

    /// A device login ended.
    #[zbus(signal)]
    pub(super) async fn login_finished(
        emitter: &SignalEmitter<'_>,
        provider: &str,
        success: bool,
        message: &str,
    ) -> zbus::Result<()>;

    /// New tokens arrived; the token itself is never signalled.
    #[zbus(signal)]
    pub(super) async fn token_refreshed(
        emitter: &SignalEmitter<'_>,
        provider: &str,
        expires_at_unix: i64,
    ) -> zbus::Result<()>;
}

impl BrokerObject {
    async fn token(
        &self,
        provider: &str,
        want: Freshness,
        connection: &Connection,
        header: &Header<'_>,
    ) -> Result<(String, i64), DbusError> {
        let caller = self.callers.caller(connection, header).await?;
        // The broker checks the bounds: one rule for both front-ends.
        let token = self.broker.token(&caller, provider, want).await?;
        debug!(provider, uid = caller.uid, "token handed out over D-Bus");
        Ok((
            token.secret.expose().to_owned(),
            token.expires_at.map_or(0, crate::broker::clock::unix_secs),
        ))
    }
}

/// `org.tokend.Provider1` at `/org/tokend/Broker1/providers/NAME`.
pub(super) struct ProviderObject {
    pub(super) status: ProviderStatus,
}

#[interface(name = "org.tokend.Provider1")]
impl ProviderObject {
    /// The provider's name (the config table key).
    #[zbus(property)]
    pub(super) fn name(&self) -> String {
        self.status.name.clone()
    }

    /// Its wire dialect.
    #[zbus(property)]
    pub(super) fn dialect(&self) -> String {
        self.status.dialect.clone()
    }

    /// `logged_out`, `login_pending`, `active`, `expired` or `login_required`.
    #[zbus(property)]
    pub(super) fn state(&self) -> String {
        self.status.state.clone()
    }

    /// Access-token expiry in Unix seconds; 0 when unknown or none.
    #[zbus(property)]
    pub(super) fn expires_at(&self) -> i64 {
        self.status.expires_at.unwrap_or(0)
    }

    /// Granted (or requested) scopes.
    #[zbus(property)]
    pub(super) fn scopes(&self) -> Vec<String> {
        self.status.scopes.clone()
    }

    /// The last error; empty when the last attempt succeeded.
    #[zbus(property)]
    pub(super) fn last_error(&self) -> String {
        self.status.last_error.clone().unwrap_or_default()
    }
}
