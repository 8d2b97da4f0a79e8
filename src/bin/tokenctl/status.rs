//! `tokenctl status`: the providers' sessions as a table (all of them) or a
//! detailed block (one named provider).

use std::fmt::Write as _;

use tokend::protocol::{LoginPrompt, ProviderStatus};

use crate::format::{clean, duration, relative, utc};

/// Shown for a time the daemon did not give.
const NONE: &str = "-";

/// The text for `tokenctl status`: a table when listing every provider,
/// detail blocks when one was named.
pub fn human(providers: &[ProviderStatus], named: bool, now: i64) -> String {
    if providers.is_empty() {
        return "No providers: none is configured, or none this user may use.\n".into();
    }
    if named {
        providers
            .iter()
            .map(|p| details(p, now))
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        overview(providers, now)
    }
}

/// One row per provider, then a line for each error or pending login, which
/// are too long for a column.
fn overview(providers: &[ProviderStatus], now: i64) -> String {
    let when = |at: Option<i64>| at.map_or_else(|| NONE.to_owned(), |at| relative(at, now));
    let mut rows = vec![
        [
            "NAME",
            "DIALECT",
            "STATE",
            "EXPIRES",
            "LAST REFRESH",
            "NEXT REFRESH",
        ]
        .map(String::from),
    ];
    rows.extend(providers.iter().map(|p| {
        [
            clean(&p.name).into_owned(),
            clean(&p.dialect).into_owned(),
            clean(&p.state).into_owned(),
            when(p.expires_at),
            when(p.last_refresh),
            when(p.next_refresh),
        ]
    }));
    let mut text = table(&rows);
    let mut notes = String::new();
    for p in providers {
        if let Some(login) = &p.login {
            let _ = writeln!(
                notes,
                "{}: login pending — {}",
                clean(&p.name),
                login_note(login)
            );
        }
        if let Some(error) = &p.last_error {
            let _ = writeln!(notes, "{}: last error: {}", clean(&p.name), clean(error));
        }
    }
    if !notes.is_empty() {
        text.push('\n');
        text.push_str(&notes);
    }
    text
}

/// Everything known about one provider, one field a line.
fn details(p: &ProviderStatus, now: i64) -> String {
    let when = |at: i64| format!("{} ({})", utc(at), relative(at, now));
    let mut fields = vec![("state", clean(&p.state).into_owned())];
    let times = [
        ("expires", p.expires_at),
        ("last refresh", p.last_refresh),
        ("next refresh", p.next_refresh),
    ];
    fields.extend(
        times
            .iter()
            .filter_map(|(k, at)| at.map(|at| (*k, when(at)))),
    );
    if !p.scopes.is_empty() {
        fields.push(("scopes", clean(&p.scopes.join(" ")).into_owned()));
    }
    if let Some(login) = &p.login {
        fields.push(("login", login_note(login)));
    }
    if let Some(error) = &p.last_error {
        fields.push(("last error", clean(error).into_owned()));
    }
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut text = format!("{} ({})\n", clean(&p.name), clean(&p.dialect));
    for (key, value) in fields {
        let _ = writeln!(text, "  {key:<width$}  {value}");
    }
    text
}

fn login_note(login: &LoginPrompt) -> String {
    format!(
        "enter {} at {} (the code expires in {})",
        clean(&login.user_code),
        clean(&login.verification_uri),
        duration(login.expires_in)
    )
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;

    fn provider(name: &str, state: &str) -> ProviderStatus {
        ProviderStatus {
            name: name.into(),
            dialect: "rfc8628".into(),
            state: state.into(),
            expires_at: None,
            last_refresh: None,
            next_refresh: None,
            last_error: None,
            scopes: vec![],
            login: None,
        }
    }

    fn active() -> ProviderStatus {
        ProviderStatus {
            expires_at: Some(NOW + 3_130),
            last_refresh: Some(NOW - 480),
            next_refresh: Some(NOW + 2_520),
            scopes: vec!["repo".into(), "read:org".into()],
            last_error: Some("token endpoint: HTTP 503".into()),
            ..provider("github", "active")
        }
    }

    fn pending() -> ProviderStatus {
        ProviderStatus {
            login: Some(LoginPrompt {
                user_code: "WDJB-MJHT".into(),
                verification_uri: "https://example.test/device".into(),
                verification_uri_complete: None,
                expires_in: 840,
                message: None,
            }),
            ..provider("trakt", "login_pending")
        }
    }

    #[test]
    fn overview_is_a_table_with_notes() {
        let text = human(&[active(), pending()], false, NOW);
        assert_eq!(
            text,
            "\
NAME    DIALECT  STATE          EXPIRES     LAST REFRESH  NEXT REFRESH
github  rfc8628  active         in 52m 10s  8m ago        in 42m
trakt   rfc8628  login_pending  -           -             -

github: last error: token endpoint: HTTP 503
trakt: login pending — enter WDJB-MJHT at https://example.test/device (the code expires in 14m)
"
        );
    }

    #[test]
    fn one_provider_in_detail() {
        let text = human(&[active()], true, NOW);
        assert_eq!(
            text,
            "\
github (rfc8628)
  state         active
  expires       2026-09-21 15:05:30 UTC (in 52m 10s)
  last refresh  2026-09-21 14:05:20 UTC (8m ago)
  next refresh  2026-09-21 14:55:20 UTC (in 42m)
  scopes        repo read:org
  last error    token endpoint: HTTP 503
"
        );
        assert!(human(&[pending()], true, NOW).contains("  login  enter WDJB-MJHT at "));
    }

    #[test]
    fn nothing_to_show_is_said() {
        assert!(human(&[], false, NOW).starts_with("No providers"));
    }
}
