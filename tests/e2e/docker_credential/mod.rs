//! `docker-credential-tokend` (tokenctl under the helper's name) speaks the
//! docker-credential-helpers protocol, checked here on its wire: the action
//! as argument, the request on stdin, JSON or the protocol's messages on
//! stdout, and failures on stderr too; docker_cli.rs runs the real
//! `docker` CLI with it.

use crate::support;

mod docker_cli;

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use support::daemon::{Daemon, login, stderr, stdout};
use support::provider::Provider;

/// The helper: a link to tokenctl with the helper's name.
fn helper(dir: &std::path::Path) -> std::path::PathBuf {
    helper_named(dir, "docker-credential-tokend")
}

/// A link to tokenctl named `name`.
fn helper_named(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let link = dir.join(name);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tokenctl"), &link).unwrap();
    link
}

fn run(helper: &std::path::Path, daemon: &Daemon, action: &str, stdin: &str) -> Output {
    let mut child = Command::new(helper)
        .arg(action)
        .env("TOKEND_SOCKET", &daemon.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The helper may answer without reading (a refused `store`): a
    // closed pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

#[test]
fn the_helper_answers_get_list_store_and_erase_as_the_protocol_says() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&format!(
        "{}{}",
        provider.config_with(
            "registry",
            "hosts = [\"ghcr.test\", \"registry.test:5000\"]\nusername = \"x-access-token\""
        ),
        provider.config("unrelated"),
    ));
    login(&daemon, "registry", |code| {
        provider.approve(code).unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let helper = helper(dir.path());

    let out = run(&helper, &daemon, "get", "https://GHCR.test");
    assert!(out.status.success(), "{}", stdout(&out));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["ServerURL"], "https://GHCR.test");
    assert_eq!(answer["Username"], "x-access-token");
    assert!(provider.is_valid_access_token(answer["Secret"].as_str().unwrap()));

    let out = run(&helper, &daemon, "get", "registry.test:5000/v2/");
    assert!(out.status.success(), "{}", stdout(&out));

    let out = run(&helper, &daemon, "get", "https://index.docker.io/v1/");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out).trim(),
        "credentials not found in native keychain"
    );
    // Not found is the tool's to say: nothing on stderr.
    assert_eq!(stderr(&out), "");

    let out = run(&helper, &daemon, "list", "");
    assert!(out.status.success(), "{}", stdout(&out));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        listed,
        serde_json::json!({"ghcr.test": "x-access-token", "registry.test:5000": "x-access-token"})
    );

    let out = run(
        &helper,
        &daemon,
        "store",
        r#"{"ServerURL":"ghcr.test","Username":"u","Secret":"s"}"#,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("read-only"), "{}", stdout(&out));
    // Docker shows a refused `store`'s stdout itself.
    assert_eq!(stderr(&out), "");
    let out = run(&helper, &daemon, "erase", "ghcr.test");
    assert!(out.status.success());
    let out = run(&helper, &daemon, "nonsense", "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("unknown action"), "{}", stdout(&out));
}

/// An empty `TOKEND_SOCKET` counts as unset, as for tokenctl: the helper
/// looks where it looks with no variable (it tried to connect to "",
/// "cannot connect to tokend at : Invalid argument").
#[test]
fn an_empty_socket_variable_counts_as_unset() {
    let dir = tempfile::tempdir().unwrap();
    let helper = helper(dir.path());
    let list = |socket: Option<&str>| {
        let mut command = Command::new(&helper);
        command
            .arg("list")
            .env_remove("TOKEND_SOCKET")
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null());
        if let Some(socket) = socket {
            command.env("TOKEND_SOCKET", socket);
        }
        command.output().unwrap()
    };
    let (unset, empty) = (list(None), list(Some("")));
    assert!(
        !stdout(&empty).contains("tokend at :"),
        "{}",
        stdout(&empty)
    );
    assert_eq!(
        (empty.status.code(), stdout(&empty)),
        (unset.status.code(), stdout(&unset))
    );
}

