//! Tests of the dialect-specific keys: each dialect's own settings, its
//! requirements, and keys of other dialects refused at their place.

use std::os::unix::fs::PermissionsExt as _;

use super::*;

fn fixed(config: &ProviderConfig) -> (String, String, Option<String>) {
    match &config.endpoints {
        EndpointSource::Fixed {
            device_authorization,
            token,
            refresh,
        } => (
            device_authorization.to_string(),
            token.to_string(),
            refresh.as_ref().map(ToString::to_string),
        ),
        EndpointSource::Discover { .. } => panic!("not fixed"),
    }
}

#[test]
fn trakt_derives_three_endpoints_and_needs_its_secret() {
    let f = Fixture::new();
    let config = f
        .load("[providers.trakt]\ndialect = \"trakt\"\nbase_url = \"https://api.trakt.tv\"\nclient_id = \"c\"\nclient_secret = \"s\"\n")
        .unwrap();
    let trakt = &config.providers[0];
    assert_eq!(
        fixed(trakt),
        (
            "https://api.trakt.tv/oauth/device/code".into(),
            "https://api.trakt.tv/oauth/device/token".into(),
            Some("https://api.trakt.tv/oauth/token".into())
        )
    );
    assert_eq!(
        trakt.dialect_settings.text("redirect_uri"),
        Some("urn:ietf:wg:oauth:2.0:oob")
    );
    assert_eq!(trakt.client_auth, ClientAuth::SecretPost);
    // Another host, an explicit refresh endpoint, another redirect URI.
    let config = f
        .load("[providers.trakt]\ndialect = \"trakt\"\nbase_url = \"https://auth.trakt.tv/\"\nrefresh_endpoint = \"https://auth.trakt.tv/oauth/v2/token\"\nredirect_uri = \"http://127.0.0.1/cb\"\nclient_id = \"c\"\nclient_secret = \"s\"\n")
        .unwrap();
    let trakt = &config.providers[0];
    assert_eq!(
        fixed(trakt).2.as_deref(),
        Some("https://auth.trakt.tv/oauth/v2/token")
    );
    assert_eq!(
        trakt.dialect_settings.text("redirect_uri"),
        Some("http://127.0.0.1/cb")
    );
    let errors = f.errors(
        "[providers.trakt]\ndialect = \"trakt\"\nbase_url = \"https://api.trakt.tv\"\nclient_id = \"c\"\n",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("config.toml:1:1: dialect \"trakt\" needs the app's client secret"),
        "{errors:?}"
    );
    let errors = f.errors(
        "[providers.trakt]\ndialect = \"trakt\"\nbase_url = \"https://api.trakt.tv\"\nclient_id = \"c\"\nclient_secret = \"s\"\nclient_auth = \"client_secret_basic\"\n",
    );
    assert!(
        errors[0].starts_with(
            "config.toml:6:15: dialect \"trakt\" cannot send `client_auth = \"client_secret_basic\"`"
        ),
        "{errors:?}"
    );
}

