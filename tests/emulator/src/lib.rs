//! Provider emulators: real HTTP servers on 127.0.0.1 that speak a provider
//! dialect faithfully and strictly, for the end-to-end tests and the
//! zero-credential demo (`tokend-emulator`).
//!
//! An [`Emulator`] runs on the caller's tokio runtime and stops when dropped.
//! Tests drive the person's side ([`Emulator::approve`]), bend the rules
//! ([`Emulator::set_interval`], [`Emulator::inject`] a [`Fault`]), and read
//! what the client did ([`Emulator::requests`], [`Emulator::violations`]),
//! waiting on events rather than sleeping ([`Emulator::wait_for`]).
//!
//! Its time is a [`Clock`]: the program runs on the system clock, and a test
//! that starts it on [`Clock::manual`] moves the provider's time with
//! [`Emulator::advance`] instead of waiting for device codes or tokens to
//! expire.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use tokend_emulator::{Emulator, Rfc8628Options};
//!
//! let emu = Emulator::start(Rfc8628Options {
//!     client_id: "cid".into(),
//!     interval: Duration::from_secs(1),
//!     ..Default::default()
//! })
//! .await?;
//! // ... point the client at emu.device_authorization_endpoint() ...
//! let code = emu.wait_for_device_code().await;
//! emu.approve(&code.user_code).unwrap();
//! emu.wait_for(|requests| requests.iter().any(|r| r.outcome == "granted")).await;
//! assert!(emu.violations().is_empty());
//! # Ok(()) }
//! ```
//!
//! Dialects: `rfc8628` (with [`Rfc8628Quirks`] for GitHub, Google,
//! Microsoft, Azure AD v1 and Auth0), `trakt`, `twilio`, `oracle` and
//! `generic_v1`, one file each under [`dialects`], chosen by
//! [`EmulatorOptions`].
//!
//! Layout, each file depending only on those above it (no import circles):
//! - leaves: `clock` (time), `record` (what is remembered of a request),
//!   `codes` (user codes), `body` and `reply` (answers), `multipart`;
//! - `received` (a request with its body read), `form` (strict bodies:
//!   form, JSON, multipart, repeated keys), `client_auth` (client
//!   authentication), `authority` (codes, tokens, refresh families),
//!   `approval` (the page), `fault`, `wire` (shared answer bodies);
//! - `dialect`: what a dialect implements, and the macro behind the list;
//! - `dialects/`: one file per dialect and the one list of them;
//! - `server` (HTTP plumbing, faults, recording) and `emulator` (the
//!   [`Emulator`] handle).
//!
//! Adding a dialect: its file in `dialects/`, implementing `Dialect` (route
//! paths to [`Endpoint`]s, read the grant, map each request onto
//! `Authority` verdicts and those onto its own status codes and field
//! names, recording every client mistake as a violation) and
//! `EmulatedDialect` for its options; its `pub mod` line and its line in
//! the list in `dialects/mod.rs`.

mod approval;
mod authority;
mod body;
mod client_auth;
mod clock;
mod codes;
mod dialect;
pub mod dialects;
mod emulator;
mod fault;
mod form;
mod multipart;
mod received;
mod record;
mod reply;
mod server;
mod wire;

pub use client_auth::ClientAuthMode;
pub use clock::Clock;
pub use codes::{ApprovalError, CodeStatus, IssuedCode};
pub use dialect::DemoSettings;
pub use dialects::EmulatorOptions;
pub use dialects::generic_v1::GenericV1Options;
pub use dialects::oracle::{OFFLINE_ACCESS, OracleOptions};
pub use dialects::rfc8628::{ByteOrderMarks, FormAnswers, Rfc8628Options, Rfc8628Quirks};
pub use dialects::trakt::{TraktOptions, TraktPollBodies, TraktRefreshErrors};
pub use dialects::twilio::{TwilioDateFormat, TwilioErrorStyle, TwilioOptions};
pub use emulator::{Emulator, SeededSession, WAIT_TIMEOUT};
pub use fault::{Fault, Garble, http_date};
pub use record::{AuthSeen, DEVICE_CODE_GRANT, Endpoint, Grant, RecordedRequest};
