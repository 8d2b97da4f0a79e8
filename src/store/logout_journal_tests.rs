//! The journal's rules, over a memory store that can be taken down (the
//! e2e `store_outage` tests run it over a locked keyring).

use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::secret::Secret;
use crate::store::{MemoryStore, STORED_SESSION_VERSION};

/// A memory store whose every call fails while it is down, as a locked
/// keyring's does.
#[derive(Debug, Default)]
struct DownStore {
    records: MemoryStore,
    down: AtomicBool,
    /// The listing could not name every record (a keyring loaded locked).
    unnamed: AtomicBool,
}

impl DownStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Locked {
                store: "test store",
                reason: "locked".into(),
            });
        }
        Ok(())
    }
}

impl Store for DownStore {
    fn name(&self) -> &'static str {
        "test store"
    }
    fn load(&self, provider: &str) -> LoadResult {
        self.check()?;
        self.records.load(provider)
    }
    fn save(&self, provider: &str, session: &StoredSession) -> Result<(), StoreError> {
        self.check()?;
        self.records.save(provider, session)
    }
    fn delete(&self, provider: &str) -> Result<(), StoreError> {
        self.check()?;
        self.records.delete(provider)
    }
    fn list(&self) -> Result<Vec<String>, StoreError> {
        self.check()?;
        self.records.list()
    }
    fn listed_all(&self) -> bool {
        !self.unnamed.load(Ordering::SeqCst)
    }
}

fn record(obtained_at: i64) -> StoredSession {
    StoredSession {
        version: STORED_SESSION_VERSION,
        identity: "id".into(),
        refresh_token: Some(Secret::new("refresh".into())),
        obtained_at,
        scope: None,
        access_token: None,
        token_type: None,
        expires_at: None,
        refresh_expires_at: None,
        ended: None,
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<DownStore>,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            store: Arc::new(DownStore::default()),
        }
    }

    /// A daemon's start: the journal read afresh over the same store.
    fn journal(&self) -> LogoutJournal {
        LogoutJournal::open(Arc::clone(&self.store) as Arc<dyn Store>, self.dir.path())
    }

    /// [`Self::journal`], with a minute-old record of each of `providers`.
    fn journal_with(&self, providers: &[&str]) -> LogoutJournal {
        let journal = self.journal();
        for provider in providers {
            journal.save(provider, &record(unix_now() - 60)).unwrap();
        }
        journal
    }

    fn set_down(&self, down: bool) {
        self.store.down.store(down, Ordering::SeqCst);
    }

    fn journal_text(&self) -> Option<String> {
        fs::read_to_string(self.dir.path().join(FILE_NAME)).ok()
    }
}

#[test]
fn a_logout_the_store_could_not_carry_out_is_carried_out_at_the_next_start() {
    let fixture = Fixture::new();
    let journal = fixture.journal_with(&["github", "google"]);
    fixture.set_down(true);
    assert!(journal.delete("github").is_err());
    assert!(journal.remembers_logout("github"));
    assert!(!journal.remembers_logout("google"));
    let text = fixture.journal_text().expect("the logout is written down");
    assert!(text.lines().any(|l| l.ends_with(" github")), "{text}");
    drop(journal);

    // The next start, still locked: the record cannot be read, the line stays.
    let journal = fixture.journal();
    assert!(journal.load("github").is_err());
    assert!(journal.remembers_logout("github"));

    // Unlocked: the logged-out record is deleted, not restored; the other
    // provider's record is untouched.
    fixture.set_down(false);
    let names = ["github".to_owned(), "google".to_owned()];
    let loaded = journal.load_batch(&names);
    assert!(matches!(loaded[0], Ok(None)), "{:?}", loaded[0]);
    assert!(matches!(loaded[1], Ok(Some(_))), "{:?}", loaded[1]);
    assert_eq!(fixture.store.records.list().unwrap(), ["google"]);
    assert!(!journal.remembers_logout("github"));
    assert_eq!(fixture.journal_text(), None, "nothing left pending");
}

/// A logout while the store is already known down (a Secret Service
/// whose keyring locked earlier in the run: the delete is not even
/// tried) is noted all the same, and carried out at the next start: a
/// crash before the unlock restored the logged-out session, its tokens
/// handed out again.
#[test]
fn a_logout_not_tried_while_the_store_is_down_is_carried_out_at_the_next_start() {
    let fixture = Fixture::new();
    let journal = fixture.journal_with(&["github", "google"]);
    fixture.set_down(true);
    journal.note_skipped_delete("github");
    assert!(journal.remembers_logout("github"));
    let text = fixture.journal_text().expect("the logout is written down");
    assert!(text.lines().any(|l| l.ends_with(" github")), "{text}");
    drop(journal);

    fixture.set_down(false);
    let journal = fixture.journal();
    assert!(matches!(journal.load("github"), Ok(None)));
    assert_eq!(fixture.store.records.list().unwrap(), ["google"]);
}

