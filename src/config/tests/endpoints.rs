//! Endpoints: which keys a provider needs, the rule every URL follows,
//! and URLs shared by several providers.

use super::*;

#[test]
fn endpoints_or_issuer_are_required() {
    let f = Fixture::new();
    let errors = f.errors("[providers.x]\nclient_id = \"c\"\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .contains("needs `device_authorization_endpoint` and `token_endpoint`, or `issuer`"),
        "{errors:?}"
    );
    let config = f
        .load("[providers.kc]\nissuer = \"https://idp.example/realms/main\"\nclient_id = \"c\"\n")
        .unwrap();
    assert!(
        matches!(&config.providers[0].endpoints, EndpointSource::Discover { issuer } if issuer.as_str() == "https://idp.example/realms/main")
    );
    let errors = f.errors("[providers.x]\nclient_id = \"c\"\nbase_url = \"https://x\"\n");
    assert!(
        errors[0].contains("`base_url` works only for dialects with fixed paths"),
        "{errors:?}"
    );
}

#[test]
fn urls_must_be_safe() {
    let f = Fixture::new();
    for (url, problem) in [
        ("ftp://x/token", "uses the scheme `ftp:`"),
        ("https://user:pw@x/token", "must not contain credentials"),
        ("https://x/token#frag", "must not have a #fragment"),
    ] {
        let errors = f.errors(&GITHUB.replace("https://github.com/login/oauth/access_token", url));
        assert!(errors[0].contains(problem), "{url}: {errors:?}");
    }
    // Loopback may use plain http (emulators, local identity servers).
    let config = f
        .load(&GITHUB.replace(
            "https://github.com/login/oauth/access_token",
            "http://127.0.0.1:8080/token",
        ))
        .unwrap();
    assert_eq!(config.providers.len(), 1);
}

/// Accounts of one service give the same URLs: each provider gets them
/// all the same (they are checked once, see `CheckedUrls`), and a bad one
/// given twice is reported at both places, with its key.
#[test]
fn a_url_given_by_several_providers_is_read_for_each() {
    let f = Fixture::new();
    let account = |name: &str| GITHUB.replace("[providers.github]", &format!("[providers.{name}]"));
    let config = f
        .load(&format!("{}{}{}", account("a"), account("b"), account("c")))
        .unwrap();
    assert_eq!(config.providers.len(), 3);
    for p in &config.providers {
        assert!(
            matches!(&p.endpoints, EndpointSource::Fixed { device_authorization, token, .. }
                if device_authorization.as_str() == "https://github.com/login/device/code"
                    && token.as_str() == "https://github.com/login/oauth/access_token"),
            "{}: {:?}",
            p.name,
            p.endpoints
        );
    }
    // The same text under another key is checked the same (valid), and a
    // bad text is never taken as checked.
    let bad = "http://example.com/token";
    let errors = f.errors(&format!(
        "{}{}",
        account("a").replace("https://github.com/login/oauth/access_token", bad),
        account("b")
            .replace("https://github.com/login/device/code", bad)
            .replace(
                "https://github.com/login/oauth/access_token",
                "https://github.com/login/device/code"
            ),
    ));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains(":4:18: `token_endpoint` uses plain http://"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains(":9:33: `device_authorization_endpoint` uses plain http://"),
        "{errors:?}"
    );
}
