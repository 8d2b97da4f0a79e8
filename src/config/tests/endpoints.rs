//! Endpoints: which keys a provider needs, the rule every URL follows,
//! URLs shared by several providers; and the mistakes of copy and paste a
//! config shows (a pasted discovery URL, a client id with spaces, a key in
//! the wrong table or form).

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

/// Endpoint URLs are refused with what is wrong: another scheme, a
/// credential in the URL (a user name alone as well as with a password:
/// one without a password was taken and sent to the provider), a fragment.
#[test]
fn urls_must_be_safe() {
    let f = Fixture::new();
    for (url, problem) in [
        ("ftp://x/token", "uses the scheme `ftp:`"),
        ("https://user:pw@x/token", "must not contain credentials"),
        // A user name alone is a credential too.
        ("https://user@x/token", "must not contain credentials"),
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

/// Mistakes of copy and paste are named where they are made, not left for
/// the provider to refuse at the first login: a discovery document's URL
/// given as the issuer, a client id with a space or newline around it
/// (taken without, and said) or a control character in it.
#[test]
fn pasted_urls_and_ids_are_named() {
    let f = Fixture::new();
    let errors = f.errors(
        "[providers.kc]\nissuer = \"https://kc.example/realms/x/.well-known/openid-configuration\"\nclient_id = \"tokend\"\n",
    );
    assert!(
        errors[0].contains("`issuer` is the discovery document's URL"),
        "{errors:?}"
    );
    let github = |id: &str| {
        format!(
            "[providers.gh]\ndevice_authorization_endpoint = \"https://github.com/login/device/code\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = {id}\n"
        )
    };
    for id in ["\" Iv1.abc\"", "\"Iv1.abc\\t\"", "\"\"\"\nIv1.abc\n\"\"\""] {
        let (config, warnings) = f.load_with_warnings(&github(id));
        assert_eq!(config.providers[0].client_id, "Iv1.abc", "{id}");
        assert!(
            warnings[0]
                .contains("`client_id` has spaces or a newline around it: taken without them"),
            "{id}: {warnings:?}"
        );
    }
    let errors = f.errors(&github("\"Iv1\\tabc\""));
    assert!(
        errors[0].contains("`client_id` has a control character"),
        "{errors:?}"
    );
}

/// A `[daemon]` key below a provider's table (appended at the end of the
/// file) or above every table says where it belongs; `socket_mode = 0660`,
/// no TOML number, says how to write it.
#[test]
fn keys_in_the_wrong_place_or_form_say_where_and_how() {
    let f = Fixture::new();
    let errors = f.errors(&format!("{GITHUB}store = \"memory\"\n"));
    assert!(
        errors[0].contains("unknown key `store` in [providers.github]; it is a key of [daemon]"),
        "{errors:?}"
    );
    let errors = f.errors("bus = \"none\"\n[daemon]\n");
    assert!(errors[0].contains("it is a key of [daemon]"), "{errors:?}");
    let errors = f.errors("[daemon]\nsocket_mode = 0660\n");
    assert!(
        errors[0].contains("socket_mode = \"0660\", or as 0o660"),
        "{errors:?}"
    );
}
