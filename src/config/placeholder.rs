//! The placeholders the example configs under `config/` ship, which a
//! config copied without its edit still holds.

/// Whether `value` is one of the placeholders the example configs under
/// `config/` ship (`PASTE-YOUR-CLIENT-ID`, GitHub's `Iv1.0000000000000000`,
/// Microsoft's all-zero GUID, Google's `000000000000-xxxx…`): a config
/// copied without its edit passed `--check` as valid, to fail only at the
/// provider. No real id or secret has a dozen zeros or x's in a row.
pub(super) fn is_placeholder(value: &str) -> bool {
    let run_of = |c: char| {
        value
            .split(|other: char| other != c)
            .any(|run| run.len() >= 12)
    };
    value.to_ascii_uppercase().contains("PASTE-YOUR") || run_of('0') || run_of('x')
}

/// Whether `url` is one of the example configs' placeholder addresses: a
/// host under a domain reserved for examples (`example.com`, `.org`,
/// `.net`, RFC 2606, as the presets write them), or one holding a
/// placeholder (Oracle's `idcs-000…`). A Keycloak preset left unedited
/// passed `--check` as valid, to fail at its first login's discovery.
pub(super) fn is_placeholder_url(url: &url::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let reserved = ["example.com", "example.org", "example.net"]
        .iter()
        .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")));
    reserved || is_placeholder(&host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_addresses_are_placeholders() {
        for placeholder in [
            "https://keycloak.example.com/realms/myrealm",
            "https://api.example.com",
            "https://idcs-00000000000000000000000000000000.identity.oraclecloud.com",
            "https://EXAMPLE.ORG./x",
        ] {
            assert!(
                is_placeholder_url(&url::Url::parse(placeholder).unwrap()),
                "{placeholder}"
            );
        }
        for real in [
            "https://github.com/login/device/code",
            "https://oauth.twilio.com",
            "https://myexample.com/x",
            "https://example.company.com/x",
            "http://127.0.0.1:8080/token",
            "https://sso.example/x",
        ] {
            assert!(
                !is_placeholder_url(&url::Url::parse(real).unwrap()),
                "{real}"
            );
        }
    }

    #[test]
    fn example_ids_are_placeholders() {
        assert!(is_placeholder("AC00000000000000000000000000000000"));
        assert!(is_placeholder("PASTE-YOUR-CLIENT-ID"));
        assert!(!is_placeholder("Iv1.b507a08c87ecfe98"));
    }
}
