//! Walking the parsed TOML tree into typed config, one table at a time.

use std::collections::BTreeMap;
use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::reader::{self, TableReader};
use super::users::UserDb;
use super::{
    BusKind, ClientAuth, DaemonConfig, Diagnostics, EndpointSource, Environment, ProviderConfig,
    StoreKind,
};
use crate::provider::DialectKind;
use crate::secret::Secret;

const DAEMON_KEYS: &[&str] = &[
    "socket",
    "socket_mode",
    "socket_group",
    "bus",
    "store",
    "log_level",
    "http_timeout",
    "max_concurrent_refreshes",
];

const PROVIDER_KEYS: &[&str] = &[
    "dialect",
    "client_id",
    "client_secret",
    "client_secret_file",
    "client_secret_credential",
    "client_auth",
    "scopes",
    "device_params",
    "verification_uri",
    "allow_users",
    "allow_groups",
    "issuer",
    "base_url",
    "device_authorization_endpoint",
    "token_endpoint",
];

/// Longest provider name: it becomes part of D-Bus object paths and store keys.
const MAX_PROVIDER_NAME: usize = 64;

pub(super) type Parsed = (DaemonConfig, Vec<ProviderConfig>);

pub(super) fn parse(
    text: &str,
    path: &Path,
    file_mode: Option<u32>,
    env: &Environment,
    diags: &mut Diagnostics<'_>,
) -> Option<Parsed> {
    let (root, syntax_errors) = toml::de::DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // What follows a syntax error is a guess of the parser's; checking
        // the meaning of a guessed tree would only add noise.
        for error in syntax_errors {
            let span = error.span().unwrap_or(0..0);
            diags.error(&span, error.message().trim().to_owned());
        }
        return None;
    }
    let mut top = TableReader::new(root.get_ref(), root.span(), "the top level");
    let users = UserDb::read(&env.etc);

    let empty = toml::de::DeTable::new();
    let mut daemon_table = top
        .table(diags, "daemon")
        .unwrap_or_else(|| TableReader::new(&empty, 0..0, ""));
    daemon_table.context = "[daemon]".into();
    let daemon = daemon_config(&mut daemon_table, path, env, &users, diags);

    let mut providers = Vec::new();
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
                        &users,
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
    Some((daemon?, providers))
}

fn daemon_config(
    table: &mut TableReader<'_, '_>,
    config_path: &Path,
    env: &Environment,
    users: &UserDb,
    diags: &mut Diagnostics<'_>,
) -> Option<DaemonConfig> {
    let span = table.span.clone();
    let socket = if let Some(value) = table.take("socket") {
        reader::expect_str(diags, "socket", value).and_then(|s| {
            let p = PathBuf::from(s);
            if p.is_absolute() {
                Some(p)
            } else {
                diags.error(&value.span(), "`socket` must be an absolute path");
                None
            }
        })
    } else {
        let default = env.default_socket_path();
        if default.is_none() {
            diags.error(
                &span,
                "no default socket path: XDG_RUNTIME_DIR is not set; set `socket` in [daemon]",
            );
        }
        default
    };
    let socket_mode = match table.take("socket_mode") {
        Some(value) => socket_mode(value, diags),
        None => Some(0o600),
    };
    let socket_group = table.take("socket_group").and_then(|value| {
        let name = reader::expect_str(diags, "socket_group", value)?;
        let gid = users.group(name).map(|g| g.gid);
        if gid.is_none() {
            diags.error(
                &value.span(),
                format!("`socket_group`: no group named `{name}`"),
            );
        }
        gid
    });
    let bus = match table.take("bus") {
        Some(value) => reader::expect_str(diags, "bus", value).and_then(|s| match s {
            "session" => Some(BusKind::Session),
            "system" => Some(BusKind::System),
            "none" => Some(BusKind::None),
            other => {
                diags.error(
                    &value.span(),
                    format!("`bus` must be \"session\", \"system\" or \"none\", not \"{other}\""),
                );
                None
            }
        }),
        None => Some(if env.uid == 0 {
            BusKind::System
        } else {
            BusKind::Session
        }),
    };
    let store = match table.take("store") {
        Some(value) => reader::expect_str(diags, "store", value).and_then(|s| {
            let found = StoreKind::NAMES
                .iter()
                .find(|(n, _)| *n == s)
                .map(|(_, k)| (*k, value.span()));
            if found.is_none() {
                let names: Vec<_> = StoreKind::NAMES
                    .iter()
                    .map(|(n, _)| format!("\"{n}\""))
                    .collect();
                diags.error(
                    &value.span(),
                    format!("`store` must be one of {}, not \"{s}\"", names.join(", ")),
                );
            }
            found
        }),
        None => Some((StoreKind::SecretService, span.clone())),
    };
    let encrypted_file =
        super::store::encrypted_file_config(table, store.clone(), config_path, env, diags);
    let log_level = table.string(diags, "log_level");
    let http_timeout = table
        .integer(diags, "http_timeout", 1..=600)
        .map_or(crate::provider::http::DEFAULT_TIMEOUT, |s| {
            Duration::from_secs(s.unsigned_abs())
        });
    let max_concurrent_refreshes = table
        .integer(diags, "max_concurrent_refreshes", 1..=1024)
        .map_or(8, |n| usize::try_from(n).unwrap_or(8));
    table.finish(diags, &[DAEMON_KEYS, super::store::KEYS].concat());
    Some(DaemonConfig {
        socket: socket?,
        socket_mode: socket_mode?,
        socket_group,
        bus: bus?,
        store: store?.0,
        encrypted_file: encrypted_file.ok()?,
        log_level,
        http_timeout,
        max_concurrent_refreshes,
    })
}

