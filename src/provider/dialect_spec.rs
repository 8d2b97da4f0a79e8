//! What a dialect says about itself: a [`DialectSpec`], one `static` per
//! file under [`super::dialects`].
//!
//! The spec is data and plain function pointers, so the registry is a list
//! of `&'static` items and nothing outside a dialect's own file matches on
//! which dialect it is. The config loader reads a dialect's own keys
//! through [`SettingsSource`], an interface defined here and implemented by
//! the config side: the dependency runs config → provider only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use super::{ClientAuth, ClientIdentity, ProviderDialect};
use crate::secret::Secret;

/// Endpoint paths below `base_url`, for dialects whose paths are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedPaths {
    /// The device authorization endpoint.
    pub device_authorization: &'static str,
    /// The token endpoint (polls, and refreshes unless `refresh` is set).
    pub token: &'static str,
    /// Where refreshes go when that is not the token endpoint (Trakt).
    pub refresh: Option<&'static str>,
}

/// Everything tokend knows about one wire dialect.
pub struct DialectSpec {
    /// The config name (`dialect = "..."`).
    pub name: &'static str,
    /// Paths of the endpoints relative to `base_url`, when they are fixed.
    pub fixed_paths: Option<FixedPaths>,
    /// The client authentication modes the dialect can send; the first that
    /// sends a secret is the default when one is set.
    pub client_auth_modes: &'static [ClientAuth],
    /// Keys of a provider table only this dialect takes; on any other
    /// dialect they are errors at their position.
    pub own_keys: &'static [&'static str],
    /// Reads the dialect's own keys (all of `own_keys`). `None` after
    /// reporting a problem through the source.
    pub read_settings: fn(&mut dyn SettingsSource) -> Option<DialectSettings>,
    /// Checks what the dialect requires of the common keys, reporting
    /// through the source.
    pub check_common: fn(&CommonSettings<'_>, &mut dyn SettingsSource),
    /// Fills in device-request fields the dialect needs and the config did
    /// not set; `etc` is where system files are (`/etc` outside tests).
    pub default_device_params: fn(&mut BTreeMap<String, String>, etc: &Path),
    /// Builds the dialect for one provider from settings `read_settings` gave.
    pub build: fn(ClientIdentity, &DialectSettings) -> Box<dyn ProviderDialect>,
    /// The commented presets shipped for it (`config/NAME.toml`, relative
    /// to the source tree), at least one.
    pub presets: &'static [&'static str],
}

impl DialectSpec {
    /// For `read_settings` of dialects without keys of their own.
    #[must_use]
    pub fn no_settings(_: &mut dyn SettingsSource) -> Option<DialectSettings> {
        Some(DialectSettings::default())
    }

    /// For `check_common` of dialects with no requirements.
    pub fn no_requirements(_: &CommonSettings<'_>, _: &mut dyn SettingsSource) {}

    /// For `default_device_params` of dialects that need no defaults.
    pub fn no_device_defaults(_: &mut BTreeMap<String, String>, _: &Path) {}
}

impl fmt::Debug for DialectSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl fmt::Display for DialectSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Two specs are the same dialect when their config names are (names are
/// unique in the registry, which a unit test checks).
impl PartialEq for DialectSpec {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for DialectSpec {}

/// One value of a dialect's own key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingValue {
    /// A string.
    Text(String),
    /// A list of strings.
    List(Vec<String>),
    /// A secret (read from the config, or a file of its own).
    Secret(Secret),
}

/// The values of a dialect's own keys, as its `read_settings` stored them
/// and its `build` reads them. A map rather than a type per dialect so that
/// the config's types name no dialect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialectSettings(BTreeMap<&'static str, SettingValue>);

impl DialectSettings {
    /// Sets `key`.
    pub fn set(&mut self, key: &'static str, value: SettingValue) {
        self.0.insert(key, value);
    }

    /// The string under `key`.
    #[must_use]
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.0.get(key) {
            Some(SettingValue::Text(text)) => Some(text),
            _ => None,
        }
    }

    /// The list under `key` (empty when unset).
    #[must_use]
    pub fn list(&self, key: &str) -> &[String] {
        self.list_if_set(key).unwrap_or(&[])
    }

    /// The list of strings under `key`, `None` when it was not set (an
    /// empty list set is `Some`).
    #[must_use]
    pub fn list_if_set(&self, key: &str) -> Option<&[String]> {
        match self.0.get(key) {
            Some(SettingValue::List(list)) => Some(list),
            _ => None,
        }
    }

    /// The secret under `key`.
    #[must_use]
    pub fn secret(&self, key: &str) -> Option<&Secret> {
        match self.0.get(key) {
            Some(SettingValue::Secret(secret)) => Some(secret),
            _ => None,
        }
    }
}

/// The common keys of a provider table a dialect may have requirements on.
#[derive(Debug)]
pub struct CommonSettings<'a> {
    /// Whether a client secret is set (`Err` when it was set but unusable).
    pub has_secret: Result<bool, ()>,
    /// The requested scopes.
    pub scopes: &'a [String],
    /// How the client secret is sent (`None` when `client_auth` was wrong).
    pub client_auth: Option<ClientAuth>,
    /// The host of the token endpoint, or of the issuer (`None` when the
    /// endpoints were wrong).
    pub token_host: Option<&'a str>,
}

/// A problem with a dialect's key, already reported through the
/// [`SettingsSource`] at its position: the reader only has to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the problem was reported at its position in the config")]
pub struct Reported;

/// A provider table as a dialect reads it: its own keys, and where to
/// report problems. Implemented by the config loader, which turns keys into
/// file positions.
pub trait SettingsSource {
    /// How the table is named in messages (`[providers.github]`).
    fn context(&self) -> &str;

    /// Whether `key` is present.
    fn has(&self, key: &str) -> bool;

    /// The string at `key`, `None` when absent.
    ///
    /// # Errors
    /// [`Reported`] after reporting a value of another type.
    fn text(&mut self, key: &str) -> Result<Option<String>, Reported>;

    /// The list of strings at `key`, `None` when absent.
    ///
    /// # Errors
    /// [`Reported`] after reporting a value that is no list of strings.
    fn text_list(&mut self, key: &str) -> Result<Option<Vec<String>>, Reported>;

    /// A secret set inline at `inline` or in the file named at `file`, at
    /// most one of them; `None` when neither is set.
    ///
    /// # Errors
    /// [`Reported`] after reporting a problem (both set, an empty value,
    /// an unreadable file).
    fn secret(
        &mut self,
        inline: &'static str,
        file: &'static str,
    ) -> Result<Option<Secret>, Reported>;

    /// Reports an error at `key` (the whole table when `None` or absent).
    fn error(&mut self, key: Option<&str>, message: String);

    /// Reports a warning at `key` (the whole table when `None` or absent).
    fn warning(&mut self, key: Option<&str>, message: String);
}