/// Trakt with both endpoints given and no `base_url`: refreshes go beside
/// the device token endpoint (`/oauth/token`), never to it, and a token
/// endpoint of another shape needs `refresh_endpoint`.
#[test]
fn trakt_without_base_url_finds_its_refresh_endpoint_or_asks_for_it() {
    let f = Fixture::new();
    let trakt = |endpoints: &str| {
        format!(
            "[providers.trakt]\ndialect = \"trakt\"\n{endpoints}client_id = \"c\"\nclient_secret = \"s\"\n"
        )
    };
    let config = f
        .load(&trakt("device_authorization_endpoint = \"https://auth.trakt.tv/oauth/device/code\"\ntoken_endpoint = \"https://auth.trakt.tv/oauth/device/token\"\n"))
        .unwrap();
    assert_eq!(
        fixed(&config.providers[0]),
        (
            "https://auth.trakt.tv/oauth/device/code".into(),
            "https://auth.trakt.tv/oauth/device/token".into(),
            Some("https://auth.trakt.tv/oauth/token".into())
        )
    );
    // Below a path prefix, as a proxy might serve it.
    let config = f
        .load(&trakt("device_authorization_endpoint = \"https://proxy.example/trakt/oauth/device/code\"\ntoken_endpoint = \"https://proxy.example/trakt/oauth/device/token\"\n"))
        .unwrap();
    assert_eq!(
        fixed(&config.providers[0]).2.as_deref(),
        Some("https://proxy.example/trakt/oauth/token")
    );
    // An explicit refresh endpoint wins.
    let config = f
        .load(&trakt("device_authorization_endpoint = \"https://a.example/d\"\ntoken_endpoint = \"https://a.example/t\"\nrefresh_endpoint = \"https://a.example/r\"\n"))
        .unwrap();
    assert_eq!(
        fixed(&config.providers[0]).2.as_deref(),
        Some("https://a.example/r")
    );
    // Nothing to find it from: an error naming the key, not refreshes sent
    // to the device token endpoint.
    let errors =
        f.errors(&trakt("device_authorization_endpoint = \"https://a.example/d\"\ntoken_endpoint = \"https://a.example/t\"\n"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("needs `refresh_endpoint` (or `base_url`)")
            && errors[0].contains("`/oauth/token`"),
        "{errors:?}"
    );
}

const TWILIO: &str = "[providers.tw]\ndialect = \"twilio\"\nbase_url = \"https://oauth.twilio.com\"\nclient_id = \"OQ1\"\nscopes = [\"offline_access\"]\naccount_sid = \"AC1\"\n";

#[test]
fn twilio_reads_its_account_from_the_config_or_a_file() {
    let f = Fixture::new();
    let config = f
        .load(&format!(
            "{TWILIO}auth_token = \"TWILIO-AUTH-TOKEN\"\naudiences = [\"a\", \"b\"]\n"
        ))
        .unwrap();
    let twilio = &config.providers[0];
    assert_eq!(
        fixed(twilio).0,
        "https://oauth.twilio.com/v1/device/code".to_owned()
    );
    let settings = &twilio.dialect_settings;
    assert_eq!(settings.text("account_sid"), Some("AC1"));
    assert_eq!(
        settings.secret("auth_token").map(Secret::expose),
        Some("TWILIO-AUTH-TOKEN")
    );
    assert_eq!(settings.list("audiences"), ["a", "b"]);
    assert!(!format!("{config:?}").contains("TWILIO-AUTH-TOKEN"));

    f.write("token.txt", "FILE-TOKEN\n");
    let config = f
        .load(&format!("{TWILIO}auth_token_file = \"token.txt\"\n"))
        .unwrap();
    assert_eq!(
        config.providers[0]
            .dialect_settings
            .secret("auth_token")
            .map(Secret::expose),
        Some("FILE-TOKEN")
    );

    let errors = f.errors(TWILIO);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("needs the account's auth token"),
        "{errors:?}"
    );
    let errors = f.errors(&format!(
        "{TWILIO}auth_token = \"x\"\nauth_token_file = \"token.txt\"\n"
    ));
    assert!(
        errors[0].contains("set only one of `auth_token`, `auth_token_file`"),
        "{errors:?}"
    );
    let errors = f.errors(&format!(
        "{}auth_token = \"x\"\n",
        TWILIO.replace("scopes = [\"offline_access\"]\n", "")
    ));
    assert!(
        errors[0].contains("dialect \"twilio\" requires `scopes`"),
        "{errors:?}"
    );
    let errors = f.errors(&format!(
        "{}auth_token = \"x\"\n",
        TWILIO.replace("account_sid = \"AC1\"\n", "")
    ));
    assert!(
        errors[0].contains("missing key `account_sid` in [providers.tw]"),
        "{errors:?}"
    );
}

