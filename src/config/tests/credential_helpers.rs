//! The credential helpers' keys: `git_username` (or `username`) and
//! `git_auth`.

use super::*;
use crate::config::GitAuth;

/// The credential helpers' user name: `git_username` (the contract's key)
/// or `username` (its other name), not both.
#[test]
fn git_username_and_its_other_name() {
    let f = Fixture::new();
    for key in ["git_username", "username"] {
        let config = f
            .load(&format!("{GITHUB}{key} = \"x-access-token\"\n"))
            .unwrap();
        assert_eq!(
            config.provider("github").unwrap().username.as_deref(),
            Some("x-access-token"),
            "{key}"
        );
    }
    let errors = f.errors(&format!("{GITHUB}git_username = \"a\"\nusername = \"b\"\n"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("`username` is another name of `git_username`: give one of them"),
        "{errors:?}"
    );
    let errors = f.errors(&format!("{GITHUB}git_username = \"a:b\"\n"));
    assert!(
        errors[0].contains("`git_username` must be a non-empty name"),
        "{errors:?}"
    );
}

/// `git_auth`: "auto" unless set; "basic" and "bearer"; anything else is
/// an error naming the three.
#[test]
fn git_auth_is_one_of_three() {
    let f = Fixture::new();
    let config = f.load(GITHUB).unwrap();
    assert_eq!(config.provider("github").unwrap().git_auth, GitAuth::Auto);
    for (value, auth) in [("basic", GitAuth::Basic), ("bearer", GitAuth::Bearer)] {
        let config = f
            .load(&format!("{GITHUB}git_auth = \"{value}\"\n"))
            .unwrap();
        assert_eq!(config.provider("github").unwrap().git_auth, auth);
    }
    let errors = f.errors(&format!("{GITHUB}git_auth = \"Token\"\n"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("`git_auth` must be \"auto\", \"basic\" or \"bearer\", not \"Token\""),
        "{errors:?}"
    );
}
