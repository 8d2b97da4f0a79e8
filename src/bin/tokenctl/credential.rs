//! `tokenctl credential git`: git's credential-helper protocol.
//!
//! git runs the helper with an action (`get`, `store`, `erase`) and writes
//! `key=value` lines on its stdin (`protocol`, `host`, `path`, `username`,
//! `password`, ...) up to a blank line or the end. For `get` the helper
//! answers lines of the same form; for the others it answers nothing.
//! Unknown actions are ignored, as the protocol asks of helpers.
//!
//! Only HTTP's credentials are answered (`protocol=https`, or `http` to a
//! loopback address): git asks its helpers for a client certificate's
//! passphrase and an SMTP password too, and gets no answer for those.
//!
//! The provider is the one whose `hosts` lists git's `host` (the daemon
//! refuses a config where two providers claim one host), or the one named
//! with `--provider`, for a host its `hosts` lists, or any host when it
//! lists none (a helper set for every host must not hand one forge's token
//! to another: a submodule's URL can name any host). No provider for the
//! host: no answer, so that git goes on to its next helper or asks the
//! person.
//!
//! The token goes to git as HTTP Basic's password (with the provider's
//! user name), or, since git 2.46 (which announces
//! `capability[]=authtype`), as a Bearer token (`authtype=Bearer`,
//! `credential=`): when the provider says `git_auth = "bearer"`, or, by
//! default, when the server's challenges (git's `wwwauth[]` lines, its
//! `WWW-Authenticate` headers) ask for Bearer and not for Basic.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, Write};

use tokend::client::Client;
use tokend::protocol::ProviderStatus;

use crate::exit::{self, Failure};

/// What git said about the credential it wants.
#[derive(Debug, Default)]
struct Attributes {
    /// The single-valued `key=value` lines.
    values: HashMap<String, String>,
    /// `capability[]` lines: what this git can take in an answer.
    capabilities: Vec<String>,
    /// `wwwauth[]` lines: the server's `WWW-Authenticate` headers.
    challenges: Vec<String>,
}

impl Attributes {
    fn get(&self, key: &str) -> Option<&String> {
        self.values.get(key)
    }
}

/// Runs `action` with git's attributes from `input`, answering on `out`.
/// `connect` opens a connection to the daemon (with its protocol version)
/// when one is needed.
pub fn git(
    connect: impl FnOnce() -> Result<(Client, Option<u32>), Failure>,
    provider: Option<&str>,
    action: &str,
    input: impl BufRead,
    mut out: impl Write,
) -> Result<(), Failure> {
    if !matches!(action, "get" | "store" | "erase") {
        return Ok(());
    }
    let attributes = read_attributes(input)?;
    if action == "store" {
        // tokend keeps the tokens; there is nothing to store.
        return Ok(());
    }
    if attributes.get("protocol").is_some_and(|p| !is_http(p)) {
        // git asks its helpers for more than HTTP's credentials: a client
        // certificate's passphrase (`protocol=cert`, `host=` empty),
        // send-email's SMTP password (`protocol=smtp`). A token is none
        // of them: no answer, so git goes on to its next helper or asks
        // the person (a provider without `hosts` named with --provider
        // answered its token as the passphrase). A request with no
        // `protocol=` is no git's (git refuses to send one) and is read
        // as https, as before.
        return Ok(());
    }
    let host = attributes
        .get("host")
        .map(|h| tokend::config::comparable_host(h));
    if provider.is_none() && host.is_none() {
        return Err(Failure::new(
            exit::USAGE,
            "git sent no `host=` line (or name the provider with --provider)",
        ));
    }
    let (mut client, protocol) = connect()?;
    let Some(status) = find_provider(&mut client, protocol, provider, host.as_deref())? else {
        return Ok(());
    };
    if let Some(host) = host.as_deref() {
        // Named with --provider, whose `hosts` may not have this one: said,
        // since the person named the provider and expects its token.
        serves_named_host(&status, host)?;
    }
    // Checked once a provider serves the host: a plain-http host that none
    // serves gets no answer, as any host none serves, not an error.
    if action == "get"
        && let Some(scheme) = attributes.get("protocol")
    {
        refuse_plain_http(scheme, host.as_deref())?;
    }
    if action == "erase" {
        // The token was refused: have tokend replace it (once, however many
        // gits saw the refusal), so the next `get` answers a new one.
        // A Basic answer comes back as `password=`, a Bearer one as
        // `credential=`.
        if let Some(refused) = attributes
            .get("password")
            .or_else(|| attributes.get("credential"))
        {
            client.token_replacing(&status.name, refused)?;
        }
        return Ok(());
    }
    let bearer = sends_bearer(&status, &attributes)?;
    let answer = client.token(&status.name, None)?;
    let token = crate::usable(&status.name, answer.access_token.expose())?;
    let mut answer_lines = if bearer {
        // Ephemeral: a helper that keeps credentials (git's cache) should
        // not answer this one later, when tokend has a newer token.
        format!("capability[]=authtype\nauthtype=Bearer\ncredential={token}\nephemeral=1\n")
    } else {
        let username = status
            .username
            .as_deref()
            .unwrap_or(tokend::config::DEFAULT_USERNAME);
        format!("username={username}\npassword={token}\n")
    };
    if let Some(expiry) = answer.expires_at {
        let _ = writeln!(answer_lines, "password_expiry_utc={expiry}");
    }
    let written = out
        .write_all(answer_lines.as_bytes())
        .and_then(|()| out.flush());
    zeroize::Zeroize::zeroize(&mut answer_lines);
    written.map_err(|e| Failure::output(&e))
}

