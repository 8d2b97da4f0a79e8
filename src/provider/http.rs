//! The one HTTP client every dialect goes through.
//!
//! It owns the rules that must hold for every provider alike: a total
//! timeout on every request (a hanging or dripping provider cannot stall a
//! session), a cap on the answer's size (a 10 MB error page or an endless
//! body cannot fill memory), and no redirects (an OAuth endpoint that
//! redirects a POST is misconfigured, and following it could send
//! credentials elsewhere).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};

#[cfg(test)]
use super::http_proxy::proxy_scheme_problem;
use super::http_proxy::{ProxyInUse, with_env_proxies};
use super::{HttpRequest, HttpResponse, ProviderError, RequestBody};

/// Default total time a request may take, connection to last body byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read from a provider. Real token answers are a few KiB
/// (a JWT id_token included); anything near this is an error page or abuse.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// The only content coding tokend reads (`Accept-Encoding`).
const IDENTITY: &str = "identity";

/// HTTP client shared by all providers (it pools connections per host).
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    timeout: Duration,
    /// The proxies the environment named, for errors to name them.
    proxies: Vec<ProxyInUse>,
}

/// Failure to build the HTTP client (TLS set-up).
#[derive(Debug, thiserror::Error)]
#[error("could not set up the HTTP client: {0}")]
pub struct HttpSetupError(String);

impl HttpClient {
    /// A client whose every request ends within `timeout`.
    ///
    /// # Errors
    /// The TLS stack could not be initialised (no usable root certificates).
    pub fn new(timeout: Duration) -> Result<Self, HttpSetupError> {
        Self::with_environment(timeout, &|name| std::env::var(name).ok())
    }

    /// [`Self::new`], with the environment's proxy variables read through
    /// `var`.
    fn with_environment(
        timeout: Duration,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, HttpSetupError> {
        // reqwest is built without a default crypto provider so that only
        // `ring` is compiled in; install it once per process. A second call
        // finds it installed and that is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(connect_timeout(timeout))
            // A connection whose path died (the machine moved networks)
            // is found dead within about 30 s of silence: a refresh
            // listening for its late answer there ends then.
            .tcp_keepalive(Duration::from_secs(15))
            .tcp_keepalive_interval(Duration::from_secs(5))
            .tcp_keepalive_retries(3)
            .redirect(reqwest::redirect::Policy::none())
            // The transport rule lets plain http go to `localhost` as to
            // a loopback address: it must be one, whatever the resolver
            // says (an image whose /etc/hosts lacks it would ask DNS, with
            // the search domain, and send the secrets in the clear there).
            .resolve_to_addrs("localhost", &localhost_addresses())
            .user_agent(concat!("tokend/", env!("CARGO_PKG_VERSION")));
        let (builder, proxies) = with_env_proxies(builder, var);
        let client = builder
            .build()
            .map_err(|e| HttpSetupError(format!("{}{}", error_chain(&e), ca_hint(var))))?;
        for proxy in &proxies {
            tracing::info!(
                "{} requests go through the proxy {} (from {}; loopback and NO_PROXY hosts go direct)",
                proxy.scheme,
                proxy.address,
                proxy.variable
            );
        }
        Ok(Self {
            client,
            timeout,
            proxies,
        })
    }

    /// Sends `request` and reads the whole answer, bounded in time and size.
    /// Asks for the answer uncompressed: without `Accept-Encoding` a
    /// server may pick any coding (RFC 9110, 12.5.3), and a refresh answer
    /// tokend cannot read would lose the rotated refresh token it carries.
    ///
    /// Any HTTP status is an answer (`Ok`); only transport failures and
    /// oversized bodies are errors here. Dialects judge the status.
    ///
    /// # Errors
    /// [`ProviderError::Unreachable`] when no complete answer arrived in time;
    /// [`ProviderError::Malformed`] when the answer is larger than
    /// [`MAX_ANSWER_BYTES`].
    pub async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, ProviderError> {
        self.send_within(request, self.timeout).await
    }

    /// The total time each request may take (`http_timeout`).
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// [`Self::send`], with `within` for the request's total time instead
    /// of `http_timeout` (a refresh that listens for a late answer); the
    /// connection's own bound stays as it is.
    ///
    /// # Errors
    /// As for [`Self::send`].
    pub async fn send_within(
        &self,
        request: &HttpRequest,
        within: Duration,
    ) -> Result<HttpResponse, ProviderError> {
        let mut builder = self
            .client
            .post(request.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::ACCEPT_ENCODING, IDENTITY);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(credentials) = request.basic_credentials() {
            let mut value =
                reqwest::header::HeaderValue::try_from(format!("Basic {}", *credentials)).map_err(
                    |_| ProviderError::Unreachable {
                        endpoint: request.url.to_string(),
                        reason: "the Basic credentials are not a valid header".to_owned(),
                    },
                )?;
            // Kept out of hyper's debug output.
            value.set_sensitive(true);
            builder = builder.header(reqwest::header::AUTHORIZATION, value);
        }
        builder = match &request.body {
            RequestBody::Form(fields) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for (name, value) in fields {
                    form.append_pair(name, value.wire_value());
                }
                builder
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form.finish())
            }
            RequestBody::Json(fields) => {
                let object: serde_json::Map<String, serde_json::Value> = fields
                    .iter()
                    .map(|(name, value)| (name.clone(), value.wire_value().into()))
                    .collect();
                builder
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(serde_json::Value::Object(object).to_string())
            }
        };

