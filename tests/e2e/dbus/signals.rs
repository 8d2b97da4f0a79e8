//! `PropertiesChanged` of provider objects as a client that caches
//! properties reads them: one signal per change, none that repeats the one
//! before, and the last one always what `GetAll` answers.

use super::*;

use std::collections::BTreeMap;

use support::daemon::refresh_now;
use support::keyring::TestKeyring;

/// The properties of `org.tokend.Provider1`, as `gdbus` prints them.
const PROPERTIES: [&str; 7] = [
    "Name",
    "Dialect",
    "State",
    "ExpiresAt",
    "Scopes",
    "LastError",
    "LoginNeededBy",
];

/// The properties in a line `gdbus` printed (a `PropertiesChanged` or a
/// `GetAll` answer), by name: the order of a{sv} on the wire is the
/// sender's, so two equal signals may print them in different orders.
fn properties(line: &str) -> BTreeMap<&'static str, String> {
    let mut starts: Vec<(usize, &'static str)> = PROPERTIES
        .iter()
        .filter_map(|name| Some((line.find(&format!("'{name}': <"))?, *name)))
        .collect();
    starts.sort_unstable();
    let end = line.rfind('}').expect("a dictionary");
    let mut found = BTreeMap::new();
    for (i, (start, name)) in starts.iter().enumerate() {
        let until = starts.get(i + 1).map_or(end, |(next, _)| *next);
        let value = line[*start..until]
            .trim_end()
            .trim_end_matches(',')
            .split_once(": ")
            .unwrap()
            .1;
        found.insert(*name, value.to_owned());
    }
    assert_eq!(
        found.len(),
        PROPERTIES.len(),
        "not every property in {line}"
    );
    found
}

impl Monitor {
    /// Every line up to the first with `needle`, that one included.
    fn lines_until(&mut self, needle: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.lines.recv_timeout(SIGNAL_TIMEOUT) {
                Ok(line) => {
                    let last = line.contains(needle);
                    lines.push(line);
                    if last {
                        return lines;
                    }
                }
                Err(e) => panic!("no D-Bus line with {needle:?} after {lines:#?}: {e}"),
            }
        }
    }
}

impl Setup {
    /// The signals sent until now: every signal of the events raised
    /// before this call. Ends `sync`'s login, whose `LoginFinished` comes
    /// after them (one task sends the signals of all events, in order).
    fn signals_so_far(&self, monitor: &mut Monitor) -> Vec<String> {
        let out = self.busctl(&["Logout", "s", "sync"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        monitor.lines_until("org.tokend.Broker1.LoginFinished ('sync', false")
    }

    /// The provider object's `PropertiesChanged` among `lines`, parsed,
    /// after checking that no two in a row are equal and that the last is
    /// what `GetAll` answers now.
    fn check_properties_changed(
        &self,
        lines: &[String],
        path: &str,
    ) -> Vec<BTreeMap<&'static str, String>> {
        let signals: Vec<_> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("{path}: ")) && l.contains(".PropertiesChanged "))
            .map(|l| properties(l))
            .collect();
        for pair in signals.windows(2) {
            assert_ne!(
                pair[0], pair[1],
                "two equal PropertiesChanged in a row for {path}: {signals:#?}"
            );
        }
        let out = self.gdbus(
            path,
            "org.freedesktop.DBus.Properties.GetAll",
            &["org.tokend.Provider1"],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let now = properties(&text(&out.stdout));
        assert_eq!(
            signals.last(),
            Some(&now),
            "the last PropertiesChanged is not what GetAll answers: {signals:#?}"
        );
        signals
    }
}

#[test]
fn a_device_login_signals_each_change_of_properties_once() {
    let setup = start(fast(), &["demo"]);
    let path = "/org/tokend/Broker1/providers/demo";
    let mut monitor = setup.monitor();
    login(&setup.daemon, "demo", |code| {
        setup.provider.approve(code).unwrap();
    });
    let lines = setup.signals_so_far(&mut monitor);
    let signals = setup.check_properties_changed(&lines, path);
    let states: Vec<&str> = signals.iter().map(|s| s["State"].as_str()).collect();
    assert_eq!(states, ["<'login_pending'>", "<'active'>"], "{signals:#?}");
}

/// A D-Bus client watching the store (a desktop indicator) is told when it
/// goes down and when it is back: `PropertiesChanged` of the broker
/// object's store properties (they were read on demand only), the last one
/// what `GetAll` answers. Here a keyring locked under a refresh, then
/// unlocked.
#[test]
fn the_store_going_down_and_coming_back_is_signalled() {
    let bus = PrivateBus::start();
    let Some(keyring) = TestKeyring::start_or_skip(&bus, "the_store_going_down_and_coming_back")
    else {
        return;
    };
    let daemon = DaemonOptions {
        store: "secret-service",
        ..DaemonOptions::on_session_bus(&bus)
    };
    let setup = start_with(bus, fast(), &["demo"], daemon);
    login(&setup.daemon, "demo", |code| {
        setup.provider.approve(code).unwrap();
    });
    let mut monitor = setup.monitor();
    let changed = "/org/tokend/Broker1: org.freedesktop.DBus.Properties.PropertiesChanged \
                   ('org.tokend.Broker1', ";

    keyring.lock_default_collection();
    refresh_now(&setup.daemon, "demo");
    let down = monitor.wait_for(changed);
    assert!(
        down.contains("'StoreState': <'unavailable'>") && down.contains("unlock your keyring"),
        "{down}"
    );

    keyring.unlock_default_collection();
    let back = monitor.wait_for(changed);
    assert!(
        back.contains("'StoreState': <'available'>")
            && back.contains("'StoreError': <''>")
            && back.contains("'StoreUnavailableSince': <int64 0>"),
        "{back}"
    );
    let out = setup.gdbus(
        "/org/tokend/Broker1",
        "org.freedesktop.DBus.Properties.Get",
        &["org.tokend.Broker1", "StoreState"],
    );
    assert_eq!(text(&out.stdout).trim(), "(<'available'>,)");
}

