//! Peers whose groups change while they stay on the bus.
//!
//! A peer's credentials never change, but its user's primary group may
//! (`usermod -g`), and with it the providers the peer may see by a group
//! grant. So the primary groups of the known peers are asked for again
//! every [`GROUPS_LOOK_AGAIN`] while some provider grants by group (by a
//! task of their own: a name service that hangs holds no signal), and
//! the provider objects a peer loses or gains by the answer are signalled
//! to it alone (`InterfacesRemoved`, `InterfacesAdded`), as when the group
//! database's member lists change (`Signals::providers_changed`). Calls
//! and later signals follow the peer's groups as soon as they change.

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::super::peer_groups::Regrouped;
use super::super::peer_table::GROUPS_LOOK_AGAIN;
use super::super::peers::{Peers, Recipients};
use super::Signals;
use crate::broker::{Broker, Role};
use crate::ipc::dbus::provider_path;

/// Asks again every [`GROUPS_LOOK_AGAIN`] for the primary groups of the
/// known peers, while some provider grants by group, until `stop`; sends
/// the peers whose groups changed to `changed`, for their signals.
pub(super) async fn confirm_groups_until(
    peers: Peers,
    broker: Broker,
    changed: mpsc::Sender<Vec<Regrouped>>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + GROUPS_LOOK_AGAIN,
        GROUPS_LOOK_AGAIN,
    );
    // After a suspend, one look, not one per period missed.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        // Without a group grant the user database is never asked.
        if !broker.grants_groups() {
            continue;
        }
        let regrouped = tokio::select! {
            regrouped = peers.confirm_groups_again() => regrouped,
            () = stop.cancelled() => return,
        };
        if regrouped.is_empty() {
            continue;
        }
        tokio::select! {
            sent = changed.send(regrouped) => if sent.is_err() { return },
            () = stop.cancelled() => return,
        }
    }
}

impl Signals {
    /// The provider objects the `regrouped` peers lost or gained as their
    /// groups changed: `InterfacesRemoved` to those who may no longer use
    /// one, `InterfacesAdded` (with what they may read of it) to those who
    /// now may.
    pub(super) async fn peers_regrouped(&self, regrouped: &[Regrouped]) {
        // Every provider: the owner sees them all.
        for name in self.broker.provider_names(&self.owner) {
            let (mut lost, mut gained) = (Vec::new(), Vec::new());
            for peer in regrouped {
                let before = self.broker.role(&peer.before, &name) >= Role::Use;
                let after = self.broker.role(&peer.after, &name) >= Role::Use;
                match (before, after) {
                    (true, false) => lost.push(peer.name.clone()),
                    (false, true) => gained.push(peer.name.clone()),
                    _ => {}
                }
            }
            if lost.is_empty() && gained.is_empty() {
                continue;
            }
            // Who may see it changed: its next PropertiesChanged goes out
            // whatever it says.
            self.signalled.forget(provider_path(&name).as_str());
            self.objects_removed(Recipients::Unicast(lost), &name).await;
            if let Some(report) = self.report(&name) {
                self.objects_added(Recipients::Unicast(gained), &report)
                    .await;
            }
        }
    }
}
