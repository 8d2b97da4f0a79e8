//! Where sessions survive restarts.
//!
//! A [`Store`] keeps one [`StoredSession`] per provider name. The broker
//! writes through it before it acts on new tokens (a rotated refresh token is
//! saved before the new access token is handed out), so a crash leaves either
//! the old or the new session stored, never none.
//!
//! The trait is blocking on purpose: the `keyring` crate's API is blocking,
//! and file stores are too. The broker calls stores from
//! `tokio::task::spawn_blocking`.
//!
//! Three stores: [`SecretServiceStore`] for a user's daemon (the desktop
//! keyring), [`EncryptedFileStore`] for the system service (files sealed
//! with a key from a systemd credential), and [`MemoryStore`] for trying
//! tokend out. Their module docs say why each, and why not the kernel's
//! keyutils.

pub mod encrypted_file;
pub mod held_lock;
pub mod key;
pub mod lock;
pub mod lock_gate;
pub mod logout_journal;
pub mod memory;
mod record;
pub mod sealed;
pub mod secret_service;

use std::fmt;
use std::pin::Pin;

use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

pub use encrypted_file::EncryptedFileStore;
pub use held_lock::HeldLock;
pub use key::StoreKey;
pub use lock::{LockError, LockTarget, StoreLock};
pub use lock_gate::LockGate;
pub use logout_journal::LogoutJournal;
pub use memory::MemoryStore;
pub use secret_service::SecretServiceStore;

/// What is kept of a session between runs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    /// Format version of this record.
    pub version: u32,
    /// Which client and endpoint issued the tokens (see
    /// [`crate::broker::session_identity`]); a session is not restored for a
    /// provider whose config now points elsewhere.
    pub identity: String,
    /// The refresh token; `None` for a session whose provider issued none
    /// (a GitHub OAuth app's token that never expires, an Oracle login
    /// without `offline_access`): its access token is then all there is to
    /// keep. Left out of the record when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret>,
    /// When the refresh token was obtained (Unix seconds).
    pub obtained_at: i64,
    /// Granted scopes, as the provider reported them.
    #[serde(default)]
    pub scope: Option<String>,
    /// The last access token, so a restart need not cost a refresh.
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// Its type (`Bearer`).
    #[serde(default)]
    pub token_type: Option<String>,
    /// Its expiry (Unix seconds).
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// When the refresh token itself expires (Unix seconds), when the
    /// provider said: a new login is needed by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_at: Option<i64>,
    /// Set in the record of a session the provider ended (its refresh
    /// token refused for good): when and why, kept so that status says
    /// so after a restart. Such a record holds no token (see
    /// [`StoredSession::ended`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Box<SessionEnd>>,
}

/// When and why the provider ended a session (see [`StoredSession::ended`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnd {
    /// When (Unix seconds).
    pub at: i64,
    /// Why, as the daemon said it then (the provider's words, secrets
    /// taken out).
    pub reason: String,
}

/// The current [`StoredSession::version`].
pub const STORED_SESSION_VERSION: u32 = 1;

/// The [`StoredSession::version`] of an ended session's record (see
/// [`StoredSession::ended`]). Its own version, so that an older tokend
/// (after a downgrade) says the record was written by a newer one and
/// asks for a login, rather than reading a record without tokens.
pub const ENDED_SESSION_VERSION: u32 = 2;

/// What the reason says of a record of a version or format above the one
/// this tokend reads (see [`unusable_record_advice`]).
pub(crate) const FROM_A_NEWER_TOKEND: &str = "written by a newer tokend";

/// `reason` (why `provider`'s record cannot be used) with what to do. A
/// record a newer tokend wrote (a downgrade after a bad upgrade) is not
/// damaged: removing it, the advice for a damaged one, would throw away a
/// session that works again once that version runs.
pub(crate) fn unusable_record_advice(reason: &str, provider: &str) -> String {
    if reason.contains(FROM_A_NEWER_TOKEND) {
        format!(
            "{reason}: run that version again, where the session works, or log in here \
             (`tokenctl login {provider}`), which replaces it"
        )
    } else {
        format!("{reason}; run `tokenctl logout {provider}` to remove it, then log in again")
    }
}

