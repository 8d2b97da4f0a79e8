//! The objects served: properties and their signals, objects added and
//! removed by a reload, introspection, the bus name, and who may call.

use super::*;

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
    // Asked at the root, it says where the object manager is.
    let wrong = setup.gdbus(
        "/",
        "org.freedesktop.DBus.ObjectManager.GetManagedObjects",
        &[],
    );
    assert!(!wrong.status.success());
    let said = text(&wrong.stderr);
    assert!(
        said.contains("UnknownInterface")
            && said.contains("org.freedesktop.DBus.ObjectManager is served at /org/tokend/Broker1"),
        "{said}"
    );

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

/// A token that expires with no refresh before it (the provider gives no
/// refresh token) turns the State property "login_required" (only a login
/// brings another) with a `PropertiesChanged` that says so: clients that
/// cache properties showed "active" for good.
#[test]
fn an_expiry_without_a_refresh_is_signalled() {
    let setup = start(
        Rfc8628Options {
            access_token_lifetime: Duration::from_secs(4),
            issue_refresh_tokens: false,
            ..fast()
        },
        &["demo"],
    );
    let mut monitor = setup.monitor();
    login(&setup.daemon, "demo", |code| {
        setup.provider.approve(code).unwrap();
    });
    monitor.wait_for("'State': <'active'>");
    let expired = monitor.wait_for("'State': <'login_required'>");
    assert!(
        expired.contains("/org/tokend/Broker1/providers/demo"),
        "{expired}"
    );
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
    // The interfaces as an array of strings (`oas`), as the object
    // manager's signature says; they were once sent as a struct.
    assert!(
        lines[1].contains("['org.tokend.Provider1', "),
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
    // The store's properties say they are signalled (the default), so a
    // client that caches properties follows them (busctl's flags).
    let out = setup
        .bus
        .command("busctl")
        .args(["--address", setup.bus.address(), "introspect"])
        .args([
            "org.tokend.Broker1",
            "/org/tokend/Broker1",
            "org.tokend.Broker1",
        ])
        .output()
        .unwrap();
    let listing = text(&out.stdout);
    for property in ["StoreState", "StoreError", "StoreUnavailableSince"] {
        let line = listing
            .lines()
            .find(|l| l.starts_with(&format!(".{property} ")))
            .unwrap_or_else(|| panic!("no {property} in:\n{listing}"));
        assert!(line.contains("emits-change"), "{line}");
    }
    // The nodes on the way list the standard interfaces they answer
    // (busctl showed an empty table for them).
    for path in ["/", "/org/tokend", "/org/tokend/Broker1/providers"] {
        let out = setup
            .bus
            .command("busctl")
            .args(["--address", setup.bus.address(), "introspect"])
            .args(["org.tokend.Broker1", path])
            .output()
            .unwrap();
        let listing = text(&out.stdout);
        for interface in [
            "org.freedesktop.DBus.Introspectable",
            "org.freedesktop.DBus.Peer",
            "org.freedesktop.DBus.Properties",
        ] {
            assert!(
                listing.lines().any(|l| l.starts_with(interface)),
                "{path}: no {interface} in:\n{listing}"
            );
        }
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
    // The name is asked of the bus only once calls are received, so no
    // warning that calls may be lost (zbus's own request_name warned so on
    // every start).
    assert!(!err.contains("may be lost"), "{err}");
    assert!(
        !setup.daemon.log().contains("may be lost"),
        "{}",
        setup.daemon.log()
    );
}

#[test]
fn another_uid_is_refused_on_the_bus_unless_allowed() {
    if !support::other_uid::can_switch_uid() {
        crate::support::skip::say(format_args!(
            "SKIPPED another_uid_is_refused_on_the_bus_unless_allowed: needs root to switch uid"
        ));
        return;
    }
    let bus = PrivateBus::start_shared();
    let provider = Provider::rfc8628();
    let config = format!(
        "{}{}",
        provider.config("mine"),
        provider.config_with("shared", "allow_users = [65534]")
    );
    let daemon = Daemon::start_with(&config, DaemonOptions::on_session_bus(&bus));
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
    for method in ["Login", "Logout", "CancelLogin"] {
        let out = as_nobody(method, "shared");
        assert!(!out.status.success(), "{method}");
        assert!(
            text(&out.stderr).contains("may use it but not log in or out"),
            "{method}: {}",
            text(&out.stderr)
        );
    }
}
