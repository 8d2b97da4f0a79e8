//! Reading values out of a spanned TOML tree, collecting every problem.
//!
//! serde stops at the first error; a person fixing a config wants them all
//! at once, each at its place. So the file is parsed into toml's spanned
//! tree and walked by hand: every lookup records what it used, every type
//! mismatch is a diagnostic, and keys nobody asked for are reported at the
//! end with a suggestion when one is close.

use std::ops::{Range, RangeInclusive};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::Diagnostics;

/// A spanned TOML value.
pub type Value<'i> = Spanned<DeValue<'i>>;

/// A table being read: keys are marked as they are taken.
pub struct TableReader<'t, 'i> {
    entries: Vec<(&'t str, Range<usize>, &'t Value<'i>)>,
    used: Vec<bool>,
    /// Where the table is, for "missing key" errors.
    pub span: Range<usize>,
    /// How to name the table in messages (`[providers.github]`).
    pub context: String,
}

impl<'t, 'i> TableReader<'t, 'i> {
    /// A reader over `table`, named `context` in messages.
    pub fn new(table: &'t DeTable<'i>, span: Range<usize>, context: impl Into<String>) -> Self {
        let entries: Vec<_> = table
            .iter()
            .map(|(k, v)| (k.get_ref().as_ref(), k.span(), v))
            .collect();
        let used = vec![false; entries.len()];
        Self {
            entries,
            used,
            span,
            context: context.into(),
        }
    }

    /// Takes the value of `key`, if present.
    pub fn take(&mut self, key: &str) -> Option<&'t Value<'i>> {
        let index = self.entries.iter().position(|(k, _, _)| *k == key)?;
        self.used[index] = true;
        Some(self.entries[index].2)
    }

    /// Whether `key` is present (without taking it).
    #[must_use]
    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _, _)| *k == key)
    }

    /// The span of `key`'s name, if present.
    #[must_use]
    pub fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, span, _)| span.clone())
    }

    /// The keys not yet taken, with their spans.
    pub fn untaken(&self) -> impl Iterator<Item = (&'t str, Range<usize>)> + '_ {
        self.entries
            .iter()
            .zip(&self.used)
            .filter(|(_, used)| !**used)
            .map(|((k, span, _), _)| (*k, span.clone()))
    }

    /// Reports every key not taken as unknown, suggesting the closest of
    /// `known`. A key of `known` left untaken is not reported: only an
    /// error already reported (a bad `dialect`, say) leaves one unread, and
    /// "unknown key `token_endpoint`; did you mean `token_endpoint`?" would
    /// only hide it.
    pub fn finish(&self, diags: &mut Diagnostics<'_>, known: &[&str]) {
        for (key, span) in self.untaken().filter(|(key, _)| !known.contains(key)) {
            // A `[daemon]` key written below a provider's table (appended
            // at the end of the file) or above every table belongs there.
            let elsewhere = (self.context != "[daemon]"
                && super::daemon_keys::DAEMON_KEYS
                    .iter()
                    .chain(super::daemon_keys::STORE_KEYS)
                    .any(|k| *k == key))
            .then(|| "; it is a key of [daemon]: move it below the `[daemon]` header".to_owned());
            let suggestion = elsewhere
                .or_else(|| closest(key, known).map(|k| format!("; did you mean `{k}`?")))
                .unwrap_or_default();
            diags.error(
                &span,
                format!("unknown key `{key}` in {}{suggestion}", self.context),
            );
        }
    }

    /// Takes a string.
    pub fn string(&mut self, diags: &mut Diagnostics<'_>, key: &str) -> Option<String> {
        let value = self.take(key)?;
        expect_str(diags, key, value).map(str::to_owned)
    }

    /// Takes a string that must be present.
    pub fn required_string(&mut self, diags: &mut Diagnostics<'_>, key: &str) -> Option<String> {
        if !self.has(key) {
            diags.error(
                &self.span,
                format!("missing key `{key}` in {}", self.context),
            );
            return None;
        }
        self.string(diags, key)
    }

    /// Takes an integer within `range`.
    pub fn integer(
        &mut self,
        diags: &mut Diagnostics<'_>,
        key: &str,
        range: RangeInclusive<i64>,
    ) -> Option<i64> {
        let value = self.take(key)?;
        expect_integer(diags, key, value, range)
    }

    /// Takes an array of strings.
    pub fn string_list(&mut self, diags: &mut Diagnostics<'_>, key: &str) -> Option<Vec<String>> {
        let value = self.take(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            type_error(diags, key, value, "an array of strings", value.get_ref());
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            match expect_str(diags, key, item) {
                Some(s) => out.push(s.to_owned()),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Takes a sub-table.
    pub fn table(&mut self, diags: &mut Diagnostics<'_>, key: &str) -> Option<TableReader<'t, 'i>> {
        let value = self.take(key)?;
        match value.get_ref() {
            DeValue::Table(table) => {
                Some(TableReader::new(table, value.span(), format!("`{key}`")))
            }
            other => {
                type_error(diags, key, value, "a table", other);
                None
            }
        }
    }
}

/// The value as a string, or a diagnostic.
pub fn expect_str<'t>(
    diags: &mut Diagnostics<'_>,
    key: &str,
    value: &'t Value<'_>,
) -> Option<&'t str> {
    match value.get_ref() {
        DeValue::String(s) => Some(s.as_ref()),
        other => {
            type_error(diags, key, value, "a string", other);
            None
        }
    }
}

/// The value of a TOML integer as written (`1_000`, `0o660`, `0x1f`);
/// `None` when it does not fit an `i64`.
pub fn integer_of(int: &toml::de::DeInteger<'_>) -> Option<i64> {
    i64::from_str_radix(&int.as_str().replace('_', ""), int.radix()).ok()
}

/// The value as an integer in `range`, or a diagnostic.
pub fn expect_integer(
    diags: &mut Diagnostics<'_>,
    key: &str,
    value: &Value<'_>,
    range: RangeInclusive<i64>,
) -> Option<i64> {
    let DeValue::Integer(int) = value.get_ref() else {
        type_error(diags, key, value, "an integer", value.get_ref());
        return None;
    };
    match integer_of(int) {
        Some(n) if range.contains(&n) => Some(n),
        _ => {
            diags.error(
                &value.span(),
                format!(
                    "`{key}` must be between {} and {}",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
    }
}

fn type_error(
    diags: &mut Diagnostics<'_>,
    key: &str,
    value: &Value<'_>,
    expected: &str,
    got: &DeValue<'_>,
) {
    diags.error(
        &value.span(),
        format!("`{key}` must be {expected}, not {}", got.type_str()),
    );
}

/// The known name closest to `key` by edit distance, if close enough to be a typo.
#[must_use]
pub fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        let known = ["client_id", "client_secret", "scopes"];
        assert_eq!(closest("clientid", &known), Some("client_id"));
        assert_eq!(closest("scope", &known), Some("scopes"));
        assert_eq!(closest("colour", &known), None);
    }
}
