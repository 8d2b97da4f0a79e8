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

use super::{HttpRequest, HttpResponse, ProviderError, RequestBody};

/// Default total time a request may take, connection to last body byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read from a provider. Real token answers are a few KiB
/// (a JWT id_token included); anything near this is an error page or abuse.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// HTTP client shared by all providers (it pools connections per host).
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    timeout: Duration,
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
        // reqwest is built without a default crypto provider so that only
        // `ring` is compiled in; install it once per process. A second call
        // finds it installed and that is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(connect_timeout(timeout))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tokend/", env!("CARGO_PKG_VERSION")));
        let client = with_env_proxies(builder, &|name| std::env::var(name).ok())
            .build()
            .map_err(|e| HttpSetupError(error_chain(&e)))?;
        Ok(Self { client, timeout })
    }

    /// Sends `request` and reads the whole answer, bounded in time and size.
    ///
    /// Any HTTP status is an answer (`Ok`); only transport failures and
    /// oversized bodies are errors here. Dialects judge the status.
    ///
    /// # Errors
    /// [`ProviderError::Unreachable`] when no complete answer arrived in time;
    /// [`ProviderError::Malformed`] when the answer is larger than
    /// [`MAX_ANSWER_BYTES`].
    pub async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, ProviderError> {
        let mut builder = self
            .client
            .post(request.url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
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

        self.execute(&request.url, builder).await
    }

    /// Fetches `url` with GET (OpenID discovery), bounded like [`Self::send`].
    ///
    /// # Errors
    /// As for [`Self::send`].
    pub async fn get(&self, url: &url::Url) -> Result<HttpResponse, ProviderError> {
        let builder = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        self.execute(url, builder).await
    }

    async fn execute(
        &self,
        url: &url::Url,
        builder: reqwest::RequestBuilder,
    ) -> Result<HttpResponse, ProviderError> {
        let endpoint = url.as_str();
        let mut response = builder
            .send()
            .await
            .map_err(|e| self.transport_error(endpoint, &e))?;
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
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(endpoint, &e))?
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

    fn transport_error(&self, endpoint: &str, error: &reqwest::Error) -> ProviderError {
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
            format!("no complete answer within {} s", self.timeout.as_secs())
        } else if error.is_connect() {
            format!("cannot connect: {cause}")
        } else if error.is_body() || error.is_decode() {
            format!("the answer was cut off: {cause}")
        } else {
            cause
        };
        ProviderError::Unreachable {
            endpoint: endpoint.to_owned(),
            reason,
        }
    }
}

fn too_large(endpoint: &str) -> ProviderError {
    ProviderError::Malformed {
        endpoint: endpoint.to_owned(),
        problem: format!("answer larger than {} KiB", MAX_ANSWER_BYTES / 1024),
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

/// A proxy constructor of reqwest's, for one scheme.
type ForScheme = fn(String) -> reqwest::Result<reqwest::Proxy>;

/// Addresses that never go through a proxy, whatever the environment says:
/// a proxy would see (and could keep) what tokend sends to a local provider.
const NEVER_PROXIED: &str = "localhost,127.0.0.0/8,::1";

/// Proxies as the environment names them, the way curl reads it:
/// `HTTPS_PROXY` for https URLs, `HTTP_PROXY` for http (lower case too),
/// `ALL_PROXY` for both, `NO_PROXY` for exceptions, and loopback never
/// proxied ([`NEVER_PROXIED`]). reqwest's own detection is turned off: it
/// would proxy loopback too.
fn with_env_proxies(
    builder: reqwest::ClientBuilder,
    var: &dyn Fn(&str) -> Option<String>,
) -> reqwest::ClientBuilder {
    let first = |names: &[&'static str]| {
        names
            .iter()
            .find_map(|&n| var(n).filter(|v| !v.trim().is_empty()).map(|v| (n, v)))
    };
    let exceptions = first(&["NO_PROXY", "no_proxy"]).map_or_else(
        || NEVER_PROXIED.to_owned(),
        |(_, extra)| format!("{NEVER_PROXIED},{extra}"),
    );
    let mut builder = builder.no_proxy();
    let schemes: [(&[&str], ForScheme); 2] = [
        (
            &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"],
            reqwest::Proxy::https,
        ),
        (
            &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"],
            reqwest::Proxy::http,
        ),
    ];
    for (names, proxy) in schemes {
        let Some((name, value)) = first(names) else {
            continue;
        };
        // One that cannot be used is left out, and said (not its value,
        // which may hold a password): requests go direct, which a network
        // that allows only the proxy refuses, and "cannot connect" alone
        // would not say why.
        let refused = match (proxy_scheme_problem(&value), proxy(value)) {
            (Some(problem), _) => problem,
            (None, Err(_)) => "it is not a proxy URL tokend can read".to_owned(),
            (None, Ok(proxy)) => {
                builder = builder.proxy(proxy.no_proxy(reqwest::NoProxy::from_string(&exceptions)));
                continue;
            }
        };
        tracing::warn!("{name} is not used ({refused}): those requests go direct");
    }
    builder
}

/// What is wrong with a proxy URL's scheme, if anything: tokend speaks to
/// `http://` and `https://` proxies (a value without a scheme is taken as
/// http, as curl does). A `socks5h://` one (`ssh -D`, Tor) would be sent
/// HTTP and fail every request.
fn proxy_scheme_problem(value: &str) -> Option<String> {
    let (scheme, _) = value.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    (scheme != "http" && scheme != "https").then(|| {
        format!("a {scheme}:// proxy, and tokend speaks to http:// and https:// proxies only")
    })
}

/// The limit on making a connection (name lookup, TCP, a proxy's CONNECT,
/// the TLS handshake): `http_timeout`, but at most 10 s, so that an
/// address that swallows packets costs seconds, not the whole request's
/// limit, before the next try.
fn connect_timeout(timeout: Duration) -> Duration {
    timeout.min(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proxies tokend can speak to: http and https, or no scheme (http);
    /// a SOCKS one is named as not used.
    #[test]
    fn proxy_schemes() {
        for usable in [
            "http://proxy:3128",
            "HTTPS://proxy",
            "proxy:3128",
            "http://u:p@proxy",
        ] {
            assert_eq!(proxy_scheme_problem(usable), None, "{usable}");
        }
        let problem = proxy_scheme_problem("socks5h://127.0.0.1:1080").unwrap();
        assert!(problem.contains("socks5h://"), "{problem}");
    }

    /// A TLS handshake that never ends (a host that accepts and says
    /// nothing) ends at the connection's own limit, and the error names
    /// that limit, not `http_timeout`, which raising would seem to ignore.
    #[tokio::test]
    async fn a_stalled_handshake_names_the_connection_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url =
            url::Url::parse(&format!("https://{}/token", listener.local_addr().unwrap())).unwrap();
        // Accepts, and holds the connection without a word.
        let held = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(stream);
        });
        let client = HttpClient::new(Duration::from_secs(60)).unwrap();
        let error = client.get(&url).await.unwrap_err().to_string();
        assert!(error.contains("no connection within 10 s"), "{error}");
        assert!(!error.contains("60 s"), "{error}");
        held.abort();
    }
}
