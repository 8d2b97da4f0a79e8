//! The emulators' own end-to-end tests, in one binary: each dialect's wire
//! format seen from a real HTTP client, the injected faults, the quirk
//! modes, and the `tokend-emulator` program.

mod dialects;
mod faults;
mod http;
mod quirks;
mod rfc8628;
