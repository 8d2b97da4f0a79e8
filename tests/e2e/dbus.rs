//! The D-Bus front-end through real clients: a private `dbus-daemon` per
//! test, the real `tokend` on it, and `busctl`, `gdbus` and a Python
//! (jeepney) client as separate processes.

use crate::support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, login};
use support::provider::{Provider, fast};
use tokend_emulator::Rfc8628Options;

/// How long a test waits for a D-Bus signal before failing.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(30);

struct Setup {
    provider: Provider,
    daemon: Daemon,
    bus: PrivateBus,
}

fn start(options: Rfc8628Options, providers: &[&str]) -> Setup {
    start_on(PrivateBus::start(), options, providers)
}

fn start_on(bus: PrivateBus, options: Rfc8628Options, providers: &[&str]) -> Setup {
    let provider = Provider::start(options);
    // `sync` is never logged in: starting its login is the barrier that
    // proves a signal monitor is listening (see `Setup::monitor`).
    let config: String = providers
        .iter()
        .chain(&["sync"])
        .map(|name| provider.config(name))
        .collect();
    let daemon = Daemon::start_with(
        &config,
        DaemonOptions {
            bus: "session",
            env: vec![("DBUS_SESSION_BUS_ADDRESS".into(), bus.address().into())],
            ..DaemonOptions::default()
        },
    );
    Setup {
        provider,
        daemon,
        bus,
    }
}

impl Setup {
    /// `busctl call` on the broker object.
    fn busctl(&self, args: &[&str]) -> Output {
        self.bus
            .command("busctl")
            .arg(format!("--address={}", self.bus.address()))
            .args([
                "call",
                "org.tokend.Broker1",
                "/org/tokend/Broker1",
                "org.tokend.Broker1",
            ])
            .args(args)
            .output()
            .expect("run busctl")
    }

    /// `gdbus call` of `method` (with its interface) on `path`.
    fn gdbus(&self, path: &str, method: &str, args: &[&str]) -> Output {
        self.bus
            .command("gdbus")
            .args([
                "call",
                "--address",
                self.bus.address(),
                "--dest",
                "org.tokend.Broker1",
            ])
            .args(["--object-path", path, "--method", method])
            .args(args)
            .output()
            .expect("run gdbus")
    }

