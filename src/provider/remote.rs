//! A configured provider: a dialect, its endpoints and the HTTP client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use url::Url;

use super::EndpointSource;
use super::answer_fields::AnswerFields;
use super::{
    DeviceAuthorization, Endpoints, Expiry, FailureClass, HttpClient, HttpRequest, HttpResponse,
    PollOutcome, ProviderDialect, ProviderError, TokenGrant, discovery, oauth,
};
use crate::secret::Secret;

/// Sets apart the transient poll failures a login treats on their own
/// (whatever the dialect): a redirect ([`PollOutcome::Misdirected`]) and a
/// success answer whose tokens cannot be used ([`PollOutcome::GrantUnusable`]):
/// one with readable fields, or the provider's own body that cannot be
/// read (compressed though none was asked for, JSON with bytes after it),
/// which spent the device code all the same. An empty success body or a
/// web page (a captive portal's) stays a plain transient failure.
fn set_apart_poll_failures(outcome: PollOutcome, response: &HttpResponse) -> PollOutcome {
    match outcome {
        PollOutcome::Failed(error) if error.class() == FailureClass::Transient => {
            if (300..400).contains(&response.status) {
                PollOutcome::Misdirected(error)
            } else if (200..300).contains(&response.status)
                && (AnswerFields::parse(response).is_some()
                    || !super::oauth_errors::is_empty_or_a_page(response))
            {
                PollOutcome::GrantUnusable(error)
            } else {
                PollOutcome::Failed(error)
            }
        }
        outcome => outcome,
    }
}

/// A configured provider: its dialect, its endpoints and the HTTP client.
#[derive(Debug)]
pub struct Provider {
    dialect: Box<dyn ProviderDialect>,
    http: HttpClient,
    /// The issuer to discover the endpoints from, when they are not fixed.
    /// Fixed endpoints are set in `endpoints` at once and kept only there:
    /// with thousands of providers, every copy of three URLs counts.
    issuer: Option<Url>,
    /// Fixed endpoints, set at once.
    fixed: Option<Arc<Endpoints>>,
    /// The endpoints discovery found, and when; one discovery runs at a
    /// time (see [`Self::endpoints`]).
    discovered: tokio::sync::Mutex<Option<(Arc<Endpoints>, Instant)>>,
    /// Whether a discovered endpoint could not be reached or was not
    /// found: the document may have changed since (an administrator
    /// mended the provider's host name), so it is read again first.
    doubted: AtomicBool,
    /// The client secret, kept out of every answer's words, also of
    /// answers to requests that do not carry it (see
    /// [`Self::with_secrets_of`]).
    client_secret: Option<Secret>,
}

/// How long a discovery document's endpoints are used before it is read
/// again (Microsoft's document says a day, `Cache-Control: max-age=86400`).
const DISCOVERY_LIFETIME: Duration = Duration::from_secs(24 * 3600);

impl Provider {
    /// A provider speaking `dialect` at the endpoints `source` describes.
    #[must_use]
    pub fn new(
        dialect: Box<dyn ProviderDialect>,
        source: EndpointSource,
        http: HttpClient,
    ) -> Self {
        let (fixed, issuer) = match source {
            EndpointSource::Fixed {
                device_authorization,
                token,
                refresh,
            } => (
                Some(Arc::new(Endpoints {
                    device_authorization,
                    token,
                    refresh,
                })),
                None,
            ),
            EndpointSource::Discover { issuer } => (None, Some(issuer)),
        };
        Self {
            dialect,
            http,
            issuer,
            fixed,
            discovered: tokio::sync::Mutex::new(None),
            doubted: AtomicBool::new(false),
            client_secret: None,
        }
    }

    /// The dialect.
    #[must_use]
    pub fn dialect(&self) -> &dyn ProviderDialect {
        self.dialect.as_ref()
    }

