//! Broker events as D-Bus signals, each sent only where it may go.
//!
//! On every `StateChanged` (the broker raises one whenever what `status`
//! shows of a provider changes) the provider's report is read again and
//! `PropertiesChanged` carries all of its properties, not a difference
//! from a copy kept here. One change can raise more than one
//! `StateChanged` (a login that ends: the session's new state, then the
//! login task's end), and the reports read for them are then the same: a
//! `PropertiesChanged` that repeats the last one to peers who know it is
//! left out (`signalled` says when that is safe), so the last one sent
//! always carries what `Get` answers.
//!
//! The broker object's store properties (`StoreState`, `StoreError`,
//! `StoreUnavailableSince`) are signalled the same way when the store's
//! state changes, to the peers who may read them.
//!
//! Every other signal names a provider, so each goes to the peers
//! [`Peers::recipients`] picks for that provider's access rule: a login's
//! prompt to those who may manage it, everything else to those who may
//! use it (see `peers` for the session bus, where that is everyone).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};
use zbus::Connection;
use zbus::zvariant::{DynamicType, Value};

mod regrouped;

use super::methods::{OBJECT_MANAGER, PROPERTIES, PROVIDER_INTERFACE};
use super::peer_groups::Regrouped;
use super::peers::{Peers, Recipients};
use super::properties::{managed_object, provider_properties, store_properties};
use super::signalled::{PropertiesSent, Signalled};
use super::{BROKER_INTERFACE, BROKER_PATH, provider_path};
use crate::broker::{AccessPolicy, Broker, BrokerEvent, Caller, EventFeed, Role, SessionReport};

/// The interfaces a provider object has, for `InterfacesRemoved`.
const PROVIDER_OBJECT_INTERFACES: [&str; 4] = [
    PROVIDER_INTERFACE,
    PROPERTIES,
    "org.freedesktop.DBus.Introspectable",
    "org.freedesktop.DBus.Peer",
];

/// Starts sending signals until `shutdown` (tasks of `tasks`): those of
/// broker events, and those of peers whose groups changed (`regrouped`).
pub(super) fn start(
    tasks: &TaskTracker,
    connection: Connection,
    broker: Broker,
    peers: Peers,
    signalled: Signalled,
    shutdown: CancellationToken,
) {
    // Bounded: a look whose changes find it full waits until the signals
    // of those before are sent.
    let (regrouped, peers_regrouped) = mpsc::channel(4);
    tasks.spawn(regrouped::confirm_groups_until(
        peers.clone(),
        broker.clone(),
        regrouped,
        shutdown.clone(),
    ));
    tasks.spawn(forward_events(
        connection,
        broker,
        peers,
        signalled,
        peers_regrouped,
        shutdown,
    ));
}

/// Sends the signals of broker events until `shutdown`, and those of the
/// peers whose groups changed (`regrouped`, from
/// [`regrouped::confirm_groups_until`]).
async fn forward_events(
    connection: Connection,
    broker: Broker,
    peers: Peers,
    signalled: Signalled,
    mut regrouped: mpsc::Receiver<Vec<Regrouped>>,
    shutdown: CancellationToken,
) {
    let mut events = broker.follow();
    let mut store = broker.store_changes();
    let signals = Signals {
        connection,
        broker,
        peers,
        owner: Caller::uid(rustix::process::geteuid().as_raw()),
        signalled,
        broken: AtomicBool::new(false),
    };
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            changed = store.changed() => {
                if changed.is_ok() {
                    signals.store_changed().await;
                }
                continue;
            }
            Some(changed) = regrouped.recv() => {
                signals.peers_regrouped(&changed).await;
                continue;
            }
            () = shutdown.cancelled() => {
                signals.send_what_is_left(&mut events).await;
                return;
            }
            // No signal can go out any more: the loss is reported (once)
            // by the calls' stream, and the daemon stops.
            () = signals.connection.closed() => return,
        };
        // (A feed loses no event: one behind a burst folds repeats, a
        // provider's three refreshes into one `TokenRefreshed`.)
        let Some(event) = event else {
            return;
        };
        // A bus that takes no more (stalled) holds the signal: a stop
        // meanwhile is not held by it past a short wait. (Not cut at the
        // stop itself: the signal may be the `LoginFinished` of a login
        // the stop ended, which its client waits for.)
        let stop_waited_out = async {
            shutdown.cancelled().await;
            tokio::time::sleep(STOP_SIGNALS_WITHIN).await;
        };
        tokio::select! {
            () = signals.forward(&event) => {}
            () = stop_waited_out => {
                say_signals_left_unsent();
                return;
            }
        }
    }
}