/// How long the daemon waits for one store call by default (`[daemon]
/// store_timeout`). A locked desktop keyring shows an unlock prompt and
/// waits for the person; the daemon does not wait that long, and a store
/// that hangs longer counts as down (see `broker::store_health`).
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSession")
            .field("identity", &self.identity)
            .field("obtained_at", &self.obtained_at)
            .field("scope", &self.scope)
            .field("expires_at", &self.expires_at)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl StoredSession {
    /// The record as bytes for a store that keeps opaque secrets.
    ///
    /// The buffer holds tokens: it is zeroed when dropped.
    #[must_use]
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        // Sized for the record up front: a buffer that grew would leave
        // its smaller copies, holding the tokens, freed but not zeroed.
        // The tokens' lengths plus room for the rest (JSON escapes of a
        // token are rare: a token is printable ASCII).
        let mut buffer = zeroize::Zeroizing::new(Vec::with_capacity(self.bytes_capacity()));
        // Serializing plain strings and integers cannot fail.
        let _ = serde_json::to_writer(&mut *buffer, self);
        buffer
    }

    /// What [`Self::to_bytes`] reserves: twice the tokens (escapes) and
    /// room for the rest of the record.
    pub(crate) fn bytes_capacity(&self) -> usize {
        let length = |secret: &Option<Secret>| secret.as_ref().map_or(0, |s| s.expose().len());
        2 * (length(&self.refresh_token) + length(&self.access_token)) + 4096
    }

    /// Reads a record written by [`Self::to_bytes`].
    ///
    /// # Errors
    /// A sentence saying why the bytes are not a record (never the bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let record: Self = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
            // A syntax error's message names a line and column only.
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io => format!("not a tokend session record ({e})"),
            // A type error quotes the value it found ("invalid type:
            // string \"gho_…\""): in a Secret Service item a person or
            // script wrote, that may be a token, and the message goes to
            // the journal and to `status`.
            serde_json::error::Category::Data => format!(
                "not a tokend session record (a field is missing, unknown or of the wrong type, at line {} column {})",
                e.line(),
                e.column()
            ),
        })?;
        record::check(&record)?;
        Ok(record)
    }
}

/// A store failure. Messages never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be used at all (no Secret Service on the bus, ...).
    #[error("{store} is unavailable: {reason}")]
    Unavailable {
        /// Which store.
        store: &'static str,
        /// Why.
        reason: String,
    },
    /// The store is locked and needs a person to unlock it.
    #[error("{store} is locked: {reason}")]
    Locked {
        /// Which store.
        store: &'static str,
        /// What to do.
        reason: String,
    },
    /// The stored record cannot be read (tampered with, or not ours).
    #[error("the stored session of `{provider}` in {store} is unreadable: {reason}")]
    Corrupt {
        /// Which store.
        store: &'static str,
        /// Which provider.
        provider: String,
        /// Why.
        reason: String,
    },
    /// The record was sealed with a key other than the store's.
    #[error(
        "the stored session of `{provider}` in {store} was written with another key (key id {found}; \
         this daemon's key is {expected}): start tokend with that key, or run `tokenctl logout {provider}` \
         and log in again"
    )]
    WrongKey {
        /// Which store.
        store: &'static str,
        /// Which provider.
        provider: String,
        /// The id of the key the record names.
        found: String,
        /// The id of the key in use.
        expected: String,
    },
    /// The record's own file cannot be replaced or removed (the kernel
    /// refuses: immutable or append-only), while the store takes writes.
    #[error(
        "the stored session of `{provider}` in {store} cannot be replaced or removed: {reason}"
    )]
    Unchangeable {
        /// Which store.
        store: &'static str,
        /// Which provider.
        provider: String,
        /// Why, naming the file.
        reason: String,
    },
    /// The store asked the person to confirm deleting the record (a
    /// `KeePassXC` prompt), and it is still there.
    #[error(
        "{store} asks you to confirm deleting the item of `{provider}`: answer its prompt \
         (KeePassXC: \"Delete entry?\"); tokend looks again in a while and asks again if it \
         is still there"
    )]
    Unconfirmed {
        /// Which store.
        store: &'static str,
        /// Which provider.
        provider: String,
    },
    /// Reading or writing failed.
    #[error("{store} failed: {reason}")]
    Failed {
        /// Which store.
        store: &'static str,
        /// Why.
        reason: String,
    },
}

