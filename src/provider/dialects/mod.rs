//! The registry: every wire dialect tokend speaks, one file each.
//!
//! Each file describes its dialect completely in a `pub static DIALECT:
//! DialectSpec` (config name, own keys and their checks, fixed paths,
//! client authentications, how to build it) beside its wire and answer
//! formats. Nothing else in the crate names a dialect: the config loader
//! asks [`by_name`] and the spec, the broker builds through the spec.
//! Adding one is a file here, its `mod` line and its entry in [`ALL`]
//! (README, "Adding a dialect").

pub mod generic_v1;
pub mod oracle;
pub mod rfc8628;
pub mod trakt;
pub mod twilio;

use super::DialectSpec;

/// Every dialect, in the order error messages list them.
pub static ALL: &[&DialectSpec] = &[
    &rfc8628::DIALECT,
    &trakt::DIALECT,
    &twilio::DIALECT,
    &oracle::DIALECT,
    &generic_v1::DIALECT,
];

/// The dialect of a provider table without a `dialect` key.
pub static DEFAULT: &DialectSpec = &rfc8628::DIALECT;

/// The dialect whose config name is `name`.
#[must_use]
pub fn by_name(name: &str) -> Option<&'static DialectSpec> {
    ALL.iter().copied().find(|spec| spec.name == name)
}

/// The dialect that owns `key` among the dialect-only keys, if any.
#[must_use]
pub fn owner_of(key: &str) -> Option<&'static DialectSpec> {
    ALL.iter()
        .copied()
        .find(|spec| spec.own_keys.contains(&key))
}

/// Every dialect-only key, each once.
pub fn own_keys() -> impl Iterator<Item = &'static str> {
    ALL.iter().flat_map(|spec| spec.own_keys.iter().copied())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn names_and_own_keys_are_unique() {
        let names: BTreeSet<_> = ALL.iter().map(|spec| spec.name).collect();
        assert_eq!(names.len(), ALL.len(), "two dialects share a config name");
        let keys: Vec<_> = own_keys().collect();
        let unique: BTreeSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "two dialects claim one key");
        assert!(ALL.contains(&DEFAULT));
    }

    #[test]
    fn every_dialect_is_found_by_its_name_and_can_send_something() {
        for spec in ALL {
            assert_eq!(by_name(spec.name), Some(*spec));
            assert!(!spec.client_auth_modes.is_empty(), "{spec}");
            assert!(!spec.presets.is_empty(), "{spec}");
        }
        assert_eq!(by_name("trakt-tv"), None);
        assert_eq!(owner_of("account_sid"), Some(&twilio::DIALECT));
    }
}
