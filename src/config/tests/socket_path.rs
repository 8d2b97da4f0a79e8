//! The socket's path: one longer than a Unix socket's address holds is
//! refused by the config, where `tokend --check` sees it.

use std::path::PathBuf;

use super::*;

/// A `socket` of more than 107 bytes, or a default one under a long
/// `XDG_RUNTIME_DIR`, is an error at its place: `--check` called such a
/// file valid, and the start failed at the bind (exit 1, which the units
/// restart) after it had made the directories.
#[test]
fn a_socket_path_longer_than_an_address_holds_is_refused() {
    let mut f = Fixture::new();
    let longest = format!("/{}", "s".repeat(106));
    let config = f
        .load(&format!("[daemon]\nsocket = \"{longest}\"\n{GITHUB}"))
        .unwrap();
    assert_eq!(config.daemon.socket, PathBuf::from(&longest));
    let errors = f.errors(&format!("[daemon]\nsocket = \"{longest}s\"\n{GITHUB}"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("config.toml:2:10: `socket` is 108 bytes long: a Unix socket's address holds 107 bytes of path; use a shorter one"),
        "{errors:?}"
    );

    f.env.xdg_runtime_dir = Some(PathBuf::from(format!("/run/{}", "r".repeat(90))));
    let errors = f.errors(GITHUB);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("the default socket path /run/rrr")
            && errors[0].contains("is 114 bytes long")
            && errors[0].ends_with("; set `socket` in [daemon] to a shorter one"),
        "{errors:?}"
    );
}
