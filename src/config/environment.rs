//! What the config loader takes from the process environment, and the
//! default paths that follow from it (config file, state directory, socket).

use std::path::PathBuf;

/// What the config loader needs from the process environment, passed in so
/// that tests need not change the real environment.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// The daemon's effective uid.
    pub uid: u32,
    /// The process runs as the system service's user (`tokend`), which has
    /// no session bus: its defaults are root's where they are the system
    /// service's (`bus = "system"`).
    pub service_user: bool,
    /// `$RUNTIME_DIRECTORY` (systemd `RuntimeDirectory=`).
    pub runtime_directory: Option<PathBuf>,
    /// `$XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`).
    pub credentials_directory: Option<PathBuf>,
    /// `$STATE_DIRECTORY` (systemd `StateDirectory=`).
    pub state_directory: Option<PathBuf>,
    /// `$XDG_STATE_HOME`.
    pub xdg_state_home: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// `$TOKEND_CONFIG`.
    pub tokend_config: Option<PathBuf>,
    /// Where to look up user and group names (`/etc` outside tests).
    pub etc: PathBuf,
    /// The config is read by `tokend --check` or `--prune`, not to run the
    /// daemon: a systemd credential (`$CREDENTIALS_DIRECTORY`, which only
    /// the service's own environment has) may be missing, and is then a
    /// warning, its value a stand-in that nothing uses.
    pub checking: bool,
}

/// Where logind makes each logged-in (or lingering) user's runtime
/// directory, `UID` under it.
pub const LOGIND_RUNTIME_ROOT: &str = "/run/user";

/// `root/UID`, the runtime directory logind made for `uid`, when it is a
/// directory (not a link) owned by `uid`; `None` for root, whose defaults
/// are the system's paths, and where there is none (no login, no linger).
#[must_use]
pub fn logind_runtime_dir(uid: u32, root: &std::path::Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    if uid == 0 {
        return None;
    }
    let dir = root.join(uid.to_string());
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    (meta.is_dir() && meta.uid() == uid).then_some(dir)
}

/// The directory variables an [`Environment`] reads.
const DIRECTORY_VARIABLES: [&str; 7] = [
    "RUNTIME_DIRECTORY",
    "XDG_RUNTIME_DIR",
    "CREDENTIALS_DIRECTORY",
    "STATE_DIRECTORY",
    "XDG_STATE_HOME",
    "XDG_CONFIG_HOME",
    "HOME",
];

/// [`Environment::ignored_relative_variables`] of the variables `lookup`
/// gives.
fn relative_variables(lookup: impl Fn(&str) -> Option<std::ffi::OsString>) -> Vec<String> {
    DIRECTORY_VARIABLES
        .iter()
        .filter_map(|name| {
            let value = lookup(name).filter(|v| !v.is_empty())?;
            (!std::path::Path::new(&value).is_absolute())
                .then(|| format!("{name}={}", value.to_string_lossy()))
        })
        .collect()
}

/// The effective user's home directory from the password database.
fn home_from_passwd() -> Option<PathBuf> {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|user| user.dir)
        .filter(|dir| dir.is_absolute())
}

impl Environment {
    /// The environment `user`'s own daemon has as a user service, for root
    /// checking (or pruning) a config in that user's home directory: her
    /// uid, home and runtime directory, and the defaults they give (the
    /// session bus, the Secret Service store, her socket and state
    /// directory). With root's, root's `--check` warned that her store
    /// needs `encrypted-file` on the system bus, and judged root's paths.
    /// `$XDG_*` overrides of her session are not known here: the defaults
    /// under her home are taken.
    #[must_use]
    pub fn for_check_as(user: &nix::unistd::User, etc: &std::path::Path) -> Self {
        let runtime = PathBuf::from(format!("/run/user/{}", user.uid.as_raw()));
        Self {
            uid: user.uid.as_raw(),
            service_user: false,
            runtime_directory: None,
            // Made by her user manager when she logs in, if not yet.
            xdg_runtime_dir: Some(runtime),
            credentials_directory: None,
            state_directory: None,
            xdg_state_home: None,
            xdg_config_home: None,
            home: Some(user.dir.clone()),
            tokend_config: None,
            etc: etc.to_owned(),
            checking: true,
        }
    }

    /// The environment of this process. Without `XDG_RUNTIME_DIR` (cron,
    /// `sudo -u`, an ssh command), a user's runtime directory is the one
    /// logind made for her, when there is one (`logind_runtime_dir`):
    /// the daemon started so refused to start for want of a socket path,
    /// while tokenctl started so looked there for it.
    #[must_use]
    pub fn from_process() -> Self {
        let mut env = Self::from_variables(|name| std::env::var_os(name));
        if env.xdg_runtime_dir.is_none() {
            env.xdg_runtime_dir =
                logind_runtime_dir(env.uid, std::path::Path::new(LOGIND_RUNTIME_ROOT));
        }
        env
    }

