//! Calls: a device login and a token over `busctl`, errors by name, and
//! the README's Python example.

use super::*;

#[test]
fn login_over_busctl_then_get_token() {
    let setup = start(fast(), &["demo"]);
    let mut monitor = setup.monitor();
    let out = setup.busctl(&["Login", "s", "demo"]);
    let fields = busctl_strings(&out);
    let (user_code, uri, complete) = (&fields[0], &fields[1], &fields[2]);
    assert_eq!(uri, setup.provider.verification_uri().as_str());
    assert!(complete.contains(user_code.as_str()));
    monitor.wait_for("org.tokend.Broker1.LoginPrompt ('demo'");
    setup.provider.approve(user_code).unwrap();
    let lines = monitor.wait_for_all(&[
        "org.tokend.Broker1.LoginFinished",
        "org.tokend.Broker1.TokenRefreshed",
    ]);
    let (finished, refreshed) = (&lines[0], &lines[1]);
    assert!(finished.contains("('demo', true,"), "{finished}");
    assert!(refreshed.contains("'demo'"), "{refreshed}");

    let fields = busctl_strings(&setup.busctl(&["GetToken", "s", "demo"]));
    assert!(
        setup.provider.is_valid_access_token(&fields[0]),
        "the provider refuses the token"
    );
    // Never a token in a signal.
    assert!(!finished.contains(&fields[0]) && !refreshed.contains(&fields[0]));

    let out = setup.gdbus(
        "/org/tokend/Broker1",
        "org.tokend.Broker1.ListProviders",
        &[],
    );
    assert_eq!(text(&out.stdout).trim(), "(['demo', 'sync'],)");
    let out = setup.gdbus(
        "/org/tokend/Broker1",
        "org.tokend.Broker1.Logout",
        &["demo"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = setup.gdbus(
        "/org/tokend/Broker1",
        "org.tokend.Broker1.GetToken",
        &["demo"],
    );
    assert!(
        text(&out.stderr).contains("org.tokend.Error.LoginRequired"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn errors_are_named_and_change_nothing() {
    let setup = start(fast(), &["demo"]);
    let long = "x".repeat(300);
    for (args, error) in [
        (
            vec!["nope"],
            "org.tokend.Error.UnknownProvider: no provider named `nope`",
        ),
        (vec![""], "org.tokend.Error.InvalidArgument"),
        (vec![long.as_str()], "org.tokend.Error.InvalidArgument"),
        (
            vec!["demo"],
            "org.tokend.Error.LoginRequired: provider `demo`: login required",
        ),
    ] {
        let out = setup.gdbus("/org/tokend/Broker1", "org.tokend.Broker1.GetToken", &args);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains(error),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = setup.gdbus(
        "/org/tokend/Broker1",
        "org.tokend.Broker1.GetTokenMinValid",
        &["demo", "4000000000"],
    );
    assert!(
        text(&out.stderr).contains("org.tokend.Error.InvalidArgument"),
        "{}",
        text(&out.stderr)
    );
    let out = setup.gdbus("/org/tokend/Broker1", "org.tokend.Broker1.Login", &["nope"]);
    assert!(text(&out.stderr).contains("org.tokend.Error.UnknownProvider"));
    // A name with a newline and a terminal escape comes back escaped.
    let out = setup.gdbus(
        "/org/tokend/Broker1",
        "org.tokend.Broker1.GetToken",
        &["a\nb\u{1b}[31mred"],
    );
    let err = text(&out.stderr);
    assert!(err.contains("UnknownProvider"), "{err}");
    assert!(!err.contains('\u{1b}') && err.contains("a\\nb"), "{err}");
    // A method the provider's interface does not have: the interface is
    // there, the method is not.
    let out = setup.gdbus(
        "/org/tokend/Broker1/providers/demo",
        "org.tokend.Provider1.Foo",
        &[],
    );
    assert!(
        text(&out.stderr).contains("org.freedesktop.DBus.Error.UnknownMethod"),
        "{}",
        text(&out.stderr)
    );
    // Nothing was started by the bad calls.
    assert!(setup.provider.requests().is_empty());
}

/// Calls addressed wrongly get the standard error that names what is
/// wrong: `Set` of a property that is there is read-only, of one that is
/// not is unknown (it was "read-only" too); `Peer.Ping` is answered at any
/// path, as the specification has it (it was "no object"); a call naming
/// no interface, of a member no interface has, is an unknown method (it
/// was "no interface " with a blank name: jeepney and raw bindings send
/// such calls); a name in `Get`'s or `GetAll`'s arguments is shown
/// escaped and cut (it was echoed whole and raw).
#[test]
fn wrongly_addressed_calls_get_the_error_that_names_the_problem() {
    let setup = start(fast(), &["demo"]);
    let busctl = |args: &[&str]| setup.busctl_any(args);
    let set = |interface: &str, property: &str| {
        busctl(&[
            "set-property",
            "org.tokend.Broker1",
            "/org/tokend/Broker1/providers/demo",
            interface,
            property,
            "s",
            "x",
        ])
    };
    let err = text(&set("org.tokend.Provider1", "State").stderr);
    assert!(err.contains("read-only"), "{err}");
    let err = text(&set("org.tokend.Provider1", "Nope").stderr);
    assert!(err.contains("has no property Nope"), "{err}");
    let err = text(&set("org.tokend.Nope", "State").stderr);
    assert!(err.contains("org.tokend.Nope"), "{err}");
    // Names in a call's arguments are the caller's own, unchecked by the
    // bus: shown escaped (a terminal printing the error meets no escape
    // sequence) and cut (100 kB of name is not sent back).
    let properties = |args: &[&str]| {
        let mut call = vec![
            "call",
            "org.tokend.Broker1",
            "/org/tokend/Broker1/providers/demo",
            "org.freedesktop.DBus.Properties",
        ];
        call.extend_from_slice(args);
        text(&busctl(&call).stderr)
    };
    let err = properties(&["Get", "ss", "org.tokend.Provider1", "X\u{1b}[31mRED"]);
    assert!(
        err.contains("has no property X\\u{1b}[31mRED") && !err.contains('\u{1b}'),
        "{err:?}"
    );
    let huge = "x".repeat(100_000);
    let err = properties(&["GetAll", "s", &huge]);
    assert!(
        err.contains("… (100000 bytes)") && err.len() < 1000,
        "{} bytes: {}",
        err.len(),
        &err[..err.len().min(300)]
    );
    let out = busctl(&[
        "call",
        "org.tokend.Broker1",
        "/no/such/object",
        "org.freedesktop.DBus.Peer",
        "Ping",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let python = "/usr/bin/python3";
    let script = r#"
from jeepney import DBusAddress, HeaderFields, MessageType, new_method_call
from jeepney.io.blocking import open_dbus_connection
with open_dbus_connection(bus="SESSION") as conn:
    broker = DBusAddress("/org/tokend/Broker1", bus_name="org.tokend.Broker1")
    reply = conn.send_and_get_reply(new_method_call(broker, "Frob"))
    assert reply.header.message_type == MessageType.error
    print(reply.header.fields[HeaderFields.error_name], reply.body[0])
"#;
    let has_jeepney = std::process::Command::new(python)
        .args(["-c", "import jeepney"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_jeepney {
        let out = setup
            .bus
            .command(python)
            .args(["-c", script])
            .output()
            .unwrap();
        let said = text(&out.stdout);
        assert!(
            said.contains("org.freedesktop.DBus.Error.UnknownMethod") && said.contains("Frob"),
            "{said}{}",
            text(&out.stderr)
        );
    } else {
        crate::support::skip::say(format_args!(
            "SKIPPED the call without an interface: python3-jeepney is not installed"
        ));
    }
    assert!(setup.provider.requests().is_empty());
}

/// tokend's own interfaces called on the wrong object say where they are
/// (they said "no interface org.tokend.Provider1", as for a name that is
/// nowhere).
#[test]
fn tokends_interfaces_on_the_wrong_object_say_where_they_are() {
    let setup = start(fast(), &["demo"]);
    let busctl = |args: &[&str]| setup.busctl_any(args);
    let err = text(
        &busctl(&[
            "call",
            "org.tokend.Broker1",
            "/org/tokend/Broker1",
            "org.tokend.Provider1",
            "GetToken",
            "s",
            "demo",
        ])
        .stderr,
    );
    assert!(
        err.contains("org.tokend.Provider1 is served at /org/tokend/Broker1/providers/NAME"),
        "{err}"
    );
    let err = text(
        &busctl(&[
            "call",
            "org.tokend.Broker1",
            "/org/tokend/Broker1/providers/demo",
            "org.tokend.Broker1",
            "GetToken",
            "s",
            "demo",
        ])
        .stderr,
    );
    assert!(
        err.contains("org.tokend.Broker1 is served at /org/tokend/Broker1, not here"),
        "{err}"
    );
}

/// A call's arguments are checked against the method's signature:
/// `ListProviders`, which takes none, called with a string gets
/// `InvalidArgs` naming what it takes and what it got (busctl shows the
/// message), not an answer that ignores the argument.
#[test]
fn a_method_called_with_an_argument_it_does_not_take_is_refused() {
    let setup = start(fast(), &["demo"]);
    let out = setup.busctl(&["ListProviders", "s", "x"]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("ListProviders takes (), got (s)"), "{err}");
}

#[test]
fn the_python_example_gets_a_token() {
    let python = "/usr/bin/python3";
    let has_jeepney = std::process::Command::new(python)
        .args(["-c", "import jeepney"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_jeepney {
        crate::support::skip::say(format_args!(
            "SKIPPED the_python_example_gets_a_token: python3-jeepney is not installed"
        ));
        return;
    }
    let setup = start(fast(), &["demo"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/examples/get_token.py");
    let out = setup
        .bus
        .command(python)
        .args([script, "demo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("org.tokend.Error.LoginRequired"),
        "{}",
        text(&out.stderr)
    );
    login(&setup.daemon, "demo", |code| {
        setup.provider.approve(code).unwrap();
    });
    let out = setup
        .bus
        .command(python)
        .args([script, "demo"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        setup
            .provider
            .is_valid_access_token(text(&out.stdout).trim())
    );
    // No deprecation warning from jeepney either (the example is copied).
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
}

/// A flood of calls from new peers (eight connections, 120 calls each,
/// sent without waiting for answers: what any local user may do) never
/// stops the broker answering: before, every slot filled with calls
/// waiting for the bus to say who their caller was, whose answers came on
/// the very connection that had stopped reading, and the broker answered
/// no one again. Excess calls are refused (`LimitsExceeded`) instead.
#[test]
fn a_flood_of_calls_is_answered_or_refused_never_stuck() {
    let setup = start(fast(), &["demo"]);
    let flooders: Vec<zbus::blocking::Connection> = (0..8)
        .map(|_| {
            zbus::blocking::connection::Builder::address(setup.bus.address())
                .and_then(zbus::blocking::connection::Builder::build)
                .expect("connect to the private bus")
        })
        .collect();
    for connection in &flooders {
        for _ in 0..120 {
            let call = zbus::Message::method_call("/org/tokend/Broker1", "GetToken")
                .and_then(|b| b.destination("org.tokend.Broker1"))
                .and_then(|b| b.interface("org.tokend.Broker1"))
                .and_then(|b| b.build(&("nope",)))
                .unwrap();
            connection.send(&call).unwrap();
        }
    }
    // A newcomer is answered: at once refused while the flood is being
    // answered (it tries again, as a client told `LimitsExceeded` does),
    // then served. busctl gives up after 30 s: a hang guard, not a measure
    // of speed.
    let mut out = None;
    for _ in 0..200 {
        let tried = setup
            .bus
            .command("busctl")
            .arg(format!("--address={}", setup.bus.address()))
            .args(["--timeout=30", "call", "org.tokend.Broker1"])
            .args(["/org/tokend/Broker1", "org.tokend.Broker1", "ListProviders"])
            .output()
            .unwrap();
        let refused = text(&tried.stderr).contains("try again shortly");
        out = Some(tried);
        if !refused {
            break;
        }
    }
    let out = out.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("demo"), "{}", text(&out.stdout));
    // Every call of the flood is counted once it is answered: refused ones
    // as `limits_exceeded` (they were not counted, or counted as the
    // caller's mistake, `bad_request`), the rest as `unknown_provider`.
    let count = |metrics: &str, outcome: &str| -> u64 {
        let series =
            format!("tokend_dbus_requests_total{{method=\"GetToken\",outcome=\"{outcome}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .map_or(0, |n| n.trim().parse().unwrap())
    };
    let mut metrics = String::new();
    for _ in 0..300 {
        let out = setup.daemon.tokenctl(&["metrics"]);
        metrics = text(&out.stdout);
        if count(&metrics, "unknown_provider") + count(&metrics, "limits_exceeded") >= 960 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        count(&metrics, "unknown_provider") + count(&metrics, "limits_exceeded"),
        960,
        "{metrics}"
    );
    assert_eq!(count(&metrics, "bad_request"), 0, "{metrics}");
    drop(flooders);
}

/// `Login` against a provider that does not answer its first request
/// answers within 20 s, before the 25 s most D-Bus clients wait (gdbus
/// said only "Timeout was reached"), saying the login goes on.
#[test]
fn login_against_a_silent_provider_answers_before_the_clients_timeout() {
    let bus = PrivateBus::start();
    let (silent, config) = crate::support::provider::silent_provider("slow", "");
    let daemon = Daemon::start_with(&config, DaemonOptions::on_session_bus(&bus));
    let out = bus
        .command("busctl")
        .arg(format!("--address={}", bus.address()))
        .args(["--timeout=60", "call", "org.tokend.Broker1"])
        .args([
            "/org/tokend/Broker1",
            "org.tokend.Broker1",
            "Login",
            "s",
            "slow",
        ])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("has not answered the login's first request within 20 s"),
        "{err}"
    );
    drop((daemon, silent));
}

/// A token call whose refresh the provider is slow to answer answers
/// within 20 s, before the 25 s most D-Bus clients wait (gdbus said only
/// "Timeout was reached", and tokend's answer at the HTTP timeout, 30 s,
/// was dropped), saying the refresh goes on; a call made again joins that
/// refresh and gets its token.
#[test]
fn a_token_whose_refresh_is_slow_answers_before_the_clients_timeout() {
    let setup = start(fast(), &["demo"]);
    login(&setup.daemon, "demo", |code| {
        setup.provider.approve(code).unwrap();
    });
    // Tokens that live two hours: asking for more than the current one
    // has left needs a refresh, which the provider answers in 26 s (the
    // daemon's HTTP timeout is 30 s).
    setup
        .provider
        .set_access_token_lifetime(Duration::from_secs(7200));
    setup
        .provider
        .inject(Endpoint::Token, Fault::Delay(Duration::from_secs(26)), 1);
    let call = |timeout: &str| {
        setup
            .bus
            .command("busctl")
            .arg(format!("--address={}", setup.bus.address()))
            .args([timeout, "call", "org.tokend.Broker1", "/org/tokend/Broker1"])
            .args([
                "org.tokend.Broker1",
                "GetTokenMinValid",
                "su",
                "demo",
                "5000",
            ])
            .output()
            .unwrap()
    };
    let out = call("--timeout=60");
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("is not ready within 20 s") && err.contains("call again"),
        "{err}"
    );
    let again = call("--timeout=60");
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(setup.provider.refresh_count(), 1, "one refresh, joined");
}

/// `CancelLogin` cancels a login that waits for approval and nothing else:
/// a working session keeps serving (`Logout`, the only way before, ended
/// it too). Its waiters hear `LoginFinished` with ok false.
#[test]
fn cancel_login_leaves_the_session_as_it_was() {
    let setup = start(fast(), &["demo"]);
    let mut monitor = setup.monitor();
    let fields = busctl_strings(&setup.busctl(&["Login", "s", "demo"]));
    setup.provider.approve(&fields[0]).unwrap();
    monitor.wait_for("org.tokend.Broker1.LoginFinished");
    let token = busctl_strings(&setup.busctl(&["GetToken", "s", "demo"]))[0].clone();

    // A second login, cancelled.
    busctl_strings(&setup.busctl(&["Login", "s", "demo"]));
    let out = setup.busctl(&["CancelLogin", "s", "demo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "b true");
    let finished = monitor.wait_for("org.tokend.Broker1.LoginFinished");
    assert!(finished.contains("('demo', false,"), "{finished}");
    assert!(finished.contains("was cancelled"), "{finished}");
    let again = busctl_strings(&setup.busctl(&["GetToken", "s", "demo"]));
    assert_eq!(again[0], token);
    // Nothing waits any more.
    let out = setup.busctl(&["CancelLogin", "s", "demo"]);
    assert_eq!(text(&out.stdout).trim(), "b false");
}
