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

/// `localhost` is pinned to loopback (see `HttpClient::new`), on the
/// URL's own port: a request to it reaches a listener on 127.0.0.1.
#[tokio::test]
async fn localhost_is_loopback_on_the_urls_port() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request).await.unwrap();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
            .await
            .unwrap();
    });
    let url = url::Url::parse(&format!("http://localhost:{port}/x")).unwrap();
    let client = HttpClient::new(Duration::from_secs(10)).unwrap();
    let answer = client.get(&url).await.unwrap();
    assert_eq!(answer.status, 200);
    served.await.unwrap();
}

/// A proxy that cannot be reached is named in the error (host and
/// port, not its password), so the reader does not debug the provider;
/// loopback, never proxied, is not said to go through it.
#[tokio::test]
async fn a_failed_connection_through_a_proxy_names_the_proxy() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let value = format!("http://user:hunter2@127.0.0.1:{port}");
    let client = HttpClient::with_environment(Duration::from_secs(10), &|name| {
        (name == "HTTPS_PROXY").then(|| value.clone())
    })
    .unwrap();
    let url = url::Url::parse("https://idp.invalid/token").unwrap();
    let error = client.get(&url).await.unwrap_err().to_string();
    assert!(
        error.contains(&format!(
            "through the proxy 127.0.0.1:{port} from HTTPS_PROXY"
        )),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
    let url = url::Url::parse(&format!("https://127.0.0.1:{port}/token")).unwrap();
    let error = client.get(&url).await.unwrap_err().to_string();
    assert!(!error.contains("through the proxy"), "{error}");
}

/// A host `NO_PROXY` names goes direct, and its failure does not name the
/// proxy (the message blamed a proxy the request never went through).
#[tokio::test]
async fn a_host_no_proxy_names_fails_without_naming_the_proxy() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let proxy = format!("http://127.0.0.1:{port}");
    for no_proxy in ["idp.invalid", ".invalid", "*", "other.example, IDP.INVALID"] {
        let client = HttpClient::with_environment(Duration::from_secs(10), &|name| match name {
            "HTTPS_PROXY" => Some(proxy.clone()),
            "NO_PROXY" => Some(no_proxy.to_owned()),
            _ => None,
        })
        .unwrap();
        let url = url::Url::parse("https://idp.invalid/token").unwrap();
        let error = client.get(&url).await.unwrap_err().to_string();
        assert!(!error.contains("proxy"), "NO_PROXY={no_proxy}: {error}");
        // Another host still goes through it, and says so.
        let url = url::Url::parse("https://idp.example.invalid.test/token").unwrap();
        let error = client.get(&url).await.unwrap_err().to_string();
        assert_eq!(
            error.contains("through the proxy"),
            no_proxy != "*",
            "NO_PROXY={no_proxy}: {error}"
        );
    }
}

/// A proxy that answers CONNECT with an error (Squid refuses ports other
/// than 443 by default) is named as the proxy refusing a tunnel to that
/// host and port, not "tunnel error: unsuccessful".
#[tokio::test]
async fn a_tunnel_the_proxy_refuses_is_said_plainly() {
    let (proxy, served) = answer_once(
        "http",
        b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    let address = format!("http://{}", proxy.authority());
    let client = HttpClient::with_environment(Duration::from_secs(10), &|name| {
        (name == "HTTPS_PROXY").then(|| address.clone())
    })
    .unwrap();
    let url = url::Url::parse("https://sso.example.test:8443/token").unwrap();
    let error = client.get(&url).await.unwrap_err().to_string();
    assert!(
        error.contains("the proxy did not open a tunnel to sso.example.test:8443"),
        "{error}"
    );
    assert!(error.contains("NO_PROXY"), "{error}");
    served.await.unwrap();
    // On port 443 already (a proxy's 503: it cannot reach the host), no
    // advice about the port or NO_PROXY, which a proxy-only network needs.
    let (proxy, served) = answer_once(
        "http",
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    let address = format!("http://{}", proxy.authority());
    let client = HttpClient::with_environment(Duration::from_secs(10), &|name| {
        (name == "HTTPS_PROXY").then(|| address.clone())
    })
    .unwrap();
    let url = url::Url::parse("https://sso.example.test/token").unwrap();
    let error = client.get(&url).await.unwrap_err().to_string();
    assert!(
        error.contains("the proxy did not open a tunnel to sso.example.test:443"),
        "{error}"
    );
    assert!(
        !error.contains("443:") && !error.contains("NO_PROXY"),
        "{error}"
    );
    assert!(!error.contains("only port 443"), "{error}");
    served.await.unwrap();
}

/// A listener on 127.0.0.1 that reads one request (or TLS hello) and
/// writes `answer`, then closes; its URL with `scheme`.
async fn answer_once(
    scheme: &str,
    answer: impl Into<Vec<u8>>,
) -> (url::Url, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let answer = answer.into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = url::Url::parse(&format!(
        "{scheme}://{}/token",
        listener.local_addr().unwrap()
    ))
    .unwrap();
    let served = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request).await;
        let _ = stream.write_all(&answer).await;
    });
    (url, served)
}

