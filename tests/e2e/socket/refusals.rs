//! How refused callers are logged: a few lines a minute per uid, so that
//! one user asking in a loop does not hide another's refusals.

use std::os::unix::process::CommandExt as _;

use super::shared_with_nobody;
use crate::support;
use support::daemon::stderr;
use support::other_uid::{NOBODY, OtherUser};
use support::provider::Provider;

/// Refusal lines logged per uid and minute (README "Who may have a token").
const LINES_PER_MINUTE: usize = 10;

/// A uid with no account and no role, in nobody's group (which may open
/// the socket): another local user, as far as tokend can tell.
const STRANGER: u32 = 65533;

#[test]
fn one_users_loop_does_not_hide_another_users_refusal() {
    let Some(nobody) =
        OtherUser::nobody_or_skip("one_users_loop_does_not_hide_another_users_refusal")
    else {
        return;
    };
    let provider = Provider::rfc8628();
    let daemon = shared_with_nobody(&provider);
    let refused_as = |uid: u32| {
        let out = std::process::Command::new(nobody.binary("tokenctl"))
            .uid(uid)
            .gid(NOBODY)
            .arg("--socket")
            .arg(&daemon.socket)
            .args(["token", "mine"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    };
    // nobody asks in a loop: more than a minute's worth of lines.
    let flood = LINES_PER_MINUTE + 5;
    for _ in 0..flood {
        refused_as(NOBODY);
    }
    let logged_for = |uid: u32| {
        daemon
            .log()
            .lines()
            .filter(|l| l.contains("refused a caller") && l.contains(&format!("uid={uid}")))
            .count()
    };
    assert_eq!(logged_for(NOBODY), LINES_PER_MINUTE, "{}", daemon.log());
    // Another user's refusal in the same minute is still logged.
    refused_as(STRANGER);
    assert_eq!(logged_for(STRANGER), 1, "{}", daemon.log());
}
