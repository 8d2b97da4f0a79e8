//! A real `gnome-keyring-daemon` on a [`PrivateBus`], unlocked with a test
//! password, in temporary directories so the real user's keyring is never
//! touched.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

use super::bus::{PrivateBus, find_program};
use super::file_store::{Seeded, granted_records};
use super::provider::Provider;
use tokend::store::secret_service::{PROVIDER_ATTRIBUTE, SCHEMA};

#[path = "keyring_collections.rs"]
mod collections;
pub use collections::LOGIN;

/// The password of the test keyring.
pub const PASSWORD: &str = "tokend test password";

/// The Secret Service's bus name.
pub const SECRETS: &str = "org.freedesktop.secrets";

/// The default collection, by alias (gnome-keyring points it at `login`).
pub const DEFAULT_COLLECTION: &str = "/org/freedesktop/secrets/aliases/default";

/// How long gnome-keyring may take to appear on the bus.
const START_TIMEOUT: Duration = Duration::from_secs(20);

const SERVICE_PATH: &str = "/org/freedesktop/secrets";
const SERVICE_INTERFACE: &str = "org.freedesktop.Secret.Service";
/// gnome-keyring's own interface; the one way to unlock without a prompter.
const GNOME_INTERFACE: &str = "org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface";

/// A `gnome-keyring-daemon --components=secrets` owning
/// `org.freedesktop.secrets` on a private bus; killed on `Drop`.
pub struct TestKeyring {
    daemon: Child,
    address: String,
    // Dropped after `daemon` is killed (fields drop after `Drop::drop`).
    dir: TempDir,
}

impl TestKeyring {
    /// Whether `gnome-keyring-daemon` is installed.
    #[must_use]
    pub fn is_installed() -> bool {
        find_program("gnome-keyring-daemon").is_some()
    }

    /// Starts the keyring on `bus`, or returns `None` after saying loudly that
    /// `test` is skipped because gnome-keyring is not installed.
    #[must_use]
    pub fn start_or_skip(bus: &PrivateBus, test: &str) -> Option<Self> {
        if Self::is_installed() {
            return Some(Self::start(bus));
        }
        super::skip::say(format_args!(
            "SKIPPED {test}: gnome-keyring-daemon is not installed \
             (apt-get install gnome-keyring libsecret-tools dbus-daemon)"
        ));
        None
    }

