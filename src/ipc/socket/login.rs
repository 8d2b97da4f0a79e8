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
    };
    let mut watch = match broker.login(caller, &provider) {
        Ok(watch) => watch,
        Err(e) => {
            write.note(&e);
            return write.send(&done(Some(&e))).await;
        }
    };
    info!(provider = %provider, uid = caller.uid, "login requested");
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
    // (another client can join it).
    let outcome = loop {
        let change = tokio::select! {
            change = watch.next() => change,
            _ = reader.fill_buf() => return Ok(()),
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
    write.send(&done(outcome.as_ref().err())).await
}
