//! A store that forgets everything when the daemon stops.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Store, StoreError, StoredSession};

/// Sessions in memory only (`store = "memory"`), for trying tokend out and
/// for tests of logic that does not concern persistence.
#[derive(Debug, Default)]
pub struct MemoryStore {
    // A std Mutex: every critical section is a map operation, never an await.
    sessions: Mutex<BTreeMap<String, StoredSession>>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StoredSession>> {
        // A panic while holding this lock cannot leave a map half-updated.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn name(&self) -> &'static str {
        "memory store"
    }

    fn load(&self, provider: &str) -> Result<Option<StoredSession>, StoreError> {
        Ok(self.map().get(provider).cloned())
    }

    fn save(&self, provider: &str, session: &StoredSession) -> Result<(), StoreError> {
        self.map().insert(provider.to_owned(), session.clone());
        Ok(())
    }

    fn delete(&self, provider: &str) -> Result<(), StoreError> {
        self.map().remove(provider);
        Ok(())
    }

    fn list(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.map().keys().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::store::STORED_SESSION_VERSION;

    #[test]
    fn round_trip_and_delete() {
        let store = MemoryStore::new();
        let record = StoredSession {
            version: STORED_SESSION_VERSION,
            identity: "rfc8628|http://127.0.0.1/token|cid".into(),
            refresh_token: Secret::from("rt"),
            obtained_at: 1,
            scope: None,
            access_token: None,
            token_type: None,
            expires_at: None,
            refresh_expires_at: None,
        };
        store.save("gh", &record).unwrap();
        assert_eq!(store.load("gh").unwrap(), Some(record.clone()));
        assert_eq!(store.list().unwrap(), vec!["gh".to_owned()]);
        store.delete("gh").unwrap();
        store.delete("gh").unwrap();
        assert_eq!(store.load("gh").unwrap(), None);
        let bytes = record.to_bytes();
        assert_eq!(StoredSession::from_bytes(&bytes).unwrap(), record);
        assert!(!format!("{record:?}").contains("rt\""));
        assert!(
            StoredSession::from_bytes(b"garbage")
                .unwrap_err()
                .contains("not a tokend")
        );
    }
}
