//! Secrets in the config: where they come from (the file itself, a file of
//! their own, a systemd credential) and how the client secret is sent.

use std::path::Path;

use super::file_access::{FileAccess, unreadable_by_daemon};
use super::reader::{self, TableReader};
use super::{ClientAuth, Diagnostics, Environment};
use crate::provider::DialectSpec;
use crate::secret::Secret;

/// The keys that can hold one secret, at most one of them set.
#[derive(Debug, Clone, Copy)]
pub(super) struct SecretKeys {
    /// The secret itself, in the config file.
    pub inline: &'static str,
    /// A file holding it.
    pub file: &'static str,
    /// A systemd credential holding it, when the secret may come from one.
    pub credential: Option<&'static str>,
}

/// The client secret's keys.
pub(super) const CLIENT_SECRET: SecretKeys = SecretKeys {
    inline: "client_secret",
    file: "client_secret_file",
    credential: Some("client_secret_credential"),
};

/// Where the config file is and what it allows, for reading secrets.
pub(super) struct SecretContext<'a> {
    /// The config file; relative secret files are next to it.
    pub config_path: &'a Path,
    /// Its permission bits and group.
    pub file_mode: Option<FileAccess>,
    /// The process environment (`$CREDENTIALS_DIRECTORY`).
    pub env: &'a Environment,
}

/// Reads the secret `keys` name: `Ok(None)` when none is set, `Err(())`
/// after reporting a problem.
pub(super) fn secret(
    t: &mut TableReader<'_, '_>,
    keys: SecretKeys,
    context: &SecretContext<'_>,
    diags: &mut Diagnostics<'_>,
) -> Result<Option<Secret>, ()> {
    let sources: Vec<&str> = [Some(keys.inline), Some(keys.file), keys.credential]
        .into_iter()
        .flatten()
        .filter(|k| t.has(k))
        .collect();
    if sources.len() > 1 {
        let span = t.key_span(sources[1]).unwrap_or(0..0);
        diags.error(&span, format!("set only one of `{}`", sources.join("`, `")));
        for k in &sources {
            t.take(k);
        }
        return Err(());
    }
    if let Some(v) = t.take(keys.inline) {
        let secret = reader::expect_str(diags, keys.inline, v).ok_or(())?;
        if secret.is_empty() {
            diags.error(&v.span(), format!("`{}` is empty", keys.inline));
            return Err(());
        }
        if super::placeholder::is_placeholder(secret) {
            diags.warning(
                &v.span(),
                format!(
                    "`{}` is still the example's placeholder: the provider will refuse it; put your app's secret there (or in `{}`)",
                    keys.inline, keys.file
                ),
            );
        }
        if let Some(readers) = context.file_mode.and_then(FileAccess::other_readers) {
            diags.warning(
                &v.span(),
                format!(
                    "the config file holds a secret (`{}`) and is readable by {readers}; only the daemon should read it: chmod 0640 with a group no one else is in (the daemon's own), or use `{}`",
                    keys.inline, keys.file
                ),
            );
        }
        return Ok(Some(Secret::from(secret)));
    }
    let credential = keys.credential.and_then(|k| t.take(k).map(|v| (k, v)));
    // A value quoted back only where it is a path (see `file_for_message`): it may
    // be the secret itself, pasted in the wrong key (the diagnostic's
    // position shows the person which value it is).
    let (key, file, shown) = if let Some(v) = t.take(keys.file) {
        let name = reader::expect_str(diags, keys.file, v).ok_or(())?;
        // A bare name is a file in the config's directory: not quoted
        // (a secret pasted has no `/` as often as not); a path is, where
        // it is one (`file_for_message`).
        let shown = name.contains('/');
        let path = match named_file(context.config_path, name) {
            Ok(path) => path,
            Err(problem) => {
                diags.error(&v.span(), format!("`{}`: {problem}", keys.file));
                return Err(());
            }
        };
        (v, path, shown)
    } else if let Some((key, v)) = credential {
        let name = reader::expect_str(diags, key, v).ok_or(())?;
        if name.is_empty() || name.contains('/') {
            diags.error(
                &v.span(),
                format!("`{key}` must be a credential name, not a path"),
            );
            return Err(());
        }
        let Some(dir) = &context.env.credentials_directory else {
            if context.env.checking {
                diags.warning(
                    &v.span(),
                    format!(
                        "`{key}` is read from $CREDENTIALS_DIRECTORY, which systemd \
                         sets for the service only: not checked here"
                    ),
                );
                return Ok(Some(Secret::from("unchecked stand-in")));
            }
            diags.error(&v.span(), format!(
                "`{key}` needs $CREDENTIALS_DIRECTORY (run under systemd with LoadCredential= of the name it gives)"
            ));
            return Err(());
        };
        (v, dir.join(name), false)
    } else {
        return Ok(None);
    };
    read_named_secret(&key.span(), &file, shown, context, diags)
}

/// The file a config value `name` names: an absolute path as it is, any
/// other relative to the config's directory (made absolute, so that
/// messages name it whatever the working directory). `~` and `$VARIABLE`
/// are refused with why: tokend expands neither, and "no such file" for a
/// file that exists would be a puzzle.
///
/// # Errors
/// The value starts with `~` or `$`.
pub(super) fn named_file(config_path: &Path, name: &str) -> Result<std::path::PathBuf, String> {
    if name.starts_with('~') || name.starts_with('$') {
        return Err(
            "tokend expands neither `~` nor environment variables in a file's name: \
             write the absolute path"
                .to_owned(),
        );
    }
    let path = Path::new(name);
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    let dir = config_path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    Ok(dir.join(path))
}

