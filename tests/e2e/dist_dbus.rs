//! The D-Bus files of `dist/dbus` on real `dbus-daemon`s, with the real
//! `tokend`:
//! - the system bus policy, included into a private bus configured like a
//!   system bus (owning names and calling methods denied unless a policy
//!   file allows them): only its user may own `org.tokend.Broker1`, anyone
//!   may call tokend's own and the standard interfaces, nothing else;
//! - the session activation file: a call starts tokend;
//! - the system activation file parses (the setuid launch helper of a real
//!   system bus cannot be run in a test).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions};
use tempfile::TempDir;
use tokend::ipc::dbus::{BROKER_INTERFACE, BROKER_PATH, BUS_NAME};

const POLICY: &str = "dist/dbus/org.tokend.Broker1.conf";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A bus configured as a system bus is by default, with `policy` included.
/// The defaults are the documented ones of dbus-daemon's system.conf: no
/// names may be owned and no methods called but the bus driver's, replies
/// and signals flow.
pub(crate) fn system_like_bus(policy: &Path) -> (PrivateBus, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("system.conf");
    std::fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:tmpdir=/tmp</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>{}</include>
</busconfig>
"#,
            policy.display()
        ),
    )
    .unwrap();
    (PrivateBus::start_with_config(config.to_str().unwrap()), dir)
}

/// The policy with its service user replaced by the uid running the test,
/// so that tokend, run as that uid, is "the tokend user".
pub(crate) fn policy_for_this_user(dir: &Path) -> PathBuf {
    let uid = rustix::process::geteuid().as_raw();
    let policy = std::fs::read_to_string(repo(POLICY)).unwrap();
    assert!(policy.contains(r#"user="tokend""#));
    let path = dir.join("org.tokend.Broker1.conf");
    std::fs::write(
        &path,
        policy.replace(r#"user="tokend""#, &format!(r#"user="{uid}""#)),
    )
    .unwrap();
    path
}

/// The error name of a failed call of a method without arguments, or "ok".
fn call(bus: &PrivateBus, path: &str, interface: &str, method: &str) -> String {
    call_with(bus, path, interface, method, &())
}

/// The error name of a failed call, or "ok".
fn call_with<B>(bus: &PrivateBus, path: &str, interface: &str, method: &str, body: &B) -> String
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    match bus
        .connect()
        .call_method(Some(BUS_NAME), path, Some(interface), method, body)
    {
        Ok(_) => "ok".to_owned(),
        Err(zbus::Error::MethodError(name, _, _)) => name.to_string(),
        Err(e) => format!("{e}"),
    }
}

#[test]
fn policy_lets_anyone_call_tokend_interfaces_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (bus, _config) = system_like_bus(&policy_for_this_user(dir.path()));
    let _daemon = Daemon::start_with(
        "",
        DaemonOptions {
            bus: "system",
            env: vec![("DBUS_SYSTEM_BUS_ADDRESS".into(), bus.address().into())],
            ..DaemonOptions::default()
        },
    );

    let allowed = [
        (BROKER_INTERFACE, "ListProviders"),
        ("org.freedesktop.DBus.Introspectable", "Introspect"),
        ("org.freedesktop.DBus.Peer", "Ping"),
        ("org.freedesktop.DBus.ObjectManager", "GetManagedObjects"),
    ];
    for (interface, method) in allowed {
        assert_eq!(
            call(&bus, BROKER_PATH, interface, method),
            "ok",
            "{interface}.{method}; bus log:\n{}",
            bus.log()
        );
    }
    let all = call_with(
        &bus,
        BROKER_PATH,
        "org.freedesktop.DBus.Properties",
        "GetAll",
        &(BROKER_INTERFACE),
    );
    assert_eq!(all, "ok", "Properties.GetAll");
    // An interface tokend does not have would reach it (and fail there
    // with UnknownInterface) if the bus let it through: the bus refuses.
    assert_eq!(
        call(&bus, BROKER_PATH, "org.example.NotTokend", "Anything"),
        "org.freedesktop.DBus.Error.AccessDenied"
    );
}

/// Run as anyone but `tokend` (the policy as shipped names that user).
#[test]
fn policy_keeps_the_name_for_the_tokend_user() {
    let (bus, _config) = system_like_bus(&repo(POLICY));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nsocket = \"{}\"\nbus = \"system\"\nstore = \"memory\"\n",
            dir.path().join("tokend.sock").display()
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .arg("--config")
        .arg(&config)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .output()
        .expect("run tokend");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "tokend took the name as another user:\n{log}"
    );
    assert!(
        log.contains("AccessDenied"),
        "tokend failed otherwise:\n{log}"
    );
    // And nobody else can take it either.
    let other = bus.connect();
    let taken = other.request_name(BUS_NAME);
    assert!(
        matches!(&taken, Err(zbus::Error::MethodError(name, _, _)) if name.as_str() == "org.freedesktop.DBus.Error.AccessDenied"),
        "{taken:?}"
    );
}

/// A session bus whose only service directory holds `activation`, with
/// `Exec=` replaced by `exec`.
fn activating_bus(activation: &str, exec: &str) -> (PrivateBus, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let services = dir.path().join("services");
    std::fs::create_dir(&services).unwrap();
    let file = std::fs::read_to_string(repo(activation)).unwrap();
    let rewritten: String = file
        .lines()
        .map(|l| {
            if l.starts_with("Exec=") {
                format!("Exec={exec}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(services.join("org.tokend.Broker1.service"), rewritten).unwrap();
    let config = dir.path().join("session.conf");
    std::fs::write(
        &config,
        format!(
            r#"<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{}</servicedir>
  <policy context="default">
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            services.display()
        ),
    )
    .unwrap();
    (PrivateBus::start_with_config(config.to_str().unwrap()), dir)
}

#[test]
fn session_activation_starts_tokend() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nsocket = \"{}\"\nbus = \"session\"\nstore = \"memory\"\n",
            dir.path().join("tokend.sock").display()
        ),
    )
    .unwrap();
    let exec = format!(
        "{} --config {}",
        env!("CARGO_BIN_EXE_tokend"),
        config.display()
    );
    let (bus, _bus_dir) = activating_bus("dist/dbus/services/org.tokend.Broker1.service", &exec);

    // Nobody owns the name: this call makes dbus-daemon start tokend.
    let answer = call(&bus, BROKER_PATH, BROKER_INTERFACE, "ListProviders");
    let connection = bus.connect();
    let dbus = zbus::blocking::fdo::DBusProxy::new(&connection).unwrap();
    let name = zbus::names::BusName::try_from(BUS_NAME).unwrap();
    let pid = dbus.get_connection_unix_process_id(name).ok();
    // Stop the activated daemon whatever happened: it is not our child.
    if let Some(pid) = pid {
        let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while rustix::process::test_kill_process(pid).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(answer, "ok", "bus log:\n{}", bus.log());
    assert!(pid.is_some(), "no owner of {BUS_NAME} after activation");
}

#[test]
fn system_activation_file_is_read_by_dbus_daemon() {
    // /bin/false as Exec, as shipped: dbus-daemon finds the service by its
    // name and runs it. An unreadable file would give ServiceUnknown.
    let (bus, _dir) = activating_bus(
        "dist/dbus/system-services/org.tokend.Broker1.service",
        "/bin/false",
    );
    let answer = call(&bus, BROKER_PATH, BROKER_INTERFACE, "ListProviders");
    assert!(
        answer.starts_with("org.freedesktop.DBus.Error.Spawn"),
        "{answer}\n{}",
        bus.log()
    );
}
