//! `docker-credential-tokend`: the docker-credential-helpers protocol, for
//! docker, podman, skopeo and buildah (`"credHelpers": {"ghcr.io":
//! "tokend"}` in their config).
//!
//! The helper is tokenctl under another name (a link installed as
//! `/usr/bin/docker-credential-tokend`): the tool runs it with one action
//! as its argument and the request on stdin.
//! - `get`: stdin is the registry's server URL; the answer is
//!   `{"ServerURL","Username","Secret"}` with the token of the provider
//!   whose `hosts` has the URL's host. None: the protocol's not-found
//!   message on stdout, exit 1. Two the user may use (two accounts at one
//!   registry): refused, naming them (a message on stdout, exit 1). An
//!   `http://` URL of a host that is not a loopback address is refused,
//!   as the git helper refuses it.
//! - `list`: `{"SERVER": "USERNAME", ...}` for every host one provider the
//!   user may see serves.
//!
//! Installed as `docker-credential-tokend-NAME` (another link; the tool's
//! config names it `"tokend-NAME"`), the helper is provider NAME's: it
//! answers for the hosts NAME lists, whichever other provider lists them.
//! - `store`: success, storing nothing, when it is handed what `get`
//!   answers now (`docker login REGISTRY` gets the credentials from the
//!   helper, has them checked, then stores them); else refused (tokend
//!   keeps the tokens; `docker login` is not how they are made), with a
//!   message and exit 1.
//! - `erase`: nothing to erase; success (`docker logout` leaves tokend
//!   answering).
//! - `version`: tokenctl's version.
//!
//! Failures are written on stdout, where the protocol puts them, and all
//! but "not found" on stderr too, the one docker shows (see
//! [`said_on_stderr`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde_json::json;
use tokend::client::Client;
use tokend::protocol::ProviderStatus;

use crate::exit::{self, Failure};

/// The name the helper is installed under.
pub const HELPER_NAME: &str = "docker-credential-tokend";

/// Whose helper tokenctl is, by the name it was run as.
#[derive(Debug, PartialEq, Eq)]
pub enum HelperFor {
    /// [`HELPER_NAME`]: the provider whose `hosts` has the registry's.
    AnyProvider,
    /// `docker-credential-tokend-NAME`: provider NAME's.
    Provider(String),
}

impl HelperFor {
    /// The provider named, if one is.
    pub fn provider(&self) -> Option<&str> {
        match self {
            Self::AnyProvider => None,
            Self::Provider(name) => Some(name),
        }
    }
}

/// Whose helper a program run as `file_name` is; `None` for a name not a
/// helper's (tokenctl's own command line).
pub fn named_by(file_name: &str) -> Option<HelperFor> {
    let rest = file_name.strip_prefix(HELPER_NAME)?;
    match rest.strip_prefix('-') {
        None if rest.is_empty() => Some(HelperFor::AnyProvider),
        Some(name) if !name.is_empty() => Some(HelperFor::Provider(name.to_owned())),
        _ => None,
    }
}

/// Checks the provider the helper's name names (`docker-credential-tokend-NAME`)
/// against `providers` (those the caller may use) for `host`: a name
/// mistyped in the link, or a registry the provider's `hosts` do not
/// list, is said, as git's `--provider` says it. "Not found" would send
/// docker on without credentials, to fail with "unauthorized" and
/// nothing naming the mistake.
fn named_provider(providers: &[ProviderStatus], name: &str, host: &str) -> Result<(), Failure> {
    let Some(provider) = providers.iter().find(|p| p.name == name) else {
        return Err(Failure::new(
            exit::UNKNOWN_PROVIDER,
            format!(
                "no provider named `{}` that you may use (the name after \
                 {HELPER_NAME}- in this helper's name): see `tokenctl status`",
                crate::format::clean(name)
            ),
        ));
    };
    crate::credential::serves_named_host(provider, host)
}

/// What the protocol's clients recognise as "no credentials here": the
/// one failure docker takes from stdout. Every other failure is said on
/// stderr too (see [`said_on_stderr`]).
const NOT_FOUND: &str = "credentials not found in native keychain";

/// Why `store` is refused (unless it stores what tokend would answer).
const READ_ONLY: &str = "tokend's credential helper is read-only: tokens come from \
     `tokenctl login`, not from `docker login`";