impl StoreError {
    /// Whether this says the store as a whole cannot be used now but may
    /// later without a person changing the config (no Secret Service, a
    /// locked keyring, an unusable directory, a failed write), rather than
    /// that one record is damaged or sealed with another key.
    #[must_use]
    pub fn is_store_wide(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::Locked { .. } | Self::Failed { .. } => true,
            Self::Corrupt { .. }
            | Self::WrongKey { .. }
            | Self::Unchangeable { .. }
            | Self::Unconfirmed { .. } => false,
        }
    }
}

/// One record's load: the stored session, none, or why it could not be read.
pub type LoadResult = Result<Option<StoredSession>, StoreError>;

/// Collects the loads of `count` records from `loads`, stopping at the
/// first store-wide failure, which then stands for the records not read.
pub(crate) fn until_store_wide(
    count: usize,
    loads: impl Iterator<Item = LoadResult>,
) -> Vec<LoadResult> {
    let mut results = Vec::with_capacity(count);
    for result in loads {
        if let Err(e) = &result
            && e.is_store_wide()
        {
            results.resize(count, Err(e.clone()));
            break;
        }
        results.push(result);
    }
    results
}

/// What a store made ready for a save it expects soon (see
/// [`Store::prepare_save`]); dropping it undoes that work.
#[derive(Debug, Default)]
pub struct PreparedSave {
    /// The encrypted file store's temporary file.
    pub(crate) temp: Option<encrypted_file::TempFile>,
}

impl PreparedSave {
    /// The temporary file made ready, if any (for tests that follow it).
    #[cfg(test)]
    pub(crate) fn temp_path(&self) -> Option<&std::path::Path> {
        self.temp.as_ref().map(encrypted_file::TempFile::path)
    }
}

/// Notices from a store that it may work again (see
/// [`Store::change_feed`]): each item says only that something changed.
pub type ChangeFeed = Pin<Box<dyn Stream<Item = ()> + Send>>;

/// Persistence of sessions, one record per provider name.
pub trait Store: Send + Sync + fmt::Debug {
    /// A short name for messages ("Secret Service", "memory store").
    fn name(&self) -> &'static str;

    /// The stored session of `provider`, if any.
    ///
    /// # Errors
    /// The store is unavailable or the record unreadable.
    fn load(&self, provider: &str) -> Result<Option<StoredSession>, StoreError>;

    /// The stored sessions of `providers`, one result each and in order, as
    /// [`Self::load`] gives them, except that after a store-wide failure
    /// ([`StoreError::is_store_wide`]) the rest are not read and get that
    /// failure: a locked keyring is asked once, not once a record. The
    /// broker restores sessions in such batches. A store may read a batch
    /// more cheaply than record by record (the encrypted file store checks
    /// its directory once).
    fn load_batch(&self, providers: &[String]) -> Vec<LoadResult> {
        until_store_wide(providers.len(), providers.iter().map(|p| self.load(p)))
    }

    /// Replaces the stored session of `provider`. When this returns `Ok`, the
    /// new record is durable; when it returns `Err`, the old record is intact.
    ///
    /// # Errors
    /// The store is unavailable or the write failed.
    fn save(&self, provider: &str, session: &StoredSession) -> Result<(), StoreError>;

    /// Whether [`Self::prepare_save`] does anything: the broker calls it
    /// only then.
    fn prepares_saves(&self) -> bool {
        false
    }

    /// Does the part of a save of `provider`'s record that does not depend
    /// on the record (the encrypted file store creates its temporary file),
    /// so that [`Self::save_prepared`] takes less time: the broker calls it
    /// while the provider answers a refresh, whose caller waits for the
    /// save. Failures are left for the save to report.
    fn prepare_save(&self, _provider: &str) -> PreparedSave {
        PreparedSave::default()
    }

    /// [`Self::save`] with what [`Self::prepare_save`] made ready (work made
    /// for another record, or none, is not used).
    ///
    /// # Errors
    /// As for [`Self::save`].
    fn save_prepared(
        &self,
        provider: &str,
        session: &StoredSession,
        prepared: PreparedSave,
    ) -> Result<(), StoreError> {
        drop(prepared);
        self.save(provider, session)
    }

