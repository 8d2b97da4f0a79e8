//! `tokend-dist-gen OUT_DIR`: writes what packages install but the source
//! tree does not hold, all derived from the source so nothing drifts:
//!
//! - `man/`: `tokend.8`, `tokenctl.1` and `tokenctl-VERB.1`, from the clap
//!   definitions in [`tokend::cli`] plus the sections clap does not know
//!   (files, environment, signals, exit statuses), and
//!   `docker-credential-tokend.1` (tokenctl as the docker credential
//!   helper). Uncompressed; packagers gzip them. Their date (`.TH`) is the
//!   source's, never the build's: see [`source_date`].
//! - `completions/{bash,zsh,fish}/`: completions of both programs, named
//!   as each shell's vendor directory wants them.
//! - `etc/tokend/config.toml`: `config/example.toml` made into the system
//!   service's config (see [`system_config`]).
//!
//! A crate of its own (the daemon does not carry clap_mangen and
//! clap_complete), never installed: `dist/deb/build.sh` runs its binary, and
//! `tests/e2e/dist.rs` checks what [`generate`] writes.

mod man;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use tokend::cli::{TokenctlArgs, TokendArgs};

/// The name tokenctl answers to as the docker credential helper (a link to
/// it: `dist/deb/build.sh`, the README's manual install).
pub const DOCKER_HELPER: &str = "docker-credential-tokend";

/// The annotated example every packaged config starts from.
const EXAMPLE_CONFIG: &str = include_str!("../../../config/example.toml");

/// What [`system_config`] puts first, before the example's own comments.
const SYSTEM_CONFIG_HEADER: &str = "\
# /etc/tokend/config.toml: the config of the system service (tokend.service),
# which runs as user `tokend`, serves org.tokend.Broker1 on the system bus and
# listens on /run/tokend/tokend.sock.
#
# This is config/example.toml with every provider commented out: the daemon
# starts with none and warns about it. Add yours, then
#   tokend --check --config /etc/tokend/config.toml && systemctl reload tokend
# Other users reach the socket with socket_mode = \"0660\" and membership in
# group `tokend-clients` (never in group `tokend`: that group may read this
# file and its secrets); each provider's allow_*/manage_* then say who may
# use or manage it.
#
# A user's own daemon (systemctl --user) reads ~/.config/tokend/config.toml
# instead; start it from /usr/share/doc/tokend/examples/example.toml.

";

/// The `[daemon]` keys the system service needs, where the defaults are
/// those of a user's daemon: the service runs as `tokend`, not root, so
/// without them it would look for a session bus and a Secret Service. The
/// store is `memory` so that a fresh install starts anywhere: the encrypted
/// file store needs a key, which the administrator makes (the steps are in
/// the comment).
const SYSTEM_DAEMON_KEYS: &str = "\
# Set for the system service: it serves the system bus. Sessions are kept in
# memory, so a restart needs a new login, until the encrypted file store has a
# key. To give it one:
#   install -d -m 0700 /etc/credstore.encrypted
#   head -c 32 /dev/urandom | systemd-creds encrypt --name=tokend-store-key - \\
#       /etc/credstore.encrypted/tokend-store-key
#   systemctl edit tokend    # add these two lines:
#       [Service]
#       LoadCredentialEncrypted=tokend-store-key:/etc/credstore.encrypted/tokend-store-key
# then set store = \"encrypted-file\" below (files go to /var/lib/tokend) and
# restart tokend.
bus = \"system\"
store = \"memory\"
";

/// Writes the man pages, the completions and the system config under `out`;
/// `date` (`YYYY-MM-DD`, from [`source_date`]) goes in the man pages'
/// title lines, none when it is empty.
///
/// # Errors
/// A file cannot be written, or the example config lacks its `[daemon]` table.
pub fn generate(out: &Path, date: &str) -> io::Result<()> {
    man::write_man_pages(&out.join("man"), date)?;
    write_completions(&out.join("completions"))?;
    let config =
        system_config(EXAMPLE_CONFIG).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    write(&out.join("etc/tokend/config.toml"), config.as_bytes())
}

