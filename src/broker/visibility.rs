//! What a caller may see of the providers: its role on one, their names,
//! whether it has any at all. One rule, `policy`, decides each answer.

use std::sync::PoisonError;

use super::api::Broker;
use super::policy::{AccessPolicy, Caller, Role};

impl Broker {
    /// The first `limit` names of the providers `caller` may use, and how
    /// many more there are; no other name is copied.
    pub(super) fn some_names(&self, caller: &Caller, limit: usize) -> (Vec<String>, usize) {
        let sessions = self
            .inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut visible = sessions.values().filter(|s| s.policy().allows(caller));
        let names = visible
            .by_ref()
            .take(limit)
            .map(|s| s.name.clone())
            .collect();
        (names, visible.count())
    }

    /// Whether `caller` may see at least one provider (has a role on it).
    #[must_use]
    pub fn may_see_any(&self, caller: &Caller) -> bool {
        // Under the read lock, nothing cloned: asked at every connection of
        // a uid other than the daemon's, on the accept loop.
        self.inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .any(|s| s.policy().allows(caller))
    }

    /// Names of the providers `caller` may use.
    #[must_use]
    pub fn provider_names(&self, caller: &Caller) -> Vec<String> {
        self.sessions()
            .iter()
            .filter(|s| s.policy().allows(caller))
            .map(|s| s.name.clone())
            .collect()
    }

    /// What `caller` may do with `provider`: [`Role::None`] also when there
    /// is no such provider, so that the two cannot be told apart.
    #[must_use]
    pub fn role(&self, caller: &Caller, provider: &str) -> Role {
        self.session(provider)
            .map_or(Role::None, |session| session.policy().role(caller))
    }

    /// The access rule of `provider`, for a front-end that must still
    /// address the right peers after the provider is gone (a reload
    /// removed it).
    #[must_use]
    pub fn policy(&self, provider: &str) -> Option<AccessPolicy> {
        self.session(provider)
            .map(|session| AccessPolicy::clone(&session.policy()))
    }
}
