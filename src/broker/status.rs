//! `status`: of one provider or all at once ([`Broker::status`]), of many
//! a page at a time ([`Broker::status_pages`]), of the store once
//! ([`Broker::store_status`]), and systemd's one-line summary.
//!
//! A daemon may have 10,000 providers; a front-end that answers `status`
//! must not build all their statuses at once. [`StatusPages`] walks the
//! sessions in name order and builds the statuses of one page at a time,
//! remembering only the last name it gave, so a front-end holds one page
//! whatever the number of providers.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, PoisonError};

use super::api::Broker;
use super::error::BrokerError;
use super::policy::{Caller, Role};
use super::report::{SessionReport, StoreReport};
use super::session::Session;

/// The statuses of the providers a caller may see, a page at a time, in
/// name order. Made by [`Broker::status_pages`].
///
/// Each page is read when asked for, so a page shows its providers as they
/// are at that moment. A reload between two pages is seen from the next
/// page on: a provider that was there all along is shown exactly once, one
/// added after the walk passed its name is not shown, one removed before the
/// walk reached it is not shown.
#[derive(Debug)]
pub struct StatusPages {
    broker: Broker,
    caller: Caller,
    page_len: usize,
    next: Cursor,
}

/// Where the walk stands.
#[derive(Debug)]
enum Cursor {
    /// One named provider, already authorized.
    One(Arc<Session>),
    /// Every visible provider whose name sorts after this one (from the
    /// first when `None`).
    After(Option<String>),
    /// Nothing left.
    End,
}

impl Broker {
    /// Status of `provider`, or of every provider the caller may use.
    ///
    /// # Errors
    /// Unknown provider or access denied (when one is named).
    pub fn status(
        &self,
        caller: &Caller,
        provider: Option<&str>,
    ) -> Result<Vec<SessionReport>, BrokerError> {
        match provider {
            Some(name) => {
                let session = self.authorized(caller, name, Role::Use)?;
                Ok(vec![status_for(&session, session.policy().role(caller))])
            }
            None => Ok(self
                .sessions()
                .iter()
                .filter_map(|s| {
                    let role = s.policy().role(caller);
                    (role >= Role::Use).then(|| status_for(s, role))
                })
                .collect()),
        }
    }

    /// The store's state, as the `status` answer shows it once. The same
    /// for every caller: front-ends send it only to callers who may see at
    /// least one provider.
    #[must_use]
    pub fn store_status(&self) -> StoreReport {
        self.inner.shared.store_health.report()
    }

    /// Changes of the store's state: it became unavailable, available
    /// again, or unavailable for another reason. Read the state with
    /// [`Self::store_status`] when this changes (the D-Bus front-end
    /// signals the broker object's store properties so).
    #[must_use]
    pub fn store_changes(&self) -> tokio::sync::watch::Receiver<crate::broker::StoreState> {
        self.inner.shared.store_health.subscribe()
    }

    /// How many providers the broker serves.
    #[must_use]
    pub fn provider_count(&self) -> usize {
        self.inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// One line for systemd's `STATUS=`: "3 providers: 2 active, 1 login required".
    #[must_use]
    pub fn summary(&self) -> String {
        // Counted under the read lock, without copying the map or building
        // any session's full status: it runs after every burst of events.
        let sessions = self
            .inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        // By the phase's name: the order systemd has always shown.
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for session in sessions.values() {
            *counts.entry(session.phase().name()).or_default() += 1;
        }
        let total = sessions.len();
        drop(sessions);
        let parts: Vec<String> = counts
            .iter()
            .map(|(phase, n)| format!("{n} {}", phase.replace('_', " ")))
            .collect();
        let noun = if total == 1 { "provider" } else { "providers" };
        if parts.is_empty() {
            format!("0 {noun}")
        } else {
            format!("{total} {noun}: {}", parts.join(", "))
        }
    }

    /// The statuses `caller` may see, at most `page_len` of them a page
    /// (taken as one when zero): of `provider` alone when named, else of
    /// every provider the caller has a role on.
    ///
    /// # Errors
    /// For a named provider, as [`Broker::status`]: unknown (or no role on
    /// it, which looks the same), or an invalid name. Listing every provider
    /// does not fail.
    pub fn status_pages(
        &self,
        caller: &Caller,
        provider: Option<&str>,
        page_len: usize,
    ) -> Result<StatusPages, BrokerError> {
        let next = match provider {
            Some(name) => Cursor::One(self.authorized(caller, name, Role::Use)?),
            None => Cursor::After(None),
        };
        Ok(StatusPages {
            broker: self.clone(),
            caller: caller.clone(),
            page_len: page_len.max(1),
            next,
        })
    }

    /// Whether `caller` may see at least one provider: front-ends tell the
    /// store's state, and let a request probe it, only to such a caller.
    #[must_use]
    pub fn sees_a_provider(&self, caller: &Caller) -> bool {
        !self.visible_after(caller, None, 1).is_empty()
    }

    /// Up to `limit` sessions `caller` may see, after `after` in name order.
    fn visible_after(
        &self,
        caller: &Caller,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<Arc<Session>> {
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        // Only the Arcs are taken under the map's lock; statuses are built
        // after it is released (each takes its session's own lock).
        self.inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .range::<str, _>((lower, Bound::Unbounded))
            .map(|(_, session)| session)
            .filter(|session| session.policy().allows(caller))
            .take(limit)
            .cloned()
            .collect()
    }
}

impl StatusPages {
    /// One status as this caller may see it (a login's code only for
    /// those who may manage the provider).
    fn status_of(&self, session: &Session) -> SessionReport {
        status_for(session, session.policy().role(&self.caller))
    }
}

impl Iterator for StatusPages {
    type Item = Vec<SessionReport>;

    /// The next page; never an empty one.
    fn next(&mut self) -> Option<Vec<SessionReport>> {
        match std::mem::replace(&mut self.next, Cursor::End) {
            Cursor::End => None,
            Cursor::One(session) => Some(vec![self.status_of(&session)]),
            Cursor::After(after) => {
                let sessions =
                    self.broker
                        .visible_after(&self.caller, after.as_deref(), self.page_len);
                if sessions.len() == self.page_len
                    && let Some(last) = sessions.last()
                {
                    self.next = Cursor::After(Some(last.name.clone()));
                }
                (!sessions.is_empty()).then(|| sessions.iter().map(|s| self.status_of(s)).collect())
            }
        }
    }
}

/// The status of `session` as a caller with `role` may see it: the login's
/// prompt (its user code) only for those who may manage the provider.
fn status_for(session: &Session, role: Role) -> SessionReport {
    let mut status = session.report(role >= Role::Manage);
    if role < Role::Manage {
        status.login = None;
    }
    status
}

impl Broker {
    /// Records that a reload was refused (the file is invalid).
    pub fn reload_failed(&self) {
        let now = self.inner.shared.clock.now();
        self.config_standing_cell().reload_failed_at = Some(now);
    }

    /// Records a successful reload, and the `[daemon]` keys that then
    /// wait for a restart.
    pub fn reload_succeeded(&self, restart_needed: Vec<&'static str>) {
        let mut standing = self.config_standing_cell();
        standing.reload_failed_at = None;
        standing.restart_needed = restart_needed;
    }

    /// The daemon's standing to its config file.
    #[must_use]
    pub fn config_standing(&self) -> super::ConfigStanding {
        self.config_standing_cell().clone()
    }

    fn config_standing_cell(&self) -> std::sync::MutexGuard<'_, super::ConfigStanding> {
        self.inner
            .config_standing
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
