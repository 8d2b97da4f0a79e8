//! The proxies the environment names for the HTTP client, read as curl
//! reads them, with loopback never proxied; and the words an error uses
//! to name one (never its credentials).

/// A proxy requests of one scheme go through (see [`with_env_proxies`]).
#[derive(Debug, Clone)]
pub(super) struct ProxyInUse {
    /// `https` or `http`: the scheme of the URLs it carries.
    pub(super) scheme: &'static str,
    /// The variable that named it.
    pub(super) variable: &'static str,
    /// Its host and port, without any credentials.
    pub(super) address: String,
    /// The hosts it is not used for (`NO_PROXY` and loopback), read by the
    /// matcher reqwest's own `NoProxy` is, so that an error names the proxy
    /// only when the request went through it. Built with a stand-in proxy
    /// URL: the real one may hold a password, and this one is never used.
    exceptions: std::sync::Arc<hyper_util::client::proxy::matcher::Matcher>,
}

impl ProxyInUse {
    /// Whether a request to `url` goes through this proxy.
    pub(super) fn carries(&self, url: &url::Url) -> bool {
        url.scheme() == self.scheme
            && url
                .as_str()
                .parse::<http::Uri>()
                .is_ok_and(|uri| self.exceptions.intercept(&uri).is_some())
    }
}

/// A proxy constructor of reqwest's, for one scheme.
type ForScheme = fn(String) -> reqwest::Result<reqwest::Proxy>;

/// Addresses that never go through a proxy, whatever the environment says:
/// a proxy would see (and could keep) what tokend sends to a local provider.
const NEVER_PROXIED: &str = "localhost,127.0.0.0/8,::1";

/// Proxies as the environment names them, the way curl reads it:
/// `HTTPS_PROXY` (lower case too) or `ALL_PROXY` for https URLs,
/// `NO_PROXY` for exceptions, and loopback never proxied
/// ([`NEVER_PROXIED`]). Plain http goes only to loopback (the URL rule),
/// so `HTTP_PROXY` could never apply and is not read: the start said
/// "http requests go through the proxy" of one that never did.
/// reqwest's own detection is turned off: it would proxy loopback too.
pub(super) fn with_env_proxies(
    builder: reqwest::ClientBuilder,
    var: &dyn Fn(&str) -> Option<String>,
) -> (reqwest::ClientBuilder, Vec<ProxyInUse>) {
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
    let mut in_use = Vec::new();
    let schemes: [(&str, &[&str], ForScheme); 1] = [(
        "https",
        &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"],
        reqwest::Proxy::https,
    )];
    for (scheme, names, proxy) in schemes {
        let Some((name, value)) = first(names) else {
            continue;
        };
        // One that cannot be used is left out, and said (not its value,
        // which may hold a password): requests go direct, which a network
        // that allows only the proxy refuses, and "cannot connect" alone
        // would not say why.
        let address = proxy_address(&value);
        let refused = match (proxy_scheme_problem(&value), proxy(value)) {
            (Some(problem), _) => problem,
            (None, Err(_)) => "it is not a proxy URL tokend can read".to_owned(),
            (None, Ok(proxy)) => {
                builder = builder.proxy(proxy.no_proxy(reqwest::NoProxy::from_string(&exceptions)));
                let stand_in = hyper_util::client::proxy::matcher::Matcher::builder()
                    .https("http://proxy.invalid:1".to_owned())
                    .no(exceptions.clone())
                    .build();
                in_use.push(ProxyInUse {
                    scheme,
                    variable: name,
                    address,
                    exceptions: std::sync::Arc::new(stand_in),
                });
                continue;
            }
        };
        tracing::warn!("{name} is not used ({refused}): those requests go direct");
    }
    (builder, in_use)
}

/// A proxy URL's host and port, for messages: never its credentials. A
/// value without a scheme is read as http, as curl does.
fn proxy_address(value: &str) -> String {
    let value = value.trim();
    let parsed = if value.contains("://") {
        url::Url::parse(value)
    } else {
        url::Url::parse(&format!("http://{value}"))
    };
    parsed
        .ok()
        .and_then(|url| {
            let host = url.host_str()?.to_owned();
            Some(match url.port_or_known_default() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .unwrap_or_else(|| "(unreadable)".to_owned())
}

/// What is wrong with a proxy URL's scheme, if anything: tokend speaks to
/// `http://` and `https://` proxies (a value without a scheme is taken as
/// http, as curl does). A `socks5h://` one (`ssh -D`, Tor) would be sent
/// HTTP and fail every request.
pub(super) fn proxy_scheme_problem(value: &str) -> Option<String> {
    let (scheme, _) = value.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    (scheme != "http" && scheme != "https").then(|| {
        format!("a {scheme}:// proxy, and tokend speaks to http:// and https:// proxies only")
    })
}
