//! The placeholders the example configs under `config/` ship, which a
//! config copied without its edit still holds.

/// Whether `value` is one of the placeholders the example configs under
/// `config/` ship (`PASTE-YOUR-CLIENT-ID`, GitHub's `Iv1.0000000000000000`,
/// Microsoft's all-zero GUID, Google's `000000000000-xxxx…`): a config
/// copied without its edit passed `--check` as valid, to fail only at the
/// provider. No real id or secret has a dozen zeros or x's in a row.
pub(super) fn is_placeholder(value: &str) -> bool {
    let run_of = |c: char| {
        value
            .split(|other: char| other != c)
            .any(|run| run.len() >= 12)
    };
    value.to_ascii_uppercase().contains("PASTE-YOUR") || run_of('0') || run_of('x')
}
