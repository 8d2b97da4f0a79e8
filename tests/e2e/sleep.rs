//! The machine going to sleep (logind's `PrepareForSleep(true)`, from a
//! stub logind on a private system bus that hands out inhibitors as logind
//! does): tokend makes the sleep wait for a refresh in flight and its save,
//! through a `delay` inhibitor, and starts no background refresh until the
//! resume. A refresh whose answer a suspend cuts off may cost the session:
//! a provider that rotates refresh tokens refuses the spent one at the
//! retry.

use std::time::Duration;

use crate::support;
use crate::world::watching_logind;
use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, login};
use support::logind::StubLogind;
use support::provider::Provider;
use tokend_emulator::{Endpoint, Fault, RecordedRequest};

/// Short-lived tokens, so a refresh comes due within seconds.
const LIFETIME: Duration = Duration::from_secs(6);

const REFRESHED: &str = "event=\"refreshed\"";
const INHIBITED: &str = "inhibited sleep delay by tokend";

/// tokend for `provider`'s `demo` with `system_bus` as its system bus
/// (where `logind` is), once it holds an inhibitor, logged in, and told
/// that the machine is going to sleep.
fn logged_in_then_asleep(
    provider: &Provider,
    logind: &mut StubLogind,
    system_bus: String,
) -> Daemon {
    let daemon = Daemon::start_with(
        &provider.config("demo"),
        DaemonOptions {
            env: vec![("DBUS_SYSTEM_BUS_ADDRESS".into(), system_bus)],
            ..DaemonOptions::default()
        },
    );
    logind.wait_for(INHIBITED);
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    logind.send("sleep");
    daemon.wait_for_log(1, &["event=\"sleeping\""]);
    daemon
}

fn refreshes(provider: &Provider) -> usize {
    provider
        .requests()
        .iter()
        .filter(|r| r.is_refresh())
        .count()
}

#[test]
fn a_sleep_waits_for_the_refresh_in_flight_and_holds_the_next_until_the_resume() {
    let bus = PrivateBus::start();
    let mut logind = StubLogind::start(&bus);
    let provider = Provider::rfc8628();
    provider.set_access_token_lifetime(LIFETIME);
    let daemon = watching_logind(&bus, &provider);
    logind.wait_for(INHIBITED);
    login(&daemon, "demo", |code| {
        provider.approve(code).unwrap();
    });
    // The first refresh's answer takes a second: the sleep is announced
    // while it is out.
    provider.inject(Endpoint::Token, Fault::Delay(Duration::from_secs(1)), 1);
    provider.wait_for_count(1, RecordedRequest::is_refresh);
    logind.send("sleep");
    logind.wait_for("released");
    // The inhibitor was closed once the refresh was answered and saved,
    // and not before.
    let log = daemon.log();
    let refreshed = log.find(REFRESHED).unwrap_or_else(|| {
        panic!("the sleep went on before the refresh in flight was saved:\n{log}")
    });
    let sleeping = log
        .find("event=\"sleeping\"")
        .unwrap_or_else(|| panic!("no sleeping line:\n{log}"));
    assert!(refreshed < sleeping, "{log}");
    let sleeping_line = log[..sleeping].lines().last().unwrap_or_default();
    assert!(sleeping_line.contains("INFO"), "{sleeping_line}");
    // The next refresh comes due while the machine sleeps: it waits.
    let before = refreshes(&provider);
    daemon.wait_for_log(1, &["event=\"refresh_held\""]);
    assert_eq!(
        refreshes(&provider),
        before,
        "a refresh went out during the sleep"
    );
    logind.send("resume");
    daemon.wait_for_log(1, &["event=\"resumed\"", "sessions=1"]);
    daemon.wait_for_log(2, &[REFRESHED]);
    // And the next sleep is delayed again.
    logind.wait_for(INHIBITED);
    provider.assert_no_violations();
}

