//! A provider table's dialect, asked of the registry
//! ([`crate::provider::dialects`]): which dialect the `dialect` key names,
//! and the dialect's own keys, read by the dialect itself through
//! [`TableSettings`].
//!
//! A key that belongs to another dialect is an error at its position (a
//! Twilio `account_sid` in a Trakt table is a mistake, not something to
//! ignore); a dialect's requirements are checked by its spec so that
//! `tokend --check` reports them before any login is tried.

use super::reader::{self, TableReader};
use super::secrets::{self, SecretContext, SecretKeys};
use super::{Diagnostics, Severity};
use crate::provider::{DialectSpec, Reported, SettingsSource, dialects};
use crate::secret::Secret;

/// The `dialect` key; the registry's default when absent, `None` after an
/// error.
pub(super) fn dialect_spec(
    t: &mut TableReader<'_, '_>,
    diags: &mut Diagnostics<'_>,
) -> Option<&'static DialectSpec> {
    let Some(v) = t.take("dialect") else {
        return Some(dialects::DEFAULT);
    };
    let name = reader::expect_str(diags, "dialect", v)?;
    let dialect = dialects::by_name(name);
    if dialect.is_none() {
        let names: Vec<_> = dialects::ALL.iter().map(|d| format!("\"{d}\"")).collect();
        diags.error(
            &v.span(),
            format!(
                "unknown dialect \"{name}\"; known dialects: {}",
                names.join(", ")
            ),
        );
    }
    dialect
}

/// Reports every key of another dialect than `dialect` (and takes it, so
/// it is not reported again as unknown). With no valid dialect, they are
/// only taken: the dialect's own error says what is wrong.
pub(super) fn refuse_foreign_keys(
    t: &mut TableReader<'_, '_>,
    dialect: Option<&'static DialectSpec>,
    diags: &mut Diagnostics<'_>,
) {
    for key in dialects::own_keys() {
        let owner = dialects::owner_of(key);
        if owner.is_none() || owner == dialect || !t.has(key) {
            continue;
        }
        let span = t.key_span(key).unwrap_or(0..0);
        t.take(key);
        if let (Some(_), Some(owner)) = (dialect, owner) {
            diags.error(
                &span,
                format!("`{key}` is only valid for dialect \"{owner}\""),
            );
        }
    }
}

/// A provider table as its dialect reads it: keys become file positions.
pub(super) struct TableSettings<'r, 't, 'i, 'd, 'a> {
    /// The table.
    pub table: &'r mut TableReader<'t, 'i>,
    /// Where problems go.
    pub diags: &'r mut Diagnostics<'d>,
    /// Where secret files are looked up.
    pub secrets: &'r SecretContext<'a>,
}

impl TableSettings<'_, '_, '_, '_, '_> {
    fn report(&mut self, key: Option<&str>, severity: Severity, message: String) {
        let span = key
            .and_then(|k| self.table.key_span(k))
            .unwrap_or_else(|| self.table.span.clone());
        match severity {
            Severity::Error => self.diags.error(&span, message),
            Severity::Warning => self.diags.warning(&span, message),
        }
    }
}

impl SettingsSource for TableSettings<'_, '_, '_, '_, '_> {
    fn context(&self) -> &str {
        &self.table.context
    }

    fn has(&self, key: &str) -> bool {
        self.table.has(key)
    }

    fn text(&mut self, key: &str) -> Result<Option<String>, Reported> {
        if !self.table.has(key) {
            return Ok(None);
        }
        let value = self.table.string(self.diags, key).ok_or(Reported)?;
        // Twilio's `account_sid` of zeros in its preset, say.
        if super::placeholder::is_placeholder(&value) {
            self.report(
                Some(key),
                Severity::Warning,
                format!("`{key}` is still the example's placeholder: put yours there"),
            );
        }
        Ok(Some(value))
    }

    fn text_list(&mut self, key: &str) -> Result<Option<Vec<String>>, Reported> {
        if !self.table.has(key) {
            return Ok(None);
        }
        self.table
            .string_list(self.diags, key)
            .map(Some)
            .ok_or(Reported)
    }

    fn secret(
        &mut self,
        inline: &'static str,
        file: &'static str,
    ) -> Result<Option<Secret>, Reported> {
        let keys = SecretKeys {
            inline,
            file,
            credential: None,
        };
        secrets::secret(self.table, keys, self.secrets, self.diags).map_err(|()| Reported)
    }

    fn error(&mut self, key: Option<&str>, message: String) {
        self.report(key, Severity::Error, message);
    }

    fn warning(&mut self, key: Option<&str>, message: String) {
        self.report(key, Severity::Warning, message);
    }
}
