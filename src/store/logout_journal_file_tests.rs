//! The journal's file when something else is at its path, or at its
//! temporary file's (the filesystem-fault audit): read and written as the
//! lock and the records are, never through a link, never waiting on a
//! FIFO, never reading more than a journal holds. A bad journal holds the
//! store, naming the file and what is wrong with it.

use std::sync::mpsc;
use std::time::Duration;

use super::*;

/// The journal of `fixture` opened and listed on a thread of its own;
/// the listing's error, which must come within 10 s (a FIFO held the
/// open until a writer came, and with it the daemon's start).
fn listing_error(fixture: &Fixture) -> String {
    let store = Arc::clone(&fixture.store) as Arc<dyn Store>;
    let dir = fixture.dir.path().to_owned();
    let (sender, answer) = mpsc::channel();
    std::thread::spawn(move || {
        let journal = LogoutJournal::open(store, &dir);
        let _ = sender.send(journal.list().map(|_| ()));
    });
    let listed = answer
        .recv_timeout(Duration::from_secs(10))
        .expect("the journal's open and listing returned within 10 s");
    let err = listed.expect_err("the store held by a bad journal");
    assert!(err.is_store_wide(), "{err}");
    let said = err.to_string();
    let path = fixture.dir.path().join(FILE_NAME);
    assert!(
        said.contains(&format!(
            "cannot read the logout journal {}",
            path.display()
        )),
        "{said}"
    );
    said
}

#[test]
fn a_fifo_at_the_journal_holds_the_store_without_hanging_its_start() {
    let fixture = Fixture::new();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        fixture.dir.path().join(FILE_NAME),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let said = listing_error(&fixture);
    assert!(said.contains("not a regular file but a FIFO"), "{said}");
}

/// A symbolic link is not followed: one to `/dev/zero` grew the start's
/// memory until it was killed (here one to a journal elsewhere, which was
/// read as if it were the daemon's).
#[test]
fn a_symbolic_link_at_the_journal_is_not_followed() {
    let fixture = Fixture::new();
    let elsewhere = fixture.dir.path().join("elsewhere");
    fs::write(&elsewhere, format!("{HEADER}{} github\n", unix_now())).unwrap();
    std::os::unix::fs::symlink(&elsewhere, fixture.dir.path().join(FILE_NAME)).unwrap();
    let said = listing_error(&fixture);
    assert!(
        said.contains(&format!(
            "it is a symbolic link to {}, which tokend does not follow",
            elsewhere.display()
        )),
        "{said}"
    );
}

/// A file longer than any journal (a sparse one; 2 GB were read whole)
/// is not read.
#[test]
fn a_file_longer_than_any_journal_is_not_read() {
    let fixture = Fixture::new();
    let file = fs::File::create(fixture.dir.path().join(FILE_NAME)).unwrap();
    file.set_len(file::MAX_LEN + 1).unwrap();
    let said = listing_error(&fixture);
    assert!(
        said.contains(&format!("it is {} bytes long", file::MAX_LEN + 1)),
        "{said}"
    );
}

/// A symbolic link at the journal's temporary file is replaced, not
/// written through: it made the journal's write truncate its target.
#[test]
fn a_symbolic_link_at_the_temporary_file_is_not_written_through() {
    let fixture = Fixture::new();
    let victim = fixture.dir.path().join("victim");
    fs::write(&victim, "keep me").unwrap();
    std::os::unix::fs::symlink(&victim, temp_path(&fixture.dir.path().join(FILE_NAME))).unwrap();
    let journal = fixture.journal_with(&["github"]);
    fixture.set_down(true);
    assert!(journal.delete("github").is_err());
    assert!(journal.remembers_logout("github"));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(fixture.journal_text().unwrap().contains(" github\n"));
}
