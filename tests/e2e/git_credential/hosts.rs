//! Which provider answers for which host: a `url=` line read as its
//! parts, https's default port, two providers claiming one host,
//! `--provider NAME` kept to its hosts, HTTP's credentials only; and the
//! token's expiry, said with it.

use super::*;

/// A caller that names the URL whole (`url=`, as `git credential fill`
/// reads it) talking to the helper itself: its parts pick the provider,
/// and a plain http URL is refused as one given in parts.
#[test]
fn a_url_line_counts_as_its_parts() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config_with(
        "forge",
        "hosts = [\"forge.test:8443\"]\ngit_username = \"x-access-token\"",
    ));
    login(&daemon, "forge", |code| {
        provider.approve(code).unwrap();
    });
    let out = helper_get(&daemon, "url=https://Forge.Test:8443/group/project.git\n\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("username=x-access-token\n"),
        "{}",
        stdout(&out)
    );
    let out = helper_get(&daemon, "url=http://forge.test:8443/project.git\n\n");
    assert!(!stdout(&out).contains("password="), "{}", stdout(&out));
    assert!(stderr(&out).contains("plain http"), "{}", stderr(&out));
    // As git reads them: a later `host=` line overrides the URL's host,
    // and a host's fully qualified name (trailing dot) is that host.
    for request in [
        "url=https://elsewhere.test/project.git\nhost=forge.test:8443\n\n",
        "host=elsewhere.test\nurl=https://forge.test:8443/project.git\n\n",
        "protocol=https\nhost=FORGE.test.:8443\n\n",
    ] {
        let out = helper_get(&daemon, request);
        assert!(
            stdout(&out).contains("password="),
            "{request:?}: {}",
            stderr(&out)
        );
    }
}

/// A token whose expiry tokend knows is answered with
/// `password_expiry_utc=` (git 2.41 and later): that of `tokenctl --json
/// token`, so a helper that keeps credentials (git's cache) drops it when
/// it expires. Without the line git's cache kept answering the token after
/// it had expired, and git failed until the cache timed out.
#[test]
fn the_answer_says_when_the_token_expires() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config_with("forge", "hosts = [\"forge.test\"]"));
    login(&daemon, "forge", |code| {
        provider.approve(code).unwrap();
    });
    let out = daemon.tokenctl(&["--json", "token", "forge"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let expires_at = answer["expires_at"].as_u64().expect("a known expiry");
    let out = helper_get(&daemon, "protocol=https\nhost=forge.test\n\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let filled = stdout(&out);
    let expiries: Vec<&str> = filled
        .lines()
        .filter_map(|l| l.strip_prefix("password_expiry_utc="))
        .collect();
    assert_eq!(expiries, [expires_at.to_string().as_str()], "{filled}");
}

/// Two accounts at one forge: both providers may claim its host. The
/// helper that sees both refuses to guess (a work repository pushed with
/// the personal token, or the other way round), naming them; each named
/// with `--provider` answers with its own token, for its hosts only.
#[test]
fn two_accounts_at_one_host_are_named_not_guessed() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&format!(
        "{}{}",
        provider.config_with("gh", "hosts = [\"git.example.org\"]"),
        provider.config_with("gh-work", "hosts = [\"GIT.example.org\"]")
    ));
    let mut tokens = Vec::new();
    for name in ["gh", "gh-work"] {
        tokens.push(login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        }));
    }
    let request = "protocol=https\nhost=git.example.org\n\n";
    let out = helper_get(&daemon, request);
    assert!(!stdout(&out).contains("password="), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("providers `gh`, `gh-work` all serve git.example.org"),
        "{}",
        stderr(&out)
    );
    for (name, token) in ["gh", "gh-work"].iter().zip(&tokens) {
        let out = helper_get_as(&daemon, Some(name), request);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("password={token}\n")),
            "{name}: {}",
            stdout(&out)
        );
        // Named, still only for the hosts it claims.
        let out = helper_get_as(&daemon, Some(name), "protocol=https\nhost=other.org\n\n");
        assert!(!stdout(&out).contains("password="), "{}", stdout(&out));
    }
}

