//! One `[providers.NAME]` table into a [`ProviderConfig`]: the keys every
//! dialect shares here, the dialect's own keys read by the dialect
//! ([`super::dialect`]).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use super::dialect::{self, TableSettings};
use super::endpoints::{CheckedUrls, endpoint_source, url_value};
use super::file_access::FileAccess;
use super::reader::{self, TableReader};
use super::secrets::{self, CLIENT_SECRET, SecretContext};
use super::users::UserDb;
use super::{Diagnostics, Environment, GitAuth, GroupGrant, ProviderConfig, UnitPattern};
use crate::provider::{CommonSettings, dialects};

/// The keys every provider table may have; the dialects' own keys come
/// from the registry.
pub(super) const PROVIDER_KEYS: &[&str] = &[
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
    "allow_units",
    "manage_users",
    "manage_groups",
    "hosts",
    "git_username",
    "username",
    "git_auth",
    "issuer",
    "base_url",
    "device_authorization_endpoint",
    "token_endpoint",
    "refresh_endpoint",
];

/// What reading one provider table leaves for the tables after it.
#[derive(Debug, Default)]
pub(super) struct SeenSoFar {
    /// The URLs found valid, not parsed again.
    urls: CheckedUrls,
}

/// Longest provider name: it becomes part of D-Bus object paths and store keys.
pub const MAX_PROVIDER_NAME: usize = 64;

/// Reads the table `[providers.NAME]`; `None` after reporting a problem.
/// What the tables after it need to know (the hosts it claims, the URLs
/// it gives) is added to `seen`.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename these
pub(super) fn provider_config(
    name: &str,
    name_span: Range<usize>,
    value: &reader::Value<'_>,
    config_path: &Path,
    file_mode: Option<FileAccess>,
    env: &Environment,
    seen: &mut SeenSoFar,
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

    let dialect = dialect::dialect_spec(&mut t, diags);
    let client_id = t.required_string(diags, "client_id").and_then(|id| {
        let at = t.key_span("client_id").unwrap_or(span.clone());
        checked_client_id(&id, &at, diags)
    });
    let secret_context = SecretContext {
        config_path,
        file_mode,
        env,
    };
    let client_secret = secrets::secret(&mut t, CLIENT_SECRET, &secret_context, diags);
    let has_secret = client_secret
        .as_ref()
        .map(Option::is_some)
        .map_err(|&()| ());
    let client_auth = secrets::client_auth(&mut t, has_secret, dialect, &context, diags);
    let scopes_span = t.key_span("scopes");
    let scopes = t.string_list(diags, "scopes");
    let scopes_valid = scopes.is_some() || scopes_span.is_none();
    let scopes = scopes.unwrap_or_default();
    let mut device_params = device_params(&mut t, !scopes.is_empty(), diags);
    let verification_uri = t
        .take("verification_uri")
        .and_then(|v| url_value(diags, "verification_uri", v, &mut seen.urls));
    let access = access_keys(&mut t, diags);
    let hosts = hosts(&mut t, diags);
    let username = username(&mut t, diags);
    let git_auth = git_auth(&mut t, diags);
    let endpoints =
        dialect.and_then(|d| endpoint_source(&mut t, d, &context, &mut seen.urls, diags));
    dialect::refuse_foreign_keys(&mut t, dialect, diags);
    let dialect_settings = dialect.and_then(|d| {
        let mut source = TableSettings {
            table: &mut t,
            diags: &mut *diags,
            secrets: &secret_context,
        };
        let settings = (d.read_settings)(&mut source);
        if scopes_valid {
            let token_host = endpoints.as_ref().and_then(|e| match e {
                crate::provider::EndpointSource::Fixed { token, .. } => token.host_str(),
                crate::provider::EndpointSource::Discover { issuer } => issuer.host_str(),
            });
            let common = CommonSettings {
                has_secret,
                scopes: &scopes,
                client_auth,
                token_host,
            };
            (d.check_common)(&common, &mut source);
        }
        (d.default_device_params)(&mut device_params, &env.etc);
        settings
    });
    let known: Vec<&str> = PROVIDER_KEYS
        .iter()
        .copied()
        .chain(dialects::own_keys())
        .collect();
    t.finish(diags, &known);

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
        dialect_settings: dialect_settings?,
        allow_users: access.allow_users,
        allow_groups: access.allow_groups,
        allow_units: access.allow_units,
        manage_users: access.manage_users,
        manage_groups: access.manage_groups,
        hosts,
        username,
        git_auth: git_auth?,
    })
}

