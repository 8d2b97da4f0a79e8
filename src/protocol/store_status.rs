//! The store's state in a `status` answer: once per answer, not per provider.

use serde::{Deserialize, Serialize};

/// Whether the daemon's store (where refresh tokens persist) can be used,
/// sent once at the end of a streamed `status` (in its `done` line). While
/// the store is unavailable, sessions not yet read from it are logged out
/// and tokens in memory are still served; the daemon keeps trying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    /// `available` or `unavailable` (clients take any other value as
    /// unavailable: the set may grow).
    pub state: String,
    /// The store (`Secret Service`, `encrypted file store`, `memory store`).
    pub name: String,
    /// Why it cannot be used and what to do, when unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Since when it is unavailable (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
}

impl StoreStatus {
    /// Whether the store can be used.
    #[must_use]
    pub fn is_available(&self) -> bool {
        self.state == "available"
    }
}
