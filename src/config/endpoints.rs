//! Where a provider's endpoints are: explicit URLs, `base_url` and the
//! dialect's fixed paths, or OpenID discovery from `issuer`.

use std::collections::HashMap;

use url::Url;

use super::reader::{self, TableReader};
use super::{Diagnostics, EndpointSource};
use crate::provider::{DialectSpec, FixedPaths};

/// The URLs of one config file already read and found valid, by their
/// text. Most providers of a large config are accounts of a few services
/// and give the same endpoints: with 10,000 of them, parsing and checking
/// each URL again was a quarter of the time the config took to load.
#[derive(Debug, Default)]
pub(super) struct CheckedUrls(HashMap<String, Url>);

/// Reads the endpoint keys of a provider table.
pub(super) fn endpoint_source(
    t: &mut TableReader<'_, '_>,
    dialect: &DialectSpec,
    context: &str,
    checked: &mut CheckedUrls,
    diags: &mut Diagnostics<'_>,
) -> Option<EndpointSource> {
    let span = t.span.clone();
    let mut url = |key: &str| {
        t.take(key)
            .map(|v| (v, url_value(diags, key, v, &mut *checked)))
    };
    let device = url("device_authorization_endpoint").map(|(_, url)| url);
    let token = url("token_endpoint").map(|(_, url)| url);
    let (issuer_value, issuer) = url("issuer").unzip();
    let (base_value, base) = url("base_url").unzip();
    let refresh = url("refresh_endpoint").map(|(_, url)| url);

    if let Some(v) = base_value
        && dialect.fixed_paths.is_none()
    {
        diags.error(&v.span(), format!(
                "`base_url` works only for dialects with fixed paths; dialect \"{dialect}\" needs `device_authorization_endpoint` and `token_endpoint`, or `issuer`"
            ));
        return None;
    }
    // A key that was present but invalid has already been reported; stop here
    // rather than adding a misleading "missing" error.
    if [&device, &token, &issuer, &base, &refresh]
        .iter()
        .any(|e| matches!(e, Some(None)))
    {
        return None;
    }
    let (device, token, issuer, base, refresh) = (
        device.flatten(),
        token.flatten(),
        issuer.flatten(),
        base.flatten(),
        refresh.flatten(),
    );
    if let (Some(v), Some(url)) = (&issuer_value, &issuer)
        && is_a_discovery_document(url, v, diags)
    {
        return None;
    }

    if let Some(paths) = dialect.fixed_paths {
        if let Some(v) = issuer_value {
            // Discovery is for dialects without fixed paths: said rather
            // than quietly not used (a warning: a config that started
            // before still starts).
            diags.warning(
                &v.span(),
                format!("`issuer` is ignored: dialect \"{dialect}\" has fixed paths below `base_url` and no discovery; remove it"),
            );
        }
        return below_base(paths, base.as_ref(), device, token, refresh)
            .map_err(|problem| diags.error(&span, format!("{context} {problem}")))
            .ok();
    }
    if let (Some(_), Some(v)) = (&refresh, issuer_value)
        && device.is_none()
    {
        diags.error(
            &v.span(),
            "`refresh_endpoint` cannot be combined with `issuer`; set both endpoints instead",
        );
        return None;
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
                refresh,
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

/// Whether `url`, the issuer `value` gives, is the discovery document's own
/// URL, pasted as the issuer (said): discovery would then ask for
/// `…/.well-known/openid-configuration/.well-known/…`.
fn is_a_discovery_document(
    url: &Url,
    value: &reader::Value<'_>,
    diags: &mut Diagnostics<'_>,
) -> bool {
    let pasted = url
        .path()
        .trim_end_matches('/')
        .ends_with("/.well-known/openid-configuration");
    if pasted {
        diags.error(
            &value.span(),
            "`issuer` is the discovery document's URL: give the issuer itself, without `/.well-known/openid-configuration`",
        );
    }
    pasted
}

/// The endpoints of a dialect with fixed paths: each explicit URL, else
/// its path below `base`. A separate refresh endpoint (Trakt's) that is
/// neither given nor below `base` is found beside an explicit token
/// endpoint that has the dialect's path; the error says what is missing.
fn below_base(
    paths: FixedPaths,
    base: Option<&Url>,
    device: Option<Url>,
    token: Option<Url>,
    refresh: Option<Url>,
) -> Result<EndpointSource, String> {
    let join = |path: &str| {
        base.map(|b| {
            let mut url = b.clone();
            url.set_path(&format!("{}{path}", b.path().trim_end_matches('/')));
            url
        })
    };
    let (Some(device_authorization), Some(token)) = (
        device.or_else(|| join(paths.device_authorization)),
        token.or_else(|| join(paths.token)),
    ) else {
        return Err(
            "needs `base_url` (or both `device_authorization_endpoint` and `token_endpoint`)"
                .into(),
        );
    };
    let refresh = match (refresh, paths.refresh) {
        (Some(url), _) => Some(url),
        (None, None) => None,
        (None, Some(path)) => Some(
            join(path)
                .or_else(|| beside(&token, paths.token, path))
                .ok_or_else(|| {
                    format!(
                        "needs `refresh_endpoint` (or `base_url`): this dialect refreshes at `{path}`, \
                         not at the token endpoint, and `token_endpoint` does not end in `{}` to find it beside",
                        paths.token
                    )
                })?,
        ),
    };
    Ok(EndpointSource::Fixed {
        device_authorization,
        token,
        refresh,
    })
}

/// The refresh endpoint a dialect with a separate one (Trakt's) finds
/// beside `token` when the config names none: the same URL `base_url`
/// gives when the token endpoint is below it. A session's identity asks
/// (see `broker::session::older_session_identity`).
#[must_use]
pub fn derived_refresh_endpoint(token: &Url, paths: &FixedPaths) -> Option<Url> {
    beside(token, paths.token, paths.refresh?)
}

/// `url` with its path's ending `from` replaced by `to`
/// (`https://h/x/oauth/device/token` → `https://h/x/oauth/token`), when
/// its path ends so.
fn beside(url: &Url, from: &str, to: &str) -> Option<Url> {
    let prefix = url.path().strip_suffix(from)?;
    let mut sibling = url.clone();
    sibling.set_path(&format!("{prefix}{to}"));
    sibling.set_query(None);
    Some(sibling)
}

/// Parses a URL value. Endpoints must be https, or http to a loopback
/// address (where nothing crosses a network); credentials and fragments are
/// refused because they would end up in logs or be dropped. A text found
/// valid before (in `checked`) is not parsed again: what is checked depends
/// on the URL alone.
pub(super) fn url_value(
    diags: &mut Diagnostics<'_>,
    key: &str,
    value: &reader::Value<'_>,
    checked: &mut CheckedUrls,
) -> Option<Url> {
    let text = reader::expect_str(diags, key, value)?;
    if let Some(url) = checked.0.get(text) {
        return Some(url.clone());
    }
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(e) => {
            diags.error(&value.span(), format!("`{key}` is not a valid URL: {e}"));
            return None;
        }
    };
    // One rule for every URL, configured, discovered or sent by a provider.
    let problem = crate::provider::url_rule::check_transport(&url)
        .err()
        .map(std::borrow::Cow::Owned)
        .or_else(|| {
            (!url.username().is_empty() || url.password().is_some())
                .then_some("must not contain credentials; use `client_secret`".into())
        })
        .or_else(|| {
            url.fragment()
                .is_some()
                .then_some("must not have a #fragment".into())
        })
        .or_else(|| url.host().is_none().then_some("has no host".into()));
    if let Some(problem) = problem {
        diags.error(&value.span(), format!("`{key}` {problem}"));
        return None;
    }
    if super::placeholder::is_placeholder_url(&url) {
        diags.warning(
            &value.span(),
            format!(
                "`{key}` is still the example's placeholder address ({}): put your provider's there",
                url.host_str().unwrap_or_default()
            ),
        );
    }
    checked.0.insert(text.to_owned(), url.clone());
    Some(url)
}
