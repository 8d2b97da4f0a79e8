//! Records removed: by a logout, by `tokend --prune` for providers no
//! longer in the config (and spares left without their record), and by
//! `--prune` run from an administrator's shell beside the service.

use super::*;

/// A daemon on the encrypted file store with `alpha` and `beta` logged in.
fn alpha_and_beta_logged_in() -> (Provider, FileStore, Daemon) {
    let provider = Provider::rfc8628();
    let store = FileStore::new();
    let both = format!("{}{}", provider.config("alpha"), provider.config("beta"));
    let daemon = Daemon::start_with(&both, store.options());
    login(&daemon, "alpha", approve(&provider));
    login(&daemon, "beta", approve(&provider));
    (provider, store, daemon)
}

#[test]
fn logout_deletes_the_record_and_prune_removes_unconfigured_providers() {
    let (provider, store, mut daemon) = alpha_and_beta_logged_in();
    assert_eq!(store.files(), ["alpha.session", "beta.session"]);
    let out = daemon.tokenctl(&["logout", "alpha"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(store.files(), ["beta.session"]);
    login(&daemon, "alpha", approve(&provider));

    // alpha leaves the config: its record stays until pruned.
    daemon.stop();
    daemon.write_config(&provider.config("beta"));
    daemon.restart();
    assert_eq!(store.files(), ["alpha.session", "beta.session"]);
    let out = daemon.tokend(&["--prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "removed the stored session of `alpha` (not in the config) from the encrypted file store in {}\n",
            store.state_dir().display()
        )
    );
    assert_eq!(store.files(), ["beta.session"]);
    let out = daemon.tokend(&["--prune"]);
    assert!(
        stdout(&out).starts_with("nothing to prune"),
        "{}",
        stdout(&out)
    );
    token(&daemon, "beta", &["--min-valid", "0"]);

    // A spare left without its record (a logout by a version before
    // spares) holds a sealed refresh token: pruned too.
    std::fs::copy(
        store.record("beta"),
        store.sessions_dir().join(FileStore::spare("gamma")),
    )
    .unwrap();
    let out = daemon.tokend(&["--prune"]);
    assert!(
        stdout(&out).starts_with("removed the stored session of `gamma`"),
        "{}",
        stdout(&out)
    );
    assert_eq!(store.files(), ["beta.session"]);

    // A report that cannot be written (a full disk): said on stderr with
    // what was removed, and exit 1. It panicked, the list lost.
    std::fs::copy(
        store.record("beta"),
        store.sessions_dir().join(FileStore::spare("delta")),
    )
    .unwrap();
    let out = daemon
        .tokend_command(&["--prune"])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("tokend: cannot write the output: No space left on device")
            && err.contains("the sessions were removed all the same")
            && err.contains("removed the stored session of `delta`")
            && !err.contains("panicked"),
        "{err}"
    );
    assert_eq!(store.files(), ["beta.session"]);

    // A state directory that is not there (a typo'd `state_directory`) is
    // said as such, not as a store holding no session.
    daemon.stop();
    let moved = store.state_dir().with_extension("moved");
    std::fs::rename(store.state_dir(), &moved).unwrap();
    let out = daemon.tokend(&["--prune"]);
    std::fs::rename(&moved, store.state_dir()).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "nothing to prune: {} does not exist (check `state_directory`)\n",
            store.state_dir().display()
        )
    );
}

/// `tokend --check` and `--prune` run by an administrator from a shell,
/// beside the system service: there is no `$CREDENTIALS_DIRECTORY` there
/// (systemd gives the key credential to the service only). The check warns
/// that the key is not checked instead of failing; the prune needs no key
/// (it lists and deletes records, never opens one), may be run as root on
/// the service user's directory without taking it over (before, it failed
/// on the owner, or, with no directory yet, created one root's own that
/// locked the service out), and never creates the directory.
#[test]
fn check_and_prune_work_from_a_shell_beside_the_service() {
    use std::os::unix::fs::MetadataExt as _;
    let (provider, store, mut daemon) = alpha_and_beta_logged_in();
    daemon.stop();
    daemon.write_config(&provider.config("beta"));
    // A shell's environment: the state directory named (root's default is
    // /var/lib/tokend, the service's), no credentials.
    let admin = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
            .args(args)
            .arg("--config")
            .arg(&daemon.config)
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("RUST_LOG")
            .env("STATE_DIRECTORY", store.state_dir())
            .output()
            .unwrap()
    };
    let check = admin(&["--check"]);
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(
        stderr(&check).contains("tokend-store-key") && stderr(&check).contains("not checked here"),
        "{}",
        stderr(&check)
    );
    // The service's user owns the directory (here another uid than ours).
    let sessions = store.sessions_dir();
    rustix::fs::chown(
        &sessions,
        Some(rustix::fs::Uid::from_raw(65534)),
        Some(rustix::fs::Gid::from_raw(65534)),
    )
    .unwrap();
    let mode_before = std::fs::metadata(&sessions).unwrap().mode();
    let prune = admin(&["--prune"]);
    assert!(prune.status.success(), "{}", stderr(&prune));
    assert!(stdout(&prune).contains("`alpha`"), "{}", stdout(&prune));
    assert_eq!(store.files(), ["beta.session"]);
    let meta = std::fs::metadata(&sessions).unwrap();
    assert_eq!((meta.uid(), meta.mode()), (65534, mode_before));

    // With no sessions directory yet, nothing is pruned and none is made.
    std::fs::remove_dir_all(&sessions).unwrap();
    let prune = admin(&["--prune"]);
    assert!(prune.status.success(), "{}", stderr(&prune));
    assert!(
        stdout(&prune).starts_with("nothing to prune"),
        "{}",
        stdout(&prune)
    );
    assert!(!sessions.exists(), "prune made the store's directory");
}