fn socket_mode(value: &reader::Value<'_>, diags: &mut Diagnostics<'_>) -> Option<u32> {
    // Accept 0o660 (a TOML integer) and "0660" (the way people write modes).
    let mode = match value.get_ref() {
        toml::de::DeValue::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8).ok(),
        toml::de::DeValue::Integer(_) => {
            reader::expect_integer(diags, "socket_mode", value, 0..=0o777)
                .and_then(|n| u32::try_from(n).ok())
        }
        _ => None,
    };
    match mode {
        Some(m) if m <= 0o777 && m & 0o600 == 0o600 && m & 0o002 == 0 => Some(m),
        Some(m) if m <= 0o777 => {
            diags.error(&value.span(), format!(
                "`socket_mode` {m:04o} must give the owner read and write and others no write (e.g. \"0600\" or \"0660\")"
            ));
            None
        }
        _ => {
            diags.error(
                &value.span(),
                "`socket_mode` must be an octal mode such as \"0600\" or 0o660",
            );
            None
        }
    }
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename these
fn provider_config(
    name: &str,
    name_span: Range<usize>,
    value: &reader::Value<'_>,
    config_path: &Path,
    file_mode: Option<u32>,
    env: &Environment,
    users: &UserDb,
    diags: &mut Diagnostics<'_>,
) -> Option<ProviderConfig> {
    let context = format!("[providers.{name}]");
    let valid_name = check_provider_name(name, &name_span, diags);
    let toml::de::DeValue::Table(table) = value.get_ref() else {
        diags.error(&value.span(), format!("`providers.{name}` must be a table"));
        return None;
    };
    let mut t = TableReader::new(table, value.span(), context.clone());
    let span = value.span();

    let dialect = match t.take("dialect") {
        Some(v) => reader::expect_str(diags, "dialect", v).and_then(|s| {
            let d = DialectKind::from_name(s);
            if d.is_none() {
                let names: Vec<_> = DialectKind::ALL
                    .iter()
                    .map(|d| format!("\"{d}\""))
                    .collect();
                diags.error(
                    &v.span(),
                    format!(
                        "unknown dialect \"{s}\"; known dialects: {}",
                        names.join(", ")
                    ),
                );
            }
            d
        }),
        None => Some(DialectKind::Rfc8628),
    };
    let client_id = t.required_string(diags, "client_id").filter(|id| {
        if id.trim().is_empty() {
            diags.error(
                &t.key_span("client_id").unwrap_or(span.clone()),
                "`client_id` is empty",
            );
            false
        } else {
            true
        }
    });
    let client_secret = client_secret(&mut t, config_path, file_mode, env, diags);
    let client_auth = client_auth(
        &mut t,
        client_secret
            .as_ref()
            .map(Option::is_some)
            .map_err(|&()| ()),
        &context,
        diags,
    );
    let scopes = t.string_list(diags, "scopes").unwrap_or_default();
    let device_params = match t.table(diags, "device_params") {
        Some(mut params) => {
            let mut out = BTreeMap::new();
            let keys: Vec<_> = params.untaken().map(|(k, _)| k).collect();
            for key in keys {
                if let Some(v) = params.string(diags, key) {
                    out.insert(key.to_owned(), v);
                }
            }
            out
        }
        None => BTreeMap::new(),
    };
    let verification_uri = t
        .take("verification_uri")
        .and_then(|v| url_value(diags, "verification_uri", v, false));
    let allow_users = t
        .take("allow_users")
        .map_or_else(Vec::new, |v| users.resolve_users(v, diags));
    let allow_groups = t
        .take("allow_groups")
        .map_or_else(Vec::new, |v| users.resolve_groups(v, diags));
    let endpoints = dialect.and_then(|d| endpoint_source(&mut t, d, &context, diags));
    t.finish(diags, PROVIDER_KEYS);

    if !valid_name {
        return None;
    }
    Some(ProviderConfig {
        name: name.to_owned(),
        dialect: dialect?,
        endpoints: endpoints?,
        client_id: client_id?,
        client_secret: client_secret.ok()?,
        client_auth: client_auth?,
        scopes,
        device_params,
        verification_uri,
        allow_users,
        allow_groups,
    })
}