/// Whether the failure of `action` is to be said on stderr as well as on
/// stdout. Docker reads stdout only to tell "not found" from the rest,
/// then drops the text of every other `get` failure and goes on without
/// credentials (`X-Registry-Auth: {}`), to fail as "unauthorized" or
/// "denied" with nothing naming the cause; what the helper writes on
/// stderr reaches the person's terminal. stdout keeps the text for
/// podman, which shows it. A refused `store` is not: docker shows its
/// stdout ("Error saving credentials: … out: `…`"), and said twice it
/// reads as two failures.
pub fn said_on_stderr(action: &str, failure: &Failure) -> bool {
    failure.message != NOT_FOUND && action != "store"
}

/// Runs `action`; the answer goes to `out`. Failures are for the caller to
/// print on stdout, where the protocol expects them (and on stderr, see
/// [`said_on_stderr`]).
pub fn run(
    connect: impl FnOnce() -> Result<(Client, Option<u32>), Failure>,
    named: Option<&str>,
    action: &str,
    input: impl Read,
    mut out: impl Write,
) -> Result<(), Failure> {
    match action {
        "get" => get(connect, named, input, &mut out),
        "list" => {
            let (mut client, protocol) = connect()?;
            // A host two providers serve is left out: `get` would not
            // answer for it.
            let mut listed: BTreeMap<String, Option<String>> = BTreeMap::new();
            for provider in &visible(&mut client, protocol, named)? {
                for host in &provider.hosts {
                    listed
                        .entry(host.clone())
                        .and_modify(|user| *user = None)
                        .or_insert_with(|| Some(username(provider).to_owned()));
                }
            }
            let listed: BTreeMap<String, String> = listed
                .into_iter()
                .filter_map(|(host, user)| Some((host, user?)))
                .collect();
            write(&mut out, &format!("{}\n", json!(listed)))
        }
        // `docker login REGISTRY` gets the credentials from the helper,
        // has the registry check them, then stores them: the store of what
        // `get` answers now is done already. Anything else is refused, and
        // the same way whatever kept it from matching (tokend down, a
        // registry no provider serves): tokend makes its tokens itself.
        "store" => match stores_what_get_answers(connect, named, input) {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(Failure::new(exit::FAILURE, READ_ONLY)),
        },
        // Nothing to erase: tokend goes on answering (`docker logout` does
        // not log out of the provider; `tokenctl logout NAME` does).
        "erase" => Ok(()),
        "version" => write(
            &mut out,
            &format!("{HELPER_NAME} (tokenctl {})\n", env!("CARGO_PKG_VERSION")),
        ),
        other => Err(Failure::new(
            exit::USAGE,
            format!(
                "unknown action `{}`: {HELPER_NAME} takes get, list, store, erase or version",
                crate::format::clean(other)
            ),
        )),
    }
}

/// Writes `text` whole to `out`.
fn write(out: &mut dyn Write, text: &str) -> Result<(), Failure> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::output(&e))
}

/// `get`: the server URL on `input`, the credentials on `out`.
fn get(
    connect: impl FnOnce() -> Result<(Client, Option<u32>), Failure>,
    named: Option<&str>,
    input: impl Read,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let mut server = String::new();
    input
        .take(4096)
        .read_to_string(&mut server)
        .map_err(|e| Failure::new(exit::USAGE, format!("cannot read the server URL: {e}")))?;
    let server = server.trim();
    let host = host_of(server);
    if host.is_empty() {
        return Err(Failure::new(exit::USAGE, "no server URL on stdin"));
    }
    let (mut client, protocol) = connect()?;
    let providers = visible(&mut client, protocol, named)?;
    let provider = serving(&providers, named, server, &host)?;
    let answer = crate::credential::token_for_a_keeping_client(&mut client, &provider.name)?;
    let secret = crate::usable(&provider.name, answer.access_token.expose())?;
    let mut text = json!({
        "ServerURL": server,
        "Username": username(provider),
        "Secret": secret,
    })
    .to_string();
    text.push('\n');
    let written = write(out, &text);
    zeroize::Zeroize::zeroize(&mut text);
    written
}