/// `get` of an `http://` registry that is not a loopback address is
/// refused, as the git helper refuses it: an error on stdout (which the
/// tools show) and exit 1, never the token. Loopback may use http; a URL
/// with no scheme is https.
#[test]
fn get_refuses_plain_http_except_to_loopback() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config_with(
        "registry",
        "hosts = [\"ghcr.test\", \"127.0.0.1:5000\", \"localhost:5000\"]",
    ));
    let token = login(&daemon, "registry", |code| {
        provider.approve(code).unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let helper = helper(dir.path());

    for server in ["http://ghcr.test", "HTTP://GHCR.test/v2/"] {
        let out = run(&helper, &daemon, "get", server);
        assert_eq!(out.status.code(), Some(1), "{server}: {}", stdout(&out));
        assert!(
            stdout(&out).contains("refusing to send a token over plain http to ghcr.test"),
            "{server}: {}",
            stdout(&out)
        );
        assert!(!stdout(&out).contains(&token), "{server}");
        assert!(!stdout(&out).contains("Secret"), "{server}");
    }
    // Plain http to a registry no provider serves (another name, or the
    // same name with a port no `hosts` entry has): not found, as any
    // registry none serves.
    for server in ["http://other.test", "http://ghcr.test:80"] {
        let out = run(&helper, &daemon, "get", server);
        assert_eq!(out.status.code(), Some(1), "{server}: {}", stdout(&out));
        assert_eq!(
            stdout(&out).trim(),
            "credentials not found in native keychain",
            "{server}"
        );
    }
    for server in [
        "http://127.0.0.1:5000",
        "http://localhost:5000/v2/",
        "https://ghcr.test",
        "ghcr.test",
    ] {
        let out = run(&helper, &daemon, "get", server);
        assert!(out.status.success(), "{server}: {}", stdout(&out));
        let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert!(
            provider.is_valid_access_token(answer["Secret"].as_str().unwrap()),
            "{server}"
        );
    }
}

/// Rootless podman and buildah run credential helpers as root of a user
/// namespace that maps 0 to their user: the helper finds that user's own
/// daemon through `$XDG_RUNTIME_DIR`. It looked for the system daemon's
/// socket, as root's, and told the person to start the system service.
#[test]
fn the_helper_run_by_a_rootless_container_tool_finds_its_users_daemon() {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(nobody) = support::other_uid::OtherUser::nobody_or_skip(
        "the_helper_run_by_a_rootless_container_tool_finds_its_users_daemon",
    ) else {
        return;
    };
    let provider = Provider::rfc8628();
    let daemon = Daemon::start_with(
        &provider.config_with("registry", "hosts = [\"ghcr.test\"]"),
        support::daemon::DaemonOptions::run_as(nobody.uid),
    );
    // Logged in by root, who names the daemon's user as the socket's owner.
    let mut login = Command::new(env!("CARGO_BIN_EXE_tokenctl"))
        .args(["--socket-owner", "nobody", "login", "registry"])
        .env("TOKEND_SOCKET", &daemon.socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    provider.approve(&provider.wait_for_user_code()).unwrap();
    assert!(login.wait().unwrap().success());

    // The user's runtime directory as its daemon makes it: the socket in
    // `tokend/` (here a link to the test daemon's).
    let runtime = tempfile::tempdir().unwrap();
    std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(runtime.path().join("tokend")).unwrap();
    std::os::unix::fs::symlink(&daemon.socket, runtime.path().join("tokend/tokend.sock")).unwrap();
    let helper = runtime.path().join("docker-credential-tokend");
    std::os::unix::fs::symlink(nobody.binary("tokenctl"), &helper).unwrap();

    let mut child = nobody
        .command("unshare")
        .args(["--user", "--map-root-user"])
        .arg(&helper)
        .arg("get")
        .env_remove("TOKEND_SOCKET")
        .env("XDG_RUNTIME_DIR", runtime.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"https://ghcr.test")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(provider.is_valid_access_token(answer["Secret"].as_str().unwrap()));
}

/// Two accounts at one registry (a person's and a team's at ghcr.io):
/// both providers may claim its host; the helper that sees both refuses
/// to guess, naming them, and leaves the host out of `list`; installed as
/// `docker-credential-tokend-NAME` (`"tokend-NAME"` in credHelpers), it is
/// provider NAME's, and a registry it does not serve or a mistyped NAME
/// is said.
#[test]
fn two_accounts_at_one_registry_are_named_not_guessed() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&format!(
        "{}{}",
        provider.config_with("mine", "hosts = [\"ghcr.test\", \"mine.test\"]"),
        provider.config_with("team", "hosts = [\"ghcr.test\"]"),
    ));
    let mut tokens = Vec::new();
    for name in ["mine", "team"] {
        tokens.push(login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        }));
    }
    let dir = tempfile::tempdir().unwrap();
    let by_host = helper(dir.path());
    let out = run(&by_host, &daemon, "get", "ghcr.test");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("providers `mine`, `team` all serve ghcr.test"),
        "{}",
        stdout(&out)
    );
    let out = run(&by_host, &daemon, "list", "");
    let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(listed, serde_json::json!({"mine.test": "oauth2"}));
    for (name, token) in ["mine", "team"].iter().zip(&tokens) {
        let named = helper_named(dir.path(), &format!("docker-credential-tokend-{name}"));
        let out = run(&named, &daemon, "get", "ghcr.test");
        assert!(out.status.success(), "{}", stdout(&out));
        let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(answer["Secret"], token.as_str(), "{name}");
    }
    // A registry the named provider does not serve, or a name mistyped in
    // the link, is said (as git's --provider says it): "not found" sent
    // docker on without credentials, to fail with "unauthorized".
    let team = dir.path().join("docker-credential-tokend-team");
    let out = run(&team, &daemon, "get", "mine.test");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out).trim(),
        "provider `team` serves ghcr.test, not mine.test: no token sent (its `hosts` in the config)"
    );
    let typo = helper_named(dir.path(), "docker-credential-tokend-teem");
    let out = run(&typo, &daemon, "get", "ghcr.test");
    assert_eq!(out.status.code(), Some(7));
    assert!(
        stdout(&out).starts_with("no provider named `teem` that you may use"),
        "{}",
        stdout(&out)
    );
}