fn check_provider_name(name: &str, span: &Range<usize>, diags: &mut Diagnostics<'_>) -> bool {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !valid_chars || !starts_well || name.len() > MAX_PROVIDER_NAME {
        diags.error(span, format!(
            "invalid provider name \"{name}\": use 1 to {MAX_PROVIDER_NAME} letters, digits, '-' or '_', starting with a letter or digit"
        ));
        return false;
    }
    true
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

fn client_secret(
    t: &mut TableReader<'_, '_>,
    config_path: &Path,
    file_mode: Option<u32>,
    env: &Environment,
    diags: &mut Diagnostics<'_>,
) -> Result<Option<Secret>, ()> {
    let sources: Vec<&str> = [
        "client_secret",
        "client_secret_file",
        "client_secret_credential",
    ]
    .into_iter()
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
    if let Some(v) = t.take("client_secret") {
        let secret = reader::expect_str(diags, "client_secret", v).ok_or(())?;
        if secret.is_empty() {
            diags.error(&v.span(), "`client_secret` is empty");
            return Err(());
        }
        if file_mode.is_some_and(|m| m & 0o004 != 0) {
            diags.warning(&v.span(), "the config file is world-readable and holds a client secret; chmod 600 it or use `client_secret_file`");
        }
        return Ok(Some(Secret::from(secret)));
    }
    let (key, file) = if let Some(v) = t.take("client_secret_file") {
        let name = reader::expect_str(diags, "client_secret_file", v).ok_or(())?;
        let path = Path::new(name);
        let path = if path.is_absolute() {
            path.to_owned()
        } else {
            config_path.parent().unwrap_or(Path::new(".")).join(path)
        };
        (v, path)
    } else if let Some(v) = t.take("client_secret_credential") {
        let name = reader::expect_str(diags, "client_secret_credential", v).ok_or(())?;
        if name.is_empty() || name.contains('/') {
            diags.error(
                &v.span(),
                "`client_secret_credential` must be a credential name, not a path",
            );
            return Err(());
        }
        let Some(dir) = &env.credentials_directory else {
            diags.error(&v.span(), format!(
                "`client_secret_credential = \"{name}\"` needs $CREDENTIALS_DIRECTORY (run under systemd with LoadCredential={name}:...)"
            ));
            return Err(());
        };
        (v, dir.join(name))
    } else {
        return Ok(None);
    };
    match read_secret_file(&file) {
        Ok((secret, mode)) => {
            if mode & 0o004 != 0 {
                diags.warning(
                    &key.span(),
                    format!("{} is world-readable; chmod 600 it", file.display()),
                );
            }
            Ok(Some(secret))
        }
        Err(problem) => {
            diags.error(
                &key.span(),
                format!("cannot use {}: {problem}", file.display()),
            );
            Err(())
        }
    }
}

/// Reads a secret from a file: the whole content, one trailing newline removed.
fn read_secret_file(path: &Path) -> Result<(Secret, u32), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > 64 * 1024 {
        return Err("larger than 64 KiB, which is no client secret".into());
    }
    let bytes = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| e.to_string())?);
    let text = std::str::from_utf8(&bytes).map_err(|_| "not UTF-8 text".to_owned())?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        return Err("the file is empty".into());
    }
    Ok((Secret::from(text), meta.permissions().mode()))
}