#[test]
fn a_record_newer_than_the_logout_is_restored() {
    let fixture = Fixture::new();
    let journal = fixture.journal_with(&["github"]);
    fixture.set_down(true);
    assert!(journal.delete("github").is_err());
    drop(journal);
    // A later login whose save succeeded while the line could not yet be
    // removed (a crash between the two).
    fixture.set_down(false);
    fixture
        .store
        .records
        .save("github", &record(unix_now() + 3600))
        .unwrap();
    let journal = fixture.journal();
    let loaded = journal.load("github").unwrap().expect("the newer record");
    assert_eq!(loaded.obtained_at, record(unix_now() + 3600).obtained_at);
    assert!(!journal.remembers_logout("github"));
    assert_eq!(fixture.journal_text(), None);
}

#[test]
fn a_save_after_the_logout_ends_it_and_a_delete_that_works_leaves_nothing() {
    let fixture = Fixture::new();
    let journal = fixture.journal_with(&["github"]);
    journal.delete("github").unwrap();
    assert_eq!(fixture.journal_text(), None, "a delete that worked");
    assert!(!journal.remembers_logout("github"));

    journal.save("github", &record(unix_now() - 60)).unwrap();
    fixture.set_down(true);
    assert!(journal.delete("github").is_err());
    // A new login, saved once the store works again.
    fixture.set_down(false);
    journal.save("github", &record(unix_now())).unwrap();
    assert!(!journal.remembers_logout("github"));
    assert_eq!(fixture.journal_text(), None);
    assert!(fixture.journal().load("github").unwrap().is_some());
}

#[test]
fn a_journal_that_cannot_be_written_leaves_the_logout_as_without_it() {
    let fixture = Fixture::new();
    let blocked = fixture.dir.path().join("not-a-directory");
    fs::write(&blocked, "").unwrap();
    let journal = LogoutJournal::open(
        Arc::clone(&fixture.store) as Arc<dyn Store>,
        &blocked.join("state"),
    );
    journal.save("github", &record(unix_now() - 60)).unwrap();
    fixture.set_down(true);
    assert!(journal.delete("github").is_err());
    assert!(!journal.remembers_logout("github"));
    // And a delete that works needs no journal.
    fixture.set_down(false);
    journal.delete("github").unwrap();
    assert!(fixture.store.records.list().unwrap().is_empty());
}

#[test]
fn the_file_is_private_and_read_line_by_line() {
    let fixture = Fixture::new();
    let journal = fixture.journal();
    fixture.set_down(true);
    assert!(journal.delete("github").is_err());
    let path = fixture.dir.path().join(FILE_NAME);
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let text = fixture.journal_text().unwrap();
    assert!(text.starts_with("# tokend"), "{text}");

    let parsed = parse("# header\n\n12 a-b\nnot a line\n13 c_d \nx y\n14\n");
    assert_eq!(
        parsed.into_iter().collect::<Vec<_>>(),
        [("a-b".to_owned(), 12), ("c_d".to_owned(), 13)]
    );
}

/// A line whose provider has no record left (the delete was done, and a
/// crash came before the line was removed; or `tokend --prune` removed the
/// record) goes at the next listing: a restore never reads such a provider.
#[test]
fn a_listing_drops_the_lines_of_providers_without_a_record() {
    let fixture = Fixture::new();
    let journal = fixture.journal_with(&["github", "google"]);
    fixture.set_down(true);
    assert!(journal.delete("github").is_err());
    assert!(journal.delete("google").is_err());
    drop(journal);
    fixture.set_down(false);
    fixture.store.records.delete("google").unwrap();

    let journal = fixture.journal();
    assert_eq!(journal.list().unwrap(), ["github"]);
    assert!(
        journal.remembers_logout("github"),
        "its record is still there"
    );
    assert!(!journal.remembers_logout("google"));
    let text = fixture.journal_text().unwrap();
    assert!(!text.contains("google"), "{text}");
    assert!(fixture.journal().remembers_logout("github"));
}

