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

    fn forgets_at_stop(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::store::STORED_SESSION_VERSION;

    /// A store that fails store-wide (locked) from its second load on, and
    /// counts its loads: what `Store::load_batch` does by default.
    #[derive(Debug, Default)]
    struct LockedAfterOne {
        loads: std::sync::atomic::AtomicUsize,
    }

    impl Store for LockedAfterOne {
        fn name(&self) -> &'static str {
            "test store"
        }
        fn load(&self, provider: &str) -> Result<Option<StoredSession>, StoreError> {
            let before = self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            match (before, provider) {
                (_, "damaged") => Err(StoreError::Corrupt {
                    store: "test store",
                    provider: provider.to_owned(),
                    reason: "damaged".into(),
                }),
                (0, _) => Ok(None),
                _ => Err(StoreError::Locked {
                    store: "test store",
                    reason: "locked".into(),
                }),
            }
        }
        fn save(&self, _: &str, _: &StoredSession) -> Result<(), StoreError> {
            unimplemented!()
        }
        fn delete(&self, _: &str) -> Result<(), StoreError> {
            unimplemented!()
        }
        fn list(&self) -> Result<Vec<String>, StoreError> {
            unimplemented!()
        }
    }

    /// By default a batch is read record by record until the first
    /// store-wide failure, which stands for the rest (a locked keyring is
    /// asked once); a damaged record is its own failure only.
    #[test]
    fn a_batch_stops_at_the_first_store_wide_failure() {
        let store = LockedAfterOne::default();
        let names: Vec<String> = ["a", "damaged", "b", "c", "d"]
            .into_iter()
            .map(String::from)
            .collect();
        let batch = store.load_batch(&names);
        assert_eq!(batch.len(), 5);
        assert_eq!(batch[0], Ok(None));
        assert!(matches!(batch[1], Err(StoreError::Corrupt { .. })));
        for result in &batch[2..] {
            assert!(
                matches!(result, Err(StoreError::Locked { .. })),
                "{result:?}"
            );
        }
        // a, damaged, and b (locked): nothing after the failure was asked.
        assert_eq!(store.loads.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[test]
    fn round_trip_and_delete() {
        let store = MemoryStore::new();
        let record = StoredSession {
            version: STORED_SESSION_VERSION,
            identity: "rfc8628|http://127.0.0.1/token|cid".into(),
            refresh_token: Some(Secret::from("rt")),
            obtained_at: 1,
            scope: None,
            access_token: None,
            token_type: None,
            expires_at: None,
            refresh_expires_at: None,
            ended: None,
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