#[test]
fn the_auth_token_never_appears_in_messages() {
    let f = Fixture::new();
    let path = f.write(
        "config.toml",
        &format!("{TWILIO}auth_token = \"SECRET-AUTH-TOKEN\"\nbogus = 1\n"),
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = load(&path, &f.env).unwrap_err();
    assert!(err.to_string().contains("world-readable"), "{err}");
    assert!(!err.to_string().contains("SECRET-AUTH-TOKEN"), "{err}");
}

#[test]
fn keys_of_other_dialects_are_errors_at_their_place() {
    let f = Fixture::new();
    let errors = f.errors(
        "[providers.trakt]\ndialect = \"trakt\"\nbase_url = \"https://api.trakt.tv\"\nclient_id = \"c\"\nclient_secret = \"s\"\naccount_sid = \"AC1\"\naudiences = []\n",
    );
    assert_eq!(
        errors,
        [
            "config.toml:6:1: `account_sid` is only valid for dialect \"twilio\"",
            "config.toml:7:1: `audiences` is only valid for dialect \"twilio\"",
        ]
    );
    let errors = f.errors(
        "[providers.gh]\ndevice_authorization_endpoint = \"https://x/d\"\ntoken_endpoint = \"https://x/t\"\nclient_id = \"c\"\nredirect_uri = \"urn:x\"\n",
    );
    assert_eq!(
        errors,
        ["config.toml:5:1: `redirect_uri` is only valid for dialect \"trakt\""]
    );
    // Typos of dialect keys are still suggested.
    let errors = f.errors(&format!("{TWILIO}auth_tokn = \"x\"\n"));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("did you mean `auth_token`?")),
        "{errors:?}"
    );
}

#[test]
fn oracle_requires_scopes_and_warns_without_offline_access() {
    let f = Fixture::new();
    let base = "[providers.idcs]\ndialect = \"oracle\"\nbase_url = \"https://idcs-1.identity.oraclecloud.com\"\nclient_id = \"c\"\n";
    let errors = f.errors(base);
    assert!(
        errors[0].contains("dialect \"oracle\" requires `scopes`"),
        "{errors:?}"
    );
    let config = f
        .load(&format!("{base}scopes = [\"urn:opc:idm:__myscopes__\"]\n"))
        .unwrap();
    assert_eq!(config.warnings.len(), 1);
    let warning = config.warnings[0].to_string();
    assert!(
        warning.ends_with(":5:1: warning: Oracle issues a refresh token only with the `offline_access` scope: without it every expiry needs a new login"),
        "{warning}"
    );
    assert_eq!(
        fixed(&config.providers[0]).1,
        "https://idcs-1.identity.oraclecloud.com/oauth2/v1/token".to_owned()
    );
    let config = f
        .load(&format!(
            "{base}scopes = [\"offline_access\"]\nclient_secret = \"s\"\nclient_auth = \"client_secret_basic\"\n"
        ))
        .unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    // A confidential client's secret goes in HTTP Basic unless told
    // otherwise (Oracle wants it so on refreshes); other dialects default
    // to the body; no secret, no authentication.
    let with_secret = format!("{base}scopes = [\"offline_access\"]\nclient_secret = \"s\"\n");
    let config = f.load(&with_secret).unwrap();
    assert_eq!(config.providers[0].client_auth, ClientAuth::SecretBasic);
    let config = f
        .load(&format!(
            "{with_secret}client_auth = \"client_secret_post\"\n"
        ))
        .unwrap();
    assert_eq!(config.providers[0].client_auth, ClientAuth::SecretPost);
    // ... which Oracle may refuse on refreshes: a warning at the key.
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    let warning = config.warnings[0].to_string();
    assert!(
        warning.contains(":7:1: warning: Oracle wants a confidential client's secret in HTTP Basic when it refreshes"),
        "{warning}"
    );
    let config = f
        .load(&format!("{base}scopes = [\"offline_access\"]\n"))
        .unwrap();
    assert_eq!(config.providers[0].client_auth, ClientAuth::None);
    let config = f
        .load("[providers.kc]\ndevice_authorization_endpoint = \"https://x/d\"\ntoken_endpoint = \"https://x/t\"\nclient_id = \"c\"\nclient_secret = \"s\"\n")
        .unwrap();
    assert_eq!(config.providers[0].client_auth, ClientAuth::SecretPost);
}