/// Writes `bytes` to `path`, creating its directory.
fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, bytes).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// The date of the source for the man pages, `YYYY-MM-DD` (UTC), as
/// reproducible builds want it: `SOURCE_DATE_EPOCH` when it is set (the
/// value of the variable, given as `epoch`), else the date of the last
/// commit of the source tree this generator was built from; `None` when
/// neither is known (not a git checkout, no git).
///
/// # Errors
/// `epoch` is not a number of seconds.
pub fn source_date(epoch: Option<&str>) -> Result<Option<String>, String> {
    if let Some(epoch) = epoch.filter(|e| !e.is_empty()) {
        return epoch
            .parse()
            .map(|seconds| Some(date_of_epoch(seconds)))
            .map_err(|_| format!("SOURCE_DATE_EPOCH={epoch:?} is not a number of seconds"));
    }
    let last_commit = std::process::Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR")])
        .args(["log", "-1", "--format=%ct"])
        .stderr(std::process::Stdio::null())
        .output();
    Ok(last_commit
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
        .map(date_of_epoch))
}

/// `YYYY-MM-DD` of a Unix time, in UTC (proleptic Gregorian calendar;
/// days from civil, after Howard Hinnant's `civil_from_days`).
#[must_use]
pub fn date_of_epoch(seconds: u64) -> String {
    // Days since 0000-03-01, in eras of 400 years (146097 days).
    let days = seconds / 86_400 + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March: 0 is March, 11 February.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let (month, year) = if month_from_march < 10 {
        (month_from_march + 3, era * 400 + year_of_era)
    } else {
        (month_from_march - 9, era * 400 + year_of_era + 1)
    };
    format!("{year:04}-{month:02}-{day:02}")
}

/// Where each shell looks for a vendor completion of `bin`, relative to
/// `completions/`, and under which file name.
fn completion_path(shell: Shell, bin: &str) -> PathBuf {
    match shell {
        Shell::Zsh => PathBuf::from(format!("zsh/_{bin}")),
        Shell::Fish => PathBuf::from(format!("fish/{bin}.fish")),
        // bash-completion loads completions/NAME when NAME is first completed.
        _ => PathBuf::from(format!("bash/{bin}")),
    }
}

fn write_completions(dir: &Path) -> io::Result<()> {
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        for mut cmd in [TokendArgs::command(), TokenctlArgs::command()] {
            let bin = cmd.get_name().to_owned();
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd, &bin, &mut text);
            write(&dir.join(completion_path(shell, &bin)), &text)?;
        }
    }
    Ok(())
}

/// `example` made into the system service's config: a header saying what it
/// is, the keys of `SYSTEM_DAEMON_KEYS` at the top of `[daemon]`, and
/// every line from the first `[providers.…]` table on commented out.
///
/// # Errors
/// The example has no `[daemon]` table, or its providers come before it.
pub fn system_config(example: &str) -> Result<String, String> {
    let mut out = String::from(SYSTEM_CONFIG_HEADER);
    let mut daemon_table_seen = false;
    let mut in_providers = false;
    for line in example.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("[providers") {
            if !daemon_table_seen {
                return Err("config/example.toml: [providers] comes before [daemon]".into());
            }
            in_providers = true;
        }
        if in_providers && !trimmed.is_empty() && !trimmed.starts_with('#') {
            out.push_str("# ");
        }
        out.push_str(line);
        out.push('\n');
        if trimmed.starts_with("[daemon]") {
            daemon_table_seen = true;
            out.push_str(SYSTEM_DAEMON_KEYS);
        }
    }
    if !daemon_table_seen {
        return Err("config/example.toml has no [daemon] table".into());
    }
    Ok(out)
}