/// git's `key=value` lines up to a blank line or the end. Read as bytes:
/// git passes a server's `WWW-Authenticate` values (`wwwauth[]`: a realm
/// in Latin-1) and, with `credential.useHttpPath`, percent-decoded paths
/// as they are, so a line need not be UTF-8; it is read with what is not
/// as U+FFFD (only `host` must match, and no host has such bytes).
fn read_attributes(input: impl BufRead) -> Result<Attributes, Failure> {
    let mut attributes = Attributes::default();
    for (number, line) in input.split(b'\n').enumerate() {
        let line =
            line.map_err(|e| Failure::new(exit::USAGE, format!("cannot read git's request: {e}")))?;
        let line = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(&line));
        if line.is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(Failure::new(
                exit::USAGE,
                format!("line {} of git's request is not `key=value`", number + 1),
            ));
        };
        let list = match key {
            "capability[]" => &mut attributes.capabilities,
            "wwwauth[]" => &mut attributes.challenges,
            // Other lists (`state[]`) are for helpers that keep state.
            _ if key.ends_with("[]") => continue,
            "url" => {
                set_url_parts(&mut attributes, value)?;
                continue;
            }
            _ => {
                attributes.values.insert(key.to_owned(), value.to_owned());
                continue;
            }
        };
        // An empty value starts the list again, as git reads it.
        if value.is_empty() {
            list.clear();
        } else {
            list.push(value.to_owned());
        }
    }
    Ok(attributes)
}

/// git sends its helpers a URL's parts, but reads a `url=` line as those
/// parts (`git credential fill`, scripts): so does tokenctl, the way git
/// does, in order: the line clears what the lines before it said (git's
/// `credential_from_url` starts from an empty credential) and the lines
/// after it override its parts. The error names the line, never its
/// value, which may carry a password.
fn set_url_parts(attributes: &mut Attributes, url: &str) -> Result<(), Failure> {
    let url = url::Url::parse(url).map_err(|e| {
        Failure::new(
            exit::USAGE,
            format!("the `url=` line of git's request is not a URL: {e}"),
        )
    })?;
    let mut host = url.host_str().unwrap_or_default().to_owned();
    if let Some(port) = url.port() {
        let _ = write!(host, ":{port}");
    }
    let path = url.path().trim_start_matches('/');
    attributes.values.clear();
    attributes.challenges.clear();
    for (key, value) in [("protocol", url.scheme()), ("host", &host), ("path", path)] {
        if !value.is_empty() {
            attributes.values.insert(key.to_owned(), value.to_owned());
        }
    }
    Ok(())
}

