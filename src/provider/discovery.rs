//! OpenID Connect discovery: endpoints from `issuer`.

use url::Url;

use super::oauth::{AnswerFields, describe_body};
use super::{Endpoints, HttpClient, ProviderError};

/// The discovery document's URL for `issuer` (OpenID Connect Discovery §4:
/// the well-known path is appended to the issuer's path).
#[must_use]
pub fn discovery_url(issuer: &Url) -> Url {
    let mut url = issuer.clone();
    let path = format!(
        "{}/.well-known/openid-configuration",
        issuer.path().trim_end_matches('/')
    );
    url.set_path(&path);
    url.set_query(None);
    url
}

/// Fetches the discovery document of `issuer` and reads the device
/// authorization and token endpoints from it.
///
/// # Errors
/// [`ProviderError::Discovery`] naming what is missing or wrong, or the
/// transport error.
pub async fn discover(http: &HttpClient, issuer: &Url) -> Result<Endpoints, ProviderError> {
    let failed = |problem: String| ProviderError::Discovery {
        issuer: issuer.as_str().to_owned(),
        problem,
    };
    let response = http.get(&discovery_url(issuer)).await?;
    // "Later", as from any endpoint (429, 503, ...): with its
    // `Retry-After`, which no retry comes before.
    if super::oauth::is_transient_status(response.status) {
        let detail = Some(describe_body(&response)).filter(|d| d != "an empty body");
        return Err(ProviderError::Unavailable {
            endpoint: response.url.as_str().to_owned(),
            status: response.status,
            detail,
            retry_after: response.retry_after,
        });
    }
    if response.status != 200 {
        // A redirect names where it points (tokend follows none): the
        // issuer in the config is likely that one.
        let target = response
            .location
            .as_deref()
            .map(|to| {
                format!(
                    ", redirecting to {}",
                    crate::provider::answer_fields::clean_detail(to)
                )
            })
            .unwrap_or_default();
        // The server's own words when it gives them (Keycloak: "Realm does
        // not exist"): the request carried no secret to echo.
        let said = AnswerFields::parse(&response)
            .and_then(|fields| super::oauth::OAuthError::from_fields(&fields))
            .map(|oauth| match oauth.description {
                Some(description) => format!(": \"{}: {description}\"", oauth.error),
                None => format!(": \"{}\"", oauth.error),
            })
            .unwrap_or_default();
        return Err(failed(format!(
            "HTTP {} ({}) from {}{target}{said}",
            response.status,
            describe_body(&response),
            response.url
        )));
    }
    let fields = AnswerFields::parse(&response).ok_or_else(|| {
        failed(format!(
            "expected a JSON document, got {}",
            describe_body(&response)
        ))
    })?;
    let endpoint = |name: &str| -> Result<Url, ProviderError> {
        let text = fields.text(&[name]).ok_or_else(|| {
            failed(format!(
                "the document has no `{name}`; set `device_authorization_endpoint` and \
                 `token_endpoint` in the provider's config and remove `issuer`"
            ))
        })?;
        let url: Url = text
            .parse()
            .map_err(|e| failed(format!("`{name}` is not a URL ({e})")))?;
        check_discovered(issuer, &url)
            .map_err(|problem| failed(format!("the discovered `{name}` {url} {problem}")))?;
        Ok(url)
    };
    Ok(Endpoints::new(
        endpoint("device_authorization_endpoint")?,
        endpoint("token_endpoint")?,
    ))
}

/// Checks an endpoint the document at `issuer` names. The document came
/// over https, but what it names is checked too: an `http://` endpoint
/// would send the tokens in the clear. And one on loopback is taken only
/// from a loopback issuer: an https issuer's document that names
/// `http://localhost:8080/...` is a proxy that hides the original host from
/// the server behind it (nginx's `proxy_pass` without the Host header, in
/// front of Keycloak), and would send the client secret, device codes and
/// refresh tokens in the clear to whatever listens on that port of this
/// machine, any local user's program.
fn check_discovered(issuer: &Url, url: &Url) -> Result<(), String> {
    super::url_rule::check_transport(url)?;
    if url.scheme() == "http" && issuer.scheme() == "https" {
        return Err(
            "uses plain http:// to this machine, named by an https:// issuer: a proxy in front \
             of the provider that does not pass on the host name? Set the endpoints in the \
             provider's config instead of `issuer`"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_https_issuer_names_no_plain_http_endpoint() {
        let https: Url = "https://sso.example.com/realms/prod".parse().unwrap();
        let local: Url = "http://127.0.0.1:8080/realms/prod".parse().unwrap();
        let problem =
            check_discovered(&https, &"http://localhost:8080/token".parse().unwrap()).unwrap_err();
        assert!(problem.contains("named by an https:// issuer"), "{problem}");
        assert!(check_discovered(&https, &"https://sso.example.com/t".parse().unwrap()).is_ok());
        // A loopback issuer (a local Keycloak, the emulator) keeps its own.
        assert!(check_discovered(&local, &"http://127.0.0.1:8080/t".parse().unwrap()).is_ok());
        assert!(check_discovered(&local, &"http://example.com/t".parse().unwrap()).is_err());
    }

    #[test]
    fn well_known_path_is_appended_to_the_issuer_path() {
        let url = discovery_url(&"https://idp.example/realms/main/".parse().unwrap());
        assert_eq!(
            url.as_str(),
            "https://idp.example/realms/main/.well-known/openid-configuration"
        );
        let url = discovery_url(&"https://idp.example".parse().unwrap());
        assert_eq!(
            url.as_str(),
            "https://idp.example/.well-known/openid-configuration"
        );
    }
}
