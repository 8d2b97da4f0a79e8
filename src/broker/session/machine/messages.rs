//! What goes in and out of the machine: the [`Context`] of a moment, the
//! [`Event`]s it handles, the [`Effect`]s it asks for, the [`Reply`] to an
//! event's caller and the [`Notice`]s to log. Plain data, no behaviour.

use std::time::{Duration, SystemTime};

use super::{AccessToken, Freshness, LoadResult, RestoreCause, Tokens};
use crate::broker::error::BrokerError;
use crate::broker::events::BrokerEvent;
use crate::provider::{ProviderError, TokenGrant};
use crate::secret::Secret;
use crate::store::{StoreError, StoredSession};

/// The facts of the moment an event is handled, from outside the machine.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// Wall-clock time.
    pub(crate) now: SystemTime,
    /// A random draw in `0.0..=1.0`, for the jitter of refresh times and
    /// backoffs (fixed in tests).
    pub(crate) jitter: f64,
    /// Whether the store works (its health, shared by every session).
    pub(crate) store_available: bool,
    /// The code of a device login that waits for the person, if any: it
    /// is what "login required" tells a caller to do.
    pub(crate) login_code: Option<String>,
}

/// Something that happened to the session.
#[derive(Debug)]
pub(crate) enum Event {
    /// A caller wants a token as fresh as `want`.
    TokenRequested {
        /// How fresh.
        want: Freshness,
    },
    /// The refresh a token request joined is over, with this outcome.
    RefreshAwaited {
        /// How fresh a token the request wants.
        want: Freshness,
        /// What the refresh ended with.
        outcome: Result<(), BrokerError>,
    },
    /// The scheduler woke the session: a refresh (or the refresh-token
    /// expiry warning) may be due.
    RefreshDue,
    /// The world changed (network back, machine resumed): move a refresh
    /// that waits out a transient failure, or is overdue, to `at`.
    RetryAt {
        /// The new time.
        at: SystemTime,
        /// What changed.
        change: WorldChange,
    },
    /// The provider answered the refresh of generation `generation`, sent
    /// at `sent_at`.
    RefreshAnswered {
        /// The generation the refresh was started in.
        generation: u64,
        /// When the request left (lifetimes count from there).
        sent_at: SystemTime,
        /// The new tokens, or why not.
        answer: Result<TokenGrant, ProviderError>,
    },
    /// The refresh of generation `generation`, sent, had no answer within
    /// `http_timeout` (`failure` says so): its connection stays open for
    /// a late answer, which comes as [`Self::RefreshAnswered`] (see
    /// `session::refresh`). Its callers are told `failure` meanwhile, and
    /// no other refresh is sent: the provider may still act on this one.
    RefreshOverdue {
        /// The generation the refresh was started in.
        generation: u64,
        /// No answer in time, still listening.
        failure: ProviderError,
    },
    /// The refresh of generation `generation` was not sent: its token
    /// endpoint asked (another session's request, maybe) to be left alone,
    /// as `failure` says with what is left of the wait (see
    /// `broker::endpoint_limit`).
    RefreshHeld {
        /// The generation the refresh was started in.
        generation: u64,
        /// The answer that asked for the wait, asking for what is left.
        failure: ProviderError,
    },
    /// The refresh of generation `generation` was not sent: a reload
    /// retired the session while it waited for its endpoint's permit (a
    /// provider that hangs holds every permit up to `http_timeout`). Its
    /// successor refreshes; nothing is said against this session.
    RefreshAbandoned {
        /// The generation the refresh was started in.
        generation: u64,
    },
    /// The wall clock was set ahead or back (see
    /// [`crate::broker::clock::ClockWatch`]).
    ClockStepped(crate::broker::clock::ClockStep),
    /// A device login obtained tokens; the request was sent at `sent_at`.
    LoginGranted {
        /// The tokens.
        grant: TokenGrant,
        /// When the request left.
        sent_at: SystemTime,
    },
    /// A device login ended without tokens (denied, expired, refused by
    /// the provider): what status says of a session that has none.
    LoginFailed(BrokerError),
    /// A caller logs the session out.
    LogoutRequested,
    /// A write asked for by [`Effect::WriteRecord`] is over.
    RecordWritten {
        /// What the write was for.
        purpose: WritePurpose,
        /// How it went.
        result: Result<(), StoreError>,
    },
    /// The stored record was read (at start, after an outage, or for a
    /// request).
    RecordLoaded {
        /// Why it was read.
        cause: RestoreCause,
        /// What the store said.
        loaded: LoadResult,
    },
    /// The record could not be read: the store is unavailable.
    StoreUnavailable,
    /// The store works again and holds no record of this session.
    NoStoredRecord,
    /// The store lost the session's record (its records' directory was
    /// removed under the daemon): what the session holds is unsaved again.
    RecordLost,
    /// Save the tokens if the last save failed.
    SaveIfDirty,
    /// A reload rebuilt the provider with the same identity: take over the
    /// old session's tokens.
    TakeOver(Box<super::Handover>),
}