/// The file at `path`, which a config value names, for a message: named
/// only where the value is a path (`from_path`: it holds a `/`) whose
/// directory exists. A secret pasted where a file's name goes names no
/// directory that does (base64 has a `/` half the time), and a bare name
/// may be the secret itself: for those, the directory is said when it is
/// not part of the value (the config's or the credentials'). The
/// diagnostic's position shows the person which value it is.
pub(super) fn file_for_message(path: &Path, from_path: bool) -> String {
    match path.parent() {
        Some(dir) if from_path && dir.is_dir() => path.display().to_string(),
        Some(dir) if !from_path => format!("the file this names, in {}", dir.display()),
        _ => "the file this names".to_owned(),
    }
}

/// Reads the secret in `file`, which the value at `span` names (`shown`:
/// whether that value may be quoted, see [`secret`]), with warnings about
/// who else may read it.
fn read_named_secret(
    span: &std::ops::Range<usize>,
    file: &Path,
    shown: bool,
    context: &SecretContext<'_>,
    diags: &mut Diagnostics<'_>,
) -> Result<Option<Secret>, ()> {
    match read_secret_file(file) {
        Ok((secret, access)) => {
            if let Some(readers) = access.other_readers() {
                diags.warning(
                    span,
                    format!(
                        "{} is readable by {readers}; only the daemon should read it: chmod 0600 it (or 0640 with the daemon's own group)",
                        file.display()
                    ),
                );
            }
            if context.env.checking
                && let Some(problem) =
                    unreadable_by_daemon(file, access, context.config_path, context.env)
            {
                diags.warning(span, problem);
            }
            Ok(Some(secret))
        }
        Err(problem) => {
            let what = file_for_message(file, shown);
            diags.error(span, format!("cannot use {what}: {problem}"));
            Err(())
        }
    }
}

/// The largest secret file read: anything larger is no secret.
const MAX_SECRET_FILE_LEN: usize = 64 * 1024;

/// Reads a secret from a file: the whole content, one trailing newline removed.
fn read_secret_file(path: &Path) -> Result<(Secret, FileAccess), String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    // Opened first and judged as opened, non-blocking: a FIFO put in the
    // file's place (between a check by path and the read) is refused
    // instead of hanging the start or the reload on a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed())
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_SECRET_FILE_LEN as u64 {
        return Err("larger than 64 KiB, which is no secret".into());
    }
    // Room for one byte more than the limit, so that a file grown since
    // is seen too large; never moved, so no unzeroed copy is left behind.
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(MAX_SECRET_FILE_LEN + 1));
    file.take(MAX_SECRET_FILE_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() > MAX_SECRET_FILE_LEN {
        return Err("larger than 64 KiB, which is no secret".into());
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| "not UTF-8 text".to_owned())?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        return Err("the file is empty".into());
    }
    Ok((Secret::from(text), FileAccess::of(&meta)))
}

/// Reads `client_auth`: how the client secret is sent. The default is
/// "none" without a secret, else the dialect's first mode that sends one
/// (`client_secret_basic` for Oracle, which wants it on refreshes,
/// `client_secret_post` for the others); a mode the dialect cannot send is
/// an error.
pub(super) fn client_auth(
    t: &mut TableReader<'_, '_>,
    has_secret: Result<bool, ()>,
    dialect: Option<&DialectSpec>,
    context: &str,
    diags: &mut Diagnostics<'_>,
) -> Option<ClientAuth> {
    let Some(v) = t.take("client_auth") else {
        return Some(match has_secret {
            Ok(true) => dialect
                .and_then(|d| {
                    d.client_auth_modes
                        .iter()
                        .copied()
                        .find(|&mode| mode != ClientAuth::None)
                })
                .unwrap_or(ClientAuth::SecretPost),
            _ => ClientAuth::None,
        });
    };
    let name = reader::expect_str(diags, "client_auth", v)?;
    let Some(&(_, auth)) = ClientAuth::NAMES.iter().find(|(n, _)| *n == name) else {
        diags.error(&v.span(), format!(
            "`client_auth` must be \"none\", \"client_secret_post\" or \"client_secret_basic\", not \"{name}\""
        ));
        return None;
    };
    if let Some(dialect) = dialect
        && !dialect.client_auth_modes.contains(&auth)
    {
        let names: Vec<_> = dialect
            .client_auth_modes
            .iter()
            .map(|m| format!("\"{}\"", m.name()))
            .collect();
        diags.error(
            &v.span(),
            format!(
                "dialect \"{dialect}\" cannot send `client_auth = \"{}\"`; it takes {}",
                auth.name(),
                names.join(" or ")
            ),
        );
        return None;
    }
    match (auth, has_secret) {
        (ClientAuth::SecretPost | ClientAuth::SecretBasic, Ok(false)) => {
            diags.error(&v.span(), format!(
                "`client_auth` needs a client secret: set `client_secret`, `client_secret_file` or `client_secret_credential` in {context}"
            ));
            None
        }
        (ClientAuth::None, Ok(true)) => {
            diags.warning(
                &v.span(),
                "a client secret is set but `client_auth = \"none\"` never sends it",
            );
            Some(auth)
        }
        _ => Some(auth),
    }
}