    /// Starts `gnome-keyring-daemon` on `bus` and returns once it owns
    /// `org.freedesktop.secrets` there, with the `login` collection (the
    /// default) created or unlocked with [`PASSWORD`].
    ///
    /// # Panics
    /// When the daemon cannot start or does not appear on the bus in time.
    #[must_use]
    pub fn start(bus: &PrivateBus) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tokend-keyring-")
            .tempdir()
            .expect("create a temporary directory for the keyring");
        let path = |name: &str| -> PathBuf {
            let path = dir.path().join(name);
            fs::create_dir_all(&path).expect("create a keyring directory");
            path
        };
        let (home, data, config, cache, runtime) = (
            path("home"),
            path("data"),
            path("config"),
            path("cache"),
            path("runtime"),
        );
        // gnome-keyring refuses a runtime directory others can read.
        fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700))
            .expect("chmod the runtime directory");
        let log = File::create(dir.path().join("gnome-keyring.log")).expect("create the log");
        let mut daemon = bus
            .command("gnome-keyring-daemon")
            .args(["--foreground", "--components=secrets", "--unlock"])
            .env("HOME", &home)
            .env("XDG_DATA_HOME", &data)
            .env("XDG_CONFIG_HOME", &config)
            .env("XDG_CACHE_HOME", &cache)
            .env("XDG_RUNTIME_DIR", &runtime)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("run gnome-keyring-daemon");
        // --unlock reads the password up to end of input: write it and close.
        {
            let mut stdin = daemon.stdin.take().expect("piped stdin");
            stdin
                .write_all(PASSWORD.as_bytes())
                .expect("give gnome-keyring its password");
        }
        let keyring = Self {
            daemon,
            address: bus.address().to_owned(),
            dir,
        };
        if let Err(e) = bus.wait_for_owner(SECRETS, START_TIMEOUT) {
            panic!(
                "gnome-keyring-daemon did not start: {e}\nits log:\n{}\nbus log:\n{}",
                keyring.log(),
                bus.log()
            );
        }
        keyring
    }

    /// The keyring daemon's pid (to stop it with `SIGSTOP`: a keyring that
    /// hangs).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.daemon.id()
    }

    /// `XDG_DATA_HOME` of the daemon: the keyring files are in `keyrings/`.
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Every directory the daemon was given (home, data, config, cache, runtime).
    #[must_use]
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's stdout and stderr so far.
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("gnome-keyring.log")).unwrap_or_default()
    }

    fn connect(&self) -> zbus::blocking::Connection {
        zbus::blocking::connection::Builder::address(self.address.as_str())
            .and_then(zbus::blocking::connection::Builder::build)
            .expect("connect to the private bus")
    }

    /// Locks the default collection, as a screen lock or `seahorse` would.
    ///
    /// # Panics
    /// When gnome-keyring refuses.
    pub fn lock_default_collection(&self) {
        let connection = self.connect();
        let collection = ObjectPath::try_from(DEFAULT_COLLECTION).expect("valid path");
        let locked = lock(&connection, collection.into());
        assert_eq!(locked.len(), 1, "gnome-keyring locked {locked:?}");
        assert!(self.is_default_collection_locked());
    }

    /// Unlocks the default collection with [`PASSWORD`] through
    /// gnome-keyring's own interface: the standard `Unlock` needs a prompt,
    /// which a headless test cannot answer.
    ///
    /// # Panics
    /// When gnome-keyring refuses.
    pub fn unlock_default_collection(&self) {
        let connection = self.connect();
        // A plain session: the password crosses a private bus in a test.
        let session = plain_session(&connection);
        // The real path: gnome-keyring's interface does not resolve aliases.
        let collection = default_collection_path(&connection);
        let secret = (
            session,
            Vec::<u8>::new(),
            PASSWORD.as_bytes().to_vec(),
            "text/plain",
        );
        connection
            .call_method(
                Some(SECRETS),
                SERVICE_PATH,
                Some(GNOME_INTERFACE),
                "UnlockWithMasterPassword",
                &(collection, secret),
            )
            .expect("UnlockWithMasterPassword");
        assert!(!self.is_default_collection_locked());
    }

    /// Deletes the default collection (as a person may in Seahorse): the
    /// Secret Service then has none, as `KeePassXC` has none before a
    /// database is open.
    ///
    /// # Panics
    /// When gnome-keyring refuses.
    pub fn delete_default_collection(&self) {
        let connection = self.connect();
        let collection = default_collection_path(&connection);
        connection
            .call_method(
                Some(SECRETS),
                &collection,
                Some("org.freedesktop.Secret.Collection"),
                "Delete",
                &(),
            )
            .expect("Delete the default collection");
        assert_eq!(default_collection_path(&connection).as_str(), "/");
    }

    /// Makes gnome-keyring's in-memory `session` collection the default.
    ///
    /// # Panics
    /// When gnome-keyring refuses.
    pub fn make_session_collection_the_default(&self) {
        let connection = self.connect();
        let session = ObjectPath::try_from("/org/freedesktop/secrets/collection/session")
            .expect("valid path");
        connection
            .call_method(
                Some(SECRETS),
                SERVICE_PATH,
                Some(SERVICE_INTERFACE),
                "SetAlias",
                &("default", session),
            )
            .expect("SetAlias default");
    }

    /// Logs in every provider of `providers` (`[providers.*]` tables
    /// pointing at `provider`) without a device login, and stores each
    /// record in the default collection as tokend would have (its label,
    /// `service` and `username`, and the descriptive `tokend-provider` and
    /// `xdg:schema`), with `secret-tool`.
    ///
    /// # Panics
    /// When `secret-tool` fails.
    pub fn seed(&self, provider: &Provider, providers: &str, lifetime: Duration) -> Vec<Seeded> {
        let records = granted_records(provider, providers, |_| lifetime);
        for (seeded, record) in &records {
            let name = seeded.name.as_str();
            let mut child = std::process::Command::new("secret-tool")
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
                .args([
                    "store",
                    &format!("--label=tokend: {name} refresh token"),
                    "service",
                    "tokend",
                    "username",
                    name,
                    PROVIDER_ATTRIBUTE,
                    name,
                    "xdg:schema",
                    SCHEMA,
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run secret-tool (install libsecret-tools)");
            // secret-tool reads the secret up to the end of its input.
            child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(&record.to_bytes())
                .expect("give secret-tool the record");
            let output = child.wait_with_output().expect("secret-tool's status");
            assert!(output.status.success(), "secret-tool store: {output:?}");
        }
        records.into_iter().map(|(seeded, _)| seeded).collect()
    }

    /// Creates another keyring, `label`, holding an item of tokend's for
    /// `provider` with `secret`, and locks it: an old `login.keyring`
    /// restored beside the new one.
    ///
    /// # Panics
    /// When gnome-keyring refuses.
    pub fn lock_away_in_another_keyring(&self, label: &str, provider: &str, secret: &[u8]) {
        let collection =
            OwnedObjectPath::try_from(self.create_keyring(label)).expect("a keyring's path");
        let connection = self.connect();
        let session = plain_session(&connection);
        let attributes = HashMap::from([("service", "tokend"), ("username", provider)]);
        let properties = HashMap::from([
            (
                "org.freedesktop.Secret.Item.Label",
                Value::from(format!("tokend: {provider} refresh token")),
            ),
            (
                "org.freedesktop.Secret.Item.Attributes",
                Value::from(attributes),
            ),
        ]);
        let secret = (session, Vec::<u8>::new(), secret.to_vec(), "text/plain");
        connection
            .call_method(
                Some(SECRETS),
                &collection,
                Some("org.freedesktop.Secret.Collection"),
                "CreateItem",
                &(properties, secret, true),
            )
            .expect("CreateItem in the other keyring");
        lock(&connection, collection);
    }

    /// Whether the default collection is locked.
    ///
    /// # Panics
    /// When the property cannot be read.
    #[must_use]
    pub fn is_default_collection_locked(&self) -> bool {
        let connection = self.connect();
        let proxy = zbus::blocking::Proxy::new(
            &connection,
            SECRETS,
            DEFAULT_COLLECTION,
            "org.freedesktop.Secret.Collection",
        )
        .expect("collection proxy");
        proxy.get_property("Locked").expect("the Locked property")
    }
}

/// Locks `collection`; returns what was locked (locking never prompts).
fn lock(
    connection: &zbus::blocking::Connection,
    collection: OwnedObjectPath,
) -> Vec<OwnedObjectPath> {
    let reply = connection
        .call_method(
            Some(SECRETS),
            SERVICE_PATH,
            Some(SERVICE_INTERFACE),
            "Lock",
            &(vec![collection],),
        )
        .expect("Lock a collection");
    let (locked, _prompt): (Vec<OwnedObjectPath>, OwnedObjectPath) =
        reply.body().deserialize().expect("Lock's reply");
    locked
}

/// A plain (unencrypted) Secret Service session on `connection`: secrets
/// cross a private bus in a test.
fn plain_session(connection: &zbus::blocking::Connection) -> OwnedObjectPath {
    let reply = connection
        .call_method(
            Some(SECRETS),
            SERVICE_PATH,
            Some(SERVICE_INTERFACE),
            "OpenSession",
            &("plain", Value::from("")),
        )
        .expect("OpenSession");
    let (_output, session): (OwnedValue, OwnedObjectPath) =
        reply.body().deserialize().expect("OpenSession's reply");
    session
}

/// The collection the `default` alias points at.
fn default_collection_path(connection: &zbus::blocking::Connection) -> OwnedObjectPath {
    let reply = connection
        .call_method(
            Some(SECRETS),
            SERVICE_PATH,
            Some(SERVICE_INTERFACE),
            "ReadAlias",
            &("default",),
        )
        .expect("ReadAlias default");
    reply.body().deserialize().expect("ReadAlias's reply")
}

impl Drop for TestKeyring {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}