    /// The endpoints: fixed ones, or those discovery found. The document
    /// is read at first use, again once a day, and again when an endpoint
    /// it named could not be reached or was not found ([`Self::doubt`]).
    /// When it cannot be read then, the endpoints it named before serve
    /// on: a discovery URL that is down (Google's is on another host than
    /// its token endpoint) must not stop refreshes at an endpoint that is up.
    async fn endpoints(&self) -> Result<Arc<Endpoints>, ProviderError> {
        if let Some(fixed) = &self.fixed {
            return Ok(Arc::clone(fixed));
        }
        let issuer = self
            .issuer
            .as_ref()
            .ok_or_else(|| ProviderError::Malformed {
                endpoint: String::new(),
                problem: "the provider has neither endpoints nor an issuer".into(),
                status: None,
            })?;
        let mut known = self.discovered.lock().await;
        if let Some((endpoints, at)) = known.as_ref()
            && at.elapsed() < DISCOVERY_LIFETIME
            && !self.doubted.load(Ordering::Relaxed)
        {
            return Ok(Arc::clone(endpoints));
        }
        self.doubted.store(false, Ordering::Relaxed);
        match discovery::discover(&self.http, issuer).await {
            Ok(found) => {
                let found = Arc::new(found);
                *known = Some((Arc::clone(&found), Instant::now()));
                Ok(found)
            }
            Err(e) => match known.as_mut() {
                Some((endpoints, at)) => {
                    tracing::debug!(
                        issuer = issuer.as_str(),
                        "reading the discovery document again failed ({e}); the endpoints it named before serve on"
                    );
                    *at = Instant::now();
                    Ok(Arc::clone(endpoints))
                }
                None => Err(e),
            },
        }
    }

    /// Doubts the discovered endpoints when `failure` says one is gone:
    /// not reached (no connection), or not found there (404, 405, 410).
    fn doubt(&self, failure: &ProviderError) {
        if self.issuer.is_none() {
            return;
        }
        let gone = match failure {
            ProviderError::Unreachable { reason, .. } => {
                reason.starts_with("cannot connect") || reason.starts_with("no connection")
            }
            ProviderError::Rejected { status, .. }
            | ProviderError::RefusedPerhapsRevoked { status, .. } => {
                matches!(status, 404 | 405 | 410)
            }
            _ => false,
        };
        if gone {
            self.doubted.store(true, Ordering::Relaxed);
        }
    }

    /// Starts a device login: asks for a device and user code.
    ///
    /// # Errors
    /// Discovery or the request failed, or the answer is unusable.
    pub async fn start_device_authorization(&self) -> Result<DeviceAuthorization, ProviderError> {
        let endpoints = self.endpoints().await?;
        let request = self.dialect.device_authorization_request(&endpoints);
        let answer = match self.http.send(&request).await {
            Ok(response) => self
                .dialect
                .parse_device_authorization(&response)
                .map(|answer| self.with_secrets_of(&request, |s| answer.without_secrets(s))),
            Err(e) => Err(e),
        };
        answer.map_err(|e| {
            self.doubt(&e);
            self.with_secrets_of(&request, |s| e.without_secrets(s))
        })
    }

    /// Polls once for the outcome of a device login.
    pub async fn poll(&self, device_code: &Secret) -> PollOutcome {
        let endpoints = match self.endpoints().await {
            Ok(endpoints) => endpoints,
            Err(e) => return PollOutcome::Failed(e),
        };
        let request = self.dialect.poll_request(&endpoints, device_code);
        let outcome = match self.http.send(&request).await {
            Ok(response) => {
                let outcome = match self.dialect.parse_poll(&response) {
                    PollOutcome::Granted(grant) => match still_alive(grant, &response.url) {
                        Ok(grant) => PollOutcome::Granted(
                            self.with_secrets_of(&request, |s| cleaned(grant, s, &response.url)),
                        ),
                        Err(e) => PollOutcome::Failed(e),
                    },
                    outcome => outcome,
                };
                set_apart_poll_failures(outcome, &response)
            }
            // A success whose body was cut off: the provider has spent the
            // device code on tokens that are lost.
            Err(e) if e.is_lost_success() => PollOutcome::GrantUnusable(e),
            Err(e) => PollOutcome::Failed(e),
        };
        if let PollOutcome::Failed(e) = &outcome {
            self.doubt(e);
        }
        match outcome {
            // No text from the provider: nothing to take secrets out of.
            PollOutcome::Pending | PollOutcome::SlowDown { .. } | PollOutcome::Granted(_) => {
                outcome
            }
            outcome => self.with_secrets_of(&request, |s| outcome.without_secrets(s)),
        }
    }

