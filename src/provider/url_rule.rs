//! The one transport rule for every URL tokend talks to or shows a person:
//! `https://`, or `http://` only to a loopback address. Configured
//! endpoints, endpoints found by OpenID discovery and the verification URLs
//! a provider sends all pass through it (tokend follows no redirects).
//!
//! URLs shown to a person (and rendered as a QR code) must also be free of
//! control and bidirectional-formatting characters, which can make a
//! terminal show another address than the one the link opens.

use url::Url;

/// The rule, in the words every refusal quotes.
pub const TRANSPORT_RULE: &str =
    "URLs must be https://, or http:// only to a loopback address (127.0.0.0/8, ::1, localhost)";

/// Whether `url` names a loopback host.
#[must_use]
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Checks the transport rule (and that the port is one a server can have).
///
/// # Errors
/// What is wrong, ending with the rule.
pub fn check_transport(url: &Url) -> Result<(), String> {
    // Port 0 parses (only 65536 and up do not), and every connection to
    // it is refused: a config that passed `--check` failed at its login
    // (an emulator's "port 0 picks a free port" copied into a URL).
    if url.port() == Some(0) {
        return Err("uses port 0, which no server listens on".to_owned());
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(format!(
            "uses plain http:// to a host that is not loopback: {TRANSPORT_RULE}"
        )),
        other => Err(format!("uses the scheme `{other}:`: {TRANSPORT_RULE}")),
    }
}

/// A URL a provider sent for a person to open: parsed, checked against the
/// transport rule, and free of characters that would show another address
/// than the one it opens.
///
/// # Errors
/// What is wrong with it; the message shows the text escaped.
pub fn check_shown_url(text: &str) -> Result<Url, String> {
    if let Some(c) = text.chars().find(|&c| is_deceptive(c)) {
        return Err(format!(
            "{:?} contains the character U+{:04X}, which could make it look like another address",
            text, c as u32
        ));
    }
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL ({e})"))?;
    check_transport(&url).map_err(|problem| format!("{text:?} {problem}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        // `https://github.com@evil.example/` opens evil.example.
        return Err(format!(
            "{text:?} has a user name before `@`, which could make it look like another address"
        ));
    }
    Ok(url)
}

/// Control characters, and the invisible formatting characters that
/// reorder, hide or break text (bidirectional marks, embeddings, overrides
/// and isolates; zero-width characters; the line and paragraph separators,
/// which a terminal may show as a new line; the byte order mark).
#[must_use]
pub fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_and_http_only_to_loopback() {
        for ok in [
            "https://github.com/login/device",
            "http://127.0.0.1:8080/device",
            "http://127.1.2.3/x",
            "http://[::1]:9/x",
            "http://localhost/x",
        ] {
            assert!(check_transport(&Url::parse(ok).unwrap()).is_ok(), "{ok}");
        }
        for bad in [
            "http://github.com/login/device",
            "http://10.0.0.1/x",
            "http://localhost.example.com/x",
            "ftp://127.0.0.1/x",
            "javascript:alert(1)",
        ] {
            let err = check_transport(&Url::parse(bad).unwrap()).unwrap_err();
            assert!(err.ends_with(TRANSPORT_RULE), "{bad}: {err}");
        }
    }

    /// Port 0 is refused wherever a URL comes from (config, discovery):
    /// no server listens there.
    #[test]
    fn port_zero_is_refused() {
        for bad in [
            "http://127.0.0.1:0/token",
            "http://[::1]:0/token",
            "https://idp.example:0/token",
        ] {
            let err = check_transport(&Url::parse(bad).unwrap()).unwrap_err();
            assert!(err.contains("port 0"), "{bad}: {err}");
        }
        assert!(check_transport(&Url::parse("https://idp.example:1/token").unwrap()).is_ok());
    }

    #[test]
    fn shown_urls_refuse_control_and_bidi_characters() {
        assert!(check_shown_url("https://example.com/device").is_ok());
        for bad in [
            "https://example.com/\u{202E}ecived",
            "https://example.com/\u{2066}x\u{2069}",
            "https://exa\u{200B}mple.com/",
            "https://example.com/\u{7}",
            "https://example.com/\nhttps://evil.example",
            "https://example.com/\u{2028}https://evil.example",
            "https://github.com@evil.example/login/device",
            "https://user:pass@example.com/device",
        ] {
            let err = check_shown_url(bad).unwrap_err();
            assert!(
                err.contains("could make it look like another address"),
                "{err}"
            );
            assert!(
                !err.contains('\u{202E}') && !err.contains('\n') && !err.contains('\u{2028}'),
                "escaped: {err}"
            );
        }
        let err = check_shown_url("http://evil.example/device").unwrap_err();
        assert!(err.contains("not loopback"), "{err}");
    }
}
