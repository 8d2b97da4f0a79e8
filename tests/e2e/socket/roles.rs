//! What another uid may do over the socket, by its role on each provider
//! (none, `allow_users`, `manage_users`), and what a use-only user is told
//! of a login it may not do: someone who manages the provider must, and a
//! pending login's code is not shown to it.

use super::*;
use crate::support::daemon::stdout;

/// Another uid, as the kernel's SO_PEERCRED names it, over the socket: with
/// no role on a provider it learns nothing of it (the answer of an unknown
/// provider); with `allow_users` it gets tokens and status but may not log
/// in or out; with `manage_users` it may. Needs root (to run `tokenctl` as
/// another user); the rule itself is unit-tested in `broker::policy`.
#[test]
fn another_uid_sees_and_does_only_what_its_role_allows() {
    let Some(nobody) =
        OtherUser::nobody_or_skip("another_uid_sees_and_does_only_what_its_role_allows")
    else {
        return;
    };
    let provider = Provider::rfc8628();
    let daemon = shared_with_nobody(&provider);
    let as_nobody = |args: &[&str]| {
        nobody
            .command("tokenctl")
            .arg("--socket")
            .arg(&daemon.socket)
            .args(args)
            .output()
            .unwrap()
    };
    // No role: every verb answers as for a provider that does not exist,
    // and no answer names it.
    for verb in [
        &["token", "mine"][..],
        &["status", "mine"],
        &["login", "mine"],
        &["login", "mine", "--cancel"],
        &["logout", "mine"],
    ] {
        let out = as_nobody(verb);
        assert_eq!(out.status.code(), Some(7), "{verb:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("no provider named `mine`"), "{err}");
        assert!(
            !err.contains("allow_users") && !err.contains("not allowed"),
            "{err}"
        );
    }
    let unknown = stderr(&as_nobody(&["token", "nonexistent"]));
    let none_role = stderr(&as_nobody(&["token", "mine"]));
    assert_eq!(
        none_role.replace("`mine`", "`X`"),
        unknown.replace("`nonexistent`", "`X`"),
        "a provider without a role looks exactly like one that does not exist"
    );
    // Use: tokens and status, not login or logout.
    let allowed = as_nobody(&["token", "shared"]);
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    assert!(provider.is_valid_access_token(stdout(&allowed).trim()));
    let status = as_nobody(&["--json", "status"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    let names: Vec<&str> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["delegated", "shared"]);
    for verb in [
        &["login", "shared", "--no-wait"][..],
        &["login", "shared", "--cancel"],
        &["logout", "shared"],
    ] {
        let out = as_nobody(verb);
        assert_eq!(out.status.code(), Some(5), "{verb:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("may use it but not log in or out"),
            "{}",
            stderr(&out)
        );
    }
    assert!(
        daemon.tokenctl(&["token", "shared"]).status.success(),
        "still logged in"
    );
    // Manage: the login prompt is shown to it.
    let prompt = as_nobody(&["--json", "login", "delegated", "--no-wait"]);
    assert!(prompt.status.success(), "{}", stderr(&prompt));
    assert!(
        stdout(&prompt).contains("\"user_code\""),
        "{}",
        stdout(&prompt)
    );
    assert!(daemon.log().contains("refused a caller"));
    // A login root starts for `shared`: its code is in root's status, not
    // in the status a use-only user sees.
    let started = daemon.tokenctl(&["--json", "login", "shared", "--no-wait"]);
    let prompt: serde_json::Value =
        serde_json::from_str(stdout(&started).lines().next().expect("a prompt line")).unwrap();
    let code = prompt["user_code"].as_str().expect("a user code");
    assert!(stdout(&daemon.tokenctl(&["--json", "status", "shared"])).contains(code));
    let seen = as_nobody(&["--json", "status", "shared"]);
    assert!(seen.status.success(), "{}", stderr(&seen));
    assert!(!stdout(&seen).contains(code), "{}", stdout(&seen));
    a_use_only_user_is_told_what_it_can_do(&provider, &daemon, &as_nobody);
    a_use_only_user_is_not_shown_a_pending_code(&daemon, &as_nobody);
}

/// The provider ends the session: the use-only user's status says a login
/// is required and that someone who manages the provider must log in, not
/// to log in itself (which it may not); root's says to log in.
fn a_use_only_user_is_told_what_it_can_do(
    provider: &Provider,
    daemon: &Daemon,
    as_nobody: &dyn Fn(&[&str]) -> std::process::Output,
) {
    provider.revoke_all();
    provider.set_access_token_lifetime(std::time::Duration::from_secs(7200));
    let refused = daemon.tokenctl(&["token", "shared", "--min-valid", "3700"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    let last_error = |out: std::process::Output| {
        let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        status[0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let for_root = last_error(daemon.tokenctl(&["--json", "status", "shared"]));
    assert!(
        for_root.ends_with("— run `tokenctl login shared`"),
        "{for_root}"
    );
    let for_user = last_error(as_nobody(&["--json", "status", "shared"]));
    assert!(
        for_user.ends_with("— someone who manages it must run `tokenctl login shared`"),
        "{for_user}"
    );
}

/// Logged out with a login pending: a token request says "login
/// required", with the code to enter for root, without it for the use-only
/// user of `shared` (who could otherwise approve it with their own account
/// and so own the provider), and with advice that user can follow.
fn a_use_only_user_is_not_shown_a_pending_code(
    daemon: &Daemon,
    as_nobody: &dyn Fn(&[&str]) -> std::process::Output,
) {
    assert!(daemon.tokenctl(&["logout", "shared"]).status.success());
    let started = daemon.tokenctl(&["--json", "login", "shared", "--no-wait"]);
    let prompt: serde_json::Value =
        serde_json::from_str(stdout(&started).lines().next().expect("a prompt line")).unwrap();
    let code = prompt["user_code"].as_str().expect("a user code");
    let for_root = daemon.tokenctl(&["token", "shared"]);
    assert_eq!(for_root.status.code(), Some(4), "{}", stderr(&for_root));
    assert!(
        stderr(&for_root).contains(&format!("a login is pending: enter code {code}")),
        "{}",
        stderr(&for_root)
    );
    let for_user = as_nobody(&["token", "shared"]);
    assert_eq!(for_user.status.code(), Some(4), "{}", stderr(&for_user));
    let said = stderr(&for_user);
    assert!(!said.contains(code), "{said}");
    assert!(
        said.contains(
            "(a login is pending) — someone who manages it must run `tokenctl login shared`"
        ),
        "{said}"
    );
    // A monitor's check does not say the login waits for the provider
    // (it said "asks the provider for its code": its code was hidden, not
    // missing), nor shows the code.
    let check = stdout(&as_nobody(&["status", "--check"]));
    assert!(
        check.contains("shared: a login is pending: it asks the provider for its code, or waits for approval by someone who manages the provider"),
        "{check}"
    );
    assert!(!check.contains(code), "{check}");
}