    /// This provider, with `client_secret` (the configured one) kept out
    /// of the words of every answer.
    #[must_use]
    pub fn with_client_secret(mut self, client_secret: Option<Secret>) -> Self {
        self.client_secret = client_secret;
        self
    }

    /// Runs `redact` with what an answer to `request` must not show: the
    /// request's secrets, and the client secret, which a provider may
    /// quote in its answer to a request that did not carry it (Trakt's and
    /// Oracle's device requests send none: a device-code error naming the
    /// app's secret was shown).
    fn with_secrets_of<T>(&self, request: &HttpRequest, redact: impl FnOnce(&[&str]) -> T) -> T {
        let sent = request.secrets();
        let secrets: Vec<&str> = sent
            .iter()
            .map(AsRef::as_ref)
            .chain(self.client_secret.as_ref().map(Secret::expose))
            .collect();
        redact(&secrets)
    }

    /// Exchanges a refresh token for new tokens.
    ///
    /// # Errors
    /// See [`ProviderError::class`].
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenGrant, ProviderError> {
        self.refresh_listening(refresh_token, None::<(Duration, fn(ProviderError))>)
            .await
    }

    /// [`Self::refresh`], listening for a late answer: when `late` is
    /// `(within, overdue)` and no answer has come in `http_timeout`,
    /// `overdue` is told so ([`ProviderError::Unanswered`], listening),
    /// and the answer is waited for on the same connection until `within`
    /// from the send.
    ///
    /// Why: a provider that hangs (overloaded, paused, behind a stuck
    /// proxy) may still act on the request once it recovers, and rotate
    /// the refresh token sent in an answer that only this connection can
    /// receive. Closed at `http_timeout`, that answer was lost, and the
    /// session's next refresh presented the spent token: `invalid_grant`,
    /// and with reuse detection (RFC 9700, 4.14.2) the whole login revoked.
    ///
    /// # Errors
    /// See [`ProviderError::class`].
    pub async fn refresh_listening(
        &self,
        refresh_token: &Secret,
        late: Option<(Duration, impl FnOnce(ProviderError))>,
    ) -> Result<TokenGrant, ProviderError> {
        let endpoints = self.endpoints().await?;
        let request = self.dialect.refresh_request(&endpoints, refresh_token);
        let in_time = self.http.timeout();
        let sent = match late {
            Some((within, overdue)) if within > in_time => {
                let send = self.http.send_within(&request, within);
                let mut send = std::pin::pin!(send);
                if let Ok(in_time_answer) = tokio::time::timeout(in_time, &mut send).await {
                    in_time_answer
                } else {
                    let unanswered = ProviderError::Unanswered {
                        endpoint: request.url.to_string(),
                        waited_secs: in_time.as_secs(),
                        listening: true,
                    };
                    overdue(self.with_secrets_of(&request, |s| unanswered.without_secrets(s)));
                    send.await
                }
            }
            _ => self.http.send(&request).await,
        };
        let answer = match sent {
            Ok(response) => self
                .dialect
                .parse_refresh(&response)
                .and_then(|grant| still_alive(grant, &response.url))
                .map(|grant| self.with_secrets_of(&request, |s| cleaned(grant, s, &response.url))),
            Err(e) => Err(e),
        };
        answer.map_err(|e| {
            self.doubt(&e);
            self.with_secrets_of(&request, |s| e.without_secrets(s))
        })
    }

    /// The total time each request may take (`http_timeout`).
    #[must_use]
    pub fn http_timeout(&self) -> Duration {
        self.http.timeout()
    }

    /// The token endpoint, when known without discovery (used to group
    /// refreshes per endpoint for the concurrency bound).
    #[must_use]
    pub fn token_endpoint_hint(&self) -> String {
        match (&self.fixed, &self.issuer) {
            (_, Some(issuer)) => issuer.as_str().to_owned(),
            (Some(endpoints), None) => endpoints.token.as_str().to_owned(),
            (None, None) => String::new(),
        }
    }
}

