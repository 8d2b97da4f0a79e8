//! Signals of events raised while the signal sender could not keep up (the
//! bus stalled): every kind of thing that happened to every provider is
//! signalled once the bus moves again.

use super::*;

use std::io::Write as _;
use std::os::unix::net::UnixStream;

use rustix::process::Signal;
use support::process::signal;

/// Logins started and cancelled while the bus is stopped: more than 2,000
/// events (each login's start, prompt, end and their changes of state),
/// twice what tokend's broadcast of events holds.
const LOGINS: usize = 500;

/// One request on a new socket connection: its first answer line.
fn ask(daemon: &Daemon, request: &str) -> serde_json::Value {
    let mut stream = UnixStream::connect(&daemon.socket).expect("connect");
    stream
        .set_read_timeout(Some(SIGNAL_TIMEOUT))
        .expect("a read timeout");
    stream.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("no answer to {request}: {e}"));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

/// Starts and cancels a login of each of `names` over the socket, with the
/// bus stopped: more signals than the bus's socket takes.
fn logins_behind_a_stopped_bus(setup: &Setup, names: &[String]) {
    signal(setup.bus.pid(), Signal::STOP);
    for name in names {
        // The login goes on once its client leaves.
        let prompt = ask(
            &setup.daemon,
            &format!(r#"{{"op":"login","provider":"{name}"}}"#),
        );
        assert_eq!(prompt["event"], "prompt", "{prompt}");
        let cancelled = ask(
            &setup.daemon,
            &format!(r#"{{"op":"cancel_login","provider":"{name}"}}"#),
        );
        assert_eq!(cancelled["cancelled"], true, "{cancelled}");
    }
}

/// A D-Bus client that waits for its login's `LoginFinished` gets it, for
/// each of 500 logins that ended while the bus was stalled: the signal
/// sender followed a broadcast of 1,024 events that dropped the oldest
/// when it fell behind, and those logins' ends were never signalled (a
/// `busctl`/`gdbus` script waiting for one waited for ever).
#[test]
fn logins_ended_behind_a_stalled_bus_are_each_signalled() {
    let names: Vec<String> = (0..LOGINS).map(|n| format!("p{n}")).collect();
    let providers: Vec<&str> = names.iter().map(String::as_str).collect();
    let setup = start(fast(), &providers);
    let mut monitor = setup.monitor();
    logins_behind_a_stopped_bus(&setup, &names);
    signal(setup.bus.pid(), Signal::CONT);
    let ends: Vec<String> = names
        .iter()
        .map(|name| format!("org.tokend.Broker1.LoginFinished ('{name}', false"))
        .collect();
    let ends: Vec<&str> = ends.iter().map(String::as_str).collect();
    monitor.wait_for_all(&ends);
}

/// A stop while the bus takes nothing (stalled) with signals queued is
/// not held by them past a short wait, and says so: it waited its whole
/// grace (20 s), blocked in a signal, and then blamed requests left
/// unanswered.
#[test]
fn a_stop_behind_a_stalled_bus_is_not_held_by_its_signals() {
    let names: Vec<String> = (0..LOGINS).map(|n| format!("p{n}")).collect();
    let providers: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut setup = start(fast(), &providers);
    logins_behind_a_stopped_bus(&setup, &names);
    let started = std::time::Instant::now();
    let status = setup
        .daemon
        .signal_and_wait(Signal::TERM, Duration::from_secs(60));
    let took = started.elapsed();
    signal(setup.bus.pid(), Signal::CONT);
    let log = setup.daemon.log();
    assert!(
        log.contains("D-Bus signals still queued at the stop were not sent")
            && !log.contains("still unanswered"),
        "{status:?} after {took:?}: {log}"
    );
}
