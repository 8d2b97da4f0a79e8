//! The daemon hardens itself as ssh-agent and gpg-agent do: it is not
//! dumpable (no core dumps, no ptrace or `/proc/PID/mem` by processes of
//! its own uid), it creates files private to itself (umask 077), and it
//! refuses a config file or socket directory that others can write.
//! Secrets in memory are [`tokend::secret::Secret`]s (zeroed on drop,
//! redacted in `Debug`), unit-tested in `src/secret.rs`.

use crate::support;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use support::daemon::{Daemon, DaemonOptions, login, stderr, stdout};
use support::file_store::{FileStore, walk};
use support::provider::Provider;

/// The uid and gid of `nobody` on Debian.
const NOBODY: u32 = 65534;

/// A field of `/proc/PID/status`, which must be there.
fn status_field(pid: u32, field: &str) -> String {
    support::process::status_field(pid, field)
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn is_root() -> bool {
    rustix::process::geteuid().as_raw() == 0
}

/// A process of the daemon's own uid cannot read its memory or
/// environment, and the kernel says the daemon is not dumpable (its
/// private `/proc/PID` files belong to root, which the kernel does only for
/// non-dumpable processes).
#[test]
fn the_daemon_is_not_dumpable_and_not_readable_by_its_own_uid() {
    if !is_root() {
        crate::support::skip::say(format_args!(
            "SKIPPED: needs root to run the daemon and its neighbour as another uid"
        ));
        return;
    }
    let provider = Provider::rfc8628();
    let daemon = Daemon::start_with(&provider.config("demo"), DaemonOptions::run_as(NOBODY));
    let pid = daemon.pid();
    let uids = status_field(pid, "Uid");
    assert!(uids.starts_with(&NOBODY.to_string()), "Uid: {uids}");
    let environ = std::fs::metadata(format!("/proc/{pid}/environ")).unwrap();
    assert_eq!(
        environ.uid(),
        0,
        "/proc/{pid}/environ belongs to the daemon's uid: it is dumpable"
    );
    for file in ["mem", "environ", "maps"] {
        let read = Command::new("cat")
            .arg(format!("/proc/{pid}/{file}"))
            .uid(NOBODY)
            .gid(NOBODY)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            !read.status.success(),
            "a process of the daemon's uid read /proc/{pid}/{file}"
        );
        assert!(
            stderr(&read).contains("Permission denied"),
            "{file}: {}",
            stderr(&read)
        );
    }
    // A control: the same uid can read its own, dumpable, processes.
    let own = Command::new("cat")
        .arg("/proc/self/environ")
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert!(own.status.success(), "{}", stderr(&own));
}

/// Umask 077, and everything the daemon made is private: the socket
/// directory, the socket, the store's directory and records.
#[test]
fn files_the_daemon_creates_are_private() {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    // The state directory is the daemon's to create.
    std::fs::remove_dir(store.state_dir()).unwrap();
    let daemon = Daemon::start_with(&provider.config("demo"), store.options());
    assert_eq!(status_field(daemon.pid(), "Umask"), "0077");
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let socket_dir = daemon.socket.parent().unwrap();
    let mut created = vec![
        socket_dir.to_owned(),
        store.state_dir(),
        store.sessions_dir(),
    ];
    created.extend(walk(socket_dir));
    created.extend(walk(&store.state_dir()));
    assert!(created.len() >= 5, "{created:?}");
    for path in &created {
        let mode = std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode & 0o077, 0, "{} has mode {mode:04o}", path.display());
    }
}

fn write_config(dir: &Path, mode: u32, socket: &Path) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\nsocket = \"{}\"\nbus = \"none\"\nstore = \"memory\"\n[providers.demo]\ndevice_authorization_endpoint = \"http://127.0.0.1:9/d\"\ntoken_endpoint = \"http://127.0.0.1:9/t\"\nclient_id = \"x\"\n",
            socket.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn tokend(args: &[&str], config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `tokend --check` and a start with `config` both fail, saying `why`, and
/// the daemon does not start: nothing appears at `socket`.
fn check_and_start_refuse(config: &Path, why: &str, socket: &Path) {
    for args in [&["--check"][..], &[][..]] {
        let out = tokend(args, config);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(why), "{args:?}: {err}");
    }
    assert!(!socket.exists(), "the daemon started");
}

