//! Secrets in the config: where they come from (the file itself, a file of
//! their own, a systemd credential) and how the client secret is sent.

use std::path::{Path, PathBuf};

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

/// A file's permission bits, owner and group, to tell who else may read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileAccess {
    /// The permission bits.
    pub mode: u32,
    /// The owner.
    pub uid: u32,
    /// The owning group.
    pub gid: u32,
}

impl FileAccess {
    /// Of the file `meta` describes.
    pub(super) fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self {
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
        }
    }

    /// Who may read the file besides its owner and the daemon, in words,
    /// or `None`: every local user when it is world-readable; when it is
    /// group-readable, the group's members: those it lists, and the users
    /// whose primary group it is (in `/etc/passwd`) other than the owner,
    /// root, the daemon itself and the system service's user `tokend` (the daemon's own group has no one else:
    /// its one user has it as primary group). A socket group that users
    /// are added to is such a group, which is why the shipped system setup
    /// gives the socket a group of its own (`tokend-clients`).
    pub(super) fn other_readers(self) -> Option<String> {
        if self.mode & 0o004 != 0 {
            return Some("every local user (world-readable)".to_owned());
        }
        if self.mode & 0o040 == 0 {
            return None;
        }
        let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(self.gid))
            .ok()
            .flatten()?;
        let daemon = nix::unistd::geteuid().as_raw();
        // The system service's user reads it as the daemon, also when root
        // runs the check (`sudo tokend --check` of the shipped layout,
        // root:tokend 0640, whose group is that user's primary group).
        let service = crate::trusted_path::service_user_uid().unwrap_or(daemon);
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let mut members = group.mem.clone();
        for name in primary_members(&passwd, self.gid, &[self.uid, daemon, service, 0]) {
            if !members.contains(&name) {
                members.push(name);
            }
        }
        (!members.is_empty()).then(|| {
            format!(
                "the members of its group `{}` ({})",
                group.name,
                members.join(", ")
            )
        })
    }
}

/// For `tokend --check` run as root: why the daemon of the config at
/// `config` could not read the file at `path` (described by `access`),
/// when it runs as another user (see
/// [`daemon_user_for_check`](crate::trusted_path::daemon_user_for_check)):
/// root reads every file, so the check passed a file the service then
/// failed to start on. Judged by the mode bits, as the other checks.
pub(super) fn unreadable_by_daemon(
    path: &Path,
    access: FileAccess,
    config: &Path,
    env: &Environment,
) -> Option<String> {
    let user = crate::trusted_path::daemon_user_for_check(config, &env.etc)?;
    let uid = user.uid.as_raw();
    let groups = std::ffi::CString::new(user.name.as_str())
        .ok()
        .and_then(|name| nix::unistd::getgrouplist(&name, user.gid).ok())
        .unwrap_or_else(|| vec![user.gid]);
    let groups: Vec<u32> = groups.iter().map(|g| g.as_raw()).collect();
    let system_service = uid == crate::trusted_path::service_user_uid().unwrap_or(u32::MAX);
    let whose = if system_service {
        format!("the system service runs as `{}`", user.name)
    } else {
        format!("the daemon of this config runs as `{}`", user.name)
    };
    // The system unit's sandbox hides these whatever the modes say.
    if system_service && let Some(setting) = hidden_by_the_system_unit(path) {
        return Some(format!(
            "{} cannot be read by its daemon: {whose}, under the unit's {setting}; put it under /etc/tokend/",
            path.display()
        ));
    }
    if let Some((dir, dir_access)) = unsearchable_directory(path, uid, &groups) {
        return Some(format!(
            "{} cannot be read by its daemon: {whose}, and the directory {} (owner uid {}, group {}, mode {:04o}) does not let it in (root, checking, goes in anyway)",
            path.display(),
            dir.display(),
            dir_access.uid,
            dir_access.gid,
            dir_access.mode & 0o7777,
        ));
    }
    if permits(access, uid, &groups, READ) {
        return None;
    }
    // The system service's config stays root's, readable by the daemon's
    // group (README); a user's own config, and a secret file, are given to
    // the daemon's user (a user's primary group may be shared: `users`).
    let fix = if path == config && system_service {
        format!(
            "`chown root:{} {}` and `chmod 0640` it",
            group_name(user.gid),
            path.display()
        )
    } else {
        format!("`chown {}` it", user.name)
    };
    Some(format!(
        "{} cannot be read by its daemon: {whose}, and the file is owner uid {}, group {}, mode {:04o} (root, checking, reads it anyway): {fix}",
        path.display(),
        access.uid,
        access.gid,
        access.mode & 0o7777,
    ))
}