/// What a store write is for: decides what happens once it is over.
#[derive(Debug, Clone)]
pub(crate) enum WritePurpose {
    /// A refresh's new tokens, installed once written.
    Refreshed {
        /// The refresh's generation.
        generation: u64,
        /// The new tokens.
        tokens: Tokens,
        /// Whether the provider sent a new refresh token.
        rotated: bool,
        /// The clock steps the session had taken in when the tokens were
        /// made (see `SessionMachine::shift_by_steps_since`).
        steps_seen: u64,
    },
    /// A login's tokens, installed once written.
    LoggedIn {
        /// The tokens.
        tokens: Tokens,
        /// As for [`Self::Refreshed`].
        steps_seen: u64,
    },
    /// The delete of a logout.
    LoggedOut {
        /// Whether the session was logged out already, with nothing in
        /// its status to clear: then only a failed delete is news.
        showed_nothing: bool,
    },
    /// The ended session's record (no token in it) of a session the
    /// provider revoked.
    Revoked {
        /// The refresh's generation.
        generation: u64,
        /// What the provider said.
        reason: String,
        /// When it ended (Unix seconds), as the record says.
        at: i64,
    },
    /// The new refresh token of a refresh answer whose access token could
    /// not be used (`ProviderError::AccessTokenUnusable`), kept beside the
    /// access token the session had; the refresh then fails as `failure`.
    RefreshTokenKept {
        /// The refresh's generation.
        generation: u64,
        /// The session's tokens with the new refresh token.
        tokens: Tokens,
        /// How the refresh failed (boxed: the effects that carry it are
        /// moved around often, the others small).
        failure: Box<crate::provider::ProviderError>,
    },
    /// Another try of a save that failed.
    DirtyRetry {
        /// The generation whose tokens are saved.
        generation: u64,
    },
}

/// What the machine asks the driver to do.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Send a refresh request with `refresh_token`; its answer comes back
    /// as [`Event::RefreshAnswered`] with `generation`.
    StartRefresh {
        /// The session's generation now.
        generation: u64,
        /// The refresh token to send.
        refresh_token: Secret,
        /// The access token the session holds: taken out of the
        /// provider's words in a failure answer, which may echo it (it is
        /// not in the request, whose secrets are taken out anyway).
        access_token: Option<Secret>,
    },
    /// Write the session's record (`None`: delete it); the outcome comes
    /// back as [`Event::RecordWritten`].
    WriteRecord {
        /// The record, or `None` to delete.
        record: Option<StoredSession>,
        /// What the write is for.
        purpose: WritePurpose,
    },
    /// Wake the session at this time (`None`: no wake-up).
    Schedule(Option<SystemTime>),
    /// Retry, in the background, a save that failed.
    RetryStoreSave,
    /// The store as a whole failed: tell its health.
    StoreWideFailure(StoreError),
    /// Publish an event to front-ends.
    Emit(BrokerEvent),
    /// Log a line.
    Log(Notice),
    /// Answer the caller of the event.
    Reply(Reply),
}

/// The answer to the event's caller.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Here is a token.
    Token(AccessToken),
    /// Wait for the refresh in flight (just started, or joined), then send
    /// [`Event::RefreshAwaited`].
    JoinRefresh,
    /// The session waits for the store: tell the store's problem.
    WaitingForStore,
    /// Something went wrong, or a request was refused.
    Failed(BrokerError),
    /// A refresh, logout or save ended with this outcome.
    Done(Result<(), BrokerError>),
    /// Whether something happened (restored, saved, moved).
    Changed(bool),
}

