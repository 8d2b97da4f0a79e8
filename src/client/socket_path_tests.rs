//! Which socket a client uses when told nothing.

use std::path::PathBuf;

use super::*;

#[test]
fn default_socket_prefers_the_users_daemon() {
    let own = PathBuf::from("/run/user/1000/tokend/tokend.sock");
    let system = PathBuf::from(SYSTEM_SOCKET_PATH);
    let choose = |own: Option<&PathBuf>, present: &[&PathBuf]| {
        choose_default_socket(own.cloned(), |p| present.iter().any(|q| q.as_path() == p))
    };
    // Both running, or neither: the user's own.
    assert_eq!(choose(Some(&own), &[&own, &system]), own);
    assert_eq!(choose(Some(&own), &[]), own);
    // Only the system daemon runs: that one.
    assert_eq!(choose(Some(&own), &[&system]), system);
    // No runtime directory at all.
    assert_eq!(choose(None, &[]), system);
}

/// Without `XDG_RUNTIME_DIR` (cron, `sudo -u`), a user's tokenctl looks for
/// its daemon where logind puts the user's runtime directory, not only at
/// the system daemon's socket; root's is the system daemon.
#[test]
fn without_xdg_runtime_dir_a_user_looks_in_run_user() {
    let user = Environment {
        uid: 4_000_000_000,
        ..Environment::default()
    };
    // No runtime directory for that user: the system daemon's socket, as
    // before (its advice is to start that one).
    assert_eq!(
        default_socket_path(&user),
        PathBuf::from(SYSTEM_SOCKET_PATH)
    );
    // A user with one (made here for a uid no one has): its own path is
    // named, unless a system daemon runs on this machine to answer instead.
    let uid = 4_000_000_001;
    let runtime = PathBuf::from(format!("/run/user/{uid}"));
    if std::fs::create_dir(&runtime).is_ok() {
        let user = Environment {
            uid,
            ..Environment::default()
        };
        let chosen = default_socket_path(&user);
        let _ = std::fs::remove_dir(&runtime);
        if !std::path::Path::new(SYSTEM_SOCKET_PATH).exists() {
            assert_eq!(chosen, runtime.join("tokend/tokend.sock"));
        }
    }
    let root = Environment {
        uid: 0,
        ..Environment::default()
    };
    assert_eq!(
        default_socket_path(&root),
        PathBuf::from(SYSTEM_SOCKET_PATH)
    );
}

/// Root of a user namespace that maps it to a user (rootless podman and
/// buildah run credential helpers so) is that user: its daemon's socket
/// is under `$XDG_RUNTIME_DIR`, not the system daemon's.
#[test]
fn root_of_a_user_namespace_looks_for_its_users_daemon() {
    let runtime = tempfile::tempdir().unwrap();
    let own = runtime.path().join("tokend/tokend.sock");
    std::fs::create_dir(runtime.path().join("tokend")).unwrap();
    std::fs::write(&own, b"").unwrap();
    let namespaced_root = Environment {
        uid: 0,
        xdg_runtime_dir: Some(runtime.path().to_owned()),
        ..Environment::default()
    };
    assert_eq!(default_socket_path_as(&namespaced_root, Some(1000)), own);
    // Root of the machine, with the same environment: the system daemon.
    assert_eq!(
        default_socket_path_as(&namespaced_root, None),
        PathBuf::from(SYSTEM_SOCKET_PATH)
    );
}
