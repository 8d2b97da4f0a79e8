//! Broker events as D-Bus signals, each sent only where it may go.
//!
//! Every signal names a provider, so each goes to the peers
//! [`Peers::recipients`] picks for that provider's access rule: a login's
//! prompt to those who may manage it, everything else to those who may
//! use it (see `peers` for the session bus, where that is everyone).

use std::collections::HashMap;

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use zbus::Connection;
use zbus::zvariant::{DynamicType, Value};

use super::calls::{managed_object, provider_properties};
use super::methods::{OBJECT_MANAGER, PROPERTIES, PROVIDER_INTERFACE};
use super::peers::{Peers, Recipients};
use super::{BROKER_INTERFACE, BROKER_PATH, provider_path};
use crate::broker::{AccessPolicy, Broker, BrokerEvent, Caller, Role};
use crate::protocol::ProviderStatus;

/// The interfaces a provider object has, for `InterfacesRemoved`.
const PROVIDER_OBJECT_INTERFACES: [&str; 4] = [
    PROVIDER_INTERFACE,
    PROPERTIES,
    "org.freedesktop.DBus.Introspectable",
    "org.freedesktop.DBus.Peer",
];

/// Sends the signals of broker events until `shutdown`.
pub(super) async fn forward_events(
    connection: Connection,
    broker: Broker,
    peers: Peers,
    shutdown: CancellationToken,
) {
    let mut events = broker.subscribe();
    let mut signals = Signals {
        connection,
        broker,
        peers,
        owner: Caller::uid(rustix::process::geteuid().as_raw()),
        last: HashMap::new(),
    };
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            () = shutdown.cancelled() => return,
        };
        match event {
            Ok(event) => signals.forward(&event).await,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                // Events were dropped: bring every property up to date.
                warn!("D-Bus event forwarding fell {n} events behind");
                let all = signals
                    .broker
                    .status(&signals.owner, None)
                    .unwrap_or_default();
                for status in all {
                    signals.update_properties(status).await;
                }
            }
            Err(_) => return,
        }
    }
}

struct Signals {
    connection: Connection,
    broker: Broker,
    peers: Peers,
    /// The daemon's own uid, which sees every provider whole.
    owner: Caller,
    /// The properties last signalled, per provider, to signal only changes.
    last: HashMap<String, ProviderStatus>,
}

impl Signals {
    async fn forward(&mut self, event: &BrokerEvent) {
        let provider = match event {
            BrokerEvent::LoginPrompt { provider, prompt } => {
                let body = (
                    provider.as_str(),
                    prompt.user_code.as_str(),
                    prompt.verification_uri.as_str(),
                    prompt.verification_uri_complete.as_deref().unwrap_or(""),
                    u32::try_from(prompt.expires_in).unwrap_or(u32::MAX),
                );
                self.about(provider, Role::Manage, "LoginPrompt", &body)
                    .await;
                provider
            }
            BrokerEvent::LoginFinished {
                provider,
                ok,
                message,
            } => {
                let body = (provider.as_str(), *ok, message.as_str());
                self.about(provider, Role::Use, "LoginFinished", &body)
                    .await;
                provider
            }
            BrokerEvent::TokenRefreshed {
                provider,
                expires_at,
            } => {
                let body = (provider.as_str(), expires_at.unwrap_or(0));
                self.about(provider, Role::Use, "TokenRefreshed", &body)
                    .await;
                provider
            }
            BrokerEvent::StateChanged { provider } | BrokerEvent::Attention { provider, .. } => {
                provider
            }
            BrokerEvent::ProvidersChanged {
                added,
                removed,
                changed,
                previous_policies,
            } => {
                self.providers_changed(added, removed, changed, previous_policies)
                    .await;
                return;
            }
        };
        if let Some(status) = self.status(provider) {
            self.update_properties(status).await;
        }
    }

    /// The provider as its owner sees it (every field).
    fn status(&self, provider: &str) -> Option<ProviderStatus> {
        self.broker
            .status(&self.owner, Some(provider))
            .ok()
            .and_then(|mut s| s.pop())
    }

