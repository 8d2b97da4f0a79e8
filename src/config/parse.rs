//! Walking the parsed TOML tree into typed config: the top level here,
//! the `[daemon]` table in [`super::daemon_table`], each provider table in
//! [`super::provider_table`].

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use super::file_access::FileAccess;
use super::provider_table::{SeenSoFar, provider_config};
use super::reader::TableReader;
use super::{DaemonConfig, Diagnostics, Environment, ProviderConfig};

/// The `[daemon]` table, the providers, and where the `socket` key's value
/// is (line, column), when the file sets it.
pub(super) type Parsed = (DaemonConfig, Vec<ProviderConfig>, Option<(usize, usize)>);

pub(super) fn parse(
    text: &str,
    path: &Path,
    file_mode: Option<FileAccess>,
    env: &Environment,
    diags: &mut Diagnostics<'_>,
) -> Option<Parsed> {
    let (root, syntax_errors) = toml::de::DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // What follows a syntax error is a guess of the parser's; checking
        // the meaning of a guessed tree would only add noise.
        // The header of a table defined twice, while its keys follow: the
        // parser reports each of them as a duplicate too, which says nothing
        // more.
        let mut duplicate_table: Option<usize> = None;
        for error in syntax_errors {
            let span = error.span().unwrap_or(0..0);
            let message = error.message().trim();
            let line_start = text[..span.start.min(text.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let line = text[line_start..].lines().next().unwrap_or("").trim();
            if message != "duplicate key" {
                // `socket_mode = 0660`, as a mode is written in a shell, is
                // no TOML number: the parser's words name neither the key
                // nor the fix.
                let hint = if line.starts_with("socket_mode") {
                    "; write the mode as a string, socket_mode = \"0660\", or as 0o660"
                } else {
                    ""
                };
                diags.error(&span, format!("{message}{hint}"));
                continue;
            }
            if line.starts_with('[') {
                duplicate_table = Some(line_start);
                // An unclosed header (`[daemon` below `[daemon]`) is read
                // as that table again: its own error ("unclosed table")
                // says what is wrong, and "defined twice" would mislead.
                let header = line.split('#').next().unwrap_or("").trim_end();
                if header.ends_with(']') {
                    diags.error(
                        &span,
                        format!("the table `{line}` is defined twice; give its keys in one place"),
                    );
                }
            } else if duplicate_table.is_some_and(|header| {
                !text[header..line_start]
                    .lines()
                    .skip(1)
                    .any(|l| l.trim_start().starts_with('['))
            }) {
                // A key of the table defined twice: already said.
            } else {
                let key = text.get(span.clone()).unwrap_or("").trim();
                diags.error(&span, format!("duplicate key `{key}`: it is given twice"));
            }
        }
        return None;
    }
    let mut top = TableReader::new(root.get_ref(), root.span(), "the top level");

    let empty = toml::de::DeTable::new();
    let mut daemon_table = top
        .table(diags, "daemon")
        .unwrap_or_else(|| TableReader::new(&empty, 0..0, ""));
    daemon_table.context = "[daemon]".into();
    let socket_at = daemon_table
        .key_span("socket")
        .map(|span| diags.position(span.start));
    let daemon = super::daemon_table::daemon_config(&mut daemon_table, path, file_mode, env, diags);

    let mut providers = Vec::new();
    let mut seen = SeenSoFar::default();
    match top.take("providers") {
        Some(value) => match value.get_ref() {
            toml::de::DeValue::Table(table) => {
                for (name, entry) in table {
                    if let Some(p) = provider_config(
                        name.get_ref(),
                        name.span(),
                        entry,
                        path,
                        file_mode,
                        env,
                        &mut seen,
                        diags,
                    ) {
                        providers.push(p);
                    }
                }
                if table.is_empty() {
                    diags.warning(
                        &value.span(),
                        "no providers are configured; add a [providers.NAME] table",
                    );
                }
            }
            _ => diags.error(
                &value.span(),
                "`providers` must be a table of [providers.NAME] tables",
            ),
        },
        None => diags.warning(
            &(0..0),
            "no providers are configured; add a [providers.NAME] table",
        ),
    }
    top.finish(diags, &["daemon", "providers"]);
    check_name_collisions(&providers, &root, diags);
    providers.sort_by(|a, b| a.name.cmp(&b.name));
    Some((daemon?, providers, socket_at))
}

/// Two names that differ only in '-' versus '_' map to the same D-Bus object
/// path, so they count as duplicates.
fn check_name_collisions(
    providers: &[ProviderConfig],
    root: &toml::Spanned<toml::de::DeTable<'_>>,
    diags: &mut Diagnostics<'_>,
) {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    let spans: BTreeMap<&str, Range<usize>> = root
        .get_ref()
        .get("providers")
        .and_then(|p| p.get_ref().as_table())
        .map(|t| {
            t.iter()
                .map(|(k, _)| (k.get_ref().as_ref(), k.span()))
                .collect()
        })
        .unwrap_or_default();
    let mut names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    for name in names {
        let key = object_path_element(name);
        if let Some(first) = seen.get(&key) {
            diags.error(
                &spans.get(name).cloned().unwrap_or(0..0),
                format!("provider name \"{name}\" clashes with \"{first}\" (names may not differ only in '-' versus '_')"),
            );
        } else {
            seen.insert(key, name);
        }
    }
}

/// The D-Bus object path element for a provider name (`-` is not allowed there).
#[must_use]
pub fn object_path_element(name: &str) -> String {
    name.replace('-', "_")
}