/// The `client_id` value `id` (at `at`) as sent: refused when empty or
/// holding a control character; without the spaces or newline around it,
/// said, when copied with them (a `"""` string): sent as written, the
/// provider would answer `invalid_client`, and a config that started
/// before still starts.
fn checked_client_id(id: &str, at: &Range<usize>, diags: &mut Diagnostics<'_>) -> Option<String> {
    let trimmed = id.trim();
    if trimmed.is_empty() {
        diags.error(at, "`client_id` is empty");
        return None;
    }
    if trimmed.chars().any(char::is_control) {
        diags.error(
            at,
            "`client_id` has a control character (a tab, a newline) in it: the provider would not know it; remove it",
        );
        return None;
    }
    if trimmed != id {
        diags.warning(
            at,
            "`client_id` has spaces or a newline around it: taken without them; remove them",
        );
    }
    if super::placeholder::is_placeholder(trimmed) {
        diags.warning(
            at,
            "`client_id` is still the example's placeholder: the provider will not know it; put your app's client id there",
        );
    }
    Some(trimmed.to_owned())
}

/// Who may use and who may manage a provider: its `allow_*` and
/// `manage_*` keys.
struct AccessKeys {
    allow_users: Vec<u32>,
    allow_groups: Vec<GroupGrant>,
    allow_units: Vec<UnitPattern>,
    manage_users: Vec<u32>,
    manage_groups: Vec<GroupGrant>,
}

/// Reads the access keys, names resolved through the system's user
/// database.
fn access_keys(t: &mut TableReader<'_, '_>, diags: &mut Diagnostics<'_>) -> AccessKeys {
    let mut users = |key: &str| {
        t.take(key)
            .map_or_else(Vec::new, |v| UserDb::resolve_users(key, v, diags))
    };
    let (allow_users, manage_users) = (users("allow_users"), users("manage_users"));
    let mut groups = |key: &str| {
        t.take(key)
            .map_or_else(Vec::new, |v| UserDb::resolve_groups(key, v, diags))
    };
    let (allow_groups, manage_groups) = (groups("allow_groups"), groups("manage_groups"));
    AccessKeys {
        allow_users,
        allow_groups,
        allow_units: super::units::allow_units(t.take("allow_units"), diags),
        manage_users,
        manage_groups,
    }
}

/// The `git_username` key (the contract's name), or `username` (the same
/// key under the name the README used first: it serves docker too).
fn username(t: &mut TableReader<'_, '_>, diags: &mut Diagnostics<'_>) -> Option<String> {
    let (key, v) = match (t.take("git_username"), t.take("username")) {
        (Some(_), Some(second)) => {
            diags.error(
                &second.span(),
                "`username` is another name of `git_username`: give one of them",
            );
            return None;
        }
        (Some(v), None) => ("git_username", v),
        (None, Some(v)) => ("username", v),
        (None, None) => return None,
    };
    let user = reader::expect_str(diags, key, v)?;
    if user.is_empty() || user.chars().any(|c| c.is_control() || c == ':') {
        diags.error(
            &v.span(),
            format!("`{key}` must be a non-empty name without `:` or control characters"),
        );
        return None;
    }
    Some(user.to_owned())
}

/// The `git_auth` key: "auto" (the default), "basic" or "bearer".
fn git_auth(t: &mut TableReader<'_, '_>, diags: &mut Diagnostics<'_>) -> Option<GitAuth> {
    let Some(v) = t.take("git_auth") else {
        return Some(GitAuth::default());
    };
    let name = reader::expect_str(diags, "git_auth", v)?;
    let auth = GitAuth::from_name(name);
    if auth.is_none() {
        diags.error(
            &v.span(),
            format!("`git_auth` must be \"auto\", \"basic\" or \"bearer\", not \"{name}\""),
        );
    }
    auth
}