/// A wake-up that is not a refresh, taken while held for the sleep (here
/// the expiry of a token that has no refresh token), is carried out at the
/// resume: it was dropped, and the session never said it needs a login
/// (nor, for others, warned of a refresh token's end or planned its next
/// refresh).
#[test]
fn a_wake_up_held_for_the_sleep_is_carried_out_at_the_resume() {
    let bus = PrivateBus::start();
    let mut logind = StubLogind::start(&bus);
    let provider = Provider::start(tokend_emulator::Rfc8628Options {
        issue_refresh_tokens: false,
        access_token_lifetime: Duration::from_secs(3),
        ..support::provider::fast()
    });
    let daemon = logged_in_then_asleep(&provider, &mut logind, bus.address().to_owned());
    // The token expires while held: its wake-up waits.
    daemon.wait_for_log(1, &["event=\"refresh_held\""]);
    assert!(!daemon.log().contains("event=\"login_required\""));
    logind.send("resume");
    daemon.wait_for_log(1, &["event=\"login_required\"", "issued no refresh token"]);
}

/// A sleep announced, then the system bus gone before any resume was
/// announced (its daemon restarted): the held refreshes go at once, said,
/// rather than wait for a resume that cannot reach tokend.
#[test]
fn held_refreshes_go_when_the_system_bus_goes_away_before_the_resume() {
    let mut bus = PrivateBus::start();
    let mut logind = StubLogind::start(&bus);
    let provider = Provider::rfc8628();
    provider.set_access_token_lifetime(LIFETIME);
    let daemon = logged_in_then_asleep(&provider, &mut logind, bus.path_address());
    daemon.wait_for_log(1, &["event=\"refresh_held\""]);
    let refreshed = daemon.wait_for_log(0, &[REFRESHED]).len();
    bus.restart();
    daemon.wait_for_log(1, &["event=\"sleep_hold_ended\"", "sessions=1"]);
    daemon.wait_for_log(refreshed + 1, &[REFRESHED]);
}

/// A veth pair, both ends up: links with a carrier, no address (in the
/// calling thread's network namespace).
fn link_up_without_an_address() {
    for args in [
        &[
            "link",
            "add",
            "tokend-v0",
            "type",
            "veth",
            "peer",
            "name",
            "tokend-v1",
        ][..],
        &["link", "set", "tokend-v1", "up"],
        &["link", "set", "tokend-v0", "up"],
    ] {
        let status = std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "ip {args:?}");
    }
}

/// A laptop's network manager takes Wi-Fi down before the sleep and brings
/// it back seconds after the resume: the refreshes held for the sleep wait
/// for the network (at most 5 s), not go out at the resume into none, each
/// a failure, a warning and a hook run. Here the test's own network
/// namespace, its loopback taken down during the sleep.
#[test]
fn a_resume_waits_for_the_network_the_sleep_took_down() {
    if !support::other_uid::can_switch_uid() {
        support::skip::say(
            "SKIPPED a_resume_waits_for_the_network_the_sleep_took_down: needs root for a network namespace",
        );
        return;
    }
    let bus = PrivateBus::start();
    let address = bus.path_address();
    let mut logind = StubLogind::start(&bus);
    let namespace = crate::world::NetworkNamespace::new();
    namespace.run(move || {
        crate::world::loopback("up");
        let provider = Provider::rfc8628();
        provider.set_access_token_lifetime(LIFETIME);
        provider.set_rotate_refresh_tokens(false);
        let daemon = logged_in_then_asleep(&provider, &mut logind, address);
        crate::world::loopback("down");
        daemon.wait_for_log(1, &["the network may have gone"]);
        daemon.wait_for_log(1, &["event=\"refresh_held\""]);
        let refreshed = daemon.wait_for_log(0, &[REFRESHED]).len();
        logind.send("resume");
        daemon.wait_for_log(1, &["refreshes wait for it to come back"]);
        // A link coming up with its carrier, no address yet (Wi-Fi before
        // DHCP): not the network back.
        let changes = daemon.wait_for_log(0, &["event=\"network_changed\""]).len();
        link_up_without_an_address();
        daemon.wait_for_log(changes + 1, &["event=\"network_changed\""]);
        assert!(
            !daemon.log().contains("event=\"resumed\""),
            "{}",
            daemon.log()
        );
        crate::world::loopback("up");
        daemon.wait_for_log(1, &["event=\"resumed\"", "the network is back"]);
        daemon.wait_for_log(refreshed + 1, &[REFRESHED]);
        let log = daemon.log();
        assert!(!log.contains("event=\"refresh_failed\""), "{log}");
    });
}
