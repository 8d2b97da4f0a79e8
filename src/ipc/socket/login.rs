//! The `login` op: start or join a provider's device login, send its
//! prompt, then its outcome, unless the client goes away first.

use std::io;

use tokio::io::AsyncBufReadExt;
use tracing::info;

use super::wire::{error_body, login_prompt};
use super::writer::AnswerWriter;
use crate::broker::{Broker, BrokerError, Caller, LoginChange};
use crate::protocol::LoginEvent;

/// Answers a `login` request with its stream of [`LoginEvent`] lines.
pub(super) async fn answer(
    provider: String,
    caller: &Caller,
    broker: &Broker,
    write: &mut AnswerWriter,
    reader: &mut super::ConnectionReader,
) -> io::Result<()> {
    let done = |error: Option<&BrokerError>| LoginEvent::Done {
        provider: provider.clone(),
        ok: error.is_none(),
        error: error.map(error_body),
        unsaved: None,
    };
    let mut watch = match broker.login(caller, &provider).await {
        Ok(watch) => watch,
        Err(e) => {
            write.note(&e);
            return write.send(&done(Some(&e))).await;
        }
    };
    info!(provider = %provider, uid = caller.uid, event = "login_requested", "login requested");
    let prompt = match watch.prompt().await {
        Ok(prompt) => prompt,
        Err(e) => {
            write.note(&e);
            return write.send(&done(Some(&e))).await;
        }
    };
    write
        .send(&LoginEvent::Prompt {
            provider: provider.clone(),
            prompt: login_prompt(prompt),
        })
        .await?;
    // Wait for the outcome, telling of polls that fail meanwhile, unless
    // the client goes away first: the login itself goes on either way
    // (another client can join it). A client that only ended its writing
    // side (`nc -N`, a script's here-document) or sent its next request
    // behind this one still reads: it gets the whole stream, and the
    // request waits in the buffer for the login to end.
    let mut watching = true;
    let outcome = loop {
        let change = tokio::select! {
            change = watch.next() => change,
            ended = async { reader.fill_buf().await.map(<[u8]>::is_empty) }, if watching => {
                match ended {
                    Ok(true) if !client_hung_up(reader) => watching = false,
                    Ok(false) => watching = false,
                    Ok(true) | Err(_) => return Ok(()),
                }
                continue;
            }
        };
        match change {
            LoginChange::PollTrouble(trouble) => {
                let polling = LoginEvent::Polling {
                    provider: provider.clone(),
                    trouble,
                };
                write.send(&polling).await?;
            }
            LoginChange::Finished(outcome) => break outcome,
        }
    };
    if let Err(e) = &outcome {
        write.note(e);
    }
    let mut done = done(outcome.as_ref().err());
    if let LoginEvent::Done {
        ok: true, unsaved, ..
    } = &mut done
    {
        *unsaved = unsaved_reason(broker, caller, &provider);
    }
    write.send(&done).await
}

/// Why the session's tokens a login just brought are not saved, if they
/// are not: the store's outage, or the session's last error (its own
/// record's trouble). The person who approved the code is told, as a
/// logout whose record could not be deleted is: a stop before the store
/// works loses the login.
fn unsaved_reason(broker: &Broker, caller: &Caller, provider: &str) -> Option<String> {
    let report = broker.status(caller, Some(provider)).ok()?.pop()?;
    if report.saved {
        return None;
    }
    Some(
        broker
            .store_status()
            .outage
            .map(|outage| outage.reason)
            .or(report.last_error)
            .unwrap_or_else(|| "the store did not take it".to_owned()),
    )
}

/// Whether the client has closed the connection, not only its writing
/// side: a Unix stream socket reports a hang-up (`POLLHUP`) only once the
/// peer has closed both directions; a shutdown of its writing side alone
/// reads as the end of input and no more.
fn client_hung_up(reader: &super::ConnectionReader) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let stream: &tokio::net::UnixStream = reader.get_ref().get_ref().1.as_ref();
    let mut fds = [PollFd::new(stream, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match rustix::event::poll(&mut fds, Some(&now)) {
        Ok(_) => fds[0].revents().intersects(PollFlags::HUP | PollFlags::ERR),
        Err(_) => true,
    }
}