#[test]
fn a_config_others_can_write_is_refused_at_check_and_start() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/tokend.sock");
    for (mode, who) in [(0o664, "its group"), (0o646, "anyone")] {
        let config = write_config(dir.path(), mode, &socket);
        for args in [&["--check"][..], &[][..]] {
            let out = tokend(args, &config);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(
                err.contains(&format!("writable by {who}")) && err.contains("chmod go-w"),
                "{err}"
            );
            assert!(err.starts_with(&config.display().to_string()), "{err}");
        }
        assert!(!socket.exists(), "the daemon started");
    }
    // Read-only for others is fine.
    let config = write_config(dir.path(), 0o644, &socket);
    let out = tokend(&["--check"], &config);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("valid"));
}

#[test]
fn a_socket_directory_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = write_config(dir.path(), 0o600, &shared.join("tokend.sock"));
    // `--check` says it at the `socket` key (line 2), as every other
    // problem of the file is said (it said `FILE: error: ...`).
    let out = tokend(&["--check"], &config);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    // (Its line, wherever it comes: root checking a file under /tmp on a
    // machine with the system service's user is told first that the
    // service would not see /tmp.)
    assert!(
        err.lines().any(
            |line| line.starts_with(&format!("{}:2:1: ", config.display()))
                && line.contains("writable by other users")
        ),
        "{err}"
    );
    let out = tokend(&[], &config);
    // As a config error: the units do not restart it (the same start
    // fails the same way), where 1 was restarted up to the start limit.
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("writable by other users"), "{err}");
    assert!(
        std::fs::read_dir(&shared).unwrap().next().is_none(),
        "something was made there"
    );
}

/// A socket below a directory another user could change (writable by all
/// without the sticky bit, or another user's) is refused by `--check` and
/// at start, naming that directory: its owner could rename the socket's
/// directory away and serve a socket of their own in its place.
#[test]
fn a_socket_below_a_directory_others_can_change_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    let socket_dir = open.join("sub");
    std::fs::create_dir_all(&socket_dir).unwrap();
    std::fs::set_permissions(&socket_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = write_config(dir.path(), 0o600, &socket_dir.join("tokend.sock"));
    let socket = socket_dir.join("tokend.sock");
    let why = format!(
        "{} (owner uid 0, mode 0777) is writable by every user",
        open.display()
    );
    check_and_start_refuse(&config, &why, &socket);
    // Sticky, as /tmp: others cannot rename what is not theirs.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = tokend(&["--check"], &config);
    assert!(out.status.success(), "{}", stderr(&out));
    // Another user's directory: the daemon (which knows its own uid) refuses.
    if !rustix::process::geteuid().is_root() {
        return;
    }
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    rustix::fs::chown(&open, Some(rustix::fs::Uid::from_raw(NOBODY)), None).unwrap();
    // The check too: `nobody` is neither root, the checker nor `tokend`.
    let why = format!(
        "{} (owner uid 65534, mode 0755) belongs to another user",
        open.display()
    );
    check_and_start_refuse(&config, &why, &socket);
}

/// A config in a directory anyone may write to (without the sticky bit) is
/// refused, naming the directory: anyone could put a config of their own
/// in its place and point the providers at their own server.
#[test]
fn a_config_in_a_directory_others_can_change_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    let socket = dir.path().join("run").join("tokend.sock");
    let config = write_config(&open, 0o600, &socket);
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = tokend(&["--check"], &config);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "tokend will not trust the config: {} (owner uid",
            open.display()
        )),
        "{}",
        stderr(&out)
    );
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = tokend(&["--check"], &config);
    assert!(out.status.success(), "{}", stderr(&out));

    // A config, or a directory above it, that another user owns: its
    // owner may rewrite it (read-only or not), or swap it.
    if !is_root() {
        return;
    }
    for owned in [&config, &open] {
        rustix::fs::chown(owned, Some(rustix::fs::Uid::from_raw(NOBODY)), None).unwrap();
        let mode = if owned == &config { "0600" } else { "0755" };
        let why = format!(
            "tokend will not trust the config: {} (owner uid 65534, mode {mode}) belongs to another user",
            owned.display()
        );
        check_and_start_refuse(&config, &why, &socket);
        rustix::fs::chown(owned, Some(rustix::fs::Uid::from_raw(0)), None).unwrap();
    }
}

