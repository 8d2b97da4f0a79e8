//! `allow_units`: systemd units, by name or glob pattern, whose processes
//! may use a provider. The one way to grant a `DynamicUser=` service, whose
//! uid is picked when it starts.

use super::Diagnostics;
use super::reader;

/// Longest unit name systemd accepts (`UNIT_NAME_MAX`).
const UNIT_NAME_MAX: usize = 255;

/// The unit types a process runs in: a caller's unit is one of these.
const PROCESS_UNIT_SUFFIXES: [&str; 2] = [".service", ".scope"];

/// A unit name or a glob pattern of unit names, as systemd's own commands
/// take them (`systemctl status 'sync@*.service'`): `*` matches any run of
/// characters, `?` any one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitPattern(String);

impl UnitPattern {
    /// Checks `text` as a service or scope name or pattern.
    ///
    /// # Errors
    /// A sentence saying what is wrong, for a config error at the entry.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > UNIT_NAME_MAX {
            return Err(format!(
                "a unit name is 1 to {UNIT_NAME_MAX} characters long"
            ));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ":-_.\\@*?".contains(*c)))
        {
            return Err(format!(
                "{bad:?} cannot be in a unit name (letters, digits and `:-_.\\@`, with `*` and `?` as wildcards)"
            ));
        }
        let Some(suffix) = PROCESS_UNIT_SUFFIXES.iter().find(|s| text.ends_with(*s)) else {
            return Err(format!(
                "`{text}` is not a service or scope (`NAME.service`, `NAME.scope`): only they hold processes"
            ));
        };
        let prefix = &text[..text.len() - suffix.len()];
        if prefix.is_empty() || prefix.starts_with('@') {
            return Err(format!("`{text}` has no unit name before `{suffix}`"));
        }
        if prefix.ends_with('@') {
            return Err(format!(
                "`{text}` is a template, which no process runs in; name its instances, e.g. `{prefix}*{suffix}`"
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The name or pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the unit `unit` matches.
    #[must_use]
    pub fn matches(&self, unit: &str) -> bool {
        glob_match(self.0.as_bytes(), unit.as_bytes())
    }
}

/// fnmatch(3) with `*` and `?` only (unit names hold neither `/` nor `[`):
/// the classic backtracking to the last star, linear in practice.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last star take one more character.
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The `allow_units` key of a provider table, each entry checked at its
/// own position.
pub(super) fn allow_units(
    value: Option<&reader::Value<'_>>,
    diags: &mut Diagnostics<'_>,
) -> Vec<UnitPattern> {
    let Some(value) = value else {
        return Vec::new();
    };
    let Some(items) = value.get_ref().as_array() else {
        diags.error(
            &value.span(),
            "`allow_units` must be an array of unit names, e.g. [\"backup.service\", \"sync@*.service\"]",
        );
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let text = reader::expect_str(diags, "allow_units", item)?;
            UnitPattern::parse(text)
                .map_err(|e| diags.error(&item.span(), format!("`allow_units`: {e}")))
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_systemd_globs_do() {
        let p = |s| UnitPattern::parse(s).unwrap();
        assert!(p("backup.service").matches("backup.service"));
        assert!(!p("backup.service").matches("backup2.service"));
        assert!(p("sync@*.service").matches("sync@nightly.service"));
        assert!(p("sync@*.service").matches("sync@.service"));
        assert!(!p("sync@*.service").matches("sync.service"));
        assert!(!p("sync@*.service").matches("sync@x.scope"));
        assert!(p("job-?.service").matches("job-1.service"));
        assert!(!p("job-?.service").matches("job-12.service"));
        assert!(p("*.scope").matches("session-3.scope"));
        assert!(p("a*b*c.service").matches("aXXbYYbc.service"));
    }

    #[test]
    fn names_that_hold_no_process_are_refused() {
        for (bad, says) in [
            ("backup", "not a service or scope"),
            ("backup.timer", "not a service or scope"),
            ("sync@.service", "template"),
            (".service", "no unit name"),
            ("back up.service", "cannot be in a unit name"),
            ("a/b.service", "cannot be in a unit name"),
            ("", "1 to 255"),
        ] {
            let e = UnitPattern::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(UnitPattern::parse("user@1000.service").is_ok());
        assert!(UnitPattern::parse("foo\\x2dbar.service").is_ok());
    }
}
