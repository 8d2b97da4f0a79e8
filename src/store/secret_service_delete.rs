//! Deleting a provider's items, through tokend's own client, without
//! waiting for a person.
//!
//! A Secret Service may ask the person to confirm a delete: `KeePassXC`
//! answers `Item.Delete` with a prompt ("Delete entry?") unless its
//! "confirm when passwords are deleted by clients" is turned off.
//! keyring's delete waits for that answer holding the lock every call of
//! keyring's store takes, so a logout left unconfirmed held every save
//! behind it until `store_timeout`, and the whole store was then counted
//! down; and a prompt that ends without deleting (Cancel, which some
//! `KeePassXC` versions report as completed, not dismissed) counted as a
//! delete, so the session came back at the next start.
//!
//! Here the delete's prompt is shown and not waited for: the delete fails
//! for this record alone ([`StoreError::Unconfirmed`](super::StoreError)),
//! the logout stands in tokend (the logout journal keeps the record from
//! being restored), and the delete's retry looks again: done once no item
//! is left. A prompt shown within [`CONFIRM_SPACING`] is not shown again,
//! so retries do not stack dialogs.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use zbus::blocking::Connection;
use zbus::zvariant::OwnedObjectPath;

use super::{SECRETS, SERVICE, SERVICE_ATTRIBUTE, USERNAME_ATTRIBUTE};

use super::unlock::{PROMPT_INTERFACE, dismiss_prompt};

const ITEM_INTERFACE: &str = "org.freedesktop.Secret.Item";

/// How long a delete's confirmation prompt is left to the person before a
/// retry that finds the item still there dismisses it and asks again.
pub const CONFIRM_SPACING: Duration = Duration::from_secs(120);

/// What a delete came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// No item of the provider is left.
    Done,
    /// The Secret Service asked the person to confirm (now or within
    /// [`CONFIRM_SPACING`]), and the item is still there.
    AwaitingConfirmation,
    /// The items it could delete are gone; these are in a locked keyring
    /// other than the default (see `secret_service_elsewhere.rs`), which
    /// refuses to delete them: that provider's trouble, not the store's.
    LockedElsewhere(Vec<OwnedObjectPath>),
}

/// The confirmation prompts tokend has shown, by provider.
#[derive(Debug, Default)]
pub struct DeletePrompts {
    shown: Mutex<HashMap<String, (Instant, Vec<OwnedObjectPath>)>>,
}

impl DeletePrompts {
    fn shown(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Vec<OwnedObjectPath>)>> {
        // Entries are inserted and removed whole: no panic leaves one half-set.
        self.shown.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Deletes `provider`'s items (every one: a logout is how a person
    /// clears duplicates), showing the prompts the Secret Service asks for
    /// and not waiting for their answers.
    ///
    /// # Errors
    /// A D-Bus call failed or was refused.
    pub fn delete(
        &self,
        connection: &Connection,
        provider: &str,
        now: Instant,
    ) -> zbus::Result<Deleted> {
        let (items, elsewhere) = search(connection, provider)?;
        let done = || {
            if elsewhere.is_empty() {
                Deleted::Done
            } else {
                Deleted::LockedElsewhere(elsewhere.clone())
            }
        };
        if items.is_empty() {
            // Confirmed, or deleted some other way: nothing left to ask.
            self.shown().remove(provider);
            return Ok(done());
        }
        let shown_at = self.shown().get(provider).map(|(at, _)| *at);
        if shown_at.is_some_and(|at| now.saturating_duration_since(at) < CONFIRM_SPACING) {
            return Ok(Deleted::AwaitingConfirmation);
        }
        // Left open too long: shown anew below.
        self.dismiss(connection, provider);
        let mut prompts = Vec::new();
        for item in items {
            let reply = connection.call_method(
                Some(SECRETS),
                item.as_str(),
                Some(ITEM_INTERFACE),
                "Delete",
                &(),
            )?;
            let prompt: OwnedObjectPath = reply.body().deserialize()?;
            if prompt.as_str() == "/" {
                continue;
            }
            // The window id: none (tokend has no window). `Prompt` shows it
            // and returns; its `Completed` is not waited for.
            connection.call_method(
                Some(SECRETS),
                prompt.as_str(),
                Some(PROMPT_INTERFACE),
                "Prompt",
                &("",),
            )?;
            prompts.push(prompt);
        }
        if prompts.is_empty() {
            return Ok(done());
        }
        tracing::info!(
            provider,
            "the Secret Service asks to confirm deleting the item: shown its prompt"
        );
        self.shown().insert(provider.to_owned(), (now, prompts));
        Ok(Deleted::AwaitingConfirmation)
    }
}

impl DeletePrompts {
    /// Whether a delete of `provider`'s item waits for its confirmation.
    pub fn waiting(&self, provider: &str) -> bool {
        self.shown().contains_key(provider)
    }

    /// Dismisses the delete prompts of `provider` still open: a save of
    /// the provider (a new login after the logout) is about to write the
    /// item they would delete, and a confirmation given after it would
    /// delete the new session's record.
    pub fn dismiss(&self, connection: &Connection, provider: &str) {
        let Some((_, prompts)) = self.shown().remove(provider) else {
            return;
        };
        for prompt in &prompts {
            dismiss_prompt(connection, prompt);
        }
    }
}

/// The paths of `provider`'s items to delete, unlocked and locked (a
/// locked one's `Delete` fails as locked, which is what the caller should
/// hear; `KeePassXC`'s locked per client asks for access), and apart those
/// in a locked keyring other than the default, which are that provider's
/// trouble (see `secret_service_elsewhere.rs`).
fn search(
    connection: &Connection,
    provider: &str,
) -> zbus::Result<(Vec<OwnedObjectPath>, Vec<OwnedObjectPath>)> {
    let attributes = HashMap::from([(SERVICE_ATTRIBUTE, SERVICE), (USERNAME_ATTRIBUTE, provider)]);
    let (mut items, locked) = super::elsewhere::search(connection, &attributes)?;
    let elsewhere = super::elsewhere::in_locked_collections(connection, locked.clone());
    items.extend(locked.into_iter().filter(|item| !elsewhere.contains(item)));
    Ok((items, elsewhere))
}
