//! Which dialect an emulator speaks, and how it is built.

use super::authority::Policy;
use super::generic_v1::{GenericV1, GenericV1Options};
use super::oracle::{Oracle, OracleOptions};
use super::rfc8628::{Rfc8628, Rfc8628Options};
use super::server::Dialect;
use super::trakt::{Trakt, TraktOptions};
use super::twilio::{Twilio, TwilioOptions};

/// Which dialect to emulate, and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EmulatorOptions {
    /// The standard dialect (RFC 8628 + RFC 6749), with quirk modes.
    Rfc8628(Rfc8628Options),
    /// Trakt.
    Trakt(TraktOptions),
    /// Twilio OAuth v1.
    Twilio(TwilioOptions),
    /// Oracle identity domains.
    Oracle(OracleOptions),
    /// The generic device API v1 (a Django REST framework service).
    GenericV1(GenericV1Options),
}

macro_rules! emulator_options_from {
    ($($options:ident => $variant:ident),* $(,)?) => {$(
        impl From<$options> for EmulatorOptions {
            fn from(options: $options) -> Self {
                Self::$variant(options)
            }
        }
    )*};
}

emulator_options_from!(
    Rfc8628Options => Rfc8628,
    TraktOptions => Trakt,
    TwilioOptions => Twilio,
    OracleOptions => Oracle,
    GenericV1Options => GenericV1,
);

impl EmulatorOptions {
    /// The dialect for a server at `origin`, and its token rules.
    pub(crate) fn build(self, origin: &str) -> (Box<dyn Dialect>, Policy) {
        let policy = match &self {
            Self::Rfc8628(options) => options.policy(),
            Self::Trakt(options) => options.policy(),
            Self::Twilio(options) => options.policy(),
            Self::Oracle(options) => options.policy(),
            Self::GenericV1(options) => options.policy(),
        };
        let dialect: Box<dyn Dialect> = match self {
            Self::Rfc8628(options) => Box::new(Rfc8628::new(options, origin)),
            Self::Trakt(options) => Box::new(Trakt::new(options, origin)),
            Self::Twilio(options) => Box::new(Twilio::new(options, origin)),
            Self::Oracle(options) => Box::new(Oracle::new(options, origin)),
            Self::GenericV1(options) => Box::new(GenericV1::new(options, origin)),
        };
        (dialect, policy)
    }
}