/// Whether the token goes to git as a Bearer token (see the module doc).
///
/// # Errors
/// The provider wants Bearer and this git cannot send one.
fn sends_bearer(status: &ProviderStatus, attributes: &Attributes) -> Result<bool, Failure> {
    let git_can = attributes.capabilities.iter().any(|c| c == "authtype");
    match status.git_auth.as_deref() {
        // A daemon older than `git_auth` sent Basic only.
        Some("basic") | None => Ok(false),
        Some("bearer") if git_can => Ok(true),
        Some("bearer") => Err(Failure::new(
            exit::FAILURE,
            format!(
                "provider `{}` hands git its token as a Bearer token (git_auth = \"bearer\"), \
                 which needs git 2.46 or later: this git did not offer it \
                 (no `capability[]=authtype` line)",
                status.name
            ),
        )),
        // "auto", and whatever a newer daemon may send.
        Some(_) => {
            let schemes: Vec<String> = attributes
                .challenges
                .iter()
                .flat_map(|header| challenge_schemes(header))
                .collect();
            let bearer_only =
                schemes.iter().any(|s| s == "bearer") && !schemes.iter().any(|s| s == "basic");
            if bearer_only && !git_can {
                // Basic would be refused, and git's `erase` of it would
                // have tokend refresh at every attempt: say why instead.
                return Err(Failure::new(
                    exit::FAILURE,
                    format!(
                        "the server asks only for a Bearer token, which git sends from 2.46 \
                         on: this git did not offer it (no `capability[]=authtype` line), so \
                         no token of provider `{}` was sent; upgrade git, or set git_auth = \
                         \"basic\" if the server takes the token as Basic's password too",
                        status.name
                    ),
                ));
            }
            Ok(git_can && bearer_only)
        }
    }
}

/// The authentication schemes a `WWW-Authenticate` header offers,
/// lowercase: it is a comma-separated list of challenges, each a scheme
/// followed by parameters (`name=value`, values maybe quoted and holding
/// commas) or a token68 (RFC 9110 §11.6.1). A part that starts with a
/// name and `=` continues the previous challenge.
fn challenge_schemes(header: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in header.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&header[start..]);
    parts
        .into_iter()
        .filter_map(|part| {
            let part = part.trim_start();
            let end = part
                .find(|c: char| c.is_whitespace() || c == '=')
                .unwrap_or(part.len());
            let (word, rest) = part.split_at(end);
            // `realm="x"` (or `realm = "x"`) continues a challenge.
            let is_parameter = rest.trim_start().starts_with('=');
            (!word.is_empty() && !is_parameter).then(|| word.to_ascii_lowercase())
        })
        .collect()
}

/// The status of the provider named, or of the one whose `hosts` has
/// `host`; `None` when no provider serves the host.
fn find_provider(
    client: &mut Client,
    protocol: Option<u32>,
    named: Option<&str>,
    host: Option<&str>,
) -> Result<Option<ProviderStatus>, Failure> {
    let wanted = |p: &ProviderStatus| match (named, host) {
        (Some(name), _) => p.name == name,
        (None, Some(host)) => p.hosts.iter().any(|h| h == host),
        (None, None) => false,
    };
    let mut found = Vec::new();
    crate::status_command::each_status(client, protocol, named, |status| {
        if wanted(&status) {
            found.push(status);
        }
        Ok(())
    })?;
    if found.len() > 1 {
        // Two accounts at one host: the helper must not guess which one a
        // repository is for.
        let which: Vec<String> = found.iter().map(|p| format!("`{}`", p.name)).collect();
        return Err(Failure::new(
            exit::FAILURE,
            format!(
                "providers {} all serve {}: no token sent; name one with `tokenctl credential \
                 git --provider NAME`, set for the repositories of that account (git config \
                 credential.https://HOST/ORG.helper: first '' to drop the helpers set for all \
                 hosts, then --add this one; and credential.useHttpPath true)",
                which.join(", "),
                host.unwrap_or("this host")
            ),
        ));
    }
    Ok(found.pop())
}

