//! What a token answer's texts must be before tokend keeps and hands them
//! out: the tokens, the token type and the granted scopes.
//!
//! Each goes further than the answer: tokens into `Authorization:` headers
//! clients build, one-line protocol answers (the socket's, git's
//! credential lines) and D-Bus strings, which may hold no NUL (the bus
//! daemon disconnects a peer that sends one: tokend would lose the bus);
//! the scopes into `status`, D-Bus properties and the stored record. A
//! provider (or a proxy in front of it) that sends a control character in
//! one, or a scope list of megabytes, would otherwise break every one of
//! those for every provider, not only its own. RFC 6749 (Appendix A)
//! allows only visible ASCII and space in tokens and scopes, so nothing a
//! real provider sends is refused; whitespace around a token (a form answer
//! that ends in a newline) is taken off, as no client could send it.

/// The longest granted-scope text kept, in characters: real lists are a
/// few hundred (Google's scopes are URLs); a longer one is cut at a scope's
/// end and marked, as it is only shown.
pub const MAX_SCOPE_CHARS: usize = 4096;

/// The longest token type believed (`Bearer`, `DPoP`, `mac`...).
const MAX_TOKEN_TYPE_CHARS: usize = 64;

/// `sent`, the answer's `field` (`access_token`, `refresh_token`), as a
/// token tokend can keep and hand out: without surrounding whitespace, and
/// with no control character inside.
///
/// # Errors
/// Why it cannot be, naming the field and never quoting the token.
pub fn usable_token(field: &str, sent: &str) -> Result<String, String> {
    let token = sent.trim();
    if token.is_empty() {
        return Err(format!("`{field}` is empty in the token answer"));
    }
    if token.chars().any(char::is_control) {
        return Err(format!(
            "`{field}` in the token answer has a control character (a line break, a NUL...) \
             inside: no client could send it in a header, so it is not kept"
        ));
    }
    Ok(token.to_owned())
}

/// `sent` as a token type tokend hands out, if it can be one: visible
/// ASCII only (an HTTP authentication scheme's name), at most 64
/// characters.
///
/// # Errors
/// Why it cannot be, without quoting it (it is the provider's words).
pub fn usable_token_type(sent: &str) -> Result<String, String> {
    let token_type = sent.trim();
    if token_type.chars().count() > MAX_TOKEN_TYPE_CHARS
        || !token_type.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(format!(
            "`token_type` in the token answer is not a token type (an HTTP authentication \
             scheme's name: visible ASCII, at most {MAX_TOKEN_TYPE_CHARS} characters)"
        ));
    }
    Ok(token_type.to_owned())
}

/// `sent`, the granted scopes, as tokend keeps and shows them: a control
/// or hiding character (see [`super::url_rule::is_deceptive`]) becomes a
/// space, which separates scopes anyway; a text longer than
/// [`MAX_SCOPE_CHARS`] is cut at the end of a scope, with `…` after.
/// `None` when nothing is left.
#[must_use]
pub fn cleaned_scope(sent: &str) -> Option<String> {
    let spaced: String = sent
        .chars()
        .map(|c| {
            if super::url_rule::is_deceptive(c) {
                ' '
            } else {
                c
            }
        })
        .collect();
    let scopes = spaced.split(' ').filter(|s| !s.is_empty());
    let mut kept = String::new();
    for scope in scopes {
        if kept.chars().count() + 1 + scope.chars().count() > MAX_SCOPE_CHARS {
            kept.push_str(" …");
            break;
        }
        if !kept.is_empty() {
            kept.push(' ');
        }
        kept.push_str(scope);
    }
    (!kept.is_empty()).then_some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_trimmed_and_control_characters_refused() {
        assert_eq!(
            usable_token("access_token", "gho_abc\r\n").unwrap(),
            "gho_abc"
        );
        assert_eq!(usable_token("access_token", " a b ").unwrap(), "a b");
        for bad in ["AT\u{0}x", "a\nb", "a\u{1b}[2Jb", "a\u{85}b"] {
            let problem = usable_token("access_token", bad).unwrap_err();
            assert!(problem.contains("control character"), "{problem}");
            assert!(!problem.contains(bad), "the token is not quoted: {problem}");
        }
        assert!(usable_token("refresh_token", " \r\n").is_err());
    }

    #[test]
    fn token_types_are_visible_ascii() {
        assert_eq!(usable_token_type("DPoP ").unwrap(), "DPoP");
        for bad in ["Bea\nrer", "Bearer x", "é", &"x".repeat(65)] {
            assert!(usable_token_type(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_lose_control_characters_and_are_bounded() {
        assert_eq!(cleaned_scope("repo\u{0}").as_deref(), Some("repo"));
        assert_eq!(
            cleaned_scope("repo,read:org  gist\u{202e}x").as_deref(),
            Some("repo,read:org gist x")
        );
        assert_eq!(cleaned_scope("\u{1}\u{1}"), None);
        let long = "s".repeat(100);
        let many = vec![long.as_str(); 100].join(" ");
        let kept = cleaned_scope(&many).unwrap();
        assert!(
            kept.chars().count() <= MAX_SCOPE_CHARS + 2,
            "{}",
            kept.len()
        );
        assert!(kept.ends_with(" …"));
        assert!(kept.trim_end_matches(" …").split(' ').all(|s| s == long));
    }
}