/// A `Retry-After` given as a date is measured against the answer's own
/// `Date`, not the local clock: a provider whose clock is off (here its
/// `Date` is a fixed day in the past) still means the wait it wrote, two
/// minutes, where the local clock would read it as no wait at all.
#[tokio::test]
async fn a_retry_after_date_is_measured_against_the_answers_date() {
    let (url, served) = answer_once(
        "http",
        "HTTP/1.1 429 Too Many Requests\r\n\
         date: Tue, 01 Jul 2025 12:00:00 GMT\r\n\
         retry-after: Tue, 01 Jul 2025 12:02:00 GMT\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await;
    let client = HttpClient::new(Duration::from_secs(10)).unwrap();
    let answer = client.get(&url).await.unwrap();
    assert_eq!(answer.status, 429);
    assert_eq!(answer.retry_after, Some(Duration::from_secs(120)));
    served.await.unwrap();
}

/// Only https URLs are proxied: `HTTP_PROXY` alone is no proxy in use
/// (plain http goes only to loopback, never proxied), and the start
/// does not say requests go through it.
#[test]
fn only_https_is_proxied() {
    let with = |name: &'static str| {
        HttpClient::with_environment(Duration::from_secs(10), &move |n| {
            (n == name).then(|| "http://127.0.0.1:3128".to_owned())
        })
        .unwrap()
    };
    assert!(with("HTTP_PROXY").proxies.is_empty());
    for name in ["HTTPS_PROXY", "ALL_PROXY"] {
        let client = with(name);
        assert_eq!(client.proxies.len(), 1, "{name}");
        assert_eq!(client.proxies[0].scheme, "https", "{name}");
    }
}

/// A success answer whose body is cut off (the connection closes
/// mid-chunk) keeps its status: the provider was reached, did what was
/// asked, and its tokens are lost, which "could not reach" hid.
#[tokio::test]
async fn a_success_cut_off_mid_body_keeps_its_status() {
    let (url, served) = answer_once(
        "http",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n40\r\n{\"access_token\":",
    )
    .await;
    let client = HttpClient::new(Duration::from_secs(10)).unwrap();
    let error = client.get(&url).await.unwrap_err();
    assert!(error.is_lost_success(), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("answered HTTP 200, but the answer was cut off"),
        "{error}"
    );
    // Said once: the reason is the cause alone.
    assert_eq!(error.to_string().matches("cut off").count(), 1, "{error}");
    assert_eq!(error.class(), crate::provider::FailureClass::Transient);
    served.await.unwrap();
}

/// A server that answers TLS with plain HTTP (an `https://` endpoint
/// on Keycloak's http port) is said in plain words beside rustls's
/// ("received corrupt message of type InvalidContentType").
#[tokio::test]
async fn plain_http_on_an_https_endpoint_is_said_plainly() {
    let (url, served) = answer_once(
        "https",
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    let client = HttpClient::new(Duration::from_secs(10)).unwrap();
    let error = client.get(&url).await.unwrap_err().to_string();
    assert!(
        error.contains("the server does not speak TLS on this port"),
        "{error}"
    );
    served.await.unwrap();
}

/// The connection's limit fires before the whole request's, also when
/// `http_timeout` is 10 s or less: the error then names the connection
/// (and a proxy it went through), not a slow answer.
#[test]
fn the_connection_limit_comes_first() {
    for (total, connect) in [(60, 10), (11, 10), (10, 9), (5, 4), (2, 1), (1, 1)] {
        assert_eq!(
            connect_timeout(Duration::from_secs(total)),
            Duration::from_secs(connect),
            "{total}"
        );
    }
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

/// A connection that fails for want of a file descriptor is tokend's own
/// trouble, found however deep in the error's causes the errno is; a
/// refused connection is not.
#[test]
fn running_out_of_descriptors_is_told_apart() {
    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let errno = |e: rustix::io::Errno| Wrapped(std::io::Error::from_raw_os_error(e.raw_os_error()));
    assert!(out_of_descriptors(&errno(rustix::io::Errno::MFILE)));
    assert!(out_of_descriptors(&errno(rustix::io::Errno::NFILE)));
    assert!(!out_of_descriptors(&errno(rustix::io::Errno::CONNREFUSED)));
}
