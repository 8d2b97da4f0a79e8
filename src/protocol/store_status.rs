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

#[cfg(test)]
mod tests {
    use super::StoreStatus;
    use crate::protocol::StatusEvent;

    #[test]
    fn the_done_line_carries_the_store_once() {
        let down = StatusEvent::Done {
            ok: true,
            count: 1,
            error: None,
            store: Some(StoreStatus {
                state: "unavailable".into(),
                name: "Secret Service".into(),
                reason: Some("Secret Service is locked: store locked: unlock your keyring".into()),
                since: Some(1_790_000_000),
            }),
            config: None,
        };
        let line = serde_json::to_string(&down).unwrap();
        assert_eq!(
            line,
            r#"{"event":"done","ok":true,"count":1,"store":{"state":"unavailable","name":"Secret Service","reason":"Secret Service is locked: store locked: unlock your keyring","since":1790000000}}"#
        );
        assert_eq!(serde_json::from_str::<StatusEvent>(&line).unwrap(), down);
        // A store that works: no reason, no since.
        let up: StoreStatus =
            serde_json::from_str(r#"{"state":"available","name":"memory store"}"#).unwrap();
        assert!(up.is_available() && up.reason.is_none() && up.since.is_none());
    }
}