/// Whether `provider`, named by the person (git's `--provider`,
/// `docker-credential-tokend-NAME`), serves `host`: one without `hosts`
/// serves any; else a failure naming the hosts it serves.
pub(crate) fn serves_named_host(provider: &ProviderStatus, host: &str) -> Result<(), Failure> {
    if provider.hosts.is_empty() || provider.hosts.iter().any(|h| h == host) {
        return Ok(());
    }
    Err(Failure::new(
        exit::FAILURE,
        format!(
            "provider `{}` serves {}, not {host}: no token sent (its `hosts` in the config)",
            provider.name,
            provider.hosts.join(", ")
        ),
    ))
}

/// The token for a client that keeps it until its server refuses it and
/// cannot say so (kubectl, docker, podman: kubectl runs the plugin again
/// after a 401, docker at its next command, neither telling why). A token
/// whose expiry the provider said is the one tokend would hand anyone (it
/// is refreshed before it expires; one refused sooner is handed out again,
/// since a run after a refusal looks like any other: the README's kubectl
/// section says how to replace it by hand); one of unknown life is asked for with
/// some life left, which has tokend refresh it when its last refresh is a
/// minute old (see `--min-valid`): without that, a token of unknown life
/// the server refused came back at every ask, for good. That refresh is
/// waited for [`KEEPING_CLIENT_REFRESH_WAIT`] at most, as a default
/// request waits: a provider that hangs would otherwise stall every
/// `kubectl` or `docker pull` for the whole `http_timeout`, for the
/// token it had anyway.
pub(crate) fn token_for_a_keeping_client(
    client: &mut Client,
    name: &str,
) -> Result<tokend::protocol::TokenAnswer, Failure> {
    let answer = client.token(name, None)?;
    if answer.expires_at.is_some() {
        return Ok(answer);
    }
    client.set_timeout(KEEPING_CLIENT_REFRESH_WAIT);
    // Whatever keeps the refresh from answering in time (a provider that
    // hangs, one that fails), the token had is the answer, as a default
    // request's; its own trouble shows in `status` and the log.
    Ok(client.token(name, Some(1)).unwrap_or(answer))
}

/// How long [`token_for_a_keeping_client`] waits for the refresh of a
/// token of unknown life before it takes the token it had.
const KEEPING_CLIENT_REFRESH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether git's `protocol` is HTTP's, whose credentials a token is
/// (plain `http` is judged by [`refuse_plain_http`]).
fn is_http(protocol: &str) -> bool {
    protocol.eq_ignore_ascii_case("https") || protocol.eq_ignore_ascii_case("http")
}

/// The rule of every credential helper (git's, docker's): a token is
/// never sent over plain http (`scheme`, any case) except to a loopback
/// address, where it does not leave the machine. The refusal names the
/// host, never a token.
pub(crate) fn refuse_plain_http(scheme: &str, host: Option<&str>) -> Result<(), Failure> {
    if scheme.eq_ignore_ascii_case("http") && !host.is_some_and(is_loopback) {
        return Err(Failure::new(
            exit::FAILURE,
            format!(
                "refusing to send a token over plain http to {}: use https",
                host.unwrap_or("the server")
            ),
        ));
    }
    Ok(())
}

/// Whether `host` (with or without a port) is a loopback address, where
/// plain http never leaves the machine.
fn is_loopback(host: &str) -> bool {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.split_once(']'))
        .map_or_else(
            || host.rsplit_once(':').map_or(host, |(h, _)| h),
            |(h, _)| h,
        );
    bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
#[path = "credential_tests.rs"]
mod tests;
