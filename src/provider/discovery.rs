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
        return Err(failed(format!(
            "HTTP {} ({}) from {}{target}",
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
                "the document has no `{name}`; set it in the provider's config instead of `issuer`"
            ))
        })?;
        let url: Url = text
            .parse()
            .map_err(|e| failed(format!("`{name}` is not a URL ({e})")))?;
        // The document came over https, but what it names is checked too:
        // an http:// endpoint would send the tokens in the clear.
        super::url_rule::check_transport(&url)
            .map_err(|problem| failed(format!("the discovered `{name}` {url} {problem}")))?;
        Ok(url)
    };
    Ok(Endpoints::new(
        endpoint("device_authorization_endpoint")?,
        endpoint("token_endpoint")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
