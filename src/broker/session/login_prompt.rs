//! What a device login shows and says: the pages the person is given
//! (checked against the URL rule, the config's page in place of a refused
//! one), and how a poll's failure that ended the login is worded.

use super::Session;
use crate::broker::error::BrokerError;
use crate::provider::url_rule;
use tracing::warn;

impl Session {
    /// The pages the person is shown: the provider's, else the config's
    /// `verification_uri`, else the page that already carries the code
    /// (every Twilio field may be null). Shown, signalled and drawn as a
    /// QR code, each must pass the transport rule and hide nothing. One of
    /// the provider's that does not is replaced by the config's page when
    /// there is one, its complete URL dropped; without one, a plain
    /// `http://` page on the host tokend speaks to over `https://` is shown
    /// over `https://` (Oracle's documented answer names its tenant's page
    /// so: the preset's first login failed); else the login ends naming
    /// the setting.
    pub(super) fn shown_urls(
        &self,
        authorization: &crate::provider::DeviceAuthorization,
    ) -> Result<(String, Option<String>), BrokerError> {
        let configured = self
            .config()
            .verification_uri
            .as_ref()
            .map(ToString::to_string);
        let refused = |field: &str, problem: &str| {
            self.login_failed(format!(
                "refused the provider's `{field}`: {problem}; set `verification_uri` in the provider's config to show that page instead"
            ))
        };
        let endpoint = self.provider.token_endpoint_hint();
        let complete = match authorization.verification_uri_complete.clone() {
            Some(url) => match (url_rule::check_shown_url(&url), &configured) {
                (Ok(_), _) => Some(url),
                (Err(problem), Some(_)) => {
                    warn!(provider = %self.name, "not showing the provider's `verification_uri_complete`: {problem}");
                    None
                }
                (Err(problem), None) => match over_https_on_its_host(&url, &endpoint) {
                    Some(page) => Some(page),
                    None => return Err(refused("verification_uri_complete", &problem)),
                },
            },
            None => None,
        };
        let shown = match authorization.verification_uri.clone() {
            Some(url) => match (url_rule::check_shown_url(&url), configured) {
                (Ok(_), _) => url,
                (Err(problem), Some(instead)) => {
                    warn!(provider = %self.name, "showing the config's `verification_uri` instead of the provider's: {problem}");
                    instead
                }
                (Err(problem), None) => match over_https_on_its_host(&url, &endpoint) {
                    Some(page) => {
                        warn!(provider = %self.name, "showing the provider's `verification_uri` over https: {problem}");
                        page
                    }
                    None => return Err(refused("verification_uri", &problem)),
                },
            },
            None => configured.or_else(|| complete.clone()).ok_or_else(|| {
                self.login_failed(
                    "cannot be shown: the provider sent no verification URL; set `verification_uri` in the provider's config",
                )
            })?,
        };
        Ok((shown, complete))
    }
}

/// The provider's page `page`, named over plain `http://` on the very host
/// tokend speaks to over `https://` (`endpoint`, its token endpoint or
/// issuer): the same page over `https://` on that endpoint's port, when it
/// passes the rule for shown URLs. That host serves https, and the page
/// over it cannot be changed on the way, as the plain one could.
fn over_https_on_its_host(page: &str, endpoint: &str) -> Option<String> {
    let mut page = url::Url::parse(page).ok()?;
    let endpoint = url::Url::parse(endpoint).ok()?;
    if page.scheme() != "http" || endpoint.scheme() != "https" || page.host() != endpoint.host() {
        return None;
    }
    page.set_scheme("https").ok()?;
    page.set_port(endpoint.port()).ok()?;
    url_rule::check_shown_url(page.as_str()).ok()?;
    Some(page.into())
}

/// How a login a poll's failure ended is said. `invalid_grant` to a poll
/// is about the device code, not a session the provider revoked, as it
/// reads for a refresh. Without a description it is the code's state
/// (unknown, spent, expired); with one, the provider's words say why, and
/// no guess is added: Microsoft Entra refuses a sign-in its Conditional
/// Access blocks, or an account of another tenant, with `invalid_grant`,
/// and "expired" sent the person to log in again, to be refused again.
pub(super) fn poll_failure(failure: &crate::provider::ProviderError) -> String {
    match failure {
        crate::provider::ProviderError::GrantRevoked {
            error,
            detail: Some(detail),
        } => format!(
            "failed: the provider refused to issue tokens for the device code ({error}: {detail})"
        ),
        crate::provider::ProviderError::GrantRevoked {
            error,
            detail: None,
        } => format!(
            "failed: the provider no longer takes the device code ({error}): it is unknown, already used or expired"
        ),
        other => format!("failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `invalid_grant` with the provider's reason says that reason, not a
    /// guess that the code expired (Entra's Conditional Access refusal);
    /// without one, what the code's state may be.
    /// Oracle's documented device answer names its tenant's page over
    /// plain http: shown over https on the tenant's host, with the port
    /// tokend uses there; a page on another host, or a provider spoken to
    /// over http (loopback), is not rewritten.
    #[test]
    fn an_http_page_on_the_providers_https_host_is_shown_over_https() {
        let tenant = "https://idcs-abc.identity.oraclecloud.com/oauth2/v1/token";
        assert_eq!(
            over_https_on_its_host(
                "http://idcs-abc.identity.oraclecloud.com/ui/v1/device",
                tenant
            )
            .as_deref(),
            Some("https://idcs-abc.identity.oraclecloud.com/ui/v1/device")
        );
        assert_eq!(
            over_https_on_its_host(
                "http://idcs-abc.identity.oraclecloud.com:80/ui/v1/device?user_code=AB",
                "https://idcs-abc.identity.oraclecloud.com:8443/oauth2/v1/token"
            )
            .as_deref(),
            Some("https://idcs-abc.identity.oraclecloud.com:8443/ui/v1/device?user_code=AB")
        );
        for (page, endpoint) in [
            ("http://evil.example/ui/v1/device", tenant),
            (
                "http://idcs-abc.identity.oraclecloud.com/ui/v1/device",
                "http://127.0.0.1:8080/token",
            ),
            ("ftp://idcs-abc.identity.oraclecloud.com/ui", tenant),
        ] {
            assert_eq!(over_https_on_its_host(page, endpoint), None, "{page}");
        }
    }

    #[test]
    fn a_refused_device_code_is_said_in_the_providers_words() {
        use crate::provider::ProviderError;
        let refused = poll_failure(&ProviderError::GrantRevoked {
            error: "invalid_grant".into(),
            detail: Some("AADSTS53003: Access has been blocked by Conditional Access".into()),
        });
        assert!(refused.contains("AADSTS53003"), "{refused}");
        assert!(!refused.contains("expired"), "{refused}");
        let bare = poll_failure(&ProviderError::GrantRevoked {
            error: "invalid_grant".into(),
            detail: None,
        });
        assert!(bare.contains("unknown, already used or expired"), "{bare}");
    }
}
