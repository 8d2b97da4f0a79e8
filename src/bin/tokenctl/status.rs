//! `tokenctl status`: the providers' sessions as a table (all of them), a
//! detailed block (one named provider) or JSON, printed one provider at a
//! time as the daemon streams them: 10,000 providers cost no more memory
//! than one. A store that cannot be used is one line at the end, not a note
//! under every provider.

use std::fmt::Write as _;
use std::io::{self, Write};

use tokend::protocol::{
    ConfigStatus, LOGIN_APPROVED_SAVING, LoginPrompt, ProviderStatus, StoreStatus,
};

use crate::format::{clean, duration, relative, utc};

/// Shown for a time the daemon did not give.
const NONE: &str = "-";

/// Shown when the daemon sent no provider.
const NO_PROVIDERS: &str = "No providers: none is configured, or none this user may use.\n";

/// The table's header; widths of all columns but the last.
const HEADER: [&str; 6] = [
    "NAME",
    "DIALECT",
    "STATE",
    "EXPIRES",
    "LAST REFRESH",
    "NEXT REFRESH",
];
/// Fixed, because rows are printed as they arrive and the longest cell is
/// not known before the last one: wide enough for every dialect and state
/// name and every relative time; a longer name pushes the rest of its row
/// to the right.
const WIDTHS: [usize; 5] = [16, 10, 14, 12, 12];

/// How `tokenctl status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One JSON array of [`ProviderStatus`] objects, on one line.
    Json,
    /// A table, a row per provider (every provider).
    Table,
    /// A block of fields per provider (one named provider).
    Details,
}

/// Prints providers one at a time as they arrive, holding none of them:
/// [`Printer::provider`] for each, then [`Printer::finish`].
pub struct Printer<W: Write> {
    out: W,
    layout: Layout,
    now: i64,
    printed: u64,
}

impl<W: Write> Printer<W> {
    /// A printer in `layout` to `out`, with relative times as of `now`.
    pub fn new(out: W, layout: Layout, now: i64) -> Self {
        Self {
            out,
            layout,
            now,
            printed: 0,
        }
    }

    /// Prints one provider.
    pub fn provider(&mut self, p: &ProviderStatus) -> io::Result<()> {
        let first = self.printed == 0;
        self.printed += 1;
        match self.layout {
            Layout::Json => {
                self.out.write_all(if first { b"[" } else { b"," })?;
                serde_json::to_writer(&mut self.out, p)?;
                Ok(())
            }
            Layout::Table => {
                if first {
                    self.out.write_all(row(&HEADER).as_bytes())?;
                }
                self.out.write_all(table_row(p, self.now).as_bytes())
            }
            Layout::Details => {
                if !first {
                    self.out.write_all(b"\n")?;
                }
                self.out.write_all(details(p, self.now).as_bytes())
            }
        }
    }

    /// Providers printed so far.
    pub fn printed(&self) -> u64 {
        self.printed
    }

    /// Ends output cut short by a failure (the daemon stopped mid-answer,
    /// or gave up on a reader that paused): a JSON array begun is left
    /// open, so that no JSON reader takes the providers that came for the
    /// whole list. Closing it made `tokenctl --json status | jq …` (no
    /// `pipefail`) read a well-formed third of the list as all of it; the
    /// failure on stderr and the exit status went unseen. The other
    /// layouts end where they are (stderr says the list is cut short).
    pub fn abandon(mut self) -> io::Result<()> {
        if self.layout == Layout::Json && self.printed > 0 {
            // The line ends, for the terminal; the array does not.
            self.out.write_all(b"\n")?;
        }
        self.out.flush()
    }

    /// Ends the output (and says so when there was nothing to print),
    /// with one line about the store when the daemon says it cannot be
    /// used: under the table, or on `notes` (stderr) for JSON, whose
    /// output stays the array of providers that scripts read.
    pub fn finish(mut self, daemon: &DaemonNotes, mut notes: impl Write) -> io::Result<()> {
        match (self.layout, self.printed) {
            (Layout::Json, 0) => self.out.write_all(b"[]\n")?,
            (Layout::Json, _) => self.out.write_all(b"]\n")?,
            (_, 0) => self.out.write_all(NO_PROVIDERS.as_bytes())?,
            _ => {}
        }
        let mut lines: Vec<String> = daemon
            .store
            .as_ref()
            .and_then(|s| store_line(s, self.now))
            .into_iter()
            .collect();
        if let Some(config) = &daemon.config {
            lines.extend(config_lines(config, self.now));
        }
        if !lines.is_empty() {
            match self.layout {
                Layout::Json => notes.write_all(lines.concat().as_bytes())?,
                Layout::Table | Layout::Details => {
                    self.out.write_all(b"\n")?;
                    self.out.write_all(lines.concat().as_bytes())?;
                }
            }
        }
        self.out.flush()
    }
}

