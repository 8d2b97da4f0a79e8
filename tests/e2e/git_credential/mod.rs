//! `tokenctl credential git` with the real `git`: `git credential fill`
//! picks the provider by host, `git ls-remote` authenticates to a loopback
//! smart-HTTP server (`git http-backend` behind Basic auth that accepts
//! only the current token), and `git credential reject` makes tokend renew
//! the refused token.

use crate::support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::daemon::{Daemon, login, stderr, stdout, token};
use support::provider::Provider;
use support::script_server::ScriptServer;

mod hosts;

/// `git ARGS` with no user or system config, no prompts, and tokenctl as
/// its only credential helper.
fn git(home: &Path, daemon: &Daemon, args: &[&str], stdin: &str) -> Output {
    git_with_helper(home, daemon, "", args, stdin)
}

/// [`git`] with `helper_args` after the helper's `credential git`.
fn git_with_helper(
    home: &Path,
    daemon: &Daemon,
    helper_args: &str,
    args: &[&str],
    stdin: &str,
) -> Output {
    let helper = format!(
        "!{} --socket {} credential git {helper_args}",
        env!("CARGO_BIN_EXE_tokenctl"),
        daemon.socket.display()
    );
    let mut child = Command::new("git")
        .arg("-c")
        .arg(format!("credential.helper={helper}"))
        .args(args)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A loopback forge serving `project.git` (see `git_server.py`), in a
/// work directory with an empty `home` for git.
struct Forge {
    work: tempfile::TempDir,
    /// The token the server accepts now.
    token_file: std::path::PathBuf,
    /// Kept for the server's life.
    _server: ScriptServer,
    /// `127.0.0.1:PORT`.
    host: String,
}

impl Forge {
    /// `scheme`: "basic" or "bearer", the one the server takes.
    fn start(scheme: &str) -> Self {
        let work = tempfile::tempdir().unwrap();
        let repos = work.path().join("repos");
        std::fs::create_dir_all(work.path().join("home")).unwrap();
        let made = Command::new("git")
            .args(["init", "--quiet", "--bare", "-b", "main"])
            .arg(repos.join("project.git"))
            .status()
            .unwrap();
        assert!(made.success());
        let token_file = work.path().join("accepted-token");
        std::fs::write(&token_file, "").unwrap();
        let server = ScriptServer::start(
            "git_server.py",
            &[
                repos.as_os_str(),
                token_file.as_os_str(),
                std::ffi::OsStr::new(scheme),
            ],
        );
        let host = format!("127.0.0.1:{}", server.port);
        Self {
            work,
            token_file,
            _server: server,
            host,
        }
    }

    fn home(&self) -> std::path::PathBuf {
        self.work.path().join("home")
    }

    fn accept(&self, token: &str) {
        std::fs::write(&self.token_file, token).unwrap();
    }
}

#[test]
fn git_gets_the_token_of_the_provider_serving_the_host() {
    let forge = Forge::start("basic");
    let (home, token_file, forge_host) = (forge.home(), &forge.token_file, &forge.host);

    let provider = Provider::rfc8628();
    let config = format!(
        "{}{}",
        provider.config_with(
            "forge",
            &format!(
                "hosts = [\"{forge_host}\", \"Forge.Test\"]\ngit_username = \"x-access-token\""
            )
        ),
        provider.config_with("other", "hosts = [\"other.test\"]"),
    );
    let daemon = Daemon::start(&config);
    login(&daemon, "forge", |code| {
        provider.approve(code).unwrap();
    });

    // `git credential fill`: the provider by host (case does not matter),
    // its git user name, a token that is valid.
    let out = git(
        &home,
        &daemon,
        &["credential", "fill"],
        "protocol=https\nhost=forge.test\n\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let filled = stdout(&out);
    assert!(filled.contains("username=x-access-token\n"), "{filled}");
    let password = filled
        .lines()
        .find_map(|l| l.strip_prefix("password="))
        .expect("a password line");
    assert!(provider.is_valid_access_token(password), "{filled}");

    // A host no provider serves: the helper answers nothing, so git goes
    // on (here: to a prompt, which is off) and fails without a password.
    let out = git(
        &home,
        &daemon,
        &["credential", "fill"],
        "protocol=https\nhost=nowhere.test\n\n",
    );
    assert!(!out.status.success());
    assert!(!stdout(&out).contains("password="), "{}", stdout(&out));
    // Plain http to a host that is not loopback: refused, named.
    let out = git(
        &home,
        &daemon,
        &["credential", "fill"],
        "protocol=http\nhost=forge.test\n\n",
    );
    assert!(!stdout(&out).contains("password="));
    assert!(
        stderr(&out).contains("refusing to send a token over plain http"),
        "{}",
        stderr(&out)
    );
    // Plain http to a host no provider serves: no answer and no word, as
    // for any host none serves (git goes on to its other helpers).
    let out = git(
        &home,
        &daemon,
        &["credential", "fill"],
        "protocol=http\nhost=intranet.test\n\n",
    );
    assert!(!stdout(&out).contains("password="));
    assert!(!stderr(&out).contains("tokenctl"), "{}", stderr(&out));

    // A real clone-side operation against the server, which accepts only
    // the current token.
    let current = token(&daemon, "forge", &[]);
    std::fs::write(token_file, &current).unwrap();
    let url = format!("http://{forge_host}/project.git");
    let out = git(&home, &daemon, &["ls-remote", &url], "");
    assert!(out.status.success(), "ls-remote: {}", stderr(&out));

    // git says the token was refused: tokend renews it.
    let refreshes = provider.refresh_count();
    let reject = format!(
        "protocol=http\nhost={forge_host}\nusername=x-access-token\npassword={current}\n\n"
    );
    let out = git(&home, &daemon, &["credential", "reject"], &reject);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        provider.refresh_count(),
        refreshes + 1,
        "no refresh after erase"
    );
    let renewed = token(&daemon, "forge", &[]);
    assert_ne!(renewed, current);
    // Another git that saw the same refusal causes no second refresh.
    let out = git(&home, &daemon, &["credential", "reject"], &reject);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        provider.refresh_count(),
        refreshes + 1,
        "a second refresh for one refusal"
    );
    // The server now wants the new token; git gets it from the helper.
    std::fs::write(token_file, &renewed).unwrap();
    let out = git(&home, &daemon, &["ls-remote", &url], "");
    assert!(
        out.status.success(),
        "ls-remote after renewal: {}",
        stderr(&out)
    );
}