        self.execute(&request.url, builder.timeout(within), within)
            .await
    }

    /// Fetches `url` with GET (OpenID discovery), bounded like [`Self::send`].
    ///
    /// # Errors
    /// As for [`Self::send`].
    pub async fn get(&self, url: &url::Url) -> Result<HttpResponse, ProviderError> {
        let builder = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::ACCEPT_ENCODING, IDENTITY);
        self.execute(url, builder, self.timeout).await
    }

    /// Sends `builder`'s request, whose total time is bounded by `within`.
    async fn execute(
        &self,
        url: &url::Url,
        builder: reqwest::RequestBuilder,
        within: Duration,
    ) -> Result<HttpResponse, ProviderError> {
        let endpoint = url.as_str();
        let mut response = builder.send().await.map_err(|e| {
            if e.is_timeout() && !e.is_connect() {
                // Connected and sent: the provider may have acted on it.
                ProviderError::Unanswered {
                    endpoint: endpoint.to_owned(),
                    waited_secs: within.as_secs(),
                    listening: false,
                }
            } else {
                self.transport_error(url, &e, within)
            }
        })?;
        let status = response.status().as_u16();
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let location = header(reqwest::header::LOCATION);
        let content_encoding = header(reqwest::header::CONTENT_ENCODING);
        let date = header(reqwest::header::DATE).and_then(|d| super::datetime::parse(&d));
        let retry_after = header(reqwest::header::RETRY_AFTER).and_then(|value| {
            HttpResponse::read_retry_after(&value, date.unwrap_or_else(SystemTime::now))
        });
        if response
            .content_length()
            .is_some_and(|len| len > MAX_ANSWER_BYTES as u64)
        {
            return Err(too_large(endpoint));
        }
        let mut body = BytesMut::new();
        // The body within `http_timeout` of the status, however long the
        // status took (a refresh listening for a late answer waits for
        // the status alone): an answer that has begun and drips is broken,
        // not late.
        let body_due = tokio::time::Instant::now() + self.timeout.min(within);
        let body_cut = || ProviderError::CutOff {
            endpoint: endpoint.to_owned(),
            status,
            reason: format!(
                "no complete answer within {} s",
                self.timeout.min(within).as_secs()
            ),
        };
        while let Some(chunk) = tokio::time::timeout_at(body_due, response.chunk())
            .await
            .map_err(|_| body_cut())?
            .map_err(|e| {
                // The status is in: the provider was reached and answered.
                match self.transport_error(url, &e, within) {
                    ProviderError::Unreachable { endpoint, reason } => ProviderError::CutOff {
                        endpoint,
                        status,
                        // `CutOff` says the answer was cut off: the cause
                        // alone, not "the answer was cut off" twice.
                        reason: if e.is_timeout() {
                            reason
                        } else {
                            root_cause(&e)
                        },
                    },
                    other => other,
                }
            })?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(too_large(endpoint));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            url: url.clone(),
            status,
            content_type,
            location,
            date,
            retry_after,
            content_encoding,
            body: Bytes::from(body),
        })
    }

    /// The failure `error` says, for a request to `url` bounded by `within`.
    fn transport_error(
        &self,
        url: &url::Url,
        error: &reqwest::Error,
        within: Duration,
    ) -> ProviderError {
        // reqwest's own message repeats the URL and layers of wrapping; the
        // innermost cause says what happened ("Connection refused").
        let cause = root_cause(error);
        let reason = if error.is_timeout() && error.is_connect() {
            // The connection's own limit, shorter than the whole request's:
            // name it, or raising `http_timeout` would seem to do nothing.
            format!(
                "no connection within {} s (name lookup, TCP, proxy and TLS handshake)",
                connect_timeout(self.timeout).as_secs()
            )
        } else if error.is_timeout() {
            format!("no complete answer within {} s", within.as_secs())
        } else if error.is_connect() && cause == TUNNEL_REFUSED {
            // hyper-util's words for a CONNECT answered with an error (a
            // proxy allowing only port 443, as Squid's default does, or
            // one that cannot reach the host: its 502 or 503).
            let port = url.port_or_known_default().unwrap_or_default();
            let hint = if port == 443 {
                "it refuses the host, or cannot reach it"
            } else {
                "many proxies allow only port 443: name the host in NO_PROXY, or have the proxy allow the port"
            };
            format!(
                "the proxy did not open a tunnel to {}:{port} (it answered the CONNECT with an error; {hint})",
                url.host_str().unwrap_or_default(),
            )
        } else if error.is_connect() && out_of_descriptors(error) {
            // tokend's own limit, not the provider's doing: said so, or
            // the reader debugs a provider that is fine.
            format!(
                "cannot connect: {cause}: tokend has no file descriptor left for the connection \
                 (its limit on open files, `LimitNOFILE=`; see `few_open_files` at its start)"
            )
        } else if error.is_connect() {
            match tls_hint(&cause) {
                Some(hint) => format!("cannot connect: {cause} ({hint})"),
                None => format!("cannot connect: {cause}"),
            }
        } else if error.is_body() || error.is_decode() {
            format!("the answer was cut off: {cause}")
        } else {
            cause
        };
        ProviderError::Unreachable {
            endpoint: url.as_str().to_owned(),
            reason: match self.proxy_for(url) {
                // The connection that failed may be the proxy's: say so,
                // or the reader debugs a provider that is fine.
                Some(proxy) if error.is_connect() => format!(
                    "{reason} (through the proxy {} from {})",
                    proxy.address, proxy.variable
                ),
                _ => reason,
            },
        }
    }

    /// The proxy a request to `url` goes through, if any: none for
    /// loopback and the hosts `NO_PROXY` names.
    fn proxy_for(&self, url: &url::Url) -> Option<&ProxyInUse> {
        if super::url_rule::is_loopback(url) {
            return None;
        }
        self.proxies.iter().find(|p| p.carries(url))
    }
}