#[test]
fn generic_v1_gets_device_metadata_from_the_host() {
    let f = Fixture::new();
    let base = "[providers.kiosk]\ndialect = \"generic-v1\"\nbase_url = \"https://api.example.com\"\nclient_id = \"c\"\n";
    let config = f.load(base).unwrap();
    let kiosk = &config.providers[0];
    assert_eq!(kiosk.device_params["device_type"], "desktop");
    assert_eq!(kiosk.device_params["device_os"], std::env::consts::OS);
    assert_eq!(
        fixed(kiosk),
        (
            "https://api.example.com/api/v1/oauth/device-authorization/".into(),
            "https://api.example.com/api/v1/oauth/token".into(),
            None
        )
    );
    std::fs::write(
        f.env.etc.join("machine-info"),
        "PRETTY_HOSTNAME=x\nCHASSIS=\"laptop\"\n",
    )
    .unwrap();
    let config = f
        .load(&format!(
            "{base}device_params = {{ device_os = \"debian\" }}\n"
        ))
        .unwrap();
    let kiosk = &config.providers[0];
    assert_eq!(kiosk.device_params["device_type"], "laptop");
    assert_eq!(kiosk.device_params["device_os"], "debian");
    // Other dialects get no metadata they did not ask for.
    let config = f
        .load("[providers.gh]\ndevice_authorization_endpoint = \"https://x/d\"\ntoken_endpoint = \"https://x/t\"\nclient_id = \"c\"\n")
        .unwrap();
    assert!(config.providers[0].device_params.is_empty());
}