#[test]
fn a_logout_during_a_login_signals_each_change_of_properties_once() {
    // Logged in, then a second login, ended by a logout before it is
    // approved: the session ends (the active tokens go) and so does the
    // login, each of which tells the front-ends.
    let setup = start(fast(), &["demo"]);
    let path = "/org/tokend/Broker1/providers/demo";
    let mut monitor = setup.monitor();
    login(&setup.daemon, "demo", |code| {
        setup.provider.approve(code).unwrap();
    });
    let out = setup.busctl(&["Login", "s", "demo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut lines = monitor.lines_until("org.tokend.Broker1.LoginPrompt ('demo'");
    let out = setup.busctl(&["Logout", "s", "demo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    lines.extend(setup.signals_so_far(&mut monitor));
    let signals = setup.check_properties_changed(&lines, path);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("org.tokend.Broker1.LoginFinished ('demo', false")),
        "{lines:#?}"
    );
    let states: Vec<&str> = signals.iter().map(|s| s["State"].as_str()).collect();
    assert_eq!(states.last(), Some(&"<'logged_out'>"), "{signals:#?}");
}

/// A D-Bus client following a login sees its polls fail, and recover, in
/// `LastError` (as `tokenctl status` shows them), each change signalled.
#[test]
fn failing_polls_of_a_login_are_signalled_in_last_error() {
    let setup = start(fast(), &["demo"]);
    let path = "/org/tokend/Broker1/providers/demo";
    let mut monitor = setup.monitor();
    let out = setup.busctl(&["Login", "s", "demo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut lines = monitor.lines_until("org.tokend.Broker1.LoginPrompt ('demo'");
    // demo's `LastError` as its signals change it, up to one that
    // `pred` accepts (`sync`, never logged in, polls the same provider,
    // and its signals come between).
    let mut last_error_until = |lines: &mut Vec<String>, pred: &dyn Fn(&str) -> bool| {
        for _ in 0..5 {
            lines.extend(monitor.lines_until(&format!("{path}: ")));
            let last_error = properties(&lines[lines.len() - 1])["LastError"].clone();
            if pred(&last_error) {
                return last_error;
            }
        }
        panic!("no such LastError in {lines:#?}");
    };
    setup.provider.set_unavailable(true);
    let failing = last_error_until(&mut lines, &|e| e != "<''>");
    assert!(
        failing.contains("polling for the login's approval fails") && failing.contains("HTTP 503"),
        "{failing}"
    );
    setup.provider.set_unavailable(false);
    last_error_until(&mut lines, &|e| e == "<''>");
    let out = setup.busctl(&["Logout", "s", "demo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    lines.extend(setup.signals_so_far(&mut monitor));
    setup.check_properties_changed(&lines, path);
}

/// A stop ends a login that waits for approval: a D-Bus client waiting for
/// its `LoginFinished` hears it, ok false. It was lost in two runs of five:
/// the signals' loop ended at the stop without sending what was queued.
/// Three daemons, each stopped during a login.
#[test]
fn a_stop_during_a_login_is_signalled_as_its_end() {
    for round in 0..3 {
        let setup = start(fast(), &["demo"]);
        let mut monitor = setup.monitor();
        let out = setup.busctl(&["Login", "s", "demo"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        monitor.lines_until("org.tokend.Broker1.LoginPrompt ('demo'");
        support::process::signal(setup.daemon.pid(), rustix::process::Signal::TERM);
        let finished = monitor.wait_for("org.tokend.Broker1.LoginFinished ('demo', false");
        assert!(
            finished.contains("shutting down"),
            "round {round}: {finished}"
        );
    }
}

#[test]
fn a_login_a_reload_ends_by_removing_its_provider_is_signalled() {
    // The login ends because its provider left the config: the broker no
    // longer knows who may see the provider, but those who could are
    // still told how the login they waited for ended.
    let mut setup = start(fast(), &["demo", "gone"]);
    let mut monitor = setup.monitor();
    let out = setup.busctl(&["Login", "s", "gone"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    monitor.lines_until("org.tokend.Broker1.LoginPrompt ('gone'");
    setup.daemon.write_config(&format!(
        "{}{}",
        setup.provider.config("demo"),
        setup.provider.config("sync")
    ));
    setup.daemon.reload();
    let lines = monitor.lines_until("org.tokend.Broker1.LoginFinished ('gone', false");
    let finished = lines.last().unwrap();
    assert!(
        finished.contains("a reload removed the provider from the config"),
        "{finished}"
    );
}