/// A forge that takes only Bearer tokens (its challenge says Bearer alone):
/// the helper answers git (2.46 or later) with `authtype=Bearer` by default,
/// and a refused Bearer token comes back as `credential=` and is renewed.
/// `git_auth = "basic"` keeps Basic (refused there); `git_auth = "bearer"`
/// with a git that cannot send Bearer is an error that says so.
#[test]
fn a_forge_that_takes_only_bearer_gets_a_bearer_token() {
    let forge = Forge::start("bearer");
    let provider = Provider::rfc8628();
    let port = forge.host.rsplit_once(':').unwrap().1;
    let config = format!(
        "{}{}{}",
        provider.config_with("forge", &format!("hosts = [\"{}\"]", forge.host)),
        provider.config_with(
            "basic",
            &format!("hosts = [\"localhost:{port}\"]\ngit_auth = \"basic\"")
        ),
        provider.config_with("forced", "hosts = [\"forced.test\"]\ngit_auth = \"bearer\""),
    );
    let daemon = Daemon::start(&config);
    for name in ["forge", "basic", "forced"] {
        login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        });
    }
    let home = forge.home();
    let url = format!("http://{}/project.git", forge.host);
    let current = token(&daemon, "forge", &[]);
    forge.accept(&current);
    let out = git(&home, &daemon, &["ls-remote", &url], "");
    assert!(out.status.success(), "ls-remote: {}", stderr(&out));

    // Refused (the server wants another token now): git erases the Bearer
    // credential, tokend renews it, and git's next try gets the new one.
    forge.accept("not-the-current-token");
    let refreshes = provider.refresh_count();
    let out = git(&home, &daemon, &["ls-remote", &url], "");
    assert!(!out.status.success());
    assert_eq!(provider.refresh_count(), refreshes + 1, "no renewal");
    let renewed = token(&daemon, "forge", &[]);
    assert_ne!(renewed, current);
    forge.accept(&renewed);
    let out = git(&home, &daemon, &["ls-remote", &url], "");
    assert!(out.status.success(), "ls-remote: {}", stderr(&out));
    for token in [&current, &renewed] {
        assert!(!stderr(&out).contains(token.as_str()), "{}", stderr(&out));
    }
    // The renewed token refused too, soon: the server refuses this
    // provider's tokens, which a refresh does not mend. No refresh for a
    // minute, and said at once (it was said only at the next replacement,
    // a minute later at the soonest, or never).
    forge.accept("still-not-the-current-token");
    let refreshes = provider.refresh_count();
    let out = git(&home, &daemon, &["ls-remote", &url], "");
    assert!(!out.status.success());
    assert_eq!(
        provider.refresh_count(),
        refreshes,
        "replaced again at once"
    );
    let log = daemon.log();
    assert!(
        log.contains("event=\"refused_again\"") && log.contains("handed out as it is"),
        "{log}"
    );

    // Basic, as configured: refused by this forge.
    forge.accept(&token(&daemon, "basic", &[]));
    let basic_url = format!("http://localhost:{port}/project.git");
    let out = git(&home, &daemon, &["ls-remote", &basic_url], "");
    assert!(!out.status.success(), "Basic was taken");

    // Bearer asked for, and a caller that cannot take it.
    let out = helper_get(&daemon, "protocol=https\nhost=forced.test\n\n");
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("needs git 2.46 or later"),
        "{}",
        stderr(&out)
    );
    let out = helper_get(
        &daemon,
        "capability[]=authtype\nprotocol=https\nhost=forced.test\n\n",
    );
    let answer = stdout(&out);
    assert!(
        answer.starts_with("capability[]=authtype\nauthtype=Bearer\ncredential=")
            && answer.contains("ephemeral=1\n")
            && !answer.contains("password="),
        "{answer}"
    );
}