/// The provider whose token `get` answers for `server` (of `host`), among
/// `providers` (see [`visible`]); else why none.
fn serving<'p>(
    providers: &'p [ProviderStatus],
    named: Option<&str>,
    server: &str,
    host: &str,
) -> Result<&'p ProviderStatus, Failure> {
    if let Some(name) = named {
        named_provider(providers, name, host)?;
    }
    let serving: Vec<&ProviderStatus> = providers
        .iter()
        .filter(|p| match named {
            // Named by the link, as git's --provider: one without
            // `hosts` answers for the registry docker asks about.
            Some(name) => p.name == name,
            None => p.hosts.iter().any(|h| h == host),
        })
        .collect();
    let provider = match serving[..] {
        [] => return Err(Failure::new(exit::FAILURE, NOT_FOUND)),
        [provider] => provider,
        _ => {
            let which: Vec<String> = serving.iter().map(|p| format!("`{}`", p.name)).collect();
            return Err(Failure::new(
                exit::FAILURE,
                format!(
                    "providers {} all serve {host}: no token sent; link \
                     docker-credential-tokend-NAME to tokenctl and name \
                     \"tokend-NAME\" for this registry in credHelpers",
                    which.join(", ")
                ),
            ));
        }
    };
    // As for git: no token over plain http but to loopback (checked once a
    // provider serves the host: another host is just not found). A URL
    // with no scheme is https, as the tools read it.
    if let Some((scheme, _)) = server.split_once("://") {
        crate::credential::refuse_plain_http(scheme, Some(host))?;
    }
    Ok(provider)
}

/// What `store` is handed: the credentials of one registry.
#[derive(serde::Deserialize)]
struct StoreRequest {
    #[serde(rename = "ServerURL")]
    server_url: String,
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: tokend::secret::Secret,
}

/// Whether `store`'s request (on `input`) holds what `get` answers now
/// for its server: the provider's user name and current token.
fn stores_what_get_answers(
    connect: impl FnOnce() -> Result<(Client, Option<u32>), Failure>,
    named: Option<&str>,
    input: impl Read,
) -> Result<bool, Failure> {
    let mut text = String::new();
    // A token is a few kilobytes at most; a larger request is no token.
    let read = input.take(64 * 1024).read_to_string(&mut text);
    let request = read.ok().and_then(|_| serde_json::from_str(&text).ok());
    zeroize::Zeroize::zeroize(&mut text);
    let Some(request): Option<StoreRequest> = request else {
        return Ok(false);
    };
    let server = request.server_url.trim();
    let host = host_of(server);
    let (mut client, protocol) = connect()?;
    let providers = visible(&mut client, protocol, named)?;
    let provider = serving(&providers, named, server, &host)?;
    if request.username != username(provider) {
        return Ok(false);
    }
    // The token tokend holds now, without asking for a refresh: `get`
    // answered it a moment ago (having had it refreshed if that was due).
    let current = client.token(&provider.name, None)?;
    Ok(current.access_token == request.secret)
}

fn username(provider: &ProviderStatus) -> &str {
    provider
        .username
        .as_deref()
        .unwrap_or(tokend::config::DEFAULT_USERNAME)
}

/// The providers the user may see that the helper may answer for: the
/// one its name names (`named`), with or without hosts (one without
/// serves any registry), else those that have hosts.
fn visible(
    client: &mut Client,
    protocol: Option<u32>,
    named: Option<&str>,
) -> Result<Vec<ProviderStatus>, Failure> {
    // Only those are kept: a daemon with thousands of providers and few
    // registries holds few.
    let mut kept = Vec::new();
    crate::status_command::each_status(client, protocol, None, |status| {
        let wanted = match named {
            Some(name) => status.name == name,
            None => !status.hosts.is_empty(),
        };
        if wanted {
            kept.push(status);
        }
        Ok(())
    })?;
    Ok(kept)
}

/// The host of a server URL as the tools write it: `https://ghcr.io`,
/// `ghcr.io/v2/`, `registry.example.org:5000`, lowercase.
fn host_of(server: &str) -> String {
    let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
    tokend::config::comparable_host(rest.split('/').next().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_run_as_says_whose_helper_it_is() {
        assert_eq!(
            named_by("docker-credential-tokend"),
            Some(HelperFor::AnyProvider)
        );
        assert_eq!(
            named_by("docker-credential-tokend-gh-work"),
            Some(HelperFor::Provider("gh-work".to_owned()))
        );
        assert_eq!(named_by("docker-credential-tokend-"), None);
        assert_eq!(named_by("docker-credential-tokendx"), None);
        assert_eq!(named_by("tokenctl"), None);
    }

    #[test]
    fn hosts_of_server_urls() {
        assert_eq!(host_of("https://GHCR.io"), "ghcr.io");
        assert_eq!(host_of("ghcr.io/v2/"), "ghcr.io");
        assert_eq!(
            host_of("registry.example.org:5000"),
            "registry.example.org:5000"
        );
        assert_eq!(host_of("https://index.docker.io/v1/"), "index.docker.io");
        // https's default port is no other host.
        assert_eq!(host_of("https://GHCR.io:443/v2/"), "ghcr.io");
        assert_eq!(host_of(""), "");
    }
}