/// `docker-credential-tokend-NAME` for a provider without `hosts` serves
/// any registry, as the README and the man page say: it was refused as a
/// provider that does not exist (exit 7), the helper having kept only
/// providers with hosts before looking for the name.
#[test]
fn the_named_helper_of_a_provider_without_hosts_serves_any_registry() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    let token = login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let named = helper_named(dir.path(), "docker-credential-tokend-demo");
    let out = run(&named, &daemon, "get", "ghcr.io");
    assert!(out.status.success(), "{}", stdout(&out));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["Secret"], token.as_str());
    assert_eq!(answer["ServerURL"], "ghcr.io");
    // It lists no registry: it has none to list.
    let out = run(&named, &daemon, "list", "");
    assert_eq!(stdout(&out).trim(), "{}");
    // The unnamed helper still finds no provider for a registry none lists.
    let out = run(&helper(dir.path()), &daemon, "get", "ghcr.io");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out).trim(),
        "credentials not found in native keychain"
    );
}

/// Docker drops the helper's stdout for every failure of `get` but "not
/// found", and goes on without credentials: the helper says the others
/// on stderr too, which docker shows (they were on stdout alone, and a
/// person saw "denied" from the registry and nothing naming a logout, a
/// tokend that is down, two providers claiming the registry or a NAME
/// mistyped in the link). stdout is as it was, for podman.
#[test]
fn failures_but_not_found_are_said_on_stderr_too() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&format!(
        "{}{}{}",
        provider.config_with("idle", "hosts = [\"idle.test\"]"),
        provider.config_with("mine", "hosts = [\"shared.test\"]"),
        provider.config_with("team", "hosts = [\"shared.test\"]"),
    ));
    for name in ["mine", "team"] {
        login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let by_host = helper(dir.path());
    let typo = helper_named(dir.path(), "docker-credential-tokend-teem");
    let mut down = Daemon::start(&provider.config_with("gone", "hosts = [\"gone.test\"]"));
    down.stop();
    for (helper, daemon, server, status, said) in [
        (
            &by_host,
            &daemon,
            "idle.test",
            4,
            "run `tokenctl login idle`",
        ),
        (
            &by_host,
            &daemon,
            "shared.test",
            1,
            "providers `mine`, `team` all serve shared.test",
        ),
        (
            &typo,
            &daemon,
            "shared.test",
            7,
            "no provider named `teem` that you may use",
        ),
        (&by_host, &down, "gone.test", 3, "cannot connect to tokend"),
    ] {
        let out = run(helper, daemon, "get", server);
        assert_eq!(
            out.status.code(),
            Some(status),
            "{server}: {}",
            stdout(&out)
        );
        assert!(stdout(&out).contains(said), "{server}: {}", stdout(&out));
        let name = helper.file_name().unwrap().to_string_lossy();
        assert_eq!(
            stderr(&out),
            format!("{name}: {}", stdout(&out)),
            "{server}"
        );
    }
}

