use super::*;

#[test]
fn attributes_end_at_a_blank_line_and_bad_lines_are_named() {
    let read =
        read_attributes("protocol=https\nhost=github.com\n\nignored=1\n".as_bytes()).unwrap();
    assert_eq!(read.values.len(), 2);
    assert_eq!(read.values["host"], "github.com");
    let err = read_attributes("protocol=https\nnonsense\n".as_bytes()).unwrap_err();
    assert!(err.message.contains("line 2"), "{}", err.message);
}

/// git passes a server's realm (Latin-1 from Apache's `AuthName`) and a
/// percent-decoded path as bytes: the request is read, not refused as
/// "not UTF-8" (every request to such a host failed).
#[test]
fn a_request_that_is_not_utf8_is_read() {
    let request: &[u8] =
        b"protocol=http\r\nhost=127.0.0.1:9\nwwwauth[]=Basic realm=\"D\xe9p\xf4t\"\npath=caf\xe9/r.git\n\n";
    let read = read_attributes(request).unwrap();
    assert_eq!(read.values["protocol"], "http");
    assert_eq!(read.values["host"], "127.0.0.1:9");
    assert_eq!(read.challenges, ["Basic realm=\"D\u{fffd}p\u{fffd}t\""]);
    assert_eq!(read.values["path"], "caf\u{fffd}/r.git");
}

#[test]
fn a_url_line_gives_its_parts() {
    let read = read_attributes("url=https://GitHub.com:8443/org/repo.git\n".as_bytes()).unwrap();
    assert_eq!(read.values["protocol"], "https");
    assert_eq!(read.values["host"], "github.com:8443");
    assert_eq!(read.values["path"], "org/repo.git");
    // The default port is not written. As git reads them, a `url=`
    // line replaces the lines before it, and lines after it win.
    let read =
        read_attributes("host=example.org\npath=a.git\nurl=http://[::1]:80/\n".as_bytes()).unwrap();
    assert_eq!(read.values["host"], "[::1]");
    assert_eq!(read.values["protocol"], "http");
    assert!(!read.values.contains_key("path"));
    let read =
        read_attributes("url=https://example.org/a.git\nhost=other.org\n".as_bytes()).unwrap();
    assert_eq!(read.values["host"], "other.org");
    assert_eq!(read.values["path"], "a.git");
    let err = read_attributes("url=not a url with secret\n".as_bytes()).unwrap_err();
    assert!(err.message.contains("`url=`"), "{}", err.message);
    assert!(!err.message.contains("secret"), "{}", err.message);
}

#[test]
fn loopback_hosts_with_and_without_ports() {
    for host in [
        "127.0.0.1",
        "127.0.0.1:8080",
        "[::1]:443",
        "::1",
        "localhost:3000",
    ] {
        assert!(is_loopback(host), "{host}");
    }
    for host in ["github.com", "10.0.0.1:80", "example.org:443"] {
        assert!(!is_loopback(host), "{host}");
    }
}