/// A generic-v1 service may send an empty verification URL, and only
/// the config's `verification_uri` can then tell people where to go:
/// without it, `--check` (and the start) warns, naming the provider and
/// the key. The preset sets it.
#[test]
fn generic_v1_without_verification_uri_is_warned_of() {
    let f = Fixture::new();
    let base = "[providers.kiosk]\ndialect = \"generic-v1\"\nbase_url = \"https://api.kiosk.test\"\nclient_id = \"c\"\n";
    let config = f.load(base).unwrap();
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    let warning = config.warnings[0].to_string();
    assert!(
        warning.contains(":1:1: warning: [providers.kiosk] has no `verification_uri`: a generic-v1 service may send an empty verification URL"),
        "{warning}"
    );
    let config = f
        .load(&format!(
            "{base}verification_uri = \"https://kiosk.test/activate\"\n"
        ))
        .unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn dialect_names_are_listed_when_unknown() {
    let f = Fixture::new();
    let errors = f.errors("[providers.x]\ndialect = \"trakt-tv\"\nclient_id = \"c\"\n");
    assert!(
        errors[0].contains(
            "known dialects: \"rfc8628\", \"trakt\", \"twilio\", \"oracle\", \"generic-v1\""
        ),
        "{errors:?}"
    );
}

#[test]
fn a_refresh_endpoint_needs_explicit_endpoints() {
    let f = Fixture::new();
    let errors = f.errors(
        "[providers.kc]\nissuer = \"https://idp.example/realms/main\"\nrefresh_endpoint = \"https://idp.example/refresh\"\nclient_id = \"c\"\n",
    );
    assert!(
        errors[0]
            .starts_with("config.toml:2:10: `refresh_endpoint` cannot be combined with `issuer`"),
        "{errors:?}"
    );
    let config = f
        .load("[providers.x]\ndevice_authorization_endpoint = \"https://x/d\"\ntoken_endpoint = \"https://x/t\"\nrefresh_endpoint = \"https://x/r\"\nclient_id = \"c\"\n")
        .unwrap();
    assert_eq!(
        fixed(&config.providers[0]).2.as_deref(),
        Some("https://x/r")
    );
}

/// A bad `dialect` is one error, not one more for every endpoint key that
/// could then not be read.
#[test]
fn a_bad_dialect_is_one_error() {
    let f = Fixture::new();
    for dialect in ["\"rfc9999\"", "5"] {
        let errors = f.errors(&format!(
            "[providers.a]\ndialect = {dialect}\ndevice_authorization_endpoint = \"https://x/d\"\ntoken_endpoint = \"https://x/t\"\nclient_id = \"c\"\n"
        ));
        assert_eq!(errors.len(), 1, "{dialect}: {errors:?}");
        assert!(errors[0].contains(":2:11: "), "{errors:?}");
    }
    // A typo is still one.
    let errors = f.errors("[providers.a]\ndevice_authorization_endpoint = \"https://x/d\"\ntoken_endpoint = \"https://x/t\"\nclient_id = \"c\"\ntoken_endpont = \"https://x/t\"\n");
    assert!(
        errors[0].contains(
            "unknown key `token_endpont` in [providers.a]; did you mean `token_endpoint`?"
        ),
        "{errors:?}"
    );
}

/// Keys that would be ignored or clash are named in warnings (a config
/// that started before still starts): `issuer` beside a dialect of fixed
/// paths (discovery does not apply), and `device_params` that the
/// dialect's request carries itself (sent twice in a form, or replacing
/// the client id in Trakt's JSON), which are then not sent.
#[test]
fn keys_that_would_be_ignored_or_clash_are_named() {
    let f = Fixture::new();
    let (config, warnings) = f.load_with_warnings("[providers.trakt]\ndialect = \"trakt\"\nbase_url = \"https://api.trakt.tv\"\nissuer = \"https://other.example\"\nclient_id = \"c\"\nclient_secret = \"s\"\n");
    assert_eq!(config.providers.len(), 1);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("`issuer` is ignored: dialect \"trakt\" has fixed paths")),
        "{warnings:?}"
    );
    let (config, warnings) = f.load_with_warnings("[providers.gh]\ndevice_authorization_endpoint = \"https://x/d\"\ntoken_endpoint = \"https://x/t\"\nclient_id = \"c\"\nscopes = [\"repo\"]\ndevice_params = { client_id = \"x\", Scope = \"a b\", audience = \"api\" }\n");
    assert!(
        warnings
            .iter()
            .any(|w| w
                .contains("`device_params.client_id` is ignored: tokend sends `client_id` itself")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("`device_params.Scope`")),
        "{warnings:?}"
    );
    // Not sent; the provider's own extras are, as given.
    let params = &config.providers[0].device_params;
    assert_eq!(params.len(), 1, "{params:?}");
    assert_eq!(params["audience"], "api");
    // Without `scopes` the dialect sends no scope: one given here is the
    // only one, and is sent.
    let (config, warnings) = f.load_with_warnings("[providers.gh]\ndevice_authorization_endpoint = \"https://x/d\"\ntoken_endpoint = \"https://x/t\"\nclient_id = \"c\"\ndevice_params = { scope = \"openid offline_access\" }\n");
    assert!(
        warnings.iter().all(|w| !w.contains("device_params")),
        "{warnings:?}"
    );
    assert_eq!(
        config.providers[0].device_params["scope"],
        "openid offline_access"
    );
}

/// The Microsoft identity platform issues a refresh token only with
/// `offline_access`: a config without it (scopes copied from the portal)
/// is warned of, by its endpoints or its issuer, as Oracle's is.
#[test]
fn microsoft_without_offline_access_is_warned_of() {
    let f = Fixture::new();
    let endpoints = "[providers.ms]\ndevice_authorization_endpoint = \"https://login.microsoftonline.com/common/oauth2/v2.0/devicecode\"\ntoken_endpoint = \"https://login.microsoftonline.com/common/oauth2/v2.0/token\"\nclient_id = \"c\"\n";
    let issuer = "[providers.ms]\nissuer = \"https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0\"\nclient_id = \"c\"\n";
    for base in [endpoints, issuer] {
        let config = f
            .load(&format!(
                "{base}scopes = [\"https://graph.microsoft.com/User.Read\"]\n"
            ))
            .unwrap();
        assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
        assert!(
            config.warnings[0]
                .to_string()
                .contains("issues a refresh token only with the `offline_access` scope"),
            "{:?}",
            config.warnings
        );
        let config = f
            .load(&format!(
                "{base}scopes = [\"https://graph.microsoft.com/User.Read\", \"offline_access\"]\n"
            ))
            .unwrap();
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }
    // Elsewhere, nothing is asked of the scopes.
    let config = f.load(GITHUB).unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}
