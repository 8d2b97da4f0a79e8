//! The all-clear: `refresh_recovered` after `refresh_failed`.

use super::*;

/// The provider goes down and the background refresh fails
/// (`refresh_failed`); it comes back and the next refresh works: the
/// program hears that too (`refresh_recovered`, with how many failed), so
/// a pager alerted by the failure is cleared (it was told of failures
/// only, and never of their end).
#[test]
fn a_refresh_that_works_after_failures_is_the_all_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, reader) = hook_in(dir.path());
    let provider = Provider::start(Rfc8628Options {
        interval: Duration::from_secs(1),
        access_token_lifetime: Duration::from_secs(3),
        ..Rfc8628Options::default()
    });
    let daemon = Daemon::start_with(&provider.config("demo"), with_hook(&hook));
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    reader.wait_for("logged_in demo");
    provider.set_unavailable(true);
    reader.wait_for("refresh_failed demo");
    provider.set_unavailable(false);
    reader.wait_for("refresh_recovered demo");
    let env = std::fs::read_to_string(dir.path().join("env.refresh_recovered")).unwrap();
    assert!(
        env.contains("EVENT=refresh_recovered\n")
            && env.contains("PROVIDER=demo\n")
            && env.contains("REASON=refreshed after "),
        "{env}"
    );
    drop(daemon);
}