/// `tokenctl credential git get` itself, `request` on its stdin.
fn helper_get(daemon: &Daemon, request: &str) -> Output {
    helper_get_as(daemon, None, request)
}

/// [`helper_get`] with `--provider NAME` when `named`.
fn helper_get_as(daemon: &Daemon, named: Option<&str>, request: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokenctl"));
    command
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["credential", "git"]);
    if let Some(name) = named {
        command.args(["--provider", name]);
    }
    let mut child = command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(request.as_bytes());
    child.wait_with_output().unwrap()
}

/// A person whose `git` waits on a slow refresh is told why, once, on the
/// terminal git shares with its helper (a pty, from `script`); with stderr
/// on a pipe, where scripts read it, nothing is said.
#[test]
fn a_slow_refresh_is_explained_on_a_terminal_only() {
    use tokend_emulator::{Endpoint, Fault};
    let provider = Provider::rfc8628();
    // Two forges: a refusal of the token a refusal's refresh brought
    // waits a minute for the next (see git's `erase` in the README), so
    // each part refuses a token of its own forge.
    let daemon = Daemon::start(&format!(
        "{}{}",
        provider.config_with("forge", "hosts = [\"forge.test\"]"),
        provider.config_with("smith", "hosts = [\"smith.test\"]")
    ));
    for name in ["forge", "smith"] {
        login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        });
    }
    let work = tempfile::tempdir().unwrap();
    let helper = format!(
        "!{} --socket {} credential git",
        env!("CARGO_BIN_EXE_tokenctl"),
        daemon.socket.display()
    );
    let notice = "no token of `forge` yet after 3 s";

    // On a terminal: git rejects the token, the helper waits for the
    // refresh (answered after 5 s) and says why meanwhile.
    let refused = token(&daemon, "forge", &[]);
    provider.inject(Endpoint::Token, Fault::Delay(Duration::from_secs(5)), 1);
    let command = "printf 'protocol=https\\nhost=forge.test\\nusername=oauth2\\npassword=%s\\n\\n' \
                   \"$REFUSED\" | git -c \"credential.helper=$HELPER\" credential reject";
    let output = Command::new("script")
        .args(["--quiet", "--return", "--command", command, "/dev/null"])
        .env("REFUSED", &refused)
        .env("HELPER", &helper)
        .env("HOME", work.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("TERM", "dumb")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert_eq!(screen.matches(notice).count(), 1, "{screen}");
    assert!(!screen.contains(&refused), "{screen}");
    assert_ne!(token(&daemon, "forge", &[]), refused);

    // On a pipe: the same wait, not a word.
    let refused = token(&daemon, "smith", &[]);
    provider.inject(Endpoint::Token, Fault::Delay(Duration::from_secs(5)), 1);
    let reject =
        format!("protocol=https\nhost=smith.test\nusername=oauth2\npassword={refused}\n\n");
    let out = git(work.path(), &daemon, &["credential", "reject"], &reject);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("no token of"), "{}", stderr(&out));
    assert_ne!(token(&daemon, "smith", &[]), refused);
}