/// The output of `status --check`: each problem as a line as it comes, or,
/// with `--json`, all of them in one object at the end.
pub struct CheckReport<W: Write> {
    out: W,
    /// `Some` with `--json`: the problems so far, as (provider, text).
    json: Option<Vec<(Option<String>, String)>>,
    /// Problems seen, in either layout.
    count: usize,
}

impl<W: Write> CheckReport<W> {
    /// A report written to `out`, as JSON if `json`.
    pub fn new(out: W, json: bool) -> Self {
        Self {
            out,
            json: json.then(Vec::new),
            count: 0,
        }
    }

    /// One problem: of `provider`, or of the daemon (the store) if `None`.
    pub fn problem(&mut self, provider: Option<&str>, text: &str) -> io::Result<()> {
        self.count += 1;
        match &mut self.json {
            Some(problems) => {
                problems.push((provider.map(str::to_owned), text.to_owned()));
                Ok(())
            }
            None => writeln!(self.out, "{text}"),
        }
    }

    /// Writes what is left; whether there was no problem.
    pub fn finish(mut self) -> io::Result<bool> {
        if let Some(problems) = &self.json {
            let problems: Vec<_> = problems
                .iter()
                .map(|(provider, problem)| {
                    serde_json::json!({ "provider": provider, "problem": problem })
                })
                .collect();
            let report = serde_json::json!({ "ok": problems.is_empty(), "problems": problems });
            serde_json::to_writer(&mut self.out, &report)?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()?;
        Ok(self.count == 0)
    }
}

/// The problems of one provider for `status --check` at `now` (Unix
/// seconds), one line each: a session that needs a login (or waits for
/// one), a stored session that cannot be read, a refresh that is failing,
/// a refresh token whose announced life is over, tokens that are only in
/// memory.
pub fn problems(p: &ProviderStatus, now: i64) -> Vec<String> {
    let name = clean(&p.name);
    let error = p
        .last_error
        .as_deref()
        .map(|e| format!(": {}", clean(e)))
        .unwrap_or_default();
    let mut problems = Vec::new();
    match p.state.as_str() {
        "logged_out" | "login_required" => {
            problems.push(format!(
                "{name}: needs a login ({}){error}",
                clean(&p.state)
            ));
        }
        // Approved, its tokens waiting for the store.
        "login_pending" if p.last_error.as_deref() == Some(LOGIN_APPROVED_SAVING) => {
            problems.push(format!("{name}: {LOGIN_APPROVED_SAVING}"));
        }
        // No prompt: the login still asks for its code, or the caller may
        // not see it (only those who manage the provider are shown the
        // code), which the answer does not tell apart.
        "login_pending" if p.login.is_none() => {
            problems.push(format!(
                "{name}: a login is pending: it asks the provider for its code, or waits for \
                 approval by someone who manages the provider"
            ));
        }
        "login_pending" => problems.push(format!("{name}: a login waits for approval")),
        "expired" if p.last_error.is_none() => problems.push(format!(
            "{name}: the token expired and its refresh has not come for 30 s (queued behind \
             its endpoint's other refreshes: see `max_concurrent_refreshes`)"
        )),
        "expired" => problems.push(format!(
            "{name}: the token expired and refreshing fails{error}"
        )),
        // Not "needs a login": a login would replace a stored session
        // that works again once its cause (the error says which) is mended.
        "unreadable" => problems.push(format!("{name}: its stored session cannot be read{error}")),
        // The provider said when the refresh token dies (Keycloak's idle
        // timeout), and that has passed without a refresh (the daemon was
        // stopped, the machine asleep): the next refresh will be refused.
        // `--check` passed until it was.
        "active" if p.login_needed_by.is_some_and(|by| by <= now) => {
            let by = p.login_needed_by.unwrap_or(now);
            problems.push(format!(
                "{name}: the refresh token's announced life ended {} ({}): the provider will \
                 likely refuse the next refresh; log in again",
                relative(by, now),
                utc(by)
            ));
        }
        _ if p.last_error.is_some() && p.saved => {
            problems.push(format!("{name}: the last refresh failed{error}"));
        }
        _ => {}
    }
    if !p.saved {
        problems.push(format!("{name}: {NOT_SAVED}{error}"));
    }
    problems
}

/// What an unsaved session means, for the person reading `status`.
const NOT_SAVED: &str =
    "not saved: the newest refresh token is only in memory (retrying the store)";

/// What the daemon said of itself at the end of a streamed `status`.
#[derive(Debug, Clone, Default)]
pub struct DaemonNotes {
    /// The store's state.
    pub store: Option<StoreStatus>,
    /// What it has not taken from its config file.
    pub config: Option<ConfigStatus>,
}

/// A line for each thing the daemon has not taken from its config file:
/// "config: the last reload, at WHEN (AGO), was refused: …" and "config:
/// `[daemon]` KEYS changed in the file: …".
pub fn config_lines(config: &ConfigStatus, now: i64) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(at) = config.reload_failed_at {
        lines.push(format!(
            "config: the last reload, at {} ({}), was refused: the file could not be read, is invalid, names no provider, would fail the next start or kept changing while it was read (the daemon's log says which; `tokend --check` names a file's errors), and tokend runs the config it had before\n",
            utc(at),
            relative(at, now)
        ));
    }
    if !config.restart_needed.is_empty() {
        let keys: Vec<String> = config
            .restart_needed
            .iter()
            .map(|k| clean(k).into_owned())
            .collect();
        lines.push(format!(
            "config: [daemon] {} changed in the file: that takes effect at the next restart\n",
            keys.join(", ")
        ));
    }
    lines
}

