//! HTTP helpers shared by the emulator's integration tests.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use tokend_emulator::{Clock, Emulator, EmulatorOptions, Rfc8628Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The form media type.
pub const FORM: &str = "application/x-www-form-urlencoded";
/// The poll interval most tests use.
pub const SECOND: Duration = Duration::from_secs(1);

/// A client that does not follow redirects (tokend's does not either).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A form-encoded body.
pub fn encode(pairs: &[(&str, &str)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.extend_pairs(pairs);
    form.finish()
}

/// A form POST.
pub fn post(
    http: &reqwest::Client,
    url: url::Url,
    pairs: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    http.post(url)
        .header(CONTENT_TYPE, FORM)
        .body(encode(pairs))
}

/// Sends and reads a JSON answer.
pub async fn json(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let body = response.bytes().await.unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// Starts an emulator on a manual clock: where a client must wait (a poll
/// interval), the test advances the emulator's time instead of sleeping.
pub async fn start(options: impl Into<EmulatorOptions>) -> Emulator {
    Emulator::start_with_clock(options, Clock::manual())
        .await
        .unwrap()
}

/// A public client `cid` polling every `interval`.
pub fn public(interval: Duration) -> Rfc8628Options {
    Rfc8628Options {
        client_id: "cid".into(),
        interval,
        ..Default::default()
    }
}

/// A string field of a JSON answer.
pub fn text(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {value}"))
        .to_owned()
}

/// Sends a bodiless form POST over a raw socket, to watch the connection itself.
pub async fn raw_post(emu: &Emulator, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(emu.addr()).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {FORM}\r\nContent-Length: 0\r\n\r\n",
        emu.addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Reads until the connection ends: what arrived, and how it ended.
pub async fn read_all(stream: &mut TcpStream) -> (Vec<u8>, std::io::Result<()>) {
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) => return (received, Ok(())),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) => return (received, Err(e)),
        }
    }
}