    /// Starts `gdbus monitor` on the daemon and waits until it watches.
    fn monitor(&self) -> Monitor {
        let mut child = self
            .bus
            .command("gdbus")
            .args([
                "monitor",
                "--address",
                self.bus.address(),
                "--dest",
                "org.tokend.Broker1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run gdbus monitor");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut monitor = Monitor { child, lines };
        monitor.wait_for("is owned by");
        // gdbus subscribes to the owner's signals only after it printed
        // that line; a signal caused now and seen proves the subscription.
        let out = self.busctl(&["Login", "s", "sync"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        monitor.wait_for("org.tokend.Broker1.LoginPrompt ('sync'");
        monitor
    }
}

/// Lines printed by `gdbus monitor`.
struct Monitor {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Monitor {
    fn wait_for(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(SIGNAL_TIMEOUT) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no D-Bus line with {needle:?}: {e}"),
            }
        }
    }
}

impl Monitor {
    /// Waits until a line with each needle has been seen, in any order;
    /// returns the lines in the order of `needles`.
    fn wait_for_all(&mut self, needles: &[&str]) -> Vec<String> {
        let mut found: Vec<Option<String>> = vec![None; needles.len()];
        while found.iter().any(Option::is_none) {
            match self.lines.recv_timeout(SIGNAL_TIMEOUT) {
                Ok(line) => {
                    for (needle, slot) in needles.iter().zip(found.iter_mut()) {
                        if slot.is_none() && line.contains(needle) {
                            *slot = Some(line.clone());
                        }
                    }
                }
                Err(e) => panic!("no D-Bus lines with all of {needles:?} (found {found:?}): {e}"),
            }
        }
        found.into_iter().map(Option::unwrap_or_default).collect()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(output: &[u8]) -> String {
    String::from_utf8_lossy(output).into_owned()
}

/// busctl prints `ssu "CODE" "URI" "URI?user_code=CODE" 600`.
fn busctl_strings(out: &Output) -> Vec<String> {
    assert!(out.status.success(), "busctl failed: {}", text(&out.stderr));
    text(&out.stdout)
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

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
    // Nothing was started by the bad calls.
    assert!(setup.provider.requests().is_empty());
}

#[test]
fn properties_change_on_refresh_and_objects_are_discoverable() {
    let setup = start(
        Rfc8628Options {
            access_token_lifetime: Duration::from_secs(4),
            ..fast()
        },
        &["demo-one"],
    );
    let path = "/org/tokend/Broker1/providers/demo_one";
    let out = setup.gdbus(
        "/org/tokend/Broker1",
        "org.freedesktop.DBus.ObjectManager.GetManagedObjects",
        &[],
    );
    let objects = text(&out.stdout);
    assert!(
        objects.contains(path) && objects.contains("'Name': <'demo-one'>"),
        "{objects}"
    );
    assert!(objects.contains("'State': <'logged_out'>"), "{objects}");

    let mut monitor = setup.monitor();
    login(&setup.daemon, "demo-one", |code| {
        setup.provider.approve(code).unwrap();
    });
    let changed = monitor.wait_for("'State': <'active'>");
    assert!(
        changed.contains(path) && changed.contains("PropertiesChanged"),
        "{changed}"
    );
    // A background refresh (4 s tokens) moves ExpiresAt again.
    monitor.wait_for("org.tokend.Broker1.TokenRefreshed ('demo-one'");
    let changed = monitor.wait_for("'ExpiresAt': <int64");
    assert!(changed.contains(path), "{changed}");
    let out = setup.gdbus(
        path,
        "org.freedesktop.DBus.Properties.Get",
        &["org.tokend.Provider1", "State"],
    );
    assert_eq!(text(&out.stdout).trim(), "(<'active'>,)");
}

#[test]
fn a_reload_adds_and_removes_provider_objects() {
    let mut setup = start(fast(), &["one"]);
    let mut monitor = setup.monitor();
    setup.daemon.write_config(&format!(
        "{}{}",
        setup.provider.config("sync"),
        setup.provider.config("two")
    ));
    setup.daemon.reload();
    let lines = monitor.wait_for_all(&["InterfacesAdded", "InterfacesRemoved"]);
    assert!(
        lines[0].contains("/org/tokend/Broker1/providers/two"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("/org/tokend/Broker1/providers/one"),
        "{}",
        lines[1]
    );
    let out = setup.gdbus(
        "/org/tokend/Broker1",
        "org.tokend.Broker1.ListProviders",
        &[],
    );
    assert_eq!(text(&out.stdout).trim(), "(['sync', 'two'],)");
}

#[test]
fn introspection_matches_the_committed_interface_file() {
    let setup = start(fast(), &["demo"]);
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dist/dbus/org.tokend.Broker1.xml"
    ))
    .unwrap();
    for (path, interface) in [
        ("/org/tokend/Broker1", "org.tokend.Broker1"),
        ("/org/tokend/Broker1/providers/demo", "org.tokend.Provider1"),
    ] {
        let out = setup
            .bus
            .command("gdbus")
            .args(["introspect", "--xml", "--address", setup.bus.address()])
            .args(["--dest", "org.tokend.Broker1", "--object-path", path])
            .output()
            .unwrap();
        let live = interface_block(&text(&out.stdout), interface);
        let file = interface_block(&committed, interface);
        assert_eq!(
            live, file,
            "{interface} differs from dist/dbus/org.tokend.Broker1.xml"
        );
    }
}

/// The `<interface name=NAME>` element, whitespace-normalised.
fn interface_block(xml: &str, name: &str) -> String {
    let start = xml
        .find(&format!("<interface name=\"{name}\">"))
        .unwrap_or_else(|| panic!("no interface {name} in:\n{xml}"));
    let end = start + xml[start..].find("</interface>").unwrap();
    xml[start..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_second_instance_cannot_take_the_name() {
    let setup = start(fast(), &["demo"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nsocket = \"{}\"\nbus = \"session\"\nstore = \"memory\"\n{}",
            dir.path().join("t.sock").display(),
            setup.provider.config("demo")
        ),
    )
    .unwrap();
    let out = setup
        .bus
        .command(env!("CARGO_BIN_EXE_tokend"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("org.tokend.Broker1 is already owned on the session bus"),
        "{err}"
    );
}

#[test]
fn another_uid_is_refused_on_the_bus_unless_allowed() {
    if !support::other_uid::can_switch_uid() {
        eprintln!(
            "SKIPPED another_uid_is_refused_on_the_bus_unless_allowed: needs root to switch uid"
        );
        return;
    }
    let bus = PrivateBus::start_shared();
    let provider = Provider::rfc8628();
    let config = format!(
        "{}{}",
        provider.config("mine"),
        provider.config_with("shared", "allow_users = [65534]")
    );
    let daemon = Daemon::start_with(
        &config,
        DaemonOptions {
            bus: "session",
            env: vec![("DBUS_SESSION_BUS_ADDRESS".into(), bus.address().into())],
            ..DaemonOptions::default()
        },
    );
    for name in ["mine", "shared"] {
        login(&daemon, name, |code| {
            provider.approve(code).unwrap();
        });
    }
    let as_nobody = |method: &str, name: &str| {
        bus.command("busctl")
            .arg(format!("--address={}", bus.address()))
            .args([
                "call",
                "org.tokend.Broker1",
                "/org/tokend/Broker1",
                "org.tokend.Broker1",
                method,
                "s",
                name,
            ])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    // No role: the provider does not exist for it.
    let refused = as_nobody("GetToken", "mine");
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("no provider named `mine`"),
        "{}",
        text(&refused.stderr)
    );
    // Use: tokens, but no login or logout.
    let allowed = as_nobody("GetToken", "shared");
    let fields = busctl_strings(&allowed);
    assert!(provider.is_valid_access_token(&fields[0]));
    for method in ["Login", "Logout"] {
        let out = as_nobody(method, "shared");
        assert!(!out.status.success(), "{method}");
        assert!(
            text(&out.stderr).contains("may use it but not log in or out"),
            "{method}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn the_python_example_gets_a_token() {
    let python = "/usr/bin/python3";
    let has_jeepney = std::process::Command::new(python)
        .args(["-c", "import jeepney"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_jeepney {
        eprintln!("SKIPPED the_python_example_gets_a_token: python3-jeepney is not installed");
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
}