fn client_auth(
    t: &mut TableReader<'_, '_>,
    has_secret: Result<bool, ()>,
    context: &str,
    diags: &mut Diagnostics<'_>,
) -> Option<ClientAuth> {
    let Some(v) = t.take("client_auth") else {
        return Some(match has_secret {
            Ok(true) => ClientAuth::SecretPost,
            _ => ClientAuth::None,
        });
    };
    let auth = match reader::expect_str(diags, "client_auth", v)? {
        "none" => ClientAuth::None,
        "client_secret_post" => ClientAuth::SecretPost,
        "client_secret_basic" => ClientAuth::SecretBasic,
        other => {
            diags.error(&v.span(), format!(
                "`client_auth` must be \"none\", \"client_secret_post\" or \"client_secret_basic\", not \"{other}\""
            ));
            return None;
        }
    };
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

fn endpoint_source(
    t: &mut TableReader<'_, '_>,
    dialect: DialectKind,
    context: &str,
    diags: &mut Diagnostics<'_>,
) -> Option<EndpointSource> {
    let span = t.span.clone();
    let device = t
        .take("device_authorization_endpoint")
        .map(|v| url_value(diags, "device_authorization_endpoint", v, true));
    let token = t
        .take("token_endpoint")
        .map(|v| url_value(diags, "token_endpoint", v, true));
    let issuer_value = t.take("issuer");
    let issuer = issuer_value.map(|v| url_value(diags, "issuer", v, true));
    let base_value = t.take("base_url");
    let base = base_value.map(|v| url_value(diags, "base_url", v, true));

    if let Some(v) = base_value
        && dialect.fixed_paths().is_none()
    {
        diags.error(&v.span(), format!(
                "`base_url` works only for dialects with fixed paths; dialect \"{dialect}\" needs `device_authorization_endpoint` and `token_endpoint`, or `issuer`"
            ));
        return None;
    }
    // A key that was present but invalid has already been reported; stop here
    // rather than adding a misleading "missing" error.
    if [&device, &token, &issuer, &base]
        .iter()
        .any(|e| matches!(e, Some(None)))
    {
        return None;
    }
    let (device, token, issuer, base) = (
        device.flatten(),
        token.flatten(),
        issuer.flatten(),
        base.flatten(),
    );

    if let Some((device_path, token_path)) = dialect.fixed_paths() {
        let join = |path: &str| {
            base.as_ref().map(|b| {
                let mut url = b.clone();
                url.set_path(&format!("{}{path}", b.path().trim_end_matches('/')));
                url
            })
        };
        return if let (Some(device_authorization), Some(token)) = (
            device.or_else(|| join(device_path)),
            token.or_else(|| join(token_path)),
        ) {
            Some(EndpointSource::Fixed {
                device_authorization,
                token,
            })
        } else {
            diags.error(&span, format!("{context} needs `base_url` (or both `device_authorization_endpoint` and `token_endpoint`)"));
            None
        };
    }
    match (device, token, issuer) {
        (Some(device_authorization), Some(token), issuer) => {
            if let (Some(_), Some(v)) = (issuer, issuer_value) {
                diags.warning(
                    &v.span(),
                    "`issuer` is ignored because both endpoints are set",
                );
            }
            Some(EndpointSource::Fixed {
                device_authorization,
                token,
            })
        }
        (None, None, Some(issuer)) => Some(EndpointSource::Discover { issuer }),
        (Some(_), None, Some(_)) | (None, Some(_), Some(_)) => {
            diags.error(&span, format!(
                "{context}: set `issuer` alone (discovery) or both `device_authorization_endpoint` and `token_endpoint`"
            ));
            None
        }
        (Some(_), None, None) => {
            diags.error(&span, format!("missing key `token_endpoint` in {context}"));
            None
        }
        (None, Some(_), None) => {
            diags.error(
                &span,
                format!("missing key `device_authorization_endpoint` in {context}"),
            );
            None
        }
        (None, None, None) => {
            diags.error(&span, format!(
                "{context} needs `device_authorization_endpoint` and `token_endpoint`, or `issuer` for OpenID discovery"
            ));
            None
        }
    }
}

/// Parses a URL value. Endpoints must be https, or http to a loopback
/// address (where nothing crosses a network); credentials and fragments are
/// refused because they would end up in logs or be dropped.
fn url_value(
    diags: &mut Diagnostics<'_>,
    key: &str,
    value: &reader::Value<'_>,
    endpoint: bool,
) -> Option<Url> {
    let text = reader::expect_str(diags, key, value)?;
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(e) => {
            diags.error(&value.span(), format!("`{key}` is not a valid URL: {e}"));
            return None;
        }
    };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    let problem = match url.scheme() {
        "https" => None,
        "http" if loopback || !endpoint => None,
        "http" => Some("uses http:// to a host that is not loopback; tokens would cross the network unencrypted (use https://)"),
        _ => Some("must be an http(s) URL"),
    }
    .or_else(|| (!url.username().is_empty() || url.password().is_some()).then_some("must not contain credentials; use `client_secret`"))
    .or_else(|| url.fragment().is_some().then_some("must not have a #fragment"))
    .or_else(|| url.host().is_none().then_some("has no host"));
    if let Some(problem) = problem {
        diags.error(&value.span(), format!("`{key}` {problem}"));
        return None;
    }
    Some(url)
}