/// `grant` with the request's `secrets` taken out of the provider's words
/// it carries (see [`TokenGrant::without_secrets`]), and the problem with
/// its expiry, if it was not believed, logged.
fn cleaned<S: AsRef<str>>(grant: TokenGrant, secrets: &[S], endpoint: &Url) -> TokenGrant {
    let mut grant = grant.without_secrets(secrets);
    if let Some(problem) = grant.expiry_problem.take() {
        tracing::warn!(
            endpoint = super::message::endpoint_for_log(endpoint),
            "{problem}; the tokens are kept, the access token's expiry taken as unknown"
        );
    }
    grant
}

/// Checks an absolute expiry against the local clock, which the pure
/// dialects cannot read: a token that is dead on arrival, or that claims to
/// live for years, is a garbage answer. Taking it would make the session
/// refresh in a loop, or never. But an answer that brings a new refresh
/// token is kept, its access token taken as of unknown expiry, and the
/// problem logged: a rotating provider (Twilio) has already retired the
/// old refresh token, so refusing the answer would end the session (as
/// `oauth::token_grant` does for an unbelievable `expires_in`).
fn still_alive(mut grant: TokenGrant, endpoint: &Url) -> Result<TokenGrant, ProviderError> {
    let Expiry::At(at) = grant.expiry else {
        return Ok(grant);
    };
    let problem = match at.duration_since(SystemTime::now()) {
        Ok(left) if left > oauth::MAX_TOKEN_LIFETIME => format!(
            "the access token's expiry is {} s away, beyond the believable maximum of {} s",
            left.as_secs(),
            oauth::MAX_TOKEN_LIFETIME.as_secs()
        ),
        Ok(left) if !left.is_zero() => return Ok(grant),
        _ => "the access token's expiry has already passed (is the clock right?)".to_owned(),
    };
    if grant.refresh_token.is_some() {
        tracing::warn!(
            endpoint = super::message::endpoint_for_log(endpoint),
            "{problem}; the tokens are kept, the access token's expiry taken as unknown"
        );
        grant.expiry = Expiry::Unknown;
        return Ok(grant);
    }
    Err(ProviderError::Malformed {
        endpoint: endpoint.as_str().to_owned(),
        problem,
        // Read whole; no refresh token in it was lost (there was none).
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::provider::FailureClass;

    fn grant(expiry: Expiry) -> TokenGrant {
        TokenGrant {
            access_token: Secret::from("at"),
            token_type: "Bearer".into(),
            expiry,
            refresh_token: None,
            scope: None,
            refresh_expires_in: None,
            expiry_problem: None,
        }
    }

    #[test]
    fn absolute_expiries_must_lie_ahead_and_within_reason() {
        let url: Url = "https://idp.example/token".parse().unwrap();
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        assert!(still_alive(grant(Expiry::At(now + hour)), &url).is_ok());
        assert!(still_alive(grant(Expiry::In(hour)), &url).is_ok());
        assert!(still_alive(grant(Expiry::Unknown), &url).is_ok());
        let e = still_alive(grant(Expiry::At(now - hour)), &url).unwrap_err();
        assert!(e.to_string().contains("has already passed"), "{e}");
        assert_eq!(e.class(), FailureClass::Transient);
        let far = now + oauth::MAX_TOKEN_LIFETIME + hour;
        let e = still_alive(grant(Expiry::At(far)), &url).unwrap_err();
        assert!(e.to_string().contains("believable maximum"), "{e}");
    }

    #[test]
    fn a_bad_absolute_expiry_beside_a_new_refresh_token_is_kept_as_unknown() {
        let url: Url = "https://idp.example/token".parse().unwrap();
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        for at in [now - hour, now + oauth::MAX_TOKEN_LIFETIME + hour] {
            let rotated = TokenGrant {
                refresh_token: Some(Secret::from("rt2")),
                ..grant(Expiry::At(at))
            };
            let kept = still_alive(rotated, &url).expect("kept");
            assert_eq!(kept.expiry, Expiry::Unknown);
            assert_eq!(kept.refresh_token, Some(Secret::from("rt2")));
        }
    }
}
