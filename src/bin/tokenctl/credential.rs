//! `tokenctl credential git`: git's credential-helper protocol.
//!
//! git runs the helper with an action (`get`, `store`, `erase`) and writes
//! `key=value` lines on its stdin (`protocol`, `host`, `path`, `username`,
//! `password`, ...) up to a blank line or the end. For `get` the helper
//! answers lines of the same form; for the others it answers nothing.
//! Unknown actions are ignored, as the protocol asks of helpers.
//!
//! The provider is the one whose `hosts` lists git's `host` (the daemon
//! refuses a config where two providers claim one host), or the one named
//! with `--provider`. No provider for the host: no answer, so that git
//! goes on to its next helper or asks the person.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, Write};

use tokend::client::Client;
use tokend::protocol::ProviderStatus;

use crate::exit::{self, Failure};

/// What git said about the credential it wants.
type Attributes = HashMap<String, String>;

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
    let host = attributes.get("host").map(|h| h.to_ascii_lowercase());
    if provider.is_none() && host.is_none() {
        return Err(Failure::new(
            exit::USAGE,
            "git sent no `host=` line (or name the provider with --provider)",
        ));
    }
    if action == "get"
        && let Some(scheme) = attributes.get("protocol")
    {
        refuse_plain_http(scheme, host.as_deref())?;
    }
    let (mut client, protocol) = connect()?;
    let Some(status) = find_provider(&mut client, protocol, provider, host.as_deref())? else {
        return Ok(());
    };
    if action == "erase" {
        // The token was refused: have tokend replace it (once, however many
        // gits saw the refusal), so the next `get` answers a new one.
        if let Some(refused) = attributes.get("password") {
            client.token_replacing(&status.name, refused)?;
        }
        return Ok(());
    }
    let answer = client.token(&status.name, None)?;
    let token = crate::usable(&status.name, answer.access_token.expose())?;
    let username = status
        .username
        .as_deref()
        .unwrap_or(tokend::config::DEFAULT_USERNAME);
    let mut answer_lines = format!("username={username}\npassword={token}\n");
    if let Some(expiry) = answer.expires_at {
        let _ = writeln!(answer_lines, "password_expiry_utc={expiry}");
    }
    let written = out
        .write_all(answer_lines.as_bytes())
        .and_then(|()| out.flush());
    zeroize::Zeroize::zeroize(&mut answer_lines);
    written.map_err(|e| Failure::output(&e))
}

/// git's `key=value` lines up to a blank line or the end.
fn read_attributes(input: impl BufRead) -> Result<Attributes, Failure> {
    let mut attributes = Attributes::new();
    for (number, line) in input.lines().enumerate() {
        let line =
            line.map_err(|e| Failure::new(exit::USAGE, format!("cannot read git's request: {e}")))?;
        if line.is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(Failure::new(
                exit::USAGE,
                format!("line {} of git's request is not `key=value`", number + 1),
            ));
        };
        attributes.insert(key.to_owned(), value.to_owned());
    }
    if let Some(url) = attributes.get("url").cloned() {
        add_url_parts(&mut attributes, &url)?;
    }
    Ok(attributes)
}

/// git sends its helpers a URL's parts, but reads a `url=` line as those
/// parts (`git credential fill`, scripts): so does tokenctl, for the parts
/// not also given on lines of their own. The error names the line, never
/// its value, which may carry a password.
fn add_url_parts(attributes: &mut Attributes, url: &str) -> Result<(), Failure> {
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
    for (key, value) in [("protocol", url.scheme()), ("host", &host), ("path", path)] {
        if !value.is_empty() {
            attributes
                .entry(key.to_owned())
                .or_insert_with(|| value.to_owned());
        }
    }
    Ok(())
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
    let mut found = None;
    crate::each_status(client, protocol, named, |status| {
        if found.is_none() && wanted(&status) {
            found = Some(status);
        }
        Ok(())
    })?;
    Ok(found)
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
mod tests {
    use super::*;

    #[test]
    fn attributes_end_at_a_blank_line_and_bad_lines_are_named() {
        let read =
            read_attributes("protocol=https\nhost=github.com\n\nignored=1\n".as_bytes()).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read["host"], "github.com");
        let err = read_attributes("protocol=https\nnonsense\n".as_bytes()).unwrap_err();
        assert!(err.message.contains("line 2"), "{}", err.message);
    }

    #[test]
    fn a_url_line_gives_its_parts() {
        let read =
            read_attributes("url=https://GitHub.com:8443/org/repo.git\n".as_bytes()).unwrap();
        assert_eq!(read["protocol"], "https");
        assert_eq!(read["host"], "github.com:8443");
        assert_eq!(read["path"], "org/repo.git");
        // The default port is not written; lines of their own win.
        let read = read_attributes("host=example.org\nurl=http://[::1]:80/\n".as_bytes()).unwrap();
        assert_eq!(read["host"], "example.org");
        assert_eq!(read["protocol"], "http");
        assert!(!read.contains_key("path"));
        let err = read_attributes("url=not a url with secret\n".as_bytes()).unwrap_err();
        assert!(err.message.contains("`url=`"), "{}", err.message);
        assert!(!err.message.contains("secret"), "{}", err.message);
    }

    #[test]
    fn loopback_hosts_with_and_without_ports() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "[::1]:443",
            "::1",
            "localhost:3000",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["github.com", "10.0.0.1:80", "example.org:443"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for (scheme, host) in [
            ("http", Some("github.com")),
            ("HTTP", Some("ghcr.io:5000")),
            ("http", None),
        ] {
            let refused = refuse_plain_http(scheme, host).unwrap_err();
            assert!(
                refused.message.contains("plain http"),
                "{}",
                refused.message
            );
        }
        for (scheme, host) in [
            ("https", Some("github.com")),
            ("http", Some("localhost:5000")),
            ("http", Some("[::1]:80")),
        ] {
            assert!(refuse_plain_http(scheme, host).is_ok(), "{scheme} {host:?}");
        }
    }
}
