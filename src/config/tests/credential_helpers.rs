//! The credential helpers' keys: `git_username` (or `username`),
//! `git_auth` and `hosts`.

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

/// `hosts` are compared as the helpers compare what git and docker send:
/// in lower case, without https's default port. `a:443` on one provider
/// and `A` on another claim one host, which is an error.
#[test]
fn hosts_are_compared_without_the_default_port() {
    let f = Fixture::new();
    let config = f
        .load(&format!(
            "{GITHUB}hosts = [\"GitHub.com:443\", \"git.example.org:8443\"]\n"
        ))
        .unwrap();
    assert_eq!(
        config.provider("github").unwrap().hosts,
        ["github.com", "git.example.org:8443"]
    );
    // Two accounts at one forge may both claim it (the helpers refuse to
    // guess between them); one provider's duplicates are one.
    let other = GITHUB.replace("[providers.github]", "[providers.other]");
    let config = f
        .load(&format!(
            "{GITHUB}hosts = [\"github.com:443\", \"GitHub.com\"]\n{other}hosts = [\"GITHUB.COM\"]\n"
        ))
        .unwrap();
    assert_eq!(config.provider("github").unwrap().hosts, ["github.com"]);
    assert_eq!(config.provider("other").unwrap().hosts, ["github.com"]);
    assert_eq!(crate::config::comparable_host("x.org:4430"), "x.org:4430");
    assert_eq!(crate::config::comparable_host(":443"), ":443");
    // The fully qualified name (trailing dot) is the same host.
    assert_eq!(crate::config::comparable_host("GitHub.com."), "github.com");
    assert_eq!(crate::config::comparable_host("x.org.:443"), "x.org");
    assert_eq!(crate::config::comparable_host("x.org.:8443"), "x.org:8443");
    assert_eq!(crate::config::comparable_host("[::1]:443"), "[::1]");
    assert_eq!(crate::config::comparable_host("."), ".");
}
