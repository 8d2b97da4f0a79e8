//! The `status` answers, written a page at a time.
//!
//! The broker hands out statuses a page at a time ([`StatusPages`]); this
//! module turns the pages into lines as they come, so a connection holds
//! one page of statuses (and of bytes) however many providers there are:
//!
//! - `"stream":true`: one [`StatusEvent::Provider`] line per provider, then
//!   [`StatusEvent::Done`] with the count and, when a provider was sent,
//!   the store's state (once, not per provider).
//! - without it: the version-1 single line `{"ok":true,"providers":[...]}`.
//!   Its length is measured first (statuses serialized into a counter, not a
//!   buffer), and past [`MAX_STATUS_LINE`] the answer is an
//!   `answer_too_large` error telling the client to ask for the stream. A
//!   line that fits is written in pieces as its pages are serialized.

use std::io::{self, Write};

use super::wire::{config_status, error_body, provider_status, store_status};
use super::writer::AnswerWriter;
use crate::broker::{Broker, BrokerError, Caller, SessionReport, StatusPages};
use crate::protocol::{
    Answer, ConfigStatus, ErrorCode, MAX_STATUS_LINE, STATUS_STREAM_SINCE, StatusEvent, StoreStatus,
};

/// Statuses built, serialized and written at a time.
const PAGE: usize = 128;

/// The single-line answer around its providers (see [`Answer`] and
/// [`crate::protocol::StatusAnswer`]: `ok` first, then the flattened payload).
const LINE_START: &[u8] = br#"{"ok":true,"providers":["#;
const LINE_END: &[u8] = b"]}\n";

/// Answers a `status` request.
pub(super) async fn answer(
    provider: Option<&str>,
    stream: bool,
    caller: &Caller,
    broker: &Broker,
    write: &mut AnswerWriter,
) -> io::Result<()> {
    // During a store outage, the answer shows the store as a probe finds
    // it now, not as the last one did; a stored session that could not be
    // read is read again (its cause may have been mended).
    broker.recheck_store(caller).await;
    broker.reread_records(caller, provider).await;
    let pages = match (broker.status_pages(caller, provider, PAGE), stream) {
        (Ok(pages), _) => pages,
        (Err(e), true) => {
            write.note(&e);
            return write.send(&done(0, Err(&e))).await;
        }
        (Err(e), false) => {
            let answer = write.failure::<()>(&e);
            return write.send(&answer).await;
        }
    };
    if stream {
        return streamed(pages, broker, write).await;
    }
    if !fits_one_line(pages).await? {
        write.error = Some(ErrorCode::AnswerTooLarge);
        return write.send(&too_large()).await;
    }
    // Measured with the pages of a moment ago; sent with new ones.
    match broker.status_pages(caller, provider, PAGE) {
        Ok(pages) => one_line(pages, write).await,
        Err(e) => {
            let answer = write.failure::<()>(&e);
            write.send(&answer).await
        }
    }
}

/// The last line: the count, and the store's state and the config's
/// standing (`Ok`) or the error.
fn done(
    count: u64,
    outcome: Result<(Option<StoreStatus>, Option<ConfigStatus>), &BrokerError>,
) -> StatusEvent {
    let (error, (store, config)) = match outcome {
        Ok(end) => (None, end),
        Err(e) => (Some(error_body(e)), (None, None)),
    };
    StatusEvent::Done {
        ok: error.is_none(),
        count,
        error,
        store,
        config,
    }
}

/// The refusal of a single line too long for the clients that ask for one.
fn too_large() -> Answer<()> {
    Answer::failure(
        ErrorCode::AnswerTooLarge,
        format!(
            "the status of every provider is longer than one answer line may be ({MAX_STATUS_LINE} bytes): \
             ask for it as a stream, {{\"op\":\"status\",\"stream\":true}} (tokenctl does from protocol \
             {STATUS_STREAM_SINCE} on: install a matching tokenctl), or for one provider"
        ),
    )
}

