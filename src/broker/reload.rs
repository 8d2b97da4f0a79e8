//! Applying a new config to the running broker (SIGHUP, `systemctl reload`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::api::Broker;
use super::events::BrokerEvent;
use super::policy::AccessPolicy;
use super::session::Retirement;
use crate::config::Config;

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// New providers.
    pub added: Vec<String>,
    /// Providers gone from the config.
    pub removed: Vec<String>,
    /// Providers whose config changed.
    pub changed: Vec<String>,
}

impl Broker {
    /// Applies a new config: providers added are created (and restored from
    /// the store), providers removed stop (their stored sessions stay until
    /// `tokenctl logout` or `tokend --prune`), providers whose table changed
    /// in a key the session depends on are rebuilt and keep their tokens
    /// when client and endpoint are the same; a change of who may use or
    /// manage a provider, or of what the credential helpers are told, is
    /// applied to the running session (a pending login carries on);
    /// unchanged ones are not touched.
    pub async fn reload(&self, config: &Config) -> ReloadSummary {
        // Callers of the sessions retired below wait for the new ones.
        let reloading = self.inner.reloading.write().await;
        // From here until the new sessions are published, a request for a
        // provider the reload adds waits for it (`authorized_once_known`).
        tracing::debug!(event = "reload_applying", "applying the reloaded config");
        let old = self.session_map();
        let mut summary = ReloadSummary::default();
        let mut next = BTreeMap::new();
        let mut previous_policies = Vec::new();
        let mut rebuilt = Vec::new();
        // Every session this reload retires stops refreshing first, before
        // any retirement waits for a refresh out (see `begin_retirement`).
        let configured: BTreeMap<&str, &crate::config::ProviderConfig> = config
            .providers
            .iter()
            .map(|p| (p.name.as_str(), p))
            .collect();
        for (name, session) in &old {
            let kept = configured
                .get(name.as_str())
                .is_some_and(|p| session.config().same_session_keys(p));
            if !kept {
                session.begin_retirement();
            }
        }
        for provider in &config.providers {
            match old.get(&provider.name) {
                Some(session) if session.config().same_session_keys(provider) => {
                    if let Some(previous) = session.adopt_table(provider) {
                        previous_policies.push((provider.name.clone(), previous));
                        summary.changed.push(provider.name.clone());
                    }
                    next.insert(provider.name.clone(), Arc::clone(session));
                }
                Some(session) => {
                    let previous = AccessPolicy::clone(&session.policy());
                    previous_policies.push((provider.name.clone(), previous));
                    let fresh = self.build_session(provider.clone());
                    let inherits = fresh.same_identity(session);
                    session.retire(Retirement::Replaced, inherits).await;
                    if inherits {
                        fresh.inherit(session).await;
                    } else {
                        fresh.restore().await;
                    }
                    summary.changed.push(provider.name.clone());
                    rebuilt.push(Arc::clone(&fresh));
                    next.insert(provider.name.clone(), fresh);
                }
                None => {
                    let fresh = self.build_session(provider.clone());
                    fresh.restore().await;
                    summary.added.push(provider.name.clone());
                    rebuilt.push(Arc::clone(&fresh));
                    next.insert(provider.name.clone(), fresh);
                }
            }
        }
        for (name, session) in &old {
            if !next.contains_key(name) {
                previous_policies.push((name.clone(), AccessPolicy::clone(&session.policy())));
                session.retire(Retirement::Removed, false).await;
                self.inner.shared.scheduler.schedule(name, None);
                summary.removed.push(name.clone());
            }
        }
        // The new sessions planned their refreshes, but a wake-up that came
        // meanwhile found the retired session under the name, which no
        // longer refreshes, or (for an added one) no session at all: each
        // new session plans again (or refreshes now, if that wake-up was
        // due).
        self.set_sessions(next);
        drop(reloading);
        // The store may have come back while the reload waited: its
        // recovery read the sessions of the map it found, not these.
        for session in &rebuilt {
            session.restore_if_store_back().await;
        }
        // Not when a stop cut the reload's waits short: a retired session's
        // refresh may still be out, and the successor would present the
        // same refresh token again (which a rotating provider takes as
        // theft).
        // Nor while held for a sleep: the resume moves the due ones.
        if !self.inner.shared.background.is_cancelled() && !self.held_for_sleep() {
            for session in rebuilt {
                session.refresh_if_due();
            }
        }
        // A stop cut the wait for a retired session's refresh short: the
        // stop names it if that refresh does not finish in its grace.
        if self.inner.shared.shutdown.is_cancelled() {
            let unfinished = old
                .values()
                .filter(|s| s.is_retired() && s.unfinished_work().is_some())
                .cloned();
            self.inner
                .retired_unfinished
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(unfinished);
        }
        // The retired sessions go now, unless a task still holds one, so
        // that what only they held is seen as free by the prune.
        drop(old);
        self.prune_after_reload(config);
        // Nothing to say for a reload that changed nothing (a config
        // generated and reloaded on a timer): each change is kept for a
        // follower that falls behind (see `event_feed`), unfolded.
        if !(summary.added.is_empty() && summary.removed.is_empty() && summary.changed.is_empty()) {
            self.inner.shared.emit(BrokerEvent::ProvidersChanged {
                added: summary.added.clone(),
                removed: summary.removed.clone(),
                changed: summary.changed.clone(),
                previous_policies,
            });
        }
        summary
    }

    /// Prunes what the broker keeps per provider name or token endpoint
    /// down to the providers of `config` (and what is still in use), so
    /// that a daemon whose config is generated, providers renamed, added
    /// and removed for months, does not keep something of every name it
    /// ever had.
    fn prune_after_reload(&self, config: &Config) {
        let names: HashSet<&str> = config.providers.iter().map(|p| p.name.as_str()).collect();
        self.prune_endpoint_limits();
        let shared = &self.inner.shared;
        shared.record_writes.prune(|name| names.contains(name));
        shared.metrics.retain_providers(|name| names.contains(name));
        // A memory store's records of removed providers: nothing else
        // could ever delete them (`--prune` is another process), so a
        // generated config's renames would keep every name's tokens, and
        // a name added back would come back logged in. Map operations
        // only: no blocking pool needed.
        if shared.store.forgets_at_stop()
            && let Ok(stored) = shared.store.list()
        {
            for name in stored.iter().filter(|n| !names.contains(n.as_str())) {
                let _ = shared.store.delete(name);
            }
        }
    }
}