/// The stop asks whether a logout is noted on the event loop: a note
/// whose file write hangs (a frozen state directory) holds the journal's
/// map, and the question must not wait for it (it held the whole daemon,
/// and the stop with it, until the file system came back). A busy map is
/// taken as not knowing.
#[test]
fn asking_about_a_logout_does_not_wait_for_a_note_being_written() {
    let fixture = Fixture::new();
    let journal = Arc::new(fixture.journal_with(&["github"]));
    fixture.set_down(true);
    assert!(journal.delete("github").is_err());
    assert!(journal.remembers_logout("github"));

    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let journal = Arc::clone(&journal);
        std::thread::spawn(move || {
            let _held = journal.pending();
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv();
        })
    };
    locked_rx.recv().unwrap();
    let (answer_tx, answer_rx) = std::sync::mpsc::channel();
    {
        let journal = Arc::clone(&journal);
        std::thread::spawn(move || answer_tx.send(journal.remembers_logout("github")));
    }
    let answer = answer_rx.recv_timeout(std::time::Duration::from_secs(10));
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(answer, Ok(false), "the question waited for the busy map");
    assert!(journal.remembers_logout("github"));
}

/// A record saved while the clock ran ahead (an hour, then set back) is
/// logged out while the store is down: the next start deletes it. The
/// logout was noted as of now, an hour before the record's date, and the
/// record was taken for a later login's and restored.
#[test]
fn a_record_dated_ahead_of_the_clock_is_still_logged_out() {
    let fixture = Fixture::new();
    let journal = fixture.journal();
    journal.save("github", &record(unix_now() + 3600)).unwrap();
    drop(journal);
    // Restarted with the clock set back: the record is read at the restore.
    let journal = fixture.journal();
    assert!(matches!(journal.load("github"), Ok(Some(_))));
    fixture.set_down(true);
    assert!(journal.delete("github").is_err());
    drop(journal);

    fixture.set_down(false);
    let journal = fixture.journal();
    let loaded = journal.load_batch(&["github".to_owned()]);
    assert!(matches!(loaded[0], Ok(None)), "{:?}", loaded[0]);
    assert!(fixture.store.records.list().unwrap().is_empty());
}

/// A Secret Service daemon and an encrypted-file daemon of one user share
/// a state directory: each has its own journal, so the first one's logout
/// of `github` (its keyring locked) does not delete the second one's
/// `github` session at that one's next start, nor drop the first one's
/// line when the second rewrites its file.
#[test]
fn a_secret_service_journal_is_not_the_file_stores() {
    let keyring = Fixture::new();
    let files = Fixture {
        dir: tempfile::tempdir().unwrap(),
        store: Arc::new(DownStore::default()),
    };
    let shared = keyring.dir.path();
    let personal = LogoutJournal::open_for_secret_service(
        Arc::clone(&keyring.store) as Arc<dyn Store>,
        shared,
    );
    personal.save("github", &record(unix_now() - 60)).unwrap();
    keyring.set_down(true);
    assert!(personal.delete("github").is_err());
    drop(personal);

    let work = LogoutJournal::open(Arc::clone(&files.store) as Arc<dyn Store>, shared);
    work.save("github", &record(unix_now() - 60)).unwrap();
    work.save("gitlab", &record(unix_now() - 60)).unwrap();
    drop(work);
    let work = LogoutJournal::open(Arc::clone(&files.store) as Arc<dyn Store>, shared);
    assert!(!work.remembers_logout("github"));
    assert!(matches!(work.load("github"), Ok(Some(_))));
    files.set_down(true);
    assert!(work.delete("gitlab").is_err());

    keyring.set_down(false);
    let personal = LogoutJournal::open_for_secret_service(
        Arc::clone(&keyring.store) as Arc<dyn Store>,
        shared,
    );
    assert!(personal.remembers_logout("github"));
    assert!(!personal.remembers_logout("gitlab"));
    assert!(matches!(personal.load("github"), Ok(None)));
}

/// The Secret Service's journal was `pending-logouts` until 2026-12-06:
/// one left there is taken over, unless an encrypted file store keeps its
/// records in that directory (then it is that store's).
#[test]
fn an_older_secret_service_journal_is_taken_over() {
    let fixture = Fixture::new();
    let older = fixture.dir.path().join(FILE_NAME);
    fs::write(&older, format!("{HEADER}{} github\n", unix_now())).unwrap();
    let sessions = fixture
        .dir
        .path()
        .join(crate::store::encrypted_file::SESSIONS_DIR);
    fs::create_dir(&sessions).unwrap();
    let journal = LogoutJournal::open_for_secret_service(
        Arc::clone(&fixture.store) as Arc<dyn Store>,
        fixture.dir.path(),
    );
    assert!(!journal.remembers_logout("github"), "the file store's line");
    assert!(older.exists());
    drop(journal);
    fs::remove_dir(&sessions).unwrap();
    let journal = LogoutJournal::open_for_secret_service(
        Arc::clone(&fixture.store) as Arc<dyn Store>,
        fixture.dir.path(),
    );
    assert!(journal.remembers_logout("github"));
    assert!(!older.exists());
    assert!(fixture.dir.path().join(SECRET_SERVICE_FILE_NAME).exists());
}