/// Where the CA certificates that failed to load came from, for the
/// error: the variables rustls's loader reads (a typo, or a file the
/// unit's `ProtectHome=` hides), else the system's store.
fn ca_hint(var: &dyn Fn(&str) -> Option<String>) -> String {
    let named: Vec<String> = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .iter()
        .filter_map(|name| var(name).map(|value| format!("{name}={value}")))
        .collect();
    if named.is_empty() {
        " (the system's CA certificates: is the ca-certificates package installed?)".to_owned()
    } else {
        format!(
            " (from {}: is it a readable PEM file or directory? A unit's ProtectHome= hides /home)",
            named.join(" and ")
        )
    }
}

fn too_large(endpoint: &str) -> ProviderError {
    ProviderError::Malformed {
        endpoint: endpoint.to_owned(),
        problem: format!("answer larger than {} KiB", MAX_ANSWER_BYTES / 1024),
        // Not read to the end: the status alone says nothing of it.
        status: None,
    }
}

/// An error and its causes on one line ("error sending request: connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // reqwest and hyper repeat their cause in their own message at times.
        if !text.contains(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// The innermost cause of an error, which is the one that says what happened.
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut last: &dyn std::error::Error = error;
    while let Some(cause) = last.source() {
        last = cause;
    }
    last.to_string()
}

