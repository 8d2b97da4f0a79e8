//! The emulated dialects, one file each, and the one list of them.
//!
//! Each file holds a dialect's options (with their `EmulatedDialect`
//! implementation: name, token rules, the demo program's settings, the
//! tokend config that reaches it) and its server side (routes, strict
//! reading of requests, answers and violations in its own wire format).
//!
//! Adding a dialect: its file here, its `pub mod` line below, and its line
//! in the list at the end. The list makes [`EmulatorOptions`] (its variant
//! and `From`) and the program's `--dialect` value.

use crate::dialect::emulated_dialects;

pub mod generic_v1;
pub mod oracle;
pub mod rfc8628;
pub mod trakt;
pub mod twilio;

emulated_dialects! {
    Rfc8628(rfc8628::Rfc8628Options),
    Trakt(trakt::TraktOptions),
    Twilio(twilio::TwilioOptions),
    Oracle(oracle::OracleOptions),
    GenericV1(generic_v1::GenericV1Options),
}
