//! The encrypted file store's surroundings, as systemd gives them to the
//! system service: a state directory (`$STATE_DIRECTORY`) and a credential
//! directory holding the 32-byte key (`$CREDENTIALS_DIRECTORY`).

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use std::time::{Duration, SystemTime};

use tokend::config::Environment;
use tokend::store::{EncryptedFileStore, STORED_SESSION_VERSION, Store, StoreKey, StoredSession};

use super::daemon::DaemonOptions;
use super::provider::Provider;

/// The credential name tokend reads by default.
pub const KEY_CREDENTIAL: &str = "tokend-store-key";

/// A state directory and a key, removed on `Drop`.
pub struct FileStore {
    dir: tempfile::TempDir,
}

impl FileStore {
    /// An empty state directory and a fresh random key.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tokend-state-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir(dir.path().join("state")).unwrap();
        std::fs::create_dir(dir.path().join("credentials")).unwrap();
        let store = Self { dir };
        store.new_key();
        store
    }

    /// Replaces the key with a new random one; returns the old bytes.
    pub fn new_key(&self) -> Vec<u8> {
        let mut key = vec![0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut key))
            .expect("read /dev/urandom");
        self.set_key(&key)
    }

    /// Writes `key` as the credential (mode 0400, as systemd makes it);
    /// returns the previous bytes.
    pub fn set_key(&self, key: &[u8]) -> Vec<u8> {
        let path = self.key_path();
        let old = std::fs::read(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, key).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        old
    }

    /// Gives the key credential the ACL systemd gives one for a service
    /// that runs as another user: read for that user (here this process's
    /// own), the mask in the group bits, so the mode shows 0440.
    pub fn grant_key_through_acl(&self) {
        let me = rustix::process::geteuid().as_raw();
        let mut acl = 2u32.to_le_bytes().to_vec();
        // user::r--, user:ME:r--, group::---, mask::r--, other::---
        for (tag, perm, id) in [
            (0x01u16, 4u16, u32::MAX),
            (0x02, 4, me),
            (0x04, 0, u32::MAX),
            (0x10, 4, u32::MAX),
            (0x20, 0, u32::MAX),
        ] {
            acl.extend_from_slice(&tag.to_le_bytes());
            acl.extend_from_slice(&perm.to_le_bytes());
            acl.extend_from_slice(&id.to_le_bytes());
        }
        rustix::fs::setxattr(
            self.key_path(),
            "system.posix_acl_access",
            &acl,
            rustix::fs::XattrFlags::empty(),
        )
        .expect("an ACL on the key (the test directory's file system keeps ACLs)");
        assert_eq!(
            mode(&self.key_path()),
            0o440,
            "the mask shows as group read"
        );
    }

    /// The key credential's path.
    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("credentials").join(KEY_CREDENTIAL)
    }

    /// `$STATE_DIRECTORY`.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Where the records are.
    pub fn sessions_dir(&self) -> PathBuf {
        self.state_dir().join("sessions")
    }

    /// Replaces the records' directory with a file (moving it aside):
    /// every store call fails store-wide ("it is not a directory") until
    /// [`Self::mend_records`].
    pub fn break_records(&self) {
        let records = self.sessions_dir();
        std::fs::rename(&records, records.with_extension("away")).unwrap();
        std::fs::write(&records, b"not a directory").unwrap();
    }

    /// Undoes [`Self::break_records`], in one step: removing the file
    /// first would leave a moment in which a daemon's save makes a new
    /// records directory (and a file in it), which the directory moved
    /// aside could then not replace (seen once in CI).
    pub fn mend_records(&self) {
        let records = self.sessions_dir();
        let away = records.with_extension("away");
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &away,
            rustix::fs::CWD,
            &records,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .unwrap();
        std::fs::remove_file(&away).unwrap();
    }

    /// The record file of `provider`.
    pub fn record(&self, provider: &str) -> PathBuf {
        self.sessions_dir().join(format!("{provider}.session"))
    }

    /// The name of the spare file the store keeps for `provider`'s next
    /// save (made by the record's first save; then the old record's file,
    /// left by each save's swap), as `all_files` lists it.
    pub fn spare(provider: &str) -> String {
        format!(".{provider}.spare")
    }

    /// The names of the files in the sessions directory, sorted, but for
    /// the spare of a record that is there (every record has one from its
    /// first save on): what a test expects to find. A spare without its
    /// record is listed: it is a leftover.
    pub fn files(&self) -> Vec<String> {
        let mut names = self.all_files();
        let records: Vec<String> = names
            .iter()
            .filter_map(|n| n.strip_suffix(".session"))
            .map(Self::spare)
            .collect();
        names.retain(|name| !records.contains(name));
        names
    }

    /// The names of all the files in the sessions directory, sorted.
    pub fn all_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.sessions_dir())
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The temporary directory holding state and credentials.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Daemon options for `store = "encrypted-file"` with this directory
    /// and key handed over in the environment, as systemd does.
    pub fn options(&self) -> DaemonOptions {
        DaemonOptions {
            store: "encrypted-file",
            env: vec![
                (
                    "STATE_DIRECTORY".into(),
                    self.state_dir().display().to_string(),
                ),
                (
                    "CREDENTIALS_DIRECTORY".into(),
                    self.dir.path().join("credentials").display().to_string(),
                ),
            ],
            ..DaemonOptions::default()
        }
    }
}