    /// Removes the stored session of `provider`; removing nothing is not an error.
    ///
    /// # Errors
    /// The store is unavailable or the delete failed.
    fn delete(&self, provider: &str) -> Result<(), StoreError>;

    /// Whether what this store keeps goes with the daemon's process (the
    /// memory store): a provider removed from the config then has its
    /// record deleted by the reload that removes it, as no `tokend
    /// --prune` (another process) can reach it.
    fn forgets_at_stop(&self) -> bool {
        false
    }

    /// Whether the store can take writes, where that can be told without
    /// writing: the encrypted file store's directory on a read-only file
    /// system (a boot's fsck trouble, `errors=remount-ro`) reads, so the
    /// start restores its sessions, but no refresh can be saved. The
    /// broker asks after the start's restore and at each probe of an
    /// outage, and takes an error as an outage: status, monitoring and
    /// the hold of refreshes that rotate tokens see it before a rotated
    /// token is lost. `Ok` (the default): no such check.
    ///
    /// # Errors
    /// The store cannot take writes.
    fn check_writable(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether a write is worth trying while the store is known to be
    /// down (see the broker's `store_known_down`): the encrypted file
    /// store's writes are local and quick, fail at once where they fail,
    /// and work on a full disk where they need no new space: a delete
    /// frees space (a logout skipped and not noted, its note unwritable
    /// too, was undone by a crash), and a save writes over the record's
    /// spare (one record needing a new file, another provider's first
    /// login, took the store down, and a crash then lost the rotated
    /// refresh tokens of sessions whose saves would have worked). `false`
    /// (the default): a keyring that hangs would make each write wait the
    /// store's timeout.
    fn tries_writes_while_down(&self) -> bool {
        false
    }

    /// Names of every provider with a stored session (for `--prune`).
    ///
    /// # Errors
    /// The store is unavailable.
    fn list(&self) -> Result<Vec<String>, StoreError>;

    /// Notices of changes that may end an outage of this store, when it
    /// can give them: the Secret Service announces a keyring unlocked and
    /// a keyring daemon appearing on the bus; the encrypted file store
    /// watches its directories (inotify). The broker's retry loop asks
    /// for a feed while the store is down and probes at each notice,
    /// instead of only on its backoff (minutes). `None` (the default): no
    /// such notices; the loop probes on its schedule alone. Blocking: call
    /// it from the blocking pool.
    fn change_feed(&self) -> Option<ChangeFeed> {
        None
    }

    /// The broker did not ask for the delete of `provider`'s record (a
    /// logout's), because the store is known to be down: the store
    /// deletes it when it works again. Remembers that delete where the
    /// store is not needed, when this store can ([`LogoutJournal`] notes
    /// it in its file), so that a crash before then does not bring the
    /// session back. Failures are logged, not returned: the logout stands
    /// in memory either way. Blocking: call it from the blocking pool.
    fn note_skipped_delete(&self, _provider: &str) {}

    /// Whether a delete of `provider`'s record that has not happened yet
    /// (it failed, or still runs) is remembered outside the store, so that
    /// the next start deletes the record rather than restore it (see
    /// [`LogoutJournal`]). `false` (the default): a stop before the delete
    /// brings the session back.
    fn remembers_logout(&self, _provider: &str) -> bool {
        false
    }

    /// Whether records this store held were lost since it was last asked:
    /// the encrypted file store's records' directory was removed under the
    /// daemon (`rm -rf`) and made again, empty. The broker then saves every
    /// session it holds again: each was saved, and is now in memory only,
    /// lost at the next stop. Asking clears it. `false` (the default): no
    /// such loss is known.
    fn take_lost_records(&self) -> bool {
        false
    }

    /// Whether the last [`Self::list`] named every record the store holds.
    /// `false` when some could not be named (a keyring loaded locked from
    /// disk shows only hashes of its items' attributes): a provider left
    /// out may still have a record, so the logout journal keeps its line.
    fn listed_all(&self) -> bool {
        true
    }
}