/// A state directory another user owns is not used: she could swap its
/// `sessions/` for an old copy and bring back a record a logout deleted.
/// The daemon says so at start (a store outage naming the directory, its
/// owner and mode) and makes nothing there.
#[test]
fn a_state_directory_another_user_owns_is_not_used() {
    if !is_root() {
        crate::support::skip::say(format_args!(
            "SKIPPED: needs root to give the state directory to another user"
        ));
        return;
    }
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    rustix::fs::chown(
        store.state_dir(),
        Some(rustix::fs::Uid::from_raw(NOBODY)),
        None,
    )
    .unwrap();
    let daemon = Daemon::start_with(&provider.config("demo"), store.options());
    let why = format!(
        "{} (owner uid 65534, mode 0755) belongs to another user",
        store.state_dir().display()
    );
    daemon.wait_for_log(1, &["event=\"store_unavailable\""]);
    assert!(daemon.log().contains(&why), "{}", daemon.log());
    let out = daemon.tokenctl(&["status"]);
    assert!(stdout(&out).contains(&why), "{}", stdout(&out));
    let out = daemon.tokenctl(&["token", "demo"]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    assert!(stderr(&out).contains(&why), "{}", stderr(&out));
    assert!(!store.sessions_dir().exists(), "sessions/ was made there");
}

/// Clears a directory's immutable attribute when dropped, so that a
/// failing test leaves nothing its temporary directory cannot remove.
struct Immutable(std::path::PathBuf);

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// A socket whose directory the daemon may not make (its parent
/// immutable here; an `XDG_RUNTIME_DIR` left by `su`, another user's, in
/// life) ends the start with the config's status, 2, which the units do
/// not restart: it was 1, and the same start failed again and again up
/// to the start limit.
#[test]
fn a_socket_directory_that_cannot_be_made_is_a_persons_to_mend() {
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let socket = locked.join("tokend/tokend.sock");
    let config = write_config(dir.path(), 0o600, &socket);
    let made_immutable = Command::new("chattr")
        .arg("+i")
        .arg(&locked)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !made_immutable {
        crate::support::skip::say(format!(
            "SKIPPED hardening::a_socket_directory_that_cannot_be_made_is_a_persons_to_mend: \
             chattr +i does not work on {} (not ext4 or xfs, or not root)",
            dir.path().display()
        ));
        return;
    }
    let _unlock = Immutable(locked.clone());
    let out = tokend(&[], &config);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}", locked.join("tokend").display()))
            && err.contains("Operation not permitted"),
        "{err}"
    );
}

/// A config reached through a symbolic link is judged by the directories
/// above its target too: `config.toml -> ww/c.toml`, with `ww` writable
/// by every user and not sticky, is refused at a reload, by `--check` and
/// at start, naming `ww`, the link and its target, as the same file named
/// directly is (the link let anyone's file in).
#[test]
fn a_config_linked_into_a_directory_others_can_change_is_refused() {
    let provider = Provider::rfc8628();
    let mut daemon = Daemon::start(&provider.config("demo"));
    let ww = daemon.dir.path().join("ww");
    std::fs::create_dir(&ww).unwrap();
    std::fs::rename(&daemon.config, ww.join("c.toml")).unwrap();
    std::os::unix::fs::symlink("ww/c.toml", &daemon.config).unwrap();
    // Through a link into a directory only its owner may change: fine.
    daemon.reload();
    assert!(
        !daemon.notifications.concat().contains("reload failed"),
        "{}",
        daemon.log()
    );
    std::fs::set_permissions(&ww, std::fs::Permissions::from_mode(0o777)).unwrap();
    let why = format!(
        "tokend will not trust the config: {} (owner uid {}, mode 0777) is writable by every \
         user, reached through the symbolic link {} -> ww/c.toml;",
        ww.display(),
        rustix::process::geteuid().as_raw(),
        daemon.config.display()
    );
    daemon.reload();
    assert!(
        daemon
            .notifications
            .concat()
            .contains("the last reload failed"),
        "{:?}",
        daemon.notifications
    );
    assert!(daemon.log().contains(&why), "{}", daemon.log());
    let out = daemon.tokend(&["--check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&why), "{}", stderr(&out));
    // A fresh start, once the daemon is gone (bounded: one that started
    // would run on).
    daemon.stop();
    let mut start = daemon
        .tokend_command(&[])
        .env_remove("NOTIFY_SOCKET")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = support::process::wait_at_most(&mut start, std::time::Duration::from_secs(30));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut start.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{err}");
    assert!(err.contains(&why), "{err}");
}
