//! The daemon reacts to the world instead of waiting: a refresh that failed
//! because the provider could not be reached is retried at once when the
//! network comes back (kernel netlink, in a network namespace of the
//! test's own) and when the machine resumes (logind's `PrepareForSleep`,
//! from a stub logind on a private bus).

use std::io::{BufRead, BufReader};
use std::os::fd::AsFd as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;
use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, LoginRun, login};
use support::logind::StubLogind;
use support::other_uid::can_switch_uid;
use support::provider::Provider;
use tokend_emulator::{Endpoint, Fault, RecordedRequest};

/// Short-lived tokens, so a refresh comes due within seconds.
const LIFETIME: Duration = Duration::from_secs(6);

const FAILED: &str = "event=\"refresh_failed\"";
const REFRESHED: &str = "event=\"refreshed\"";

/// A process that holds a fresh network namespace (only `lo`, down) until
/// dropped.
pub(crate) struct NetworkNamespace(Child);

impl NetworkNamespace {
    pub(crate) fn new() -> Self {
        let mut child = Command::new("unshare")
            .args(["--net", "sh", "-c", "echo ready; exec sleep 600"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("run unshare");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "unshare --net failed");
        Self(child)
    }

    /// Runs `body` on a thread inside the namespace: every socket it opens
    /// and every process it starts (the emulator, tokend) live there.
    pub(crate) fn run<T: Send + 'static>(&self, body: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = std::fs::File::open(format!("/proc/{}/ns/net", self.0.id())).unwrap();
        std::thread::spawn(move || {
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("enter the test's network namespace");
            body()
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for NetworkNamespace {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ip link set lo up|down` in the calling thread's namespace.
pub(crate) fn loopback(state: &str) {
    let status = Command::new("ip")
        .args(["link", "set", "lo", state])
        .status()
        .expect("run ip (iproute2)");
    assert!(status.success(), "ip link set lo {state}");
}

/// `retry_in=N` of the last `refresh_failed` line.
fn retry_in(lines: &[String]) -> u64 {
    let last = lines.last().expect("a refresh_failed line");
    last.split("retry_in=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no retry_in in {last}"))
}

/// Waits for the refresh after `refreshed_before` successful ones, and
/// fails unless it came before the backoff of the failure seen at
/// `failure_seen` (`retry_in=backoff`) could have ended: a refresh that
/// came then was the change's doing, not the backoff's. `backoff` is the
/// logged whole seconds (the wait is at least that) and the failure was
/// logged before it was seen, so a second less than the rest of the
/// backoff, counted from the sighting, ends before the backoff does.
fn refreshed_before_the_backoff_ends(
    daemon: &Daemon,
    refreshed_before: usize,
    failure_seen: Instant,
    backoff: u64,
) {
    let window =
        Duration::from_secs(backoff.saturating_sub(1)).saturating_sub(failure_seen.elapsed());
    assert!(
        window >= Duration::from_secs(2),
        "the backoff ({backoff} s) left too little time to tell a retry at once from one after it"
    );
    daemon.wait_for_log_within(window, refreshed_before + 1, &[REFRESHED]);
}

/// A refresh sent on a kept-alive connection as the link goes down gets
/// no answer in time: it is listened for (its answer may still come), and
/// once the network is back the request the kernel kept goes out and its
/// answer is taken, well before the listening's bound of minutes (the
/// provider acted on it: a retry would have presented its refresh token
/// again). Nothing else is sent meanwhile.
#[test]
fn a_refresh_out_as_the_link_goes_down_is_answered_when_it_comes_back() {
    if !can_switch_uid() {
        crate::support::skip::say(format_args!(
            "SKIPPED a_refresh_out_as_the_link_goes_down_is_answered_when_it_comes_back: needs root for a network namespace"
        ));
        return;
    }
    let namespace = NetworkNamespace::new();
    namespace.run(|| {
        loopback("up");
        let provider = Provider::rfc8628();
        provider.set_access_token_lifetime(LIFETIME);
        // A request on a kept-alive connection can still reach the
        // provider after the link went down while its answer is lost; with
        // rotation and reuse detection the provider would then revoke the
        // session at the next attempt, which is the provider's policy, not
        // what this test is about. No rotation here.
        provider.set_rotate_refresh_tokens(false);
        let daemon = Daemon::start_with(
            &provider.config("demo"),
            DaemonOptions {
                daemon_keys: "http_timeout = 2\n".into(),
                ..DaemonOptions::default()
            },
        );
        login(&daemon, "demo", |code| {
            provider.approve(code).unwrap();
        });
        // No route to the provider: the refresh that comes due goes out on
        // the kept-alive connection, which goes silent.
        let refreshed_before = daemon.wait_for_log(1, &[REFRESHED]).len();
        loopback("down");
        daemon.wait_for_log(1, &["event=\"refresh_overdue\""]);
        let sent = provider.refresh_count();
        loopback("up");
        daemon.wait_for_log_within(Duration::from_secs(60), refreshed_before + 1, &[REFRESHED]);
        // The one request the kernel held while the link was down.
        assert_eq!(
            provider.refresh_count(),
            sent + 1,
            "a second refresh was sent"
        );
        provider.assert_no_violations();
    });
}

/// tokend for `provider`'s `demo`, with `bus` as its system bus (where the
/// stub logind is), once it watches logind.
pub(crate) fn watching_logind(bus: &PrivateBus, provider: &Provider) -> Daemon {
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            env: vec![("DBUS_SYSTEM_BUS_ADDRESS".into(), bus.address().into())],
            ..DaemonOptions::default()
        },
    );
    daemon.wait_for_log(1, &["watching logind for resume"]);
    daemon
}

#[test]
fn resuming_from_sleep_retries_a_failed_refresh_at_once() {
    let bus = PrivateBus::start();
    let mut logind = StubLogind::start(&bus);
    let provider = Provider::rfc8628();
    provider.set_access_token_lifetime(LIFETIME);
    let daemon = watching_logind(&bus, &provider);
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    // The provider is down (503, transient) before the machine sleeps:
    // refreshes fail and back off. It is up again by the resume.
    provider.inject(Endpoint::Token, Fault::Status(503), 1000);
    let failures = daemon.wait_for_log(3, &[FAILED]);
    let failure_seen = Instant::now();
    let backoff = retry_in(&failures);
    logind.send("sleep");
    daemon.wait_for_log(1, &["event=\"sleeping\""]);
    provider.clear_faults();
    let refreshed_before = daemon.wait_for_log(0, &[REFRESHED]).len();
    logind.send("resume");
    daemon.wait_for_log(1, &["event=\"resumed\"", "sessions=1"]);
    refreshed_before_the_backoff_ends(&daemon, refreshed_before, failure_seen, backoff);
    // PrepareForSleep(true) alone retried nothing.
    assert_eq!(daemon.wait_for_log(0, &["event=\"resumed\""]).len(), 1);
}

/// A device login whose polls fail (the provider answering 503 while the
/// machine sleeps) backs off, its wait doubling from the interval (1 s
/// here: 2, 4, then 8 s). When the machine resumes, the next poll comes at
/// the interval, not at the end of that backoff: the person who approved
/// meanwhile waited at the screen up to a minute.
#[test]
fn resuming_from_sleep_polls_a_failing_login_again_at_once() {
    let bus = PrivateBus::start();
    let mut logind = StubLogind::start(&bus);
    let provider = Provider::rfc8628();
    let daemon = watching_logind(&bus, &provider);
    provider.inject(Endpoint::Token, Fault::Status(503), 1000);
    let run = LoginRun::start(&daemon.socket, "demo");
    provider.wait_for_count(3, RecordedRequest::is_poll);
    // The third failed: the next poll is 8 s away.
    provider.clear_faults();
    provider.approve(&run.user_code()).unwrap();
    logind.send("resume");
    let (done, err, code) = run.finish();
    assert_eq!(code, 0, "{done} {err}\nlog:\n{}", daemon.log());
    let polls = provider.polls();
    assert_eq!(polls.len(), 4, "{polls:#?}");
    let backoff = Duration::from_secs(8);
    let waited = polls[3].at.duration_since(polls[2].at);
    assert!(
        waited < Duration::from_secs(6),
        "the poll after the resume came {waited:?} after the failed one: the backoff's {backoff:?}"
    );
}

/// Another local client's `PrepareForSleep(false)`, sent straight to each
/// connection on the bus (the bus applies the match rule's sender only to
/// broadcasts, and the stock policy lets any user send signals), is not
/// taken for logind's: before, each one made tokend retry its waiting
/// refreshes at once, past their backoff, and log a line.
#[test]
fn a_prepare_for_sleep_from_another_client_is_ignored() {
    const FORGER: &str = r#"
import sys
from jeepney import DBusAddress, new_signal, HeaderFields
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

conn = open_dbus_connection(bus=sys.argv[1])
names = conn.send_and_get_reply(message_bus.ListNames()).body[0]
manager = DBusAddress("/org/freedesktop/login1", interface="org.freedesktop.login1.Manager")
for name in names:
    if name.startswith(":") and name != conn.unique_name:
        signal = new_signal(manager, "PrepareForSleep", "b", (False,))
        signal.header.fields[HeaderFields.destination] = name
        conn.send(signal)
conn.send_and_get_reply(message_bus.GetId())
"#;
    let bus = PrivateBus::start();
    let _logind = StubLogind::start(&bus);
    let provider = Provider::rfc8628();
    let daemon = watching_logind(&bus, &provider);
    let forged = Command::new("/usr/bin/python3")
        .args(["-c", FORGER, bus.address()])
        .status()
        .expect("run python3 (install python3-jeepney)");
    assert!(forged.success());
    daemon.wait_for_log(1, &["ignored a PrepareForSleep not from logind"]);
    assert!(
        !daemon.log().contains("resumed from sleep"),
        "{}",
        daemon.log()
    );
}

/// The system bus restarted (its daemon gone, then back at the same
/// path): tokend says so, connects again, and a resume after that is
/// honoured. The watch of logind ended silently for good before, and
/// resumes went unseen until tokend restarted.
#[test]
fn a_restarted_system_bus_is_watched_again() {
    let mut bus = PrivateBus::start();
    let provider = Provider::rfc8628();
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            env: vec![("DBUS_SYSTEM_BUS_ADDRESS".into(), bus.path_address())],
            ..DaemonOptions::default()
        },
    );
    daemon.wait_for_log(1, &["watching logind for resume"]);
    bus.restart();
    daemon.wait_for_log(1, &["lost the system bus while watching logind"]);
    daemon.wait_for_log(1, &["watching logind for resume again"]);
    let mut logind = StubLogind::start(&bus);
    logind.send("resume");
    daemon.wait_for_log(1, &["event=\"resumed\""]);
}

/// On a host without IPv6 on `lo` (`disable_ipv6`, as hardened servers
/// and containers have it), a provider at `localhost` that is down is
/// "Connection refused", 127.0.0.1's answer: tokend also tried ::1, and
/// reported its "Cannot assign requested address", which reads as a
/// problem of tokend's own address.
#[test]
fn localhost_without_ipv6_is_refused_as_on_127_0_0_1() {
    let namespace = NetworkNamespace::new();
    namespace.run(|| {
        loopback("up");
        // The namespace's own setting: /proc/sys/net is the opening
        // thread's network namespace's.
        std::fs::write("/proc/sys/net/ipv6/conf/lo/disable_ipv6", "1").expect("turn IPv6 off on lo");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let config = format!(
            "[providers.demo]\ndevice_authorization_endpoint = \"http://localhost:{port}/device\"\ntoken_endpoint = \"http://localhost:{port}/token\"\nclient_id = \"tokend-test\"\n"
        );
        let daemon = Daemon::start(&config);
        let out = daemon.tokenctl(&["login", "demo", "--no-wait"]);
        let said = support::daemon::stderr(&out);
        assert!(!out.status.success(), "{said}");
        assert!(said.contains("Connection refused"), "{said}");
        assert!(!said.contains("Cannot assign"), "{said}");
    });
}
