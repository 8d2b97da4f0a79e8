//! The real `docker` CLI with the helper in its `credHelpers`, talking to
//! a stand-in for the Docker daemon (`support/docker_daemon.py`) that
//! records the credentials the CLI hands it: what a person sees on the
//! terminal, and what docker sends, when the helper answers or fails.
//! Skipped, said so, where no `docker` program is installed.

use super::*;

use std::path::{Path, PathBuf};

use support::script_server::ScriptServer;

/// `docker` with a config of its own naming helpers for some registries,
/// and a stand-in daemon.
struct DockerCli {
    /// The config directory (`DOCKER_CONFIG`), which holds the helpers'
    /// links too (first on `PATH`).
    dir: tempfile::TempDir,
    /// The stand-in's record of requests.
    log: PathBuf,
    /// Kept for the stand-in's life.
    _daemon: ScriptServer,
    /// `tcp://127.0.0.1:PORT`.
    host: String,
}

impl DockerCli {
    /// `None`, the test said skipped, when there is no `docker` program.
    fn start(test: &str, cred_helpers: &serde_json::Value) -> Option<Self> {
        let found = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("docker").is_file()));
        if !found {
            support::skip::say(format!("SKIPPED {test}: no docker program on PATH"));
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({ "credHelpers": cred_helpers });
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        helper(dir.path());
        let log = dir.path().join("requests.log");
        std::fs::write(&log, "").unwrap();
        let daemon = ScriptServer::start("docker_daemon.py", &[log.as_os_str()]);
        let host = format!("tcp://127.0.0.1:{}", daemon.port);
        Some(Self {
            dir,
            log,
            _daemon: daemon,
            host,
        })
    }

    /// Links `docker-credential-tokend-NAME` beside the helper.
    fn link_named(&self, name: &str) {
        helper_named(self.dir.path(), &format!("docker-credential-tokend-{name}"));
    }

    /// `docker ARGS`, its helpers reaching tokend at `socket`, with no
    /// terminal (as a script or CI runs it).
    fn run(&self, socket: &Path, args: &[&str]) -> Output {
        let path = std::env::join_paths(
            std::iter::once(self.dir.path().to_owned())
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
        )
        .unwrap();
        Command::new("docker")
            .args(args)
            .env("PATH", path)
            .env("DOCKER_CONFIG", self.dir.path())
            .env("DOCKER_HOST", &self.host)
            .env("HOME", self.dir.path())
            .env("TOKEND_SOCKET", socket)
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The credentials the last request of `path_part` carried.
    fn last_auth(&self, path_part: &str) -> serde_json::Value {
        let log = std::fs::read_to_string(&self.log).unwrap();
        let request: serde_json::Value = log
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .rfind(|r| r["path"].as_str().unwrap().contains(path_part))
            .unwrap_or_else(|| panic!("no request to {path_part}: {log}"));
        request["auth"].clone()
    }
}

/// Docker reads the helper's stdout only to tell "not found" from the
/// rest; the text of any other failure of `get` it drops, and it goes on
/// without credentials (`X-Registry-Auth: {}`): a logged-out provider,
/// tokend down, two providers claiming the registry or a mistyped NAME in
/// the link left a person with "denied" from the registry and not a word
/// of why. The helper says them on stderr, which docker passes through.
#[test]
fn docker_shows_why_the_helper_sent_no_token() {
    let test = "docker_shows_why_the_helper_sent_no_token";
    let Some(docker) = DockerCli::start(
        test,
        &serde_json::json!({
            "ghcr.test": "tokend",
            "idle.test": "tokend",
            "shared.test": "tokend",
            "other.test": "tokend",
            "typo.test": "tokend-teem",
        }),
    ) else {
        return;
    };
    docker.link_named("teem");
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&format!(
        "{}{}{}{}",
        provider.config_with(
            "registry",
            "hosts = [\"ghcr.test\"]\nusername = \"x-access-token\""
        ),
        provider.config_with("idle", "hosts = [\"idle.test\"]"),
        provider.config_with("mine", "hosts = [\"shared.test\"]"),
        provider.config_with("team", "hosts = [\"shared.test\"]"),
    ));
    let mut token = String::new();
    for name in ["registry", "mine", "team"] {
        let got = login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        });
        if name == "registry" {
            token = got;
        }
    }

    // Answered: docker hands the daemon the token.
    let out = docker.run(&daemon.socket, &["pull", "ghcr.test/org/image"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let auth = docker.last_auth("fromImage=ghcr.test");
    assert_eq!(auth["username"], "x-access-token", "{auth}");
    assert_eq!(auth["password"], token.as_str());

    let tokend_down = daemon.socket.with_file_name("no-such.sock");
    for (image, socket, said) in [
        ("idle.test/img", &daemon.socket, "tokenctl login idle"),
        (
            "shared.test/img",
            &daemon.socket,
            "providers `mine`, `team` all serve shared.test",
        ),
        (
            "typo.test/img",
            &daemon.socket,
            "no provider named `teem` that you may use",
        ),
        ("ghcr.test/img", &tokend_down, "cannot connect to tokend"),
    ] {
        let out = docker.run(socket, &["pull", image]);
        let err = stderr(&out);
        // The stand-in pulls anyway; a registry would say "denied".
        let host = image.split('/').next().unwrap();
        assert_eq!(
            docker.last_auth(&format!("fromImage={host}")),
            serde_json::json!({}),
            "{image}"
        );
        assert!(err.contains("docker-credential-tokend"), "{image}: {err}");
        assert!(err.contains(said), "{image}: {err}");
    }

    // Not found is docker's to say (or not): nothing on stderr.
    let out = docker.run(&daemon.socket, &["pull", "other.test/img"]);
    assert!(!stderr(&out).contains("tokend"), "{}", stderr(&out));
}

/// `docker login REGISTRY` with no user name or password gets the
/// credentials from the helper, has the daemon check them, then stores
/// them through the helper: its refusal of every `store` made each such
/// login fail ("Cannot perform an interactive login from a non TTY
/// device", or a prompt) though the helper works. Storing what `get`
/// answers is done already; `docker logout` does not stop the helper.
#[test]
fn docker_login_with_the_helpers_credentials_succeeds() {
    let test = "docker_login_with_the_helpers_credentials_succeeds";
    let Some(docker) = DockerCli::start(test, &serde_json::json!({"ghcr.test": "tokend"})) else {
        return;
    };
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config_with(
        "registry",
        "hosts = [\"ghcr.test\"]\nusername = \"x-access-token\"",
    ));
    let token = login(&daemon, "registry", |code| {
        provider.approve(code).unwrap();
    });
    let out = docker.run(&daemon.socket, &["login", "ghcr.test"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Login Succeeded"), "{}", stdout(&out));
    let auth = docker.last_auth("/auth");
    assert_eq!(auth["password"], token.as_str(), "{auth}");

    // Another password is not stored: refused, said once (docker shows
    // the helper's stdout for a failed `store`).
    let out = docker.run(
        &daemon.socket,
        &["login", "-u", "x-access-token", "-p", "typed", "ghcr.test"],
    );
    assert!(!out.status.success());
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(said.matches("is read-only").count(), 1, "{said}");

    let out = docker.run(&daemon.socket, &["logout", "ghcr.test"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = docker.run(&daemon.socket, &["pull", "ghcr.test/img"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        docker.last_auth("fromImage=ghcr.test")["password"],
        token.as_str()
    );
}
