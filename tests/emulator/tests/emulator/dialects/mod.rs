//! The dialect emulators over real HTTP: each is as strict as the provider
//! it stands for (wrong encodings, wrong key names, missing parameters,
//! wrong authentication and too-fast polls are refused and recorded as
//! violations) and reproduces its quirks. The RFC 8628 emulator's quirk
//! modes are in `quirks.rs`.
//!
//! No sleeps: where the protocol makes a client wait (a poll interval), the
//! test advances the emulator's clock.

use std::fmt::Write as _;

use crate::http::{SECOND, http, json, post, start, text};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use serde_json::{Value, json as j};
use tokend_emulator::{
    DEVICE_CODE_GRANT, Emulator, GenericV1Options, OracleOptions, TraktOptions, TwilioDateFormat,
    TwilioErrorStyle, TwilioOptions,
};

fn send_json(http: &reqwest::Client, url: url::Url, body: &Value) -> reqwest::RequestBuilder {
    http.post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string())
}

/// Sends and returns status, headers and the raw body.
async fn raw(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

fn join(emu: &Emulator, path: &str) -> url::Url {
    emu.base_url().join(path).unwrap()
}

mod binary;
mod oracle_generic;
mod trakt_twilio;