/// A token goes over plain http only to loopback; a name that merely
/// starts like `localhost` or an address (`localhost.evil.example`,
/// `127.0.0.1.nip.io`) is anyone's host, and was let through when
/// loopback was tested by prefix.
#[test]
fn plain_http_only_to_loopback() {
    for (scheme, host) in [
        ("http", Some("github.com")),
        ("HTTP", Some("ghcr.io:5000")),
        ("http", None),
        ("http", Some("localhost.evil.example")),
        ("http", Some("localhostx:80")),
        ("http", Some("127.0.0.1.nip.io")),
    ] {
        let Err(refused) = refuse_plain_http(scheme, host) else {
            panic!("a token over {scheme} to {host:?} was let through");
        };
        assert!(
            refused.message.contains("plain http"),
            "{}",
            refused.message
        );
    }
    for (scheme, host) in [
        ("https", Some("github.com")),
        ("http", Some("localhost:5000")),
        ("http", Some("[::1]:80")),
    ] {
        assert!(refuse_plain_http(scheme, host).is_ok(), "{scheme} {host:?}");
    }
}
#[test]
fn lists_gather_and_an_empty_value_starts_them_again() {
    let read = read_attributes(
        "capability[]=authtype\ncapability[]=state\nstate[]=x\nwwwauth[]=Basic realm=\"a\"\n\
         wwwauth[]=\nwwwauth[]=Bearer\nhost=h\n"
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(read.capabilities, ["authtype", "state"]);
    assert_eq!(read.challenges, ["Bearer"]);
    assert_eq!(read.values.len(), 1, "{:?}", read.values);
}

#[test]
fn challenges_name_their_schemes() {
    for (header, schemes) in [
        ("Basic realm=\"GitHub\"", vec!["basic"]),
        (
            "Bearer authorization_uri=https://login.example/x, Basic realm=\"a, b\", TFS-Federated",
            vec!["bearer", "basic", "tfs-federated"],
        ),
        (
            "Bearer realm = \"x\", error=\"invalid_token\", scope=\"a b\"",
            vec!["bearer"],
        ),
        ("Negotiate abc==, NTLM", vec!["negotiate", "ntlm"]),
        ("Bearer realm=\"q\\\", Basic\"", vec!["bearer"]),
        ("", vec![]),
    ] {
        assert_eq!(challenge_schemes(header), schemes, "{header}");
    }
}

fn status(git_auth: Option<&str>) -> ProviderStatus {
    serde_json::from_value(serde_json::json!({
        "name": "forge", "dialect": "rfc8628", "state": "active", "git_auth": git_auth,
    }))
    .unwrap()
}

fn request(lines: &str) -> Attributes {
    read_attributes(lines.as_bytes()).unwrap()
}

#[test]
fn bearer_when_asked_for_or_when_the_server_takes_only_bearer() {
    let modern = "capability[]=authtype\n";
    let bearer_only = "capability[]=authtype\nwwwauth[]=Bearer realm=\"forge\"\n";
    let both = "capability[]=authtype\nwwwauth[]=Bearer\nwwwauth[]=Basic realm=\"f\"\n";
    let old_git = "wwwauth[]=Bearer\n";
    for (auth, lines, bearer) in [
        (Some("auto"), bearer_only, true),
        (Some("auto"), both, false),
        (Some("auto"), modern, false),
        (Some("basic"), bearer_only, false),
        (None, bearer_only, false),
        (Some("bearer"), modern, true),
        (Some("bearer"), both, true),
        (Some("newer-kind"), bearer_only, true),
    ] {
        let chosen = sends_bearer(&status(auth), &request(lines)).unwrap();
        assert_eq!(chosen, bearer, "{auth:?} {lines:?}");
    }
    let refused = sends_bearer(&status(Some("bearer")), &request(old_git)).unwrap_err();
    assert!(
        refused.message.contains("needs git 2.46 or later") && refused.message.contains("`forge`"),
        "{}",
        refused.message
    );
    // A git from before 2.46 facing a server that takes only Bearer:
    // no Basic answer bound to be refused (and `erase`d, a refresh).
    let refused = sends_bearer(&status(Some("auto")), &request(old_git)).unwrap_err();
    assert!(
        refused.message.contains("from 2.46 on") && refused.message.contains("git_auth"),
        "{}",
        refused.message
    );
    let basic = sends_bearer(&status(Some("basic")), &request(old_git));
    assert!(!basic.unwrap());
}

/// kubectl and docker keep a token until their server refuses it and
/// cannot say so: one of unknown life is asked for again with a second
/// of life, which has tokend refresh it once its last refresh is a
/// minute old; one whose expiry is known is taken as it comes.
#[test]
fn a_keeping_client_asks_for_some_life_of_a_token_of_unknown_life() {
    use std::io::{BufRead as _, BufReader, Write as _};
    let (ours, mut daemon) = std::os::unix::net::UnixStream::pair().unwrap();
    // One reader: the client writes its second request before the test
    // reads the first, and a reader per line would lose what it buffered.
    let mut requests = BufReader::new(daemon.try_clone().unwrap());
    let mut request = |_: &std::os::unix::net::UnixStream| {
        let mut line = String::new();
        requests.read_line(&mut line).unwrap();
        line
    };
    let mut client = Client::from_stream(ours).unwrap();
    daemon
        .write_all(b"{\"ok\":true,\"access_token\":\"old\",\"token_type\":\"Bearer\",\"expires_at\":null}\n{\"ok\":true,\"access_token\":\"new\",\"token_type\":\"Bearer\",\"expires_at\":null}\n")
        .unwrap();
    let answer = token_for_a_keeping_client(&mut client, "k8s").unwrap();
    assert_eq!(answer.access_token.expose(), "new");
    assert_eq!(
        request(&daemon),
        "{\"op\":\"token\",\"provider\":\"k8s\"}\n"
    );
    assert_eq!(
        request(&daemon),
        "{\"op\":\"token\",\"provider\":\"k8s\",\"min_valid\":1}\n"
    );

    daemon
        .write_all(b"{\"ok\":true,\"access_token\":\"t\",\"token_type\":\"Bearer\",\"expires_at\":1790000000}\n")
        .unwrap();
    let answer = token_for_a_keeping_client(&mut client, "k8s").unwrap();
    assert_eq!(answer.access_token.expose(), "t");
    assert_eq!(
        request(&daemon),
        "{\"op\":\"token\",\"provider\":\"k8s\"}\n"
    );
}

/// The refresh a keeping client's second ask waits for is given 3 s: a
/// provider that hangs stalled every `kubectl` for the whole
/// `http_timeout`, for the token it had anyway.
#[test]
fn a_keeping_client_takes_the_token_it_had_when_the_refresh_hangs() {
    use std::io::Write as _;
    let (ours, mut daemon) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut client = Client::from_stream(ours).unwrap();
    // The first answer only: the second is never sent.
    daemon
        .write_all(b"{\"ok\":true,\"access_token\":\"had\",\"token_type\":\"Bearer\",\"expires_at\":null}\n")
        .unwrap();
    let answer = token_for_a_keeping_client(&mut client, "k8s").unwrap();
    assert_eq!(answer.access_token.expose(), "had");
}