/// `docker login REGISTRY` gets the credentials from the helper, has the
/// registry check them, then hands them to `store`: storing what `get`
/// answers now is done already (exit 0, nothing kept), where every
/// `store` was refused and docker took the login for failed. Another
/// secret or user name, or a registry the helper does not answer for, is
/// refused as before.
#[test]
fn store_of_what_get_answers_is_done_already() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&format!(
        "{}{}",
        provider.config_with(
            "registry",
            "hosts = [\"ghcr.test\"]\nusername = \"x-access-token\""
        ),
        provider.config("demo"),
    ));
    let token = login(&daemon, "registry", |code| {
        provider.approve(code).unwrap();
    });
    let demo = login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let by_host = helper(dir.path());
    let store = |helper: &std::path::Path, server: &str, user: &str, secret: &str| {
        let request = serde_json::json!({"ServerURL": server, "Username": user, "Secret": secret});
        run(helper, &daemon, "store", &request.to_string())
    };
    let out = store(&by_host, "ghcr.test", "x-access-token", &token);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(stdout(&out), "");
    let out = store(&by_host, "https://GHCR.test/v2/", "x-access-token", &token);
    assert!(out.status.success(), "{}", stdout(&out));
    // A provider without hosts, through the helper named for it.
    let named = helper_named(dir.path(), "docker-credential-tokend-demo");
    let out = store(&named, "ghcr.io", "oauth2", &demo);
    assert!(out.status.success(), "{}", stdout(&out));
    for (helper, server, user, secret) in [
        (&by_host, "ghcr.test", "x-access-token", "typed-by-hand"),
        (&by_host, "ghcr.test", "someone", token.as_str()),
        (&by_host, "other.test", "x-access-token", token.as_str()),
        (
            &by_host,
            "http://ghcr.test",
            "x-access-token",
            token.as_str(),
        ),
        (&named, "ghcr.io", "oauth2", token.as_str()),
    ] {
        let out = store(helper, server, user, secret);
        assert_eq!(out.status.code(), Some(1), "{server} {user}");
        assert!(stdout(&out).contains("read-only"), "{}", stdout(&out));
    }
    let out = run(&by_host, &daemon, "store", "not json");
    assert_eq!(out.status.code(), Some(1));
}
