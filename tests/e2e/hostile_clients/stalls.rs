//! Clients that stall in a long `status` stream (thousands of providers):
//! one that pauses reading is waited for, within the idle timeout, and
//! neither it nor a half-written request holds up a stop.

use super::*;

/// `count` provider tables (`p0000`...), never asked of their provider.
fn many_providers(count: usize) -> String {
    use std::fmt::Write as _;
    let mut providers = String::new();
    for i in 0..count {
        let _ = write!(
            providers,
            "[providers.p{i:04}]\ndevice_authorization_endpoint = \"https://idp.example/device\"\n\
             token_endpoint = \"https://idp.example/token\"\nclient_id = \"x\"\n"
        );
    }
    providers
}

/// Asks `server` for a streamed status on a new connection and reads its
/// first line: the lines to come, and the writing half (kept open).
async fn begin_status_stream(
    server: &Server,
) -> (
    tokio::io::Lines<tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>>,
    tokio::net::unix::OwnedWriteHalf,
) {
    let stream = UnixStream::connect(&server.socket).await.unwrap();
    let (read, mut write) = stream.into_split();
    write
        .write_all(b"{\"op\":\"status\",\"stream\":true}\n")
        .await
        .unwrap();
    let mut lines = tokio::io::BufReader::new(read).lines();
    assert!(lines.next_line().await.unwrap().is_some());
    (lines, write)
}

/// A client that pauses in the middle of a streamed `status` longer than
/// the write timeout (`tokenctl status | less` on its first screen) gets
/// the rest when it reads on, within the idle timeout: it was cut off
/// after the write timeout (10 s), and tokenctl printed part of the list
/// and said the daemon had stopped or crashed.
#[tokio::test]
async fn a_status_stream_waits_for_a_reader_that_pauses() {
    const PROVIDERS: usize = 2_000;
    let providers = many_providers(PROVIDERS);
    let server = serve_providers(
        Limits {
            idle_timeout: Duration::from_secs(30),
            ..short()
        },
        0o600,
        &providers,
    );
    let (mut lines, _write) = begin_status_stream(&server).await;
    // The pause is the scenario: longer than the write timeout (300 ms),
    // the statuses (about 300 KB) more than the socket buffers hold.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut rest = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let done = line.contains("\"done\"");
        rest.push(line);
        if done {
            break;
        }
    }
    assert_eq!(rest.len(), PROVIDERS, "{:?}", rest.last());
    assert!(
        rest.last()
            .unwrap()
            .contains(&format!("\"count\":{PROVIDERS}")),
        "{:?}",
        rest.last()
    );
}

/// A stop is not held by a client that stalls: one that began a request
/// line and did not finish it is told `shutting_down` at once (it waited
/// out the request timeout), and one that does not read its answer (a
/// streamed status) is let go within a second (it waited out the write
/// timeout). Both timeouts here are an hour: the bounds on the reads
/// below are only there so that a failure ends.
#[tokio::test]
async fn clients_that_stall_do_not_hold_a_stop() {
    let providers = many_providers(2_000);
    let hour = Duration::from_secs(3_600);
    let server = serve_providers(
        Limits {
            idle_timeout: hour,
            request_timeout: hour,
            write_timeout: hour,
            ..short()
        },
        0o600,
        &providers,
    );
    let mut half_written = UnixStream::connect(&server.socket).await.unwrap();
    half_written.write_all(b"{\"op\":\"sta").await.unwrap();
    // The stream has begun; the rest fills the socket's buffers.
    let (mut lines, _write) = begin_status_stream(&server).await;
    // Both connections are served (the request's first bytes read) before
    // the stop: a version request on a third comes after them.
    assert_eq!(ask(&server, r#"{"op":"version"}"#).await["ok"], true);
    server.stop.cancel();
    let bound = Duration::from_secs(60);
    let told = tokio::time::timeout(bound, lines_until_closed(half_written))
        .await
        .expect("the half-written request was not answered at the stop");
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("\"code\":\"shutting_down\""), "{told:?}");
    // The other client goes on not reading (the scenario, not a wait for
    // an event): past the second a write is given at a stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rest = tokio::time::timeout(bound, async {
        let mut count = 0;
        while let Ok(Some(_)) = lines.next_line().await {
            count += 1;
        }
        count
    })
    .await
    .expect("the client that did not read was not let go at the stop");
    assert!(rest < 2_000, "the whole stream was written: {rest}");
}

/// A request line that has begun is bound by the request timeout, not the
/// idle timeout: a client that stalls mid-line holds its connection slot
/// for 300 ms here, not for the idle timeout (an hour here). Not a timed
/// assertion: the minute bound on the read only ends a failure, and sits
/// between the 300 ms that should pass and the hour that would.
#[tokio::test]
async fn a_begun_request_line_gets_the_request_timeout_not_the_idle_timeout() {
    let server = serve(Limits {
        idle_timeout: Duration::from_secs(3_600),
        request_timeout: Duration::from_millis(300),
        ..short()
    });
    let mut stalled = UnixStream::connect(&server.socket).await.unwrap();
    stalled.write_all(b"{\"op\":").await.unwrap();
    let told = tokio::time::timeout(Duration::from_secs(60), lines_until_closed(stalled))
        .await
        .expect("the begun line was waited for as an idle connection");
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("not completed in time"), "{told:?}");
}