/// How long a stop waits for the bus to take the signals still queued.
const STOP_SIGNALS_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The log line of a stop that gave up on a bus that takes no signals.
fn say_signals_left_unsent() {
    warn!(
        "D-Bus signals still queued at the stop were not sent: the bus did not take them within {} s",
        STOP_SIGNALS_WITHIN.as_secs()
    );
}

struct Signals {
    connection: Connection,
    broker: Broker,
    peers: Peers,
    /// The daemon's own uid, which sees every provider whole.
    owner: Caller,
    /// The last `PropertiesChanged` of each provider object.
    signalled: Signalled,
    /// A signal failed for a broken connection: said once, since every
    /// signal after it fails the same way until the daemon stops.
    broken: AtomicBool,
}

impl Signals {
    /// At a stop: the events still queued, for at most
    /// [`STOP_SIGNALS_WITHIN`]. The stop ended the logins just before:
    /// their endings (`LoginFinished`, ok false) are queued, and their
    /// waiting clients are told. A bus that takes nothing (stalled) held
    /// the stop for its whole grace, which was then said as requests left
    /// unanswered.
    async fn send_what_is_left(&self, events: &mut EventFeed) {
        let sent = tokio::time::timeout(STOP_SIGNALS_WITHIN, async {
            while let Some(event) = events.try_recv() {
                self.forward(&event).await;
            }
        })
        .await;
        if sent.is_err() {
            say_signals_left_unsent();
        }
    }

    async fn forward(&self, event: &BrokerEvent) {
        match event {
            BrokerEvent::LoginPrompt { provider, prompt } => {
                let body = (
                    provider.as_str(),
                    prompt.user_code.as_str(),
                    prompt.verification_uri.as_str(),
                    prompt.verification_uri_complete.as_deref().unwrap_or(""),
                    u32::try_from(prompt.expires_in.as_secs()).unwrap_or(u32::MAX),
                );
                self.about(provider, Role::Manage, "LoginPrompt", &body)
                    .await;
            }
            BrokerEvent::LoginFinished {
                provider,
                ok,
                message,
                policy,
            } => {
                // The event's policy, not the broker's: a reload that
                // removed the provider ended the login, and those who
                // could see it are still told how it ended.
                let body = (provider.as_str(), *ok, message.as_str());
                let to = self.peers.recipients(policy, Role::Use);
                self.send(to, BROKER_PATH, BROKER_INTERFACE, "LoginFinished", &body)
                    .await;
            }
            BrokerEvent::TokenRefreshed {
                provider,
                expires_at,
            } => {
                let body = (provider.as_str(), expires_at.unwrap_or(0));
                self.about(provider, Role::Use, "TokenRefreshed", &body)
                    .await;
            }
            BrokerEvent::StateChanged { provider } => {
                let epoch = self.signalled.epoch();
                if let Some(report) = self.report(provider) {
                    self.update_properties(&report, epoch).await;
                }
            }
            // For hooks; the status change that goes with it comes as
            // its own StateChanged.
            BrokerEvent::Attention { .. } => {}
            BrokerEvent::ProvidersChanged {
                added,
                removed,
                changed,
                previous_policies,
            } => {
                self.providers_changed(added, removed, changed, previous_policies)
                    .await;
            }
        }
    }