/// The sandbox setting of the shipped system unit that hides `path` from
/// the service: `ProtectHome=yes` (home directories, root's, users'
/// runtime directories) and `PrivateTmp=yes` (a /tmp of its own).
fn hidden_by_the_system_unit(path: &Path) -> Option<&'static str> {
    let path = std::path::absolute(path).ok()?;
    if ["/home", "/root", "/run/user"]
        .iter()
        .any(|dir| path.starts_with(dir))
    {
        Some("ProtectHome=yes, which hides /home, /root and /run/user")
    } else if ["/tmp", "/var/tmp"].iter().any(|dir| path.starts_with(dir)) {
        Some("PrivateTmp=yes, which gives it a /tmp and /var/tmp of its own")
    } else {
        None
    }
}

/// The first directory on the way to `path` that a user (`uid`, in
/// `groups`) may not search, by its mode bits, with its owner and mode.
fn unsearchable_directory(path: &Path, uid: u32, groups: &[u32]) -> Option<(PathBuf, FileAccess)> {
    let path = std::path::absolute(path).ok()?;
    let mut ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
    ancestors.reverse();
    ancestors.into_iter().find_map(|dir| {
        let access = FileAccess::of(&std::fs::metadata(dir).ok()?);
        (!permits(access, uid, groups, SEARCH)).then(|| (dir.to_owned(), access))
    })
}

/// The name of group `gid`, or its number when it has none.
fn group_name(gid: nix::unistd::Gid) -> String {
    nix::unistd::Group::from_gid(gid)
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |group| group.name)
}

/// The others' read bit; shifted for the group's and the owner's class.
const READ: u32 = 0o004;
/// The others' search (execute) bit, for a directory.
const SEARCH: u32 = 0o001;

/// Whether the mode bits of `access` give a user (`uid`, in `groups`)
/// `right` (given as the others' bit): the owner's class when it is the
/// owner, else the group's when in the group, else the others'.
fn permits(access: FileAccess, uid: u32, groups: &[u32], right: u32) -> bool {
    let class_bits = if access.uid == uid {
        right << 6
    } else if groups.contains(&access.gid) {
        right << 3
    } else {
        right
    };
    access.mode & class_bits != 0
}

/// The names of the users in `passwd` (the text of `/etc/passwd`) whose
/// primary group is `gid`, but for the uids in `except`. They read what
/// their group may read though the group lists no one.
fn primary_members(passwd: &str, gid: u32, except: &[u32]) -> Vec<String> {
    passwd
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid: u32 = fields.nth(1)?.parse().ok()?;
            let primary: u32 = fields.next()?.parse().ok()?;
            (primary == gid && !except.contains(&uid)).then(|| name.to_owned())
        })
        .collect()
}

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

#[cfg(test)]
mod tests {
    use super::primary_members;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash
# a comment
tokend:x:990:990::/var/lib/tokend:/usr/sbin/nologin
alice:x:1000:990::/home/alice:/bin/bash
bob:x:1001:1001::/home/bob:/bin/bash
broken line
";

    /// Users whose primary group it is are its members, but for the owner,
    /// root and the daemon; malformed lines are skipped.
    #[test]
    fn primary_members_are_read_from_passwd() {
        assert_eq!(primary_members(PASSWD, 990, &[990, 0]), ["alice"]);
        assert_eq!(
            primary_members(PASSWD, 990, &[990, 0, 1000]),
            [] as [&str; 0]
        );
        assert_eq!(primary_members(PASSWD, 0, &[0]), [] as [&str; 0]);
        assert_eq!(primary_members(PASSWD, 1001, &[0]), ["bob"]);
    }
}