/// `--provider NAME` picks the provider whatever git's host, but only among
/// the hosts it lists: a helper set for every host must not hand one
/// forge's token to another (a submodule's URL can name any host). A
/// provider that lists no hosts answers any.
#[test]
fn a_named_provider_answers_only_for_its_hosts() {
    let provider = Provider::rfc8628();
    let config = format!(
        "{}{}",
        provider.config_with("forge", "hosts = [\"forge.test\"]"),
        provider.config_with("anywhere", ""),
    );
    let daemon = Daemon::start(&config);
    for name in ["forge", "anywhere"] {
        login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        });
    }
    let home = tempfile::tempdir().unwrap();
    let fill = |helper: &str, host: &str| {
        git_with_helper(
            home.path(),
            &daemon,
            helper,
            &["credential", "fill"],
            &format!("protocol=https\nhost={host}\n\n"),
        )
    };
    let out = fill("--provider forge", "Forge.test");
    assert!(stdout(&out).contains("password="), "{}", stderr(&out));
    let out = fill("--provider forge", "elsewhere.test");
    assert!(!out.status.success());
    assert!(!stdout(&out).contains("password="), "{}", stdout(&out));
    assert!(
        stderr(&out)
            .contains("provider `forge` serves forge.test, not elsewhere.test: no token sent"),
        "{}",
        stderr(&out)
    );
    let out = fill("--provider anywhere", "elsewhere.test");
    assert!(stdout(&out).contains("password="), "{}", stderr(&out));
}

/// A remote that names https's default port (`https://forge.test:443/…`):
/// git keeps the port in `host=`, and the host is the configured one all
/// the same. No token was sent to it.
#[test]
fn a_host_with_the_default_port_is_the_host() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config_with(
        "forge",
        "hosts = [\"forge.test\"]\ngit_username = \"x-access-token\"",
    ));
    login(&daemon, "forge", |code| {
        provider.approve(code).unwrap();
    });
    let out = helper_get(&daemon, "protocol=https\nhost=forge.test:443\n\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("password="), "{}", stdout(&out));
}

/// git asks its helpers for a client certificate's passphrase
/// (`protocol=cert`, an empty `host=`, the file in `path=`) and for
/// send-email's SMTP password (`protocol=smtp`): the helper answers
/// neither, and says nothing, so git goes on to its next helper or the
/// person. With `--provider` of a provider without `hosts` it answered
/// the token as the certificate's passphrase; without a `host=` line it
/// failed, exit 2; and git's `erase` of such a credential had tokend
/// replace a token.
#[test]
fn only_https_credentials_are_answered() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&format!(
        "{}{}",
        provider.config_with("forge", "hosts = [\"forge.test\"]"),
        provider.config_with("anywhere", ""),
    ));
    let mut tokens = Vec::new();
    for name in ["forge", "anywhere"] {
        tokens.push(login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        }));
    }
    let cert = "protocol=cert\nhost=\npath=/home/me/client.p12\nusername=\n\n";
    for (named, request) in [
        (Some("anywhere"), cert),
        (None, cert),
        (
            Some("anywhere"),
            "protocol=cert\npath=/home/me/client.p12\n\n",
        ),
        (None, "protocol=cert\npath=/home/me/client.p12\n\n"),
        (None, "protocol=smtp\nhost=forge.test\n\n"),
        (
            Some("anywhere"),
            "protocol=SMTP\nhost=smtp.example.org:587\n\n",
        ),
    ] {
        let out = helper_get_as(&daemon, named, request);
        assert!(
            out.status.success(),
            "{named:?} {request:?}: {}",
            stderr(&out)
        );
        assert_eq!(
            (stdout(&out).as_str(), stderr(&out).as_str()),
            ("", ""),
            "{named:?} {request:?}"
        );
    }
    // The real git, asking for a certificate's passphrase: no answer, so
    // it asks the person (prompts are off here).
    let home = tempfile::tempdir().unwrap();
    let out = git_with_helper(
        home.path(),
        &daemon,
        "--provider anywhere",
        &["credential", "fill"],
        cert,
    );
    assert!(!stdout(&out).contains("password="), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("could not read Password for 'cert:"),
        "{}",
        stderr(&out)
    );
    // git's `erase` of a passphrase refused is no token refused.
    let refreshes = provider.refresh_count();
    let erase = format!(
        "protocol=cert\nhost=\npath=/c.p12\npassword={}\n\n",
        tokens[1]
    );
    let out = git_with_helper(
        home.path(),
        &daemon,
        "--provider anywhere",
        &["credential", "reject"],
        &erase,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(provider.refresh_count(), refreshes, "a token was replaced");
    // HTTP's, in any case, are answered as ever.
    let out = helper_get_as(&daemon, None, "protocol=HTTPS\nhost=forge.test\n\n");
    assert!(
        stdout(&out).contains(&format!("password={}\n", tokens[0])),
        "{}",
        stderr(&out)
    );
}