/// A host as the `hosts` key and the credential helpers compare it: in
/// lower case, without the default port of https (`:443`), which git keeps
/// when a remote URL names it and docker when a registry's name has it:
/// `git.example.org:443` is `git.example.org`, and no token went to it.
/// A name's trailing dot (`github.com.`, the fully qualified form, which
/// resolves to the same host) is dropped too.
#[must_use]
pub fn comparable_host(host: &str) -> String {
    let lower = host.to_ascii_lowercase();
    let lower = match lower.strip_suffix(":443") {
        Some(bare) if !bare.is_empty() => bare.to_owned(),
        _ => lower,
    };
    // A bracketed IPv6 address has no dot to drop, and its colons are not
    // a port's.
    if lower.starts_with('[') {
        return lower;
    }
    let (name, port) = match lower.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (lower.as_str(), None),
    };
    match name.strip_suffix('.') {
        Some(bare) if !bare.is_empty() => match port {
            Some(port) => format!("{bare}:{port}"),
            None => bare.to_owned(),
        },
        _ => lower,
    }
}

/// The `hosts` key: host names (with a port when not the default), which
/// `tokenctl credential` maps to this provider. Two providers may claim
/// one host (two accounts at one forge; one account per service user of a
/// team's daemon): a credential helper that sees both refuses to guess and
/// names them, and one named (`--provider`, `docker-credential-tokend-NAME`)
/// serves only the hosts it claims.
fn hosts(t: &mut TableReader<'_, '_>, diags: &mut Diagnostics<'_>) -> Vec<String> {
    let span = t.key_span("hosts").unwrap_or(0..0);
    let Some(list) = t.string_list(diags, "hosts") else {
        return Vec::new();
    };
    let mut hosts = Vec::new();
    for host in list {
        let lower = comparable_host(&host);
        let valid = !lower.is_empty()
            && lower
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !valid {
            diags.error(
                &span,
                format!("`hosts`: `{host}` is not a host name (e.g. \"github.com\" or \"git.example.org:8443\")"),
            );
            continue;
        }
        if !hosts.contains(&lower) {
            hosts.push(lower);
        }
    }
    hosts
}

/// The `device_params` table: extra string fields for the device request.
/// With `sends_scopes` (`scopes` set) the dialect sends its scope field
/// too; without, a `scope` given here is the only one and is kept.
fn device_params(
    t: &mut TableReader<'_, '_>,
    sends_scopes: bool,
    diags: &mut Diagnostics<'_>,
) -> BTreeMap<String, String> {
    let Some(mut params) = t.table(diags, "device_params") else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    let keys: Vec<_> = params.untaken().collect();
    for (key, span) in keys {
        // A field the dialect sends itself would go twice (form bodies: a
        // strict server answers `invalid_request`) or replace the real one
        // (JSON bodies: the last wins, and the polls then carry another
        // client id than the request).
        let sent_by_tokend = SENT_BY_TOKEND
            .iter()
            .chain(if sends_scopes { SCOPE_FIELDS } else { &[] })
            .any(|sent| sent.eq_ignore_ascii_case(key));
        if sent_by_tokend {
            // A warning, not an error: a config that started before still
            // starts, and the field is no longer sent twice.
            diags.warning(
                &span,
                format!(
                    "`device_params.{key}` is ignored: tokend sends `{key}` itself (from `client_id`, `scopes` and the dialect); remove it from `device_params`, or set `scopes` instead"
                ),
            );
            let _ = params.take(key);
            continue;
        }
        if let Some(v) = params.string(diags, key) {
            out.insert(key.to_owned(), v);
        }
    }
    out
}

/// Fields some dialect's device request carries of its own: not for
/// `device_params` (compared without case: Twilio's keys are `PascalCase`).
const SENT_BY_TOKEND: &[&str] = &[
    "client_id",
    "client_secret",
    "response_type",
    "grant_type",
    "device_code",
    "ClientSid",
    "ClientSecret",
];

/// The scope fields, which the dialects send when `scopes` is set.
const SCOPE_FIELDS: &[&str] = &["scope", "Scopes"];

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
