//! `tokenctl metrics` and D-Bus `GetMetrics`: valid OpenMetrics text whose
//! counts follow what happened (a login, a refresh, a refused request),
//! and whose provider series a caller sees only for providers it may use.

use crate::support;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, login, stderr, stdout, token};
use support::openmetrics::{Exposition, parse};
use support::other_uid::{NOBODY, OtherUser};
use support::provider::{Provider, fast};

/// `tokenctl metrics` of `daemon`, parsed and validated.
fn metrics(daemon: &Daemon) -> Exposition {
    let out = daemon.tokenctl(&["metrics"]);
    assert!(out.status.success(), "tokenctl metrics: {}", stderr(&out));
    let text = stdout(&out);
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn counts_follow_a_login_a_refresh_and_a_refusal() {
    let provider = Provider::start(fast());
    let daemon = Daemon::start(&provider.config("demo"));
    let before = metrics(&daemon);
    assert_eq!(
        before.value("tokend_sessions", &[("state", "logged_out")]),
        Some(1.0)
    );
    assert_eq!(
        before.value(
            "tokend_logins_total",
            &[("provider", "demo"), ("outcome", "ok")]
        ),
        Some(0.0)
    );
    assert_eq!(before.value("tokend_store_up", &[]), Some(1.0));

    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    // More life than the current token has: a refresh, counted with its latency.
    provider.set_access_token_lifetime(Duration::from_secs(7200));
    token(&daemon, "demo", &["--min-valid", "3700"]);
    let refused = daemon.tokenctl(&["token", "no-such-provider"]);
    assert!(!refused.status.success());

    let after = metrics(&daemon);
    let demo = |outcome| [("provider", "demo"), ("outcome", outcome)];
    assert_eq!(
        after.value("tokend_sessions", &[("state", "active")]),
        Some(1.0)
    );
    assert_eq!(
        after.value("tokend_sessions", &[("state", "logged_out")]),
        Some(0.0)
    );
    assert_eq!(after.value("tokend_logins_total", &demo("ok")), Some(1.0));
    assert_eq!(
        after.value("tokend_refreshes_total", &demo("ok")),
        Some(1.0)
    );
    assert_eq!(
        after.value("tokend_refreshes_total", &demo("transient")),
        Some(0.0)
    );
    let duration = "tokend_refresh_duration_seconds";
    assert_eq!(
        after.value(&format!("{duration}_count"), &[("provider", "demo")]),
        Some(1.0)
    );
    assert!(
        after
            .value(&format!("{duration}_sum"), &[("provider", "demo")])
            .unwrap()
            > 0.0,
        "a refresh over HTTP takes some time"
    );
    let socket = |op, outcome| {
        after.value(
            "tokend_socket_requests_total",
            &[("op", op), ("outcome", outcome)],
        )
    };
    assert_eq!(
        socket("token", "ok"),
        Some(2.0),
        "after the login, and the refreshed one"
    );
    assert_eq!(
        socket("token", "unknown_provider"),
        Some(1.0),
        "the refusal"
    );
    assert_eq!(socket("login", "ok"), Some(1.0));
    assert_eq!(after.value("tokend_store_errors_total", &[]), Some(0.0));
    assert_eq!(after.label_values("provider"), ["demo"]);

    // `--json`: the same samples as JSON objects (the request counters
    // move with the request itself, so they are left out of the match).
    let out = daemon.tokenctl(&["--json", "metrics"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let samples: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let mut matched = 0;
    for sample in &samples {
        let name = sample["name"].as_str().expect("a name");
        if name == "tokend_socket_requests_total" {
            continue;
        }
        let labels: Vec<(&str, &str)> = sample["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
            .collect();
        assert_eq!(
            after.value(name, &labels),
            sample["value"].as_f64(),
            "{sample}"
        );
        matched += 1;
    }
    assert!(matched > 10, "{samples:?}");
}

#[test]
fn a_caller_sees_the_series_of_its_own_providers_only() {
    let Some(nobody) =
        OtherUser::nobody_or_skip("a_caller_sees_the_series_of_its_own_providers_only")
    else {
        return;
    };
    let provider = Provider::rfc8628();
    let config = format!(
        "{}{}{}",
        provider.config("secret-project"),
        provider.config_with("shared", &format!("allow_users = [{NOBODY}]")),
        provider.config("hidden")
    );
    let daemon = reachable_by_nobody(&config);
    login(&daemon, "secret-project", |code| {
        provider.approve(code).unwrap();
    });
    let out = nobody
        .command("tokenctl")
        .arg("--socket")
        .arg(&daemon.socket)
        .arg("metrics")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let seen = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(seen.label_values("provider"), ["shared"]);
    assert!(
        !text.contains("secret-project") && !text.contains("hidden"),
        "{text}"
    );
    // Sessions are counted among its providers only: the active one is not.
    assert_eq!(
        seen.value("tokend_sessions", &[("state", "active")]),
        Some(0.0)
    );
    assert_eq!(
        seen.value("tokend_sessions", &[("state", "logged_out")]),
        Some(1.0)
    );
    // The owner sees all three.
    assert_eq!(
        metrics(&daemon).label_values("provider"),
        ["hidden", "secret-project", "shared"]
    );
}

#[test]
fn get_metrics_over_dbus_with_busctl() {
    let bus = PrivateBus::start();
    let provider = Provider::rfc8628();
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions::on_session_bus(&bus),
    );
    let call = |method: &str| {
        bus.command("busctl")
            .arg(format!("--address={}", bus.address()))
            .args([
                "--json=short",
                "call",
                "org.tokend.Broker1",
                "/org/tokend/Broker1",
            ])
            .args(["org.tokend.Broker1", method])
            .output()
            .unwrap()
    };
    assert!(call("ListProviders").status.success());
    let out = call("GetMetrics");
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["type"], "s");
    let text = answer["data"][0].as_str().unwrap();
    let seen = parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(seen.label_values("provider"), ["demo"]);
    // The call before this one is counted; this one is counted once answered.
    assert_eq!(
        seen.value(
            "tokend_dbus_requests_total",
            &[("method", "ListProviders"), ("outcome", "ok")]
        ),
        Some(1.0)
    );
    drop(daemon);
}

/// A user who keeps asking for what it may not do is refused every time and
/// counted every time, but the log gets a few lines a minute, not one per
/// request (any local user could otherwise flood it).
#[test]
fn a_flood_of_refusals_is_counted_not_all_logged() {
    const ATTEMPTS: u32 = 30;
    let Some(nobody) = OtherUser::nobody_or_skip("a_flood_of_refusals_is_counted_not_all_logged")
    else {
        return;
    };
    let provider = Provider::rfc8628();
    let daemon =
        reachable_by_nobody(&provider.config_with("shared", &format!("allow_users = [{NOBODY}]")));
    for _ in 0..ATTEMPTS {
        let out = nobody
            .command("tokenctl")
            .arg("--socket")
            .arg(&daemon.socket)
            .args(["logout", "shared"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    }
    let counted = metrics(&daemon).value(
        "tokend_socket_requests_total",
        &[("op", "logout"), ("outcome", "access_denied")],
    );
    assert_eq!(counted, Some(f64::from(ATTEMPTS)));
    let logged = daemon
        .log()
        .lines()
        .filter(|l| l.contains("event=\"access_denied\""))
        .count();
    assert_eq!(logged, 10, "{}", daemon.log());
}

/// A daemon serving `providers` whose socket nobody's group may open and
/// reach (the test's directories made searchable); the roles decide the rest.
fn reachable_by_nobody(providers: &str) -> Daemon {
    let daemon = Daemon::start_with(
        providers,
        DaemonOptions {
            daemon_keys: crate::socket::socket_shared_with_nobody(),
            ..DaemonOptions::default()
        },
    );
    for dir in [daemon.dir.path(), daemon.socket.parent().unwrap()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    daemon
}

/// A reload that renames the providers drops the old names' counters: they
/// vanish from the text, and a name added back later starts from zero, as
/// after a restart (a generated config must not leave counters behind for
/// every name it ever had). In the encrypted file store, which keeps a
/// removed provider's session (the memory store forgets it at the reload).
#[test]
fn a_reload_forgets_the_counters_of_removed_providers() {
    let provider = Provider::start(fast());
    let store = crate::support::file_store::FileStore::new();
    let mut daemon = Daemon::start_with(
        &format!("{}{}", provider.config("a"), provider.config("b")),
        store.options(),
    );
    login(&daemon, "a", |code| {
        provider.approve(code).unwrap();
    });
    let logins_of_a = |m: &Exposition| {
        m.value(
            "tokend_logins_total",
            &[("provider", "a"), ("outcome", "ok")],
        )
    };
    assert_eq!(logins_of_a(&metrics(&daemon)), Some(1.0));

    daemon.write_config(&format!("{}{}", provider.config("c"), provider.config("d")));
    daemon.reload();
    assert_eq!(metrics(&daemon).label_values("provider"), ["c", "d"]);

    // Back again (its stored session restored): its old count is gone.
    daemon.write_config(&format!("{}{}", provider.config("a"), provider.config("c")));
    daemon.reload();
    let after = metrics(&daemon);
    assert_eq!(after.label_values("provider"), ["a", "c"]);
    assert_eq!(logins_of_a(&after), Some(0.0));
    assert_eq!(
        after.value("tokend_sessions", &[("state", "active")]),
        Some(1.0),
        "the session itself is kept by the store"
    );
}
