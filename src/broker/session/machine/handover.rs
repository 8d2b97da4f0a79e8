//! A reload's hand-over: what a retired session passes to the session
//! that replaces it (its tokens and what it learned of them), so that a
//! reload asks the provider nothing sooner and says nothing again.

use std::time::{Duration, SystemTime};

use super::{BrokerError, Context, Effect, RefreshStage, SessionMachine, SessionState};

/// What a reload hands from a retired session to its successor.
#[derive(Debug)]
pub(crate) struct Handover {
    state: SessionState,
    last_refresh: Option<SystemTime>,
    last_attempt: Option<SystemTime>,
    last_failure: Option<BrokerError>,
    failures: u32,
    /// With `failures`: the backoff and a `Retry-After` stand across the
    /// reload (a reload is no reason to ask the provider sooner).
    provider_asked_wait: Option<(SystemTime, Duration)>,
    next_refresh: Option<SystemTime>,
    fresh_until: Option<SystemTime>,
    store_dirty: bool,
    save_failures: u32,
    expired_grants: u32,
    refresh_extends_refresh_token: bool,
    last_on_demand_refresh: Option<SystemTime>,
    /// The warning already given stays given.
    expiry_warned: Option<SystemTime>,
}

impl SessionMachine {
    /// What a reload hands to the session that replaces this one, or
    /// `None` when there is nothing to take over (the successor reads the
    /// store). A logout whose delete is owed is handed over: the successor
    /// knows the session is logged out and owes that delete, where reading
    /// the store (down, or hung, as the failed delete found it) made it
    /// wait for the store, and a `token` request asked the store again.
    pub(crate) fn handover(&self) -> Option<Handover> {
        let state = match &self.state {
            SessionState::LoggedOut if self.store_dirty => SessionState::LoggedOut,
            // An unreadable record is read again by the successor.
            SessionState::LoggedOut
            | SessionState::WaitingForStore
            | SessionState::Unreadable { .. } => return None,
            SessionState::Active { tokens, .. } => SessionState::Active {
                tokens: tokens.clone(),
                refresh: RefreshStage::Idle,
            },
            other @ SessionState::NeedsLogin { .. } => other.clone(),
        };
        Some(Handover {
            state,
            last_refresh: self.last_refresh,
            last_attempt: self.last_attempt,
            last_failure: self.last_failure.clone(),
            failures: self.failures,
            provider_asked_wait: self.provider_asked_wait,
            next_refresh: self.next_refresh,
            fresh_until: self.fresh_until,
            store_dirty: self.store_dirty,
            save_failures: self.save_failures,
            expired_grants: self.expired_grants,
            refresh_extends_refresh_token: self.refresh_extends_refresh_token,
            last_on_demand_refresh: self.last_on_demand_refresh,
            expiry_warned: self.expiry_warned,
        })
    }

    /// Takes over a retired session's tokens and what it learned of them:
    /// a backoff or a `Retry-After` under way stands (a reload that changed
    /// `allow_users` asked the provider again at once, against its
    /// `Retry-After`), and a warning given is not given again.
    pub(super) fn take_over(&mut self, ctx: &Context, handover: Handover, out: &mut Vec<Effect>) {
        self.state = handover.state;
        self.last_refresh = handover.last_refresh;
        self.last_attempt = handover.last_attempt;
        self.last_failure = handover.last_failure;
        self.failures = handover.failures;
        self.provider_asked_wait = handover.provider_asked_wait;
        self.store_dirty = handover.store_dirty;
        self.save_failures = handover.save_failures;
        self.expired_grants = handover.expired_grants;
        self.refresh_extends_refresh_token = handover.refresh_extends_refresh_token;
        self.last_on_demand_refresh = handover.last_on_demand_refresh;
        self.expiry_warned = handover.expiry_warned;
        if let SessionState::Active { tokens, .. } = &self.state {
            let tokens = tokens.clone();
            self.schedule_next(ctx, &tokens, None, out);
            if self.failures > 0 {
                // The retry planned by the failures, not a new plan.
                self.next_refresh = handover.next_refresh;
                self.fresh_until = handover.fresh_until;
                self.schedule_wake(ctx.now, out);
            }
        } else if self.store_dirty {
            // An ended session's record or a logout's delete that the store
            // did not take: retried as the retired session would have (it
            // was retried only at the next restart, or an outage's end).
            self.plan_save_retry(ctx);
            self.schedule_wake(ctx.now, out);
        }
    }
}