/// A journal that cannot be read at the start (an I/O error; here a
/// symbolic link that loops) may name a logout: no record is read, saved or
/// deleted until it can be, as an outage of the store, which the retry
/// loop ends; then the logout it names is carried out. Taken as empty,
/// it let the logged-out session come back (for good, once a refresh made
/// its record newer than the logout).
#[test]
fn a_journal_that_cannot_be_read_holds_the_store_until_it_can() {
    let fixture = Fixture::new();
    let journal = fixture.journal_with(&["github"]);
    fixture.set_down(true);
    assert!(journal.delete("github").is_err());
    drop(journal);
    let path = fixture.dir.path().join(FILE_NAME);
    let text = fs::read_to_string(&path).unwrap();
    fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&path, &path).unwrap();
    fixture.set_down(false);

    let journal = fixture.journal();
    for result in [
        journal.load("github").map(|_| ()),
        journal.list().map(|_| ()),
        journal.save("github", &record(unix_now())),
        journal.delete("github"),
    ] {
        let err = result.unwrap_err();
        assert!(err.is_store_wide(), "{err}");
        assert!(err.to_string().contains("logout journal"), "{err}");
    }
    assert!(fixture.store.records.load("github").unwrap().is_some());

    fs::remove_file(&path).unwrap();
    // A line that is not text (a person's note in Latin-1) is skipped.
    fs::write(&path, [b"# caf\xe9\n".as_slice(), text.as_bytes()].concat()).unwrap();
    assert!(matches!(journal.load("github"), Ok(None)));
    assert!(fixture.store.records.load("github").unwrap().is_none());
}

/// The temporary file a crash left while the journal was written is
/// removed at the first listing of the store.
#[test]
fn a_temporary_file_left_by_a_crash_is_removed() {
    let fixture = Fixture::new();
    let temp = fixture.dir.path().join(format!(".{FILE_NAME}.tmp"));
    fs::write(&temp, "half a journal").unwrap();
    let journal = fixture.journal();
    assert!(temp.exists());
    journal.list().unwrap();
    assert!(!temp.exists());
}

/// A listing that could not name every record (a keyring gnome-keyring
/// loaded locked from disk shows only hashes of its items' attributes)
/// keeps the lines of the providers it did not list: one of them may
/// still have a record there, and dropped, its logout came back once that
/// keyring was unlocked.
#[test]
fn a_listing_that_could_not_name_every_record_keeps_the_lines() {
    let fixture = Fixture::new();
    let journal = fixture.journal_with(&["github"]);
    fixture.set_down(true);
    assert!(journal.delete("github").is_err());
    fixture.set_down(false);
    fixture.store.records.delete("github").unwrap();
    fixture.store.unnamed.store(true, Ordering::SeqCst);
    assert_eq!(journal.list().unwrap(), Vec::<String>::new());
    assert!(journal.remembers_logout("github"), "the line was dropped");
    fixture.store.unnamed.store(false, Ordering::SeqCst);
    journal.list().unwrap();
    assert!(!journal.remembers_logout("github"));
}

/// The encrypted file store's journal does not make its state directory
/// again: the lock made it at the start, and one removed under the
/// daemon, made again, would hold no lock (a second daemon then starts
/// there). The note fails instead, as on a full disk.
#[test]
fn the_file_stores_journal_does_not_make_its_state_directory_again() {
    let fixture = Fixture::new();
    let state = fixture.dir.path().join("state");
    fs::create_dir(&state).unwrap();
    let journal = LogoutJournal::open(Arc::clone(&fixture.store) as Arc<dyn Store>, &state);
    journal.save("github", &record(unix_now() - 60)).unwrap();
    fs::remove_dir(&state).unwrap();
    fixture.set_down(true);
    journal.note_skipped_delete("github");
    assert!(!state.exists(), "made again");
    assert!(!journal.remembers_logout("github"));
}

#[path = "logout_journal_file_tests.rs"]
mod file_tests;