/// "store: unavailable since WHEN (AGO): REASON (retrying)", or nothing
/// when the store works.
pub fn store_line(store: &StoreStatus, now: i64) -> Option<String> {
    if store.is_available() {
        return None;
    }
    let since = store.since.map_or_else(String::new, |at| {
        format!(" since {} ({})", utc(at), relative(at, now))
    });
    let reason = store.reason.as_deref().map_or_else(
        || format!("the {} cannot be used", clean(&store.name)),
        |r| clean(r).into_owned(),
    );
    Some(format!(
        "store: {}{since}: {reason} (retrying)\n",
        clean(&store.state)
    ))
}

/// A provider's row, then a line for its error or pending login, which are
/// too long for a column.
fn table_row(p: &ProviderStatus, now: i64) -> String {
    let when = |at: Option<i64>| at.map_or_else(|| NONE.to_owned(), |at| relative(at, now));
    let cells = [
        clean(&p.name).into_owned(),
        clean(&p.dialect).into_owned(),
        clean(&p.state).into_owned(),
        when(p.expires_at),
        when(p.last_refresh),
        p.next_refresh
            .map_or_else(|| NONE.to_owned(), |at| next_refresh(at, now)),
    ];
    let mut text = row(&cells);
    if let Some(login) = &p.login {
        let _ = writeln!(text, "  login pending — {}", login_note(login));
    }
    if let Some(by) = p.login_needed_by {
        let _ = writeln!(
            text,
            "  login needed by {} ({})",
            utc(by),
            relative(by, now)
        );
    }
    if !p.saved {
        let _ = writeln!(text, "  {NOT_SAVED}");
    }
    if let Some(error) = &p.last_error {
        let _ = writeln!(text, "  last error: {}", clean(error));
    }
    text
}

/// When the next refresh is planned. One planned for a moment gone by is
/// due (under way, most often): "3s ago" would read as a refresh done.
fn next_refresh(at: i64, now: i64) -> String {
    if at <= now {
        "due now".to_owned()
    } else {
        relative(at, now)
    }
}

/// Left-aligned cells in [`WIDTHS`], two spaces apart; the last is not padded.
fn row<S: AsRef<str>>(cells: &[S; 6]) -> String {
    let mut line = String::new();
    for (cell, width) in cells.iter().zip(WIDTHS.iter().chain([&0])) {
        let _ = write!(line, "{:<width$}  ", cell.as_ref());
    }
    let mut line = line.trim_end().to_owned();
    line.push('\n');
    line
}

/// Everything known about one provider, one field a line.
fn details(p: &ProviderStatus, now: i64) -> String {
    let when = |at: i64| format!("{} ({})", utc(at), relative(at, now));
    let mut fields = vec![("state", clean(&p.state).into_owned())];
    let times = [("expires", p.expires_at), ("last refresh", p.last_refresh)];
    fields.extend(
        times
            .iter()
            .filter_map(|(k, at)| at.map(|at| (*k, when(at)))),
    );
    if let Some(at) = p.next_refresh {
        let due = format!("{} ({})", utc(at), next_refresh(at, now));
        fields.push(("next refresh", due));
    }
    if !p.scopes.is_empty() {
        fields.push(("scopes", clean(&p.scopes.join(" ")).into_owned()));
    }
    if let Some(login) = &p.login {
        fields.push(("login", login_note(login)));
    }
    if let Some(by) = p.login_needed_by {
        fields.push(("login needed by", when(by)));
    }
    if !p.saved {
        fields.push(("saved", format!("no: {NOT_SAVED}")));
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

#[cfg(test)]
mod tests;
