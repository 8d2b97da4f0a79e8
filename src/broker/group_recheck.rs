//! Group grants follow the group database while the daemon runs.
//!
//! `allow_groups` and `manage_groups` grant a group's members: the callers
//! whose process has the group (as the kernel or the bus daemon vouches)
//! and the users the group database lists as members. That list is read
//! with the config; a user taken out of a group (`gpasswd -d`) would keep
//! the grant until the next reload. So the daemon reads the lists again
//! every [`GROUP_RECHECK`] and applies a change to the running sessions as
//! a reload that changes only who may use them does (a pending login
//! carries on; D-Bus peers see objects appear and go).

use std::collections::BTreeSet;
use std::sync::PoisonError;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::api::Broker;
use super::events::BrokerEvent;
use crate::config::{GroupGrant, ProviderConfig, current_group_members};

/// How often the group database is read again for the sessions' group
/// grants: a removal takes effect within this long, without a reload.
pub const GROUP_RECHECK: Duration = Duration::from_secs(30);

/// Reads the group database again every [`GROUP_RECHECK`] until `stop`.
pub async fn recheck_groups_until(broker: Broker, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(GROUP_RECHECK) => {}
            () = stop.cancelled() => return,
        }
        broker.recheck_groups().await;
    }
}

impl Broker {
    /// Reads the members of every granted group again and applies what
    /// changed to the running sessions. Nothing is read when no provider
    /// grants a group.
    pub async fn recheck_groups(&self) {
        // Under the read lock, without copying the map: this runs every
        // 30 s in a daemon that may have thousands of providers and no
        // group grant at all.
        let gids: BTreeSet<u32> = self
            .inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .flat_map(|s| {
                let config = s.config();
                grants(&config).map(|g| g.gid).collect::<Vec<_>>()
            })
            .collect();
        if gids.is_empty() {
            return;
        }
        // Off the event loop: the name service (sssd, LDAP) may be slow.
        let Ok(members) = tokio::task::spawn_blocking(move || current_group_members(&gids)).await
        else {
            return;
        };
        // Not interleaved with a reload, which replaces configs too.
        let reloading = self.inner.reloading.write().await;
        let mut changed = Vec::new();
        let mut previous_policies = Vec::new();
        for (name, session) in self.session_map() {
            let config = session.config();
            let stale = grants(&config).any(|grant| {
                members
                    .get(&grant.gid)
                    .is_some_and(|now| sorted(&grant.member_uids) != *now)
            });
            if !stale {
                continue;
            }
            let mut updated = ProviderConfig::clone(&config);
            for grant in updated
                .allow_groups
                .iter_mut()
                .chain(updated.manage_groups.iter_mut())
            {
                if let Some(now) = members.get(&grant.gid) {
                    grant.member_uids.clone_from(now);
                }
            }
            if let Some(previous) = session.adopt_table(&updated) {
                previous_policies.push((name.clone(), previous));
                changed.push(name);
            }
        }
        drop(reloading);
        if changed.is_empty() {
            debug!("group grants rechecked: no change");
            return;
        }
        info!(
            providers = ?changed,
            "the group database changed the members of a granted group: applied"
        );
        self.inner.shared.emit(BrokerEvent::ProvidersChanged {
            added: Vec::new(),
            removed: Vec::new(),
            changed,
            previous_policies,
        });
    }
}

/// The group grants of a provider, both roles.
fn grants(config: &ProviderConfig) -> impl Iterator<Item = &GroupGrant> {
    config.allow_groups.iter().chain(&config.manage_groups)
}

/// Uids sorted and without repeats, as [`current_group_members`] gives them.
fn sorted(uids: &[u32]) -> Vec<u32> {
    let set: BTreeSet<u32> = uids.iter().copied().collect();
    set.into_iter().collect()
}