/// A log line the machine asks for; the driver writes it.
#[derive(Debug)]
pub(crate) enum Notice {
    /// A token request starts a refresh.
    RefreshOnDemand,
    /// A refresh had no answer in time; its answer is listened for.
    RefreshOverdue {
        /// What its callers are told meanwhile.
        error: BrokerError,
    },
    /// The new refresh token of an answer whose access token could not be
    /// used was kept (`saved`: and stored).
    RefreshTokenKept {
        /// Whether the store took it.
        saved: bool,
    },
    /// A refresh brought new tokens.
    Refreshed {
        /// Whether the refresh token changed.
        rotated: bool,
        /// The new expiry, Unix seconds.
        expires_at: Option<i64>,
        /// The refreshes that had failed in a row before this one (an
        /// outage ends: said, as its failures were).
        after_failures: u32,
    },
    /// New tokens came with an access token expired or nearly so; the
    /// next refresh waits.
    ArrivedSpent {
        /// What was left of it on arrival, by the local clock.
        left: Duration,
        /// The lifetime the provider gave it, when known.
        lifetime: Option<Duration>,
        /// When the next refresh comes.
        retry_in: Duration,
    },
    /// A background refresh is put off while the store is down.
    RefreshHeldForStore {
        /// What is left of the access token.
        left: Duration,
        /// How long the refresh is put off.
        held_for: Duration,
    },
    /// A token a refresh brought in place of a refused one was refused
    /// too: the server refuses this provider's tokens.
    RefusedAgain {
        /// How many replacements in a row were refused.
        in_a_row: u32,
        /// How long until the next replacement, at the soonest.
        next_in: Duration,
        /// Whether it is replaced now (else it is handed out as it is
        /// until then).
        replacing_now: bool,
    },
    /// A refresh failed and is retried later.
    RefreshFailed {
        /// When.
        retry_in: Duration,
        /// Why.
        error: BrokerError,
        /// A refresh a request asked for, failing as the one before it
        /// did, or a background retry failing so between the powers of
        /// two of its failures in a row: said at debug level (see
        /// `refresh_failed`).
        repeated: bool,
        /// The refreshes sent that failed in a row, this one included.
        in_a_row: u32,
    },
    /// The provider ended the session.
    LoginRequired {
        /// What it said.
        reason: String,
    },
    /// The access token of a session without a refresh token expired:
    /// only a login brings another (nothing was refused).
    AccessExpiredNoRefresh {
        /// Said so.
        reason: String,
    },
    /// The access token of a session with a refresh token expired before
    /// a refresh brought another: requests are refused until one does.
    AccessExpired {
        /// The last refresh's failure, if one failed.
        last_error: Option<String>,
        /// When the next refresh is tried.
        next_try_in: Option<Duration>,
    },
    /// A login's tokens are installed.
    LoggedIn {
        /// Their expiry, Unix seconds.
        expires_at: Option<i64>,
    },
    /// The session was forgotten.
    LoggedOut,
    /// The refresh token expires soon.
    RefreshTokenExpiring {
        /// When, Unix seconds.
        expires_at: i64,
        /// Seconds left.
        secs_left: u64,
    },
    /// The stored session was restored.
    Restored {
        /// Why it was read.
        cause: RestoreCause,
    },
    /// The stored session is one the provider had ended: restored as
    /// such, a login needed.
    RestoredEnded {
        /// Why it was read.
        cause: RestoreCause,
        /// Why and when it ended, as status says it.
        reason: String,
    },
    /// The stored session belongs to another client or endpoint.
    RestoreSkipped,
    /// The record could not be read (a problem of the record, not the store).
    LoadFailed(StoreError),
}

/// A change of the world that may end a refresh's backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorldChange {
    /// A link came up, an address or a route was added: a provider that
    /// could not be reached may be now. Says nothing of one that answered
    /// it is unavailable (HTTP 5xx, 429).
    Network,
    /// The machine resumed from sleep: time passed, and the network came
    /// back; any transient failure may be over.
    Resumed,
    /// The session's token endpoint answered another session's refresh
    /// after refreshes there had failed: any transient failure there may
    /// be over. Told to that endpoint's sessions only, never sent on
    /// `Shared::world_changes` (it is no news to other providers).
    EndpointAnswers,
}
