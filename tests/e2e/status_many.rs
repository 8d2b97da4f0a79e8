//! `status` with 10,000 providers (issue 12): the real `tokend` with 10,000
//! providers on one emulator, asked by the real `tokenctl`, by raw protocol
//! lines (streamed, and the single line of protocol-1 clients) and over a
//! private D-Bus.
//!
//! Before streaming, the single answer line of 10,000 providers (about
//! 2.5 MB) was longer than `tokenctl` reads, and `tokenctl status` failed.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use support::bus::PrivateBus;
use support::daemon::{Daemon, DaemonOptions, login, stderr, stdout};
use support::openmetrics::parse;
use support::provider::Provider;
use tokend::protocol::{MAX_ANSWER_LINE, ProviderStatus};

const PROVIDERS: usize = 10_000;

/// The one provider logged in, so that one status differs from the rest.
const ACTIVE: &str = "p04242";

fn names() -> Vec<String> {
    (0..PROVIDERS).map(|i| format!("p{i:05}")).collect()
}

fn start(provider: &Provider, options: DaemonOptions) -> Daemon {
    // Written in reverse: every answer is in name order anyway.
    let config: String = names().iter().rev().map(|n| provider.config(n)).collect();
    Daemon::start_with(&config, options)
}

/// Reads one line, failing on one longer than clients read.
fn read_line(reader: &mut impl BufRead) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read an answer line");
    assert!(
        line.ends_with('\n'),
        "the daemon hung up mid-line: {line:?}"
    );
    assert!(line.len() <= MAX_ANSWER_LINE, "{} bytes", line.len());
    line
}

#[test]
fn ten_thousand_providers_over_the_socket_and_tokenctl() {
    let provider = Provider::rfc8628();
    let daemon = start(&provider, DaemonOptions::default());
    login(&daemon, ACTIVE, |code| {
        provider.approve(code).expect("approve");
    });
    let expected = names();

    // tokenctl status: a header, then a row per provider, in name order.
    let out = daemon.tokenctl(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("NAME "), "{text:.200}");
    let rows: Vec<&str> = lines.filter(|l| !l.starts_with(' ')).collect();
    let shown: Vec<&str> = rows
        .iter()
        .map(|row| row.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(shown, expected);
    let active = rows.iter().find(|r| r.starts_with(ACTIVE)).unwrap();
    assert!(active.contains(" active "), "{active}");

    // tokenctl --json status: one array, as before.
    let out = daemon.tokenctl(&["--json", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all: Vec<ProviderStatus> = serde_json::from_slice(&out.stdout).expect("a JSON array");
    let shown: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(shown, expected);
    assert_eq!(all.iter().filter(|p| p.state == "active").count(), 1);

    // tokenctl status NAME: that one provider only.
    let out = daemon.tokenctl(&["status", ACTIVE]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with(&format!("{ACTIVE} (rfc8628)\n")), "{text}");
    assert!(text.contains("  state         active\n"), "{text}");
    assert!(
        !text.contains("p00000") && !text.contains("p09999"),
        "{text}"
    );
    let out = daemon.tokenctl(&["--json", "status", "p00007"]);
    let one: Vec<ProviderStatus> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].name, "p00007");
    // An unknown name: named as such, with a few of the others, not 10,000.
    let out = daemon.tokenctl(&["status", "p10000"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no provider named `p10000`") && err.contains("and 9992 more"),
        "{err:.300}"
    );
    assert!(err.len() < 300, "{} bytes: {err:.300}", err.len());

    // The raw protocol on one connection: the stream, then the old request.
    let stream = UnixStream::connect(&daemon.socket).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writer
        .write_all(b"{\"op\":\"status\",\"stream\":true}\n")
        .unwrap();
    let mut streamed = Vec::new();
    let done = loop {
        let line: serde_json::Value = serde_json::from_str(&read_line(&mut reader)).unwrap();
        match line["event"].as_str() {
            Some("provider") => streamed.push(line["name"].as_str().unwrap().to_owned()),
            _ => break line,
        }
    };
    assert_eq!(streamed, expected);
    // The store's state once, at the end, not in 10,000 lines.
    assert_eq!(
        done,
        serde_json::json!({"event": "done", "ok": true, "count": PROVIDERS,
            "store": {"state": "available", "name": "memory store"}})
    );

    // A client of protocol 1 asks for one line: too long for it, so it is
    // told why and what to ask instead, and the connection goes on.
    writer.write_all(b"{\"op\":\"status\"}\n").unwrap();
    let refusal: serde_json::Value = serde_json::from_str(&read_line(&mut reader)).unwrap();
    assert_eq!(refusal["ok"], false, "{refusal}");
    assert_eq!(refusal["error"]["code"], "answer_too_large", "{refusal}");
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(r#"{"op":"status","stream":true}"#) && message.contains("one provider"),
        "{message}"
    );
    // One provider the old way still works.
    writer
        .write_all(format!("{{\"op\":\"status\",\"provider\":\"{ACTIVE}\"}}\n").as_bytes())
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&read_line(&mut reader)).unwrap();
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["providers"][0]["state"], "active", "{answer}");

    // The metrics count the refusal as such, not as a status served (a
    // request is counted before the next on its connection is read: the
    // answer above says it has been).
    let out = daemon.tokenctl(&["metrics"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let metrics = parse(&stdout(&out)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        metrics.value(
            "tokend_socket_requests_total",
            &[("op", "status"), ("outcome", "answer_too_large")]
        ),
        Some(1.0)
    );
}

/// A protocol-1 client that asks for a status that fits gets the single
/// line it always got.
#[test]
fn a_status_that_fits_one_line_is_still_one_line() {
    let provider = Provider::rfc8628();
    let config: String = ["a", "b"].iter().map(|n| provider.config(n)).collect();
    let daemon = Daemon::start(&config);
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    stream.write_all(b"{\"op\":\"status\"}\n").unwrap();
    let answer: serde_json::Value =
        serde_json::from_str(&read_line(&mut BufReader::new(stream))).unwrap();
    assert_eq!(answer["ok"], true, "{answer}");
    let names: Vec<&str> = answer["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

/// `ListProviders` over a private bus with `busctl`, a separate client.
#[test]
fn ten_thousand_providers_over_dbus() {
    let bus = PrivateBus::start();
    let provider = Provider::rfc8628();
    let daemon = start(&provider, DaemonOptions::on_session_bus(&bus));
    let out = bus
        .command("busctl")
        .arg(format!("--address={}", bus.address()))
        .args(["--json=short", "call", "org.tokend.Broker1"])
        .args(["/org/tokend/Broker1", "org.tokend.Broker1", "ListProviders"])
        .output()
        .expect("run busctl");
    assert!(
        out.status.success(),
        "{}\nlog:\n{}",
        stderr(&out),
        daemon.log()
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["type"], "as", "{:.200}", stdout(&out));
    let names: Vec<&str> = reply["data"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(names, self::names());
}
