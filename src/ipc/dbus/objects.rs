//! The objects tokend serves on the bus, by path.

use super::{BROKER_PATH, PROVIDERS_PATH};

/// What an incoming call is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Object<'a> {
    /// `/`, `/org` or `/org/tokend`: nodes on the way, with their child.
    Ancestor(&'a str),
    /// `/org/tokend/Broker1`.
    Broker,
    /// `/org/tokend/Broker1/providers`.
    Providers,
    /// `/org/tokend/Broker1/providers/ELEMENT`.
    Provider(&'a str),
}

impl<'a> Object<'a> {
    /// The object at `path`, if tokend serves one there.
    pub(super) fn at(path: &'a str) -> Option<Self> {
        match path {
            "/" => Some(Self::Ancestor("org")),
            "/org" => Some(Self::Ancestor("tokend")),
            "/org/tokend" => Some(Self::Ancestor("Broker1")),
            BROKER_PATH => Some(Self::Broker),
            PROVIDERS_PATH => Some(Self::Providers),
            _ => path
                .strip_prefix(PROVIDERS_PATH)
                .and_then(|rest| rest.strip_prefix('/'))
                .filter(|element| !element.is_empty() && !element.contains('/'))
                .map(Self::Provider),
        }
    }
}