async fn streamed(pages: StatusPages, broker: &Broker, write: &mut AnswerWriter) -> io::Result<()> {
    let mut count = 0;
    let mut bytes = Vec::new();
    for page in pages {
        bytes.clear();
        for report in page {
            let status = provider_status(report);
            serde_json::to_writer(&mut bytes, &StatusEvent::Provider(Box::new(status)))?;
            bytes.push(b'\n');
            count += 1;
        }
        write.write_stream_page(&bytes).await?;
    }
    // Once for the whole answer; nothing for a caller who may see no
    // provider (it learns nothing of the daemon).
    let store = (count > 0).then(|| store_status(broker.store_status()));
    let config = (count > 0)
        .then(|| config_status(&broker.config_standing()))
        .flatten();
    write.send(&done(count, Ok((store, config)))).await
}

/// Whether the single line, newline excluded, is at most
/// [`MAX_STATUS_LINE`] long. Stops building statuses once it is past.
async fn fits_one_line(pages: StatusPages) -> io::Result<bool> {
    let mut counter = ByteCounter(LINE_START.len() + LINE_END.len() - 1);
    let mut first = true;
    for page in pages {
        write_page(&mut counter, page, &mut first)?;
        if counter.0 > MAX_STATUS_LINE {
            return Ok(false);
        }
        // Measuring 10,000 statuses takes a while: let other connections
        // have the (single-threaded) runtime between pages.
        tokio::task::yield_now().await;
    }
    Ok(true)
}

async fn one_line(pages: StatusPages, write: &mut AnswerWriter) -> io::Result<()> {
    let mut bytes = LINE_START.to_vec();
    let mut first = true;
    for page in pages {
        write_page(&mut bytes, page, &mut first)?;
        write.write_bytes(&bytes).await?;
        bytes.clear();
    }
    bytes.extend_from_slice(LINE_END);
    write.write_bytes(&bytes).await
}

/// A page's statuses as part of the JSON array, a comma before each but
/// the array's first.
fn write_page(
    mut out: impl Write,
    page: Vec<SessionReport>,
    first: &mut bool,
) -> serde_json::Result<()> {
    for report in page {
        if !std::mem::take(first) {
            out.write_all(b",").map_err(serde_json::Error::io)?;
        }
        serde_json::to_writer(&mut out, &provider_status(report))?;
    }
    Ok(())
}

/// Counts what is written to it, and keeps nothing.
struct ByteCounter(usize);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::SessionPhase;
    use crate::broker::clock::from_unix_secs;
    use crate::protocol::StatusAnswer;

    fn provider(name: &str) -> SessionReport {
        SessionReport {
            name: name.into(),
            dialect: "rfc8628",
            phase: SessionPhase::Active,
            expires_at: Some(from_unix_secs(1_790_000_000)),
            last_refresh: None,
            next_refresh: None,
            last_error: Some("a \"quoted\" error".into()),
            scopes: vec!["repo".into()],
            login: None,
            saved: true,
            hosts: Vec::new(),
            username: "x-access-token".into(),
            login_needed_by: None,
            git_auth: crate::config::GitAuth::Auto,
        }
    }

    /// The line written in pieces is the version-1 answer, byte for byte,
    /// and its measured length is its length.
    #[test]
    fn the_single_line_in_pieces_is_the_version_1_answer() {
        for count in [0, 1, 2, 5] {
            let providers: Vec<_> = (0..count).map(|i| provider(&format!("p{i}"))).collect();
            let mut line = LINE_START.to_vec();
            let mut counter = ByteCounter(LINE_START.len() + LINE_END.len() - 1);
            let (mut first, mut first_counted) = (true, true);
            for page in providers.chunks(2) {
                write_page(&mut line, page.to_vec(), &mut first).unwrap();
                write_page(&mut counter, page.to_vec(), &mut first_counted).unwrap();
            }
            line.extend_from_slice(LINE_END);
            let providers: Vec<_> = providers.into_iter().map(provider_status).collect();
            let expected =
                serde_json::to_string(&Answer::success(StatusAnswer { providers })).unwrap() + "\n";
            assert_eq!(String::from_utf8(line).unwrap(), expected);
            assert_eq!(counter.0, expected.len() - 1);
        }
    }

    #[test]
    fn the_refusal_names_the_fix() {
        let refusal = serde_json::to_string(&too_large()).unwrap();
        assert!(
            refusal.contains(r#""code":"answer_too_large""#),
            "{refusal}"
        );
        assert!(
            refusal.contains(r#"{\"op\":\"status\",\"stream\":true}"#),
            "{refusal}"
        );
    }
}
