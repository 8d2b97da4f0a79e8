//! The `login` op: start or join a provider's device login, send its
//! prompt, then its outcome, unless the client goes away first.

use std::io;

use tracing::info;

use super::hang_up;
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
    reader: &super::ConnectionReader,
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
    // The client's hang-up is watched from here to the `done` line, not
    // its input: a client that ended its writing side (`nc -N`, `socat`,
    // a script's here-document) or sent its next request behind this one
    // still reads, and gets the whole stream (nothing more is read until
    // the `done` line: the request behind is answered after it); one
    // that has gone, whatever it sent before, lets go of its connection
    // at once. The login itself goes on either way (another client can
    // join it).
    let gone = hang_up::watch(connection_stream(reader));
    tokio::pin!(gone);
    let prompt = tokio::select! {
        prompt = watch.prompt() => prompt,
        () = &mut gone => return Err(hang_up::gone()),
    };
    match prompt {
        Ok(Some(prompt)) => {
            write
                .send(&LoginEvent::Prompt {
                    provider: provider.clone(),
                    prompt: login_prompt(prompt),
                })
                .await?;
        }
        // Joined after the approval, while its tokens are saved: no code
        // to show, and `done` says how it ends.
        Ok(None) => {}
        Err(e) => {
            write.note(&e);
            return write.send(&done(Some(&e))).await;
        }
    }
    // Wait for the outcome, telling of polls that fail meanwhile.
    let outcome = loop {
        let change = tokio::select! {
            change = watch.next() => change,
            () = &mut gone => return Err(hang_up::gone()),
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

/// The connection's socket, under the bytes already read from it.
fn connection_stream(reader: &super::ConnectionReader) -> &tokio::net::UnixStream {
    reader.get_ref().get_ref().1.as_ref()
}
