//! `tokenctl credential kubernetes NAME` as kubectl's exec credential
//! plugin: the real `kubectl` authenticates to a loopback stand-in for an
//! API server that accepts only the current token.

use crate::support;

use std::path::Path;
use std::process::Command;

use support::daemon::{Daemon, login, stderr, stdout, token};
use support::provider::Provider;
use support::script_server::ScriptServer;

/// A stand-in API server on https with a new self-signed certificate for
/// 127.0.0.1 in `dir` (kubectl sends no credentials over plain http),
/// accepting only the token in `token_file`.
fn bearer_server(token_file: &Path, dir: &Path) -> ScriptServer {
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(made.status.success(), "{}", stderr(&made));
    ScriptServer::start(
        "bearer_server.py",
        &[token_file.as_os_str(), cert.as_os_str(), key.as_os_str()],
    )
}

#[test]
fn kubectl_authenticates_with_the_providers_token() {
    if support::bus::find_program("kubectl").is_none()
        || support::bus::find_program("openssl").is_none()
    {
        crate::support::skip::say(format_args!(
            "SKIPPED kubectl_authenticates_with_the_providers_token: kubectl or openssl is not installed (apt-get install kubernetes-client openssl)"
        ));
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let token_file = work.path().join("accepted-token");
    std::fs::write(&token_file, "").unwrap();
    let server = bearer_server(&token_file, work.path());
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("cluster"));
    login(&daemon, "cluster", |code| {
        provider.approve(code).unwrap();
    });
    std::fs::write(&token_file, token(&daemon, "cluster", &[])).unwrap();

    let kubeconfig = work.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            r#"apiVersion: v1
kind: Config
clusters:
- name: stub
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {ca}
contexts:
- name: stub
  context:
    cluster: stub
    user: tokend
current-context: stub
users:
- name: tokend
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: {tokenctl}
      args: ["--socket", "{socket}", "credential", "kubernetes", "cluster"]
      interactiveMode: Never
"#,
            port = server.port,
            ca = work.path().join("server.crt").display(),
            tokenctl = env!("CARGO_BIN_EXE_tokenctl"),
            socket = daemon.socket.display(),
        ),
    )
    .unwrap();
    let kubectl = |args: &[&str]| {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .env("HOME", work.path())
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    };
    let out = kubectl(&["get", "--raw", "/version"]);
    assert!(out.status.success(), "kubectl: {}", stderr(&out));
    assert!(
        stdout(&out).contains("v1.28.0-tokend-stub"),
        "{}",
        stdout(&out)
    );

    // A provider it may not have: kubectl fails and says why.
    let bad = std::fs::read_to_string(&kubeconfig)
        .unwrap()
        .replace("\"kubernetes\", \"cluster\"", "\"kubernetes\", \"nope\"");
    std::fs::write(&kubeconfig, bad).unwrap();
    let out = kubectl(&["get", "--raw", "/version"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no provider named `nope`"),
        "{}",
        stderr(&out)
    );
}

/// The plugin's output as kubectl reads it, for both versions.
#[test]
fn the_exec_credential_has_the_version_asked_for_and_an_expiry() {
    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("cluster"));
    login(&daemon, "cluster", |code| {
        provider.approve(code).unwrap();
    });
    for (info, version) in [
        (None, "client.authentication.k8s.io/v1"),
        (
            Some(
                r#"{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","spec":{"interactive":false}}"#,
            ),
            "client.authentication.k8s.io/v1beta1",
        ),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tokenctl"));
        command
            .arg("--socket")
            .arg(&daemon.socket)
            .args(["credential", "kubernetes", "cluster"]);
        match info {
            Some(info) => command.env("KUBERNETES_EXEC_INFO", info),
            None => command.env_remove("KUBERNETES_EXEC_INFO"),
        };
        let out = command.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let credential: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(credential["apiVersion"], version);
        assert_eq!(credential["kind"], "ExecCredential");
        assert!(provider.is_valid_access_token(credential["status"]["token"].as_str().unwrap()));
        let expiry = credential["status"]["expirationTimestamp"]
            .as_str()
            .unwrap();
        assert!(expiry.ends_with('Z') && expiry.contains('T'), "{expiry}");
    }
}
