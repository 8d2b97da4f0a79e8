//! What a caller may see of the providers and do with them: its role on
//! one, their names, whether it has any at all, and the check every call
//! passes before a session sees it (`authorized`). One rule, `policy`,
//! decides each answer.

use std::sync::{Arc, PoisonError};

use super::api::Broker;
use super::error::{self, BrokerError};
use super::policy::{AccessPolicy, Caller, Role};
use super::session::Session;

impl Broker {
    /// Logs that `caller` was refused `provider` ("refused a caller" and
    /// `why`), unless refusals flood in (see `refusal_log`).
    fn log_refusal(&self, provider: &str, caller: &Caller, why: &str) {
        if let Some(dropped) = self
            .inner
            .refusals
            .admit(caller.uid, std::time::Instant::now())
        {
            let note = super::refusal_log::not_logged_note_of(dropped, "refusals of this uid");
            tracing::warn!(provider = %provider, event = "access_denied", uid = caller.uid, pid = caller.pid, "refused a caller{why}{note}");
        }
    }

    /// The session `name`, if `caller` has at least the role `needed` on it.
    ///
    /// A caller with no role gets the answer for a provider that does not
    /// exist: it learns nothing about the provider, not even its name. A
    /// caller who may use it but asks to manage it is told it may not.
    pub(super) fn authorized(
        &self,
        caller: &Caller,
        name: &str,
        needed: Role,
    ) -> Result<Arc<Session>, BrokerError> {
        // No configured name is longer (see the config's name rule), and
        // none is empty: said as such, not as an unknown provider.
        if name.is_empty() {
            return Err(BrokerError::InvalidArgument {
                message: "the provider name is empty".to_owned(),
            });
        }
        if name.len() > crate::config::MAX_PROVIDER_NAME {
            return Err(BrokerError::InvalidArgument {
                message: format!(
                    "provider names are at most {} bytes (ASCII letters, digits, '-' and '_'), got {} bytes",
                    crate::config::MAX_PROVIDER_NAME,
                    name.len()
                ),
            });
        }
        let found = self.session(name);
        let role = found
            .as_ref()
            .map_or(Role::None, |session| session.policy().role(caller));
        match found {
            Some(session) if role >= needed => Ok(session),
            Some(_) if role >= Role::Use => {
                self.log_refusal(name, caller, ": it may use the provider, not manage it");
                Err(BrokerError::AccessDenied {
                    provider: name.to_owned(),
                    uid: caller.uid,
                })
            }
            found => {
                if found.is_some() {
                    // The refusal is the administrator's to see, not the caller's.
                    self.log_refusal(name, caller, " with no role on the provider");
                }
                let (known, unlisted) = self.some_names(caller, error::KNOWN_LISTED);
                Err(BrokerError::UnknownProvider {
                    provider: name.to_owned(),
                    known,
                    unlisted,
                })
            }
        }
    }

    /// [`Self::authorized`], but a provider not known while a reload is
    /// under way is looked for again once that reload is over: the reload
    /// publishes the providers it adds only after the refreshes of those
    /// it replaces are done, and `systemctl reload tokend && tokenctl login
    /// NEW` must not be told NEW is not configured meanwhile.
    pub(super) async fn authorized_once_known(
        &self,
        caller: &Caller,
        provider: &str,
        needed: Role,
    ) -> Result<Arc<Session>, BrokerError> {
        match self.authorized(caller, provider, needed) {
            Err(BrokerError::UnknownProvider { .. })
                if self.inner.reloading.try_read().is_err() =>
            {
                self.successor(caller, provider, needed).await
            }
            found => found,
        }
    }

    /// The session of `provider` once the reload under way (if any) is
    /// over, if `caller` has the role `needed` on it under the config that
    /// reload applied.
    pub(super) async fn successor(
        &self,
        caller: &Caller,
        provider: &str,
        needed: Role,
    ) -> Result<Arc<Session>, BrokerError> {
        drop(self.inner.reloading.read().await);
        self.authorized(caller, provider, needed)
    }

    /// [`Self::successor`] of a session a reload retired while the caller
    /// waited on it: a provider that reload removed is said to be so (a
    /// caller who lost its role on a provider still there learns nothing
    /// more than "not configured").
    pub(super) async fn successor_of_retired(
        &self,
        caller: &Caller,
        provider: &str,
        needed: Role,
    ) -> Result<Arc<Session>, BrokerError> {
        match self.successor(caller, provider, needed).await {
            Err(BrokerError::UnknownProvider { .. }) if self.session(provider).is_none() => {
                Err(BrokerError::RemovedByReload {
                    provider: provider.to_owned(),
                })
            }
            found => found,
        }
    }

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