/// A session [`FileStore::seed`] put in the store.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// The provider it belongs to.
    pub name: String,
    /// Its access token.
    pub access_token: String,
    /// Its refresh token.
    pub refresh_token: String,
    /// When the access token expires.
    pub expires_at: SystemTime,
}

impl FileStore {
    /// The record of `provider`, as the daemon would read it.
    pub fn load(&self, provider: &str) -> Option<StoredSession> {
        self.load_in(&self.state_dir(), provider)
    }

    /// The record of `provider` as the daemon with `pid` sees it (through
    /// its mount namespace: a small disk mounted there, say).
    pub fn load_seen_by(&self, pid: u32, provider: &str) -> Option<StoredSession> {
        let seen = format!("/proc/{pid}/root{}", self.state_dir().display());
        self.load_in(Path::new(&seen), provider)
    }

    fn load_in(&self, state_dir: &Path, provider: &str) -> Option<StoredSession> {
        let key = StoreKey::read_file(&self.key_path()).expect("the store key");
        EncryptedFileStore::new(state_dir, key)
            .load(provider)
            .expect("a readable record")
    }

    /// Logs in every provider of `providers` (`[providers.*]` tables
    /// pointing at `provider`) without a device login: the emulator grants
    /// each a session whose access token lives `lifetime(i)`, and its record
    /// is sealed here as the daemon would have saved it. Thousands at once,
    /// for scale and storm tests.
    pub fn seed(
        &self,
        provider: &Provider,
        providers: &str,
        lifetime: impl Fn(usize) -> Duration,
    ) -> Vec<Seeded> {
        let key = StoreKey::read_file(&self.key_path()).expect("the store key");
        let store = EncryptedFileStore::new(&self.state_dir(), key);
        let records = granted_records(provider, providers, lifetime);
        // Each save syncs its file: spread them over a few threads.
        std::thread::scope(|scope| {
            for chunk in records.chunks(records.len().div_ceil(4).max(1)) {
                let store = &store;
                scope.spawn(move || {
                    for (seeded, record) in chunk {
                        store.save(&seeded.name, record).expect("seal a record");
                    }
                });
            }
        });
        records.into_iter().map(|(seeded, _)| seeded).collect()
    }
}

/// A session for every provider of `providers` (`[providers.*]` tables
/// pointing at `provider`), granted by the emulator without a device login,
/// with its access token living `lifetime(i)`; and its record as the daemon
/// would save it. For seeding any store.
pub fn granted_records(
    provider: &Provider,
    providers: &str,
    lifetime: impl Fn(usize) -> Duration,
) -> Vec<(Seeded, StoredSession)> {
    parse_providers(providers)
        .iter()
        .enumerate()
        .map(|(i, config)| {
            let granted = provider.grant_session(&config.client_id, lifetime(i));
            let now = SystemTime::now();
            let seeded = Seeded {
                name: config.name.clone(),
                access_token: granted.access_token,
                refresh_token: granted.refresh_token.expect("a refresh token"),
                expires_at: now + granted.lifetime,
            };
            let record = StoredSession {
                version: STORED_SESSION_VERSION,
                identity: tokend::broker::session_identity(config),
                refresh_token: Some(seeded.refresh_token.clone().into()),
                obtained_at: unix(now),
                scope: None,
                access_token: Some(seeded.access_token.clone().into()),
                token_type: Some("Bearer".into()),
                expires_at: Some(unix(seeded.expires_at)),
                refresh_expires_at: None,
                ended: None,
            };
            (seeded, record)
        })
        .collect()
}

/// The providers of `providers` as the daemon reads them.
fn parse_providers(providers: &str) -> Vec<tokend::config::ProviderConfig> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\nsocket = \"{}\"\nbus = \"none\"\nstore = \"memory\"\n{providers}",
            dir.path().join("tokend.sock").display()
        ),
    )
    .expect("write config");
    tokend::config::load(&path, &Environment::from_process())
        .expect("a valid config")
        .providers
}

fn unix(at: SystemTime) -> i64 {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// The mode bits of `path`.
pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Panics if any of `secrets` is in any file under `dirs` (sockets and
/// unreadable files count as empty).
pub fn assert_no_secret_in_files(dirs: &[&Path], secrets: &[String]) {
    for dir in dirs {
        for file in walk(dir) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            for secret in secrets {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "a token is in the clear in {}",
                    file.display()
                );
            }
        }
    }
}

/// Swaps two paths atomically (`renameat2(RENAME_EXCHANGE)`).
pub fn exchange(a: &std::path::Path, b: &std::path::Path) {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).expect("exchange two paths");
}