/// Whether `error` comes of the process (EMFILE) or the system (ENFILE)
/// having no file descriptor left, somewhere down its causes.
fn out_of_descriptors<'a>(error: &'a (dyn std::error::Error + 'static)) -> bool {
    let mut next: Option<&'a (dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = next {
        let errno = cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error);
        if errno.is_some_and(|n| {
            n == rustix::io::Errno::MFILE.raw_os_error()
                || n == rustix::io::Errno::NFILE.raw_os_error()
        }) {
            return true;
        }
        next = cause.source();
    }
    false
}

/// hyper-util's message for a proxy that answered CONNECT with anything
/// but success or 407 (its `TunnelError` is not public to match on).
const TUNNEL_REFUSED: &str = "tunnel error: unsuccessful";

/// The addresses `localhost` stands for: 127.0.0.1, and ::1 where the
/// host has IPv6. On one without (`ipv6.disable=1`, `disable_ipv6` on
/// `lo`), a failed connection was reported as ::1's "Cannot assign
/// requested address" rather than 127.0.0.1's "Connection refused".
fn localhost_addresses() -> Vec<std::net::SocketAddr> {
    let v4 = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
    let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0));
    if std::net::UdpSocket::bind(v6).is_ok() {
        vec![v4, v6]
    } else {
        vec![v4]
    }
}

/// The limit on making a connection (name lookup, TCP, a proxy's CONNECT,
/// the TLS handshake): `http_timeout`, but at most 10 s, so that an
/// address that swallows packets costs seconds, not the whole request's
/// limit, before the next try.
fn connect_timeout(timeout: Duration) -> Duration {
    // A second under the whole request's limit where that is 10 s or
    // less: the connection's own limit must fire first, or a hung proxy
    // or handshake is said as a slow answer, without naming the proxy.
    timeout
        .saturating_sub(Duration::from_secs(1))
        .max(Duration::from_secs(1))
        .min(timeout)
        .min(Duration::from_secs(10))
}

/// Plain words for the TLS failures rustls names by its own terms
/// (`invalid peer certificate: UnknownIssuer`), kept beside them.
fn tls_hint(cause: &str) -> Option<&'static str> {
    const HINTS: &[(&str, &str)] = &[
        (
            "UnknownIssuer",
            "the server's certificate is not signed by a CA this machine trusts: a private CA goes in the system's store (\"A private CA\" in the README's Configure)",
        ),
        (
            "NotValidForName",
            "the server's certificate is for another host name",
        ),
        ("Expired", "the server's certificate has expired"),
        (
            "InvalidContentType",
            "the server does not speak TLS on this port: is the endpoint http://, or the port another one?",
        ),
    ];
    HINTS
        .iter()
        .find(|(term, _)| cause.contains(term))
        .map(|(_, hint)| *hint)
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