    /// The directory variables of this process that are set but are not
    /// absolute paths, as `NAME=value`: ignored (see
    /// [`Self::from_process`]), which is to be said. Ignored without a
    /// word, a relative `XDG_STATE_HOME` that an older tokend used made the
    /// sessions stored under it vanish at an upgrade.
    #[must_use]
    pub fn ignored_relative_variables() -> Vec<String> {
        relative_variables(|name| std::env::var_os(name))
    }

    /// The environment whose variables `lookup` gives. A directory
    /// variable that is not an absolute path is ignored, as the XDG Base
    /// Directory spec says of its own: `XDG_RUNTIME_DIR=run` put the socket
    /// under the working directory, where a client started elsewhere never
    /// found it, and `XDG_STATE_HOME=rel` the sessions where a start from
    /// another directory did not.
    fn from_variables(lookup: impl Fn(&str) -> Option<std::ffi::OsString>) -> Self {
        let var = |name: &str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .filter(|path| path.is_absolute())
        };
        Self {
            uid: rustix::process::geteuid().as_raw(),
            service_user: crate::trusted_path::service_user_uid()
                == Some(rustix::process::geteuid().as_raw()),
            runtime_directory: var("RUNTIME_DIRECTORY"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            credentials_directory: var("CREDENTIALS_DIRECTORY"),
            state_directory: var("STATE_DIRECTORY"),
            xdg_state_home: var("XDG_STATE_HOME"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            // A process started without $HOME (`env -i`, some service
            // managers) still has one: the password database's, so that
            // the defaults below are not read relative to the working
            // directory.
            home: var("HOME").or_else(home_from_passwd),
            // A file named on purpose: relative to where it is run, as
            // `--config` is.
            tokend_config: lookup("TOKEND_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            etc: PathBuf::from("/etc"),
            checking: false,
        }
    }

    /// The config file used when `--config` is not given.
    #[must_use]
    pub fn default_config_path(&self) -> PathBuf {
        if let Some(path) = &self.tokend_config {
            return path.clone();
        }
        if self.uid == 0 {
            return PathBuf::from("/etc/tokend/config.toml");
        }
        let base = self
            .xdg_config_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".config")))
            .unwrap_or_else(|| PathBuf::from(".config"));
        base.join("tokend/config.toml")
    }

    /// The encrypted file store's directory when the config does not set
    /// one, and where the daemon notes logouts a Secret Service has not
    /// carried out (see [`crate::store::logout_journal`]): `$STATE_DIRECTORY` (set by systemd), `/var/lib/tokend` for root,
    /// else the user's `$XDG_STATE_HOME/tokend` (`~/.local/state/tokend`).
    #[must_use]
    pub fn default_state_directory(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.state_directory {
            // StateDirectory= may list several directories, separated by ':'.
            return dir.to_string_lossy().split(':').next().map(PathBuf::from);
        }
        if self.uid == 0 {
            return Some(PathBuf::from("/var/lib/tokend"));
        }
        self.xdg_state_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".local/state")))
            .map(|dir| dir.join("tokend"))
    }

    /// The socket path used when the config does not set one.
    ///
    /// `$RUNTIME_DIRECTORY` (set by systemd) first, then the user's runtime
    /// directory, then the system location for root. `None` when none applies.
    #[must_use]
    pub fn default_socket_path(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.runtime_directory {
            // RuntimeDirectory= may list several directories, separated by ':'.
            let first = dir.to_string_lossy().split(':').next().map(PathBuf::from)?;
            return Some(first.join("tokend.sock"));
        }
        self.client_socket_path()
    }

    /// The file the daemon locks for a Secret Service store (see
    /// [`crate::store::lock`]): `$XDG_RUNTIME_DIR/tokend-secret-service.lock`,
    /// in the user's runtime directory itself, as the keyring is the
    /// user's; else `secret-service.lock` in `$RUNTIME_DIRECTORY`'s first
    /// entry (a system unit's). `None` when neither is set.
    ///
    /// Not in a unit's runtime directory: those differ from unit to unit (a
    /// copy of the user unit for a second config locked a file of its own,
    /// and both daemons refreshed the keyring's sessions), and systemd
    /// deletes one whenever its unit stops, lock file and all, even while
    /// another daemon holds that file (a unit refused as the second daemon,
    /// restarted by `Restart=on-failure`, then locked a fresh file). The
    /// user's runtime directory goes only when the user's last session
    /// ends, with the keyring's.
    #[must_use]
    pub fn secret_service_lock_path(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.xdg_runtime_dir {
            return Some(dir.join(crate::store::lock::USER_SECRET_SERVICE_LOCK));
        }
        let dir = self.runtime_directory.as_ref()?;
        // RuntimeDirectory= may list several directories, separated by ':'.
        dir.to_string_lossy()
            .split(':')
            .next()
            .map(|dir| PathBuf::from(dir).join(crate::store::lock::SECRET_SERVICE_LOCK))
    }

    /// Where a client looks for the daemon's socket when told nothing: as
    /// [`Self::default_socket_path`] but for `$RUNTIME_DIRECTORY`, which is
    /// the runtime directory of whatever unit the client runs in, not the
    /// daemon's (the daemon's units make theirs the same places as these:
    /// `$XDG_RUNTIME_DIR/tokend` and `/run/tokend`).
    #[must_use]
    pub fn client_socket_path(&self) -> Option<PathBuf> {
        if self.uid == 0 {
            return Some(PathBuf::from("/run/tokend/tokend.sock"));
        }
        self.xdg_runtime_dir
            .as_ref()
            .map(|dir| dir.join("tokend/tokend.sock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// logind's directory of the user stands in for `XDG_RUNTIME_DIR`
    /// only when it is hers: not another user's, not a link, not root's.
    #[test]
    fn a_users_logind_runtime_directory_is_found_when_it_is_hers() {
        use std::os::unix::fs::{chown, symlink};
        let root = tempfile::tempdir().unwrap();
        // As root (CI), a directory given to a uid of the test's choosing;
        // otherwise one's own.
        let as_root = rustix::process::geteuid().is_root();
        let uid = if as_root {
            4243
        } else {
            rustix::process::geteuid().as_raw()
        };
        assert_eq!(logind_runtime_dir(uid, root.path()), None, "missing");
        let own = root.path().join(uid.to_string());
        std::fs::create_dir(&own).unwrap();
        if as_root {
            chown(&own, Some(uid), None).unwrap();
        }
        assert_eq!(logind_runtime_dir(uid, root.path()), Some(own.clone()));
        // A directory named for another uid, owned by someone else: not its.
        let other = uid.wrapping_add(1);
        std::fs::create_dir(root.path().join(other.to_string())).unwrap();
        assert_eq!(logind_runtime_dir(other, root.path()), None);
        // A link, even to a directory of one's own, is not logind's.
        let linked = uid.wrapping_add(2);
        symlink(&own, root.path().join(linked.to_string())).unwrap();
        assert_eq!(logind_runtime_dir(linked, root.path()), None);
        assert_eq!(logind_runtime_dir(0, root.path()), None, "root");
    }

    /// Directory variables that are not absolute paths are ignored (the
    /// XDG spec's rule), the others taken; `TOKEND_CONFIG` names a file
    /// the way `--config` does, relative to where tokend runs.
    #[test]
    fn relative_directory_variables_are_ignored() {
        let relative = Environment::from_variables(|name| {
            Some(match name {
                "TOKEND_CONFIG" => "my.toml".into(),
                "HOME" => "home".into(),
                _ => "run".into(),
            })
        });
        assert_eq!(relative.runtime_directory, None);
        assert_eq!(relative.xdg_runtime_dir, None);
        assert_eq!(relative.credentials_directory, None);
        assert_eq!(relative.state_directory, None);
        assert_eq!(relative.xdg_state_home, None);
        assert_eq!(relative.xdg_config_home, None);
        assert!(relative.home.as_ref().is_none_or(|h| h.is_absolute()));
        assert_eq!(relative.tokend_config, Some(PathBuf::from("my.toml")));

        let absolute = Environment::from_variables(|name| match name {
            "XDG_RUNTIME_DIR" => Some("/run/user/1000".into()),
            "XDG_STATE_HOME" => Some("/home/alice/.local/state".into()),
            _ => None,
        });
        assert_eq!(
            absolute.xdg_runtime_dir,
            Some(PathBuf::from("/run/user/1000"))
        );
        assert_eq!(
            absolute.xdg_state_home,
            Some(PathBuf::from("/home/alice/.local/state"))
        );
        // The ignored ones are named, to be said; the absolute, the unset
        // and `TOKEND_CONFIG` are not.
        let named = relative_variables(|name| match name {
            "XDG_STATE_HOME" => Some(".state".into()),
            "HOME" => Some("/home/alice".into()),
            "XDG_RUNTIME_DIR" => Some(String::new().into()),
            "TOKEND_CONFIG" => Some("my.toml".into()),
            _ => None,
        });
        assert_eq!(named, ["XDG_STATE_HOME=.state"]);
    }
}
