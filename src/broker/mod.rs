//! The broker: the one owner of every session, and the only API the
//! front-ends call.
//!
//! [`Broker`] answers `token`, `login`, `logout` and `status` for a
//! [`Caller`], checks the caller against the provider's [`AccessPolicy`]
//! first, and publishes [`BrokerEvent`]s for front-ends that signal changes
//! (D-Bus). It owns the [`RefreshScheduler`] task that keeps tokens fresh,
//! and the store's one [`StoreHealth`] with its retry loop. Front-ends hold
//! no state and make no decisions of their own.

mod api;
pub mod clock;
mod config_standing;
mod endpoint_limit;
mod endpoint_recovery;
mod error;
mod event_feed;
mod events;
pub mod group_recheck;
mod lifecycle;
mod login;
mod login_pace;
pub mod metrics;
mod metrics_report;
mod outage_log;
pub mod policy;
mod record_reread;
mod record_writes;
pub(crate) mod refusal_log;
mod reload;
pub mod report;
mod restore;
pub mod scheduler;
mod session;
mod shared;
mod sleep;
mod status;
pub mod store_health;
mod store_recovery;
pub mod timing;
mod visibility;
pub mod wall_timer;
mod watched_store;

pub use api::{Broker, BrokerParts, MAX_MIN_VALID};
pub use clock::{Clock, SystemClock};
pub use config_standing::ConfigStanding;
pub use error::{BrokerError, ErrorKind};
pub use event_feed::EventFeed;
pub use events::{AttentionKind, BrokerEvent};
pub use lifecycle::Heartbeat;
pub use login::{LoginChange, LoginProgress, LoginWatch, PendingPrompt};
pub use metrics::Metrics;
pub use metrics_report::escape_label_value;
pub use policy::{AccessPolicy, Caller, Role, describe_roles};
pub use reload::ReloadSummary;
pub use report::{
    DevicePrompt, LOGIN_APPROVED_SAVING, SessionPhase, SessionReport, StoreOutage, StoreReport,
};
pub use scheduler::RefreshScheduler;
pub(crate) use session::blocking as store_call;
pub use session::{
    AccessToken, Freshness, LogoutOutcome, Session, TokenFingerprint, WorldChange, session_identity,
};
pub use shared::Shared;
pub use status::StatusPages;
pub use store_health::{MAX_STORE_CALLS, StoreHealth, StoreState};

#[cfg(test)]
mod tests;