    /// A `org.tokend.Broker1` signal about `provider`, to the peers with
    /// at least `needed` on it.
    async fn about<B>(&self, provider: &str, needed: Role, member: &str, body: &B)
    where
        B: Serialize + DynamicType,
    {
        let Some(policy) = self.broker.policy(provider) else {
            return;
        };
        let to = self.peers.recipients(&policy, needed);
        self.send(to, BROKER_PATH, BROKER_INTERFACE, member, body)
            .await;
    }

    async fn send<B>(&self, to: Recipients, path: &str, interface: &str, member: &str, body: &B)
    where
        B: Serialize + DynamicType,
    {
        let destinations = match to {
            Recipients::Broadcast => vec![None],
            Recipients::Unicast(names) => names.into_iter().map(Some).collect(),
        };
        for destination in destinations {
            if let Err(e) = self
                .connection
                .emit_signal(destination.as_deref(), path, interface, member, body)
                .await
            {
                warn!("could not emit the D-Bus signal {member}: {e}");
            }
        }
    }

    /// After a reload: objects appear and disappear for those who may see
    /// them, then the rest is a change of properties.
    async fn providers_changed(
        &mut self,
        added: &[String],
        removed: &[String],
        changed: &[String],
        previous: &[(String, AccessPolicy)],
    ) {
        let previous: HashMap<&str, &AccessPolicy> =
            previous.iter().map(|(n, p)| (n.as_str(), p)).collect();
        for name in removed {
            self.last.remove(name);
            if let Some(policy) = previous.get(name.as_str()) {
                let to = self.peers.recipients(policy, Role::Use);
                self.objects_removed(to, name).await;
            }
        }
        for name in added {
            if let (Some(policy), Some(status)) = (self.broker.policy(name), self.status(name)) {
                let to = self.peers.recipients(&policy, Role::Use);
                self.objects_added(to, &status).await;
            }
        }
        for name in changed {
            let (Some(before), Some(after), Some(status)) = (
                previous.get(name.as_str()),
                self.broker.policy(name),
                self.status(name),
            ) else {
                continue;
            };
            let (lost, gained) = self.peers.role_changes(before, &after, Role::Use);
            self.objects_removed(Recipients::Unicast(lost), name).await;
            self.objects_added(Recipients::Unicast(gained), &status)
                .await;
            self.update_properties(status).await;
        }
    }

    async fn objects_removed(&self, to: Recipients, name: &str) {
        if to == Recipients::Unicast(Vec::new()) {
            return;
        }
        let path = provider_path(name);
        let body = (path.as_ref(), PROVIDER_OBJECT_INTERFACES);
        self.send(to, BROKER_PATH, OBJECT_MANAGER, "InterfacesRemoved", &body)
            .await;
    }

    async fn objects_added(&self, to: Recipients, status: &ProviderStatus) {
        if to == Recipients::Unicast(Vec::new()) {
            return;
        }
        let path = provider_path(&status.name);
        let body = (path.as_ref(), managed_object(status));
        self.send(to, BROKER_PATH, OBJECT_MANAGER, "InterfacesAdded", &body)
            .await;
    }

    /// Signals `PropertiesChanged` with the properties of `status` that
    /// differ from the last ones signalled.
    async fn update_properties(&mut self, status: ProviderStatus) {
        let before = self.last.get(&status.name);
        let changed: HashMap<&'static str, Value<'static>> = provider_properties(&status)
            .into_iter()
            .filter(|(key, value)| {
                before.is_none_or(|b| {
                    provider_properties(b)
                        .iter()
                        .any(|(k, v)| k == key && v != value)
                })
            })
            .collect();
        if !changed.is_empty()
            && let Some(policy) = self.broker.policy(&status.name)
        {
            let to = self.peers.recipients(&policy, Role::Use);
            let path = provider_path(&status.name);
            let body = (PROVIDER_INTERFACE, changed, Vec::<&str>::new());
            self.send(to, path.as_str(), PROPERTIES, "PropertiesChanged", &body)
                .await;
        }
        self.last.insert(status.name.clone(), status);
    }
}