    /// The store became unavailable, available again, or unavailable for
    /// another reason: the broker object's store properties, to the peers
    /// who may read them (those who may see a provider).
    async fn store_changed(&self) {
        let properties: HashMap<&str, Value<'_>> = store_properties(&self.broker.store_status())
            .into_iter()
            .collect();
        let body = (BROKER_INTERFACE, properties, Vec::<&str>::new());
        let to = self
            .peers
            .recipients_where(|caller| self.broker.sees_a_provider(caller));
        self.send(to, BROKER_PATH, PROPERTIES, "PropertiesChanged", &body)
            .await;
    }

    /// The provider as its owner sees it (every field).
    fn report(&self, provider: &str) -> Option<SessionReport> {
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

    /// Sends the signal to each of `to`; false when it could not be sent
    /// to one of them.
    async fn send<B>(
        &self,
        to: Recipients,
        path: &str,
        interface: &str,
        member: &str,
        body: &B,
    ) -> bool
    where
        B: Serialize + DynamicType,
    {
        let destinations = match to {
            Recipients::Broadcast => vec![None],
            Recipients::Unicast(names) => names.into_iter().map(Some).collect(),
        };
        let mut all_sent = true;
        for destination in destinations {
            if let Err(e) = self
                .connection
                .emit_signal(destination.as_deref(), path, interface, member, body)
                .await
            {
                all_sent = false;
                if self.connection.is_closed() {
                    // The daemon reports the loss itself, once, and stops.
                    debug!("could not emit the D-Bus signal {member}: {e}");
                } else if !matches!(e, zbus::Error::InputOutput(_)) {
                    warn!("could not emit the D-Bus signal {member}: {e}");
                } else if !self.broken.swap(true, Ordering::Relaxed) {
                    warn!("could not emit the D-Bus signal {member}, nor will any other: {e}");
                } else {
                    debug!("could not emit the D-Bus signal {member}: {e}");
                }
            }
        }
        all_sent
    }

    /// After a reload: objects appear and disappear for those who may see
    /// them, then the rest is a change of properties.
    async fn providers_changed(
        &self,
        added: &[String],
        removed: &[String],
        changed: &[String],
        previous: &[(String, AccessPolicy)],
    ) {
        // Peers met while nothing granted by group have their groups read
        // now, if something does: they may gain providers by them.
        if self.broker.grants_groups() {
            self.peers.read_unread_groups().await;
        }
        let previous: HashMap<&str, &AccessPolicy> =
            previous.iter().map(|(n, p)| (n.as_str(), p)).collect();
        // Who may see them, and what, may have changed: their next
        // PropertiesChanged goes out whatever it says.
        for name in removed.iter().chain(added).chain(changed) {
            self.signalled.forget(provider_path(name).as_str());
        }
        let epoch = self.signalled.epoch();
        for name in removed {
            if let Some(policy) = previous.get(name.as_str()) {
                let to = self.peers.recipients(policy, Role::Use);
                self.objects_removed(to, name).await;
            }
        }
        for name in added {
            if let (Some(policy), Some(report)) = (self.broker.policy(name), self.report(name)) {
                let to = self.peers.recipients(&policy, Role::Use);
                self.objects_added(to, &report).await;
            }
        }
        for name in changed {
            let (Some(before), Some(after), Some(report)) = (
                previous.get(name.as_str()),
                self.broker.policy(name),
                self.report(name),
            ) else {
                continue;
            };
            let (lost, gained) = self.peers.role_changes(before, &after, Role::Use);
            self.objects_removed(Recipients::Unicast(lost), name).await;
            self.objects_added(Recipients::Unicast(gained), &report)
                .await;
            self.update_properties(&report, epoch).await;
        }
    }

    async fn objects_removed(&self, to: Recipients, name: &str) {
        if to == Recipients::Unicast(Vec::new()) {
            return;
        }
        let path = provider_path(name);
        // A slice, which is an array on the wire (`oas`): serde writes a
        // fixed-size array as a struct, `o(ssss)`, which object managers
        // that check the signature ignore.
        let body = (path.as_ref(), &PROVIDER_OBJECT_INTERFACES[..]);
        self.send(to, BROKER_PATH, OBJECT_MANAGER, "InterfacesRemoved", &body)
            .await;
    }

    async fn objects_added(&self, to: Recipients, report: &SessionReport) {
        for (to, report) in self.views(to, report) {
            if to == Recipients::Unicast(Vec::new()) {
                continue;
            }
            let path = provider_path(&report.name);
            let body = (path.as_ref(), managed_object(&report));
            self.send(to, BROKER_PATH, OBJECT_MANAGER, "InterfacesAdded", &body)
                .await;
        }
    }

    /// `to`, split by what its peers may read of `report`'s provider (the
    /// owner's view): those who may manage it read it whole; use-only
    /// peers read it as `Get` answers them (a "login required" error
    /// without the advice to log in, which is not theirs to take). On a
    /// session bus every peer is the owner.
    fn views(&self, to: Recipients, report: &SessionReport) -> Vec<(Recipients, SessionReport)> {
        let Recipients::Unicast(names) = to else {
            return vec![(to, report.clone())];
        };
        let Some(policy) = self.broker.policy(&report.name) else {
            return Vec::new();
        };
        let mut managers = Vec::new();
        let mut users = Vec::new();
        let mut a_user = None;
        for name in names {
            match self.peers.known(&name) {
                Some(caller) if policy.role(&caller) >= Role::Manage => managers.push(name),
                Some(caller) => {
                    a_user.get_or_insert(caller);
                    users.push(name);
                }
                None => {}
            }
        }
        let mut views = vec![(Recipients::Unicast(managers), report.clone())];
        let users_view = a_user.and_then(|caller| {
            self.broker
                .status(&caller, Some(&report.name))
                .ok()
                .and_then(|mut s| s.pop())
        });
        if let Some(view) = users_view {
            views.push((Recipients::Unicast(users), view));
        }
        views
    }

    /// Signals `PropertiesChanged` with every property of `report`, to
    /// the peers that may use the provider; not when the last one sent for
    /// it went to the same peers with the same properties and they read
    /// nothing since (see `signalled`). `epoch`: the [`Signalled::epoch`]
    /// from before `report` was read.
    async fn update_properties(&self, report: &SessionReport, epoch: u64) {
        let Some(policy) = self.broker.policy(&report.name) else {
            return;
        };
        let to = self.peers.recipients(&policy, Role::Use);
        let path = provider_path(&report.name);
        let mut sends = PropertiesSent::new();
        for (to, report) in self.views(to, report) {
            let to = match to {
                Recipients::Unicast(names) if names.is_empty() => continue,
                // In one order, so that the same peers compare equal.
                Recipients::Unicast(mut names) => {
                    names.sort_unstable();
                    Recipients::Unicast(names)
                }
                Recipients::Broadcast => Recipients::Broadcast,
            };
            sends.push((to, provider_properties(&report)));
        }
        let sends = Arc::new(sends);
        if !self.signalled.replace(path.as_str(), &sends, epoch) {
            debug!(provider = %report.name, "PropertiesChanged left out: the same as the last one");
            return;
        }
        let mut all_sent = true;
        for (to, properties) in sends.iter() {
            let changed: HashMap<&'static str, &Value<'static>> = properties
                .iter()
                .map(|(name, value)| (*name, value))
                .collect();
            let body = (PROVIDER_INTERFACE, changed, Vec::<&str>::new());
            all_sent &= self
                .send(
                    to.clone(),
                    path.as_str(),
                    PROPERTIES,
                    "PropertiesChanged",
                    &body,
                )
                .await;
        }
        if !all_sent {
            self.signalled.forget(path.as_str());
        }
    }
}
