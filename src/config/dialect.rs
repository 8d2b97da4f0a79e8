//! What only some dialects have: their own keys, the keys they require, and
//! defaults they need.
//!
//! A key that belongs to another dialect is an error at its position (a
//! Twilio `account_sid` in a Trakt table is a mistake, not something to
//! ignore); a dialect's requirements are checked here so that
//! `tokend --check` reports them before any login is tried.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use super::reader::TableReader;
use super::secrets::{self, SecretContext, SecretKeys};
use super::{Diagnostics, DialectOptions, TraktOptions, TwilioOptions};
use crate::provider::{DialectKind, generic_v1, oracle, trakt};
use crate::secret::Secret;

/// Keys only one dialect takes, with that dialect.
pub(super) const DIALECT_KEYS: &[(&str, DialectKind)] = &[
    ("redirect_uri", DialectKind::Trakt),
    ("account_sid", DialectKind::Twilio),
    ("auth_token", DialectKind::Twilio),
    ("auth_token_file", DialectKind::Twilio),
    ("audiences", DialectKind::Twilio),
];

/// Twilio's auth token: in the config or in a file of its own.
const AUTH_TOKEN: SecretKeys = SecretKeys {
    inline: "auth_token",
    file: "auth_token_file",
    credential: None,
};

/// Reports every key of another dialect than `dialect` (and takes it, so
/// it is not reported again as unknown). With no valid dialect, they are
/// only taken: the dialect's own error says what is wrong.
pub(super) fn refuse_foreign_keys(
    t: &mut TableReader<'_, '_>,
    dialect: Option<DialectKind>,
    diags: &mut Diagnostics<'_>,
) {
    for (key, owner) in DIALECT_KEYS {
        if dialect == Some(*owner) || !t.has(key) {
            continue;
        }
        let span = t.key_span(key).unwrap_or(0..0);
        t.take(key);
        if dialect.is_some() {
            diags.error(
                &span,
                format!("`{key}` is only valid for dialect \"{owner}\""),
            );
        }
    }
}

/// Reads the settings of `dialect` (its own keys must not have been
/// refused). `None` after reporting a problem.
pub(super) fn options(
    t: &mut TableReader<'_, '_>,
    dialect: DialectKind,
    secret_context: &SecretContext<'_>,
    diags: &mut Diagnostics<'_>,
) -> Option<DialectOptions> {
    match dialect {
        DialectKind::Trakt => {
            let redirect_uri = match t.string(diags, "redirect_uri") {
                Some(uri) if uri.trim().is_empty() => {
                    let span = t.key_span("redirect_uri").unwrap_or(0..0);
                    diags.error(&span, "`redirect_uri` is empty");
                    return None;
                }
                Some(uri) => uri,
                None if t.has("redirect_uri") => return None,
                None => trakt::OOB_REDIRECT_URI.to_owned(),
            };
            Some(DialectOptions::Trakt(TraktOptions { redirect_uri }))
        }
        DialectKind::Twilio => twilio(t, secret_context, diags).map(DialectOptions::Twilio),
        DialectKind::Rfc8628 | DialectKind::Oracle | DialectKind::GenericV1 => {
            Some(DialectOptions::None)
        }
    }
}

fn twilio(
    t: &mut TableReader<'_, '_>,
    secret_context: &SecretContext<'_>,
    diags: &mut Diagnostics<'_>,
) -> Option<TwilioOptions> {
    let span = t.span.clone();
    let context = t.context.clone();
    let account_sid = t.required_string(diags, "account_sid");
    if let Some(sid) = &account_sid
        && !sid.starts_with("AC")
    {
        let span = t.key_span("account_sid").unwrap_or(0..0);
        diags.warning(
            &span,
            "Twilio account SIDs start with \"AC\"; is this the account SID?",
        );
    }
    let auth_token: Option<Secret> = match secrets::secret(t, AUTH_TOKEN, secret_context, diags) {
        Ok(Some(token)) => Some(token),
        Ok(None) => {
            diags.error(
                &span,
                format!(
                    "dialect \"twilio\" needs the account's auth token: set `auth_token` or `auth_token_file` in {context}"
                ),
            );
            None
        }
        Err(()) => None,
    };
    let audiences = t.string_list(diags, "audiences").unwrap_or_default();
    Some(TwilioOptions {
        account_sid: account_sid?,
        auth_token: auth_token?,
        audiences,
    })
}

/// What a provider table gave, for the dialect's requirements.
pub(super) struct Given<'a> {
    /// The dialect.
    pub dialect: DialectKind,
    /// The table's span, for "missing" errors.
    pub span: Range<usize>,
    /// The table's name in messages.
    pub context: &'a str,
    /// Whether a client secret is set (`Err` when it was unusable).
    pub has_secret: Result<bool, ()>,
    /// The scopes, and where `scopes` is.
    pub scopes: &'a [String],
    /// The span of the `scopes` key, if set.
    pub scopes_span: Option<Range<usize>>,
}

/// Checks what `given.dialect` requires of the common keys.
pub(super) fn check_requirements(given: &Given<'_>, diags: &mut Diagnostics<'_>) {
    let (dialect, context) = (given.dialect, given.context);
    match dialect {
        DialectKind::Trakt if given.has_secret == Ok(false) => diags.error(
            &given.span,
            format!(
                "dialect \"trakt\" needs the app's client secret (Trakt polls and refreshes with it): set `client_secret`, `client_secret_file` or `client_secret_credential` in {context}"
            ),
        ),
        DialectKind::Twilio | DialectKind::Oracle if given.scopes.is_empty() => diags.error(
            given.scopes_span.as_ref().unwrap_or(&given.span),
            format!("dialect \"{dialect}\" requires `scopes` (at least one) in {context}"),
        ),
        DialectKind::Oracle
            if !given.scopes.iter().any(|s| s == oracle::OFFLINE_SCOPE) =>
        {
            diags.warning(
                given.scopes_span.as_ref().unwrap_or(&given.span),
                format!(
                    "Oracle issues a refresh token only with the `{}` scope: without it every expiry needs a new login",
                    oracle::OFFLINE_SCOPE
                ),
            );
        }
        _ => {}
    }
}

/// Fills in the device metadata generic-v1 requires when the config does
/// not set it: the OS from the build, the chassis systemd records in
/// `/etc/machine-info` (`hostnamectl chassis`), else "desktop".
pub(super) fn default_device_params(
    dialect: DialectKind,
    params: &mut BTreeMap<String, String>,
    etc: &Path,
) {
    if dialect != DialectKind::GenericV1 {
        return;
    }
    let [device_type, device_os] = generic_v1::DEVICE_FIELDS;
    if !params.contains_key(device_type) {
        params.insert(device_type.to_owned(), chassis(etc));
    }
    params
        .entry(device_os.to_owned())
        .or_insert_with(|| std::env::consts::OS.to_owned());
}

fn chassis(etc: &Path) -> String {
    std::fs::read_to_string(etc.join("machine-info"))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let value = line.trim().strip_prefix("CHASSIS=")?;
                let value = value.trim_matches(|c| c == '"' || c == '\'').trim();
                (!value.is_empty()).then(|| value.to_owned())
            })
        })
        .unwrap_or_else(|| "desktop".to_owned())
}
