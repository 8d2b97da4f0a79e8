//! The floors a blocking refresh is measured against: the provider's own
//! refresh sent straight to the emulator, and one store write of a session
//! in either store (the Secret Service's in a child process, whose
//! environment names the private bus).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::support::bus::PrivateBus;
use super::support::file_store::{FileStore, Seeded, granted_records};
use super::support::provider::Provider;
use super::{PROVIDERS, median};
use tokend::store::{EncryptedFileStore, SecretServiceStore, Store, StoreKey, StoredSession};

/// Times `PROVIDERS` refresh-token grants sent straight to the emulator on
/// one kept-alive connection, each with a session of its own (granted by
/// the emulator, as the seeded ones were).
pub fn provider_refreshes(provider: &Provider) -> Vec<Duration> {
    let url = provider.token_endpoint();
    let address = format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port().expect("a port")
    );
    let mut stream = TcpStream::connect(&address).expect("connect to the emulator");
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut times = Vec::with_capacity(PROVIDERS);
    for _ in 0..PROVIDERS {
        let granted = provider.grant_session("tokend-test", Duration::from_secs(4 * 3600));
        let refresh_token = granted.refresh_token.expect("a refresh token");
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", &refresh_token)
            .append_pair("client_id", "tokend-test")
            .finish();
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {address}\r\nAccept: application/json\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            url.path(),
            body.len()
        );
        let started = Instant::now();
        stream.write_all(request.as_bytes()).unwrap();
        let answer = read_response(&mut reader);
        times.push(started.elapsed());
        assert!(
            answer.contains("access_token"),
            "the emulator did not refresh: {answer}"
        );
    }
    times
}

/// Reads one HTTP/1.1 response with a `Content-Length`; returns its body.
fn read_response(reader: &mut BufReader<TcpStream>) -> String {
    let mut length = 0;
    for _ in 0..100 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().expect("a length");
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    String::from_utf8_lossy(&body).into_owned()
}

/// Times `PROVIDERS` saves of a session record in a fresh encrypted-file
/// store, as the daemon saves them (each replaces an existing record, as a
/// refresh does), twice: first into a new file (a session's first save in
/// a process: what every save cost before the store kept spares), then
/// over the spare that first save's swap left (every later save).
pub fn file_store_writes(provider: &Provider, providers: &str) -> (Vec<Duration>, Vec<Duration>) {
    let files = FileStore::new();
    let key = StoreKey::read_file(&files.key_path()).expect("the store key");
    let store = EncryptedFileStore::new(&files.state_dir(), key);
    let records = granted_records(provider, providers, |_| Duration::from_secs(4 * 3600));
    for (seeded, record) in &records {
        store.save(&seeded.name, record).expect("save a record");
    }
    // The first save of a record makes its spare (zeros): each save timed
    // as one into a new file has it removed first, as a record an older
    // version saved has none.
    let timed = |new_file: bool| -> Vec<Duration> {
        records
            .iter()
            .map(|(seeded, record)| {
                if new_file {
                    let spare = files.sessions_dir().join(FileStore::spare(&seeded.name));
                    std::fs::remove_file(spare).expect("remove the spare");
                }
                let started = Instant::now();
                store.save(&seeded.name, record).expect("save a record");
                started.elapsed()
            })
            .collect()
    };
    let new_file = timed(true);
    let over_spare = timed(false);
    (new_file, over_spare)
}

/// The median time of a Secret Service save of an existing item, as a
/// refresh makes it, measured by this benchmark run as a child process on
/// `bus` (see `secret_service_writes`).
pub fn secret_service_write_median(
    bus: &PrivateBus,
    records: &[(Seeded, StoredSession)],
) -> Duration {
    let mut child = Command::new(std::env::current_exe().expect("the benchmark's path"))
        .arg("--secret-service-writes")
        .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the Secret Service writer");
    {
        let mut input = child.stdin.take().expect("piped stdin");
        for (seeded, record) in records {
            writeln!(input, "{} {}", seeded.name, hex(&record.to_bytes()))
                .expect("hand a record over");
        }
    }
    let output = child.wait_with_output().expect("the writer's answer");
    assert!(output.status.success(), "the Secret Service writer failed");
    let micros: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("the writer prints a median in microseconds");
    Duration::from_micros(micros)
}

/// Child mode: reads `NAME HEX-RECORD` lines, saves each record in the
/// Secret Service of this process's session bus twice (the first creates
/// the item, the second replaces its secret as a refresh does and is
/// timed), removes them, and prints the median in microseconds.
pub fn secret_service_writes() {
    let store = SecretServiceStore::connect().expect("the Secret Service");
    let mut times = Vec::new();
    let mut names = Vec::new();
    for line in std::io::stdin().lock().lines().take(10_000) {
        let line = line.expect("a record line");
        let (name, bytes) = line.split_once(' ').expect("NAME HEX");
        let record = StoredSession::from_bytes(&unhex(bytes)).expect("a record");
        store.save(name, &record).expect("create the item");
        let started = Instant::now();
        store
            .save(name, &record)
            .expect("replace the item's secret");
        times.push(started.elapsed());
        names.push(name.to_owned());
    }
    for name in &names {
        store.delete(name).expect("remove the item");
    }
    println!("{}", median(times).as_micros());
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut text, b| {
        let _ = write!(text, "{b:02x}");
        text
    })
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}
