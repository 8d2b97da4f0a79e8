//! Whether the keyring is locked, asked before each call through keyring's
//! store, and its unlock prompt asked for without waiting for the answer.
//!
//! keyring's Secret Service store unlocks a locked collection itself: it
//! asks for the unlock prompt and waits for the person to answer it, and it
//! waits holding the one lock that every call on its connection takes. A
//! prompt nobody answers (left open while the person unlocked the keyring
//! another way: in `KeePassXC`'s window, in Seahorse; or shown on a screen
//! nobody looks at) so holds every later call, and the store would stay
//! down, unlocked or not, until tokend restarts: rotated refresh tokens
//! could then not be saved, not even at the stop.
//!
//! So tokend looks first, on a connection of its own: a locked collection
//! that holds the provider's item (whichever it is: see
//! `secret_service_held.rs`), or the locked default collection a new item
//! would go to, fails the call at once as locked (the broker's store
//! outage: tokens in memory are still served, writes wait, the retry loop
//! probes), after asking the Secret Service for that collection's unlock
//! prompt, at most once per [`PROMPT_SPACING`], without waiting for it.
//! However the person unlocks, the Secret Service announces it
//! (`secret_service_changes.rs`) and the retry loop's probe that follows
//! finds it unlocked. Only a keyring locked between the look and the call
//! (a millisecond) is left to keyring's own wait.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ::secret_service::EncryptionType;
use ::secret_service::Error as ServiceError;
use ::secret_service::blocking::SecretService;
use zbus::blocking::Connection;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};

use super::errors::{Cause, classify};
use super::{SECRETS, SERVICE_INTERFACE, SERVICE_PATH};

/// The Secret Service's prompt objects' interface.
pub(super) const PROMPT_INTERFACE: &str = "org.freedesktop.Secret.Prompt";

/// At most one unlock prompt asked for by tokend per this long: the retry
/// loop probes a locked keyring every few minutes, and a person who closed
/// the prompt should not have it back at each probe.
pub const PROMPT_SPACING: Duration = Duration::from_secs(300);

/// What the look found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// The default collection is unlocked.
    Unlocked,
    /// It is locked (and its unlock prompt asked for, now or within the
    /// spacing).
    Locked,
    /// There is none (`KeePassXC` before a database is open and exposed, a
    /// default keyring deleted): a store that cannot be used, not an empty
    /// one.
    NoDefaultCollection,
    /// Not known: no bus, no Secret Service, or an answer not understood.
    /// keyring's call then says what is wrong.
    Unknown,
}

/// tokend's own client for the look, and the prompt it last asked for.
#[derive(Default)]
pub struct UnlockGate {
    /// Cloned out for each look, so a look that hangs on a keyring that
    /// does not answer holds no lock.
    client: Mutex<Option<Arc<OwnClient>>>,
    /// The unlock prompt tokend last asked for; `None` once the collection
    /// it was for is seen unlocked.
    prompted: Mutex<Option<Prompted>>,
}

/// An unlock prompt tokend asked for.
#[derive(Debug)]
struct Prompted {
    /// When.
    at: Instant,
    /// The collection it unlocks (its path, not an alias).
    collection: String,
    /// The prompt once shown; `None` while it is being asked for.
    prompt: Option<OwnedObjectPath>,
}

impl UnlockGate {
    /// Whether the default collection is locked; when it is, asks for its
    /// unlock prompt (see [`Self::ask_for_prompt`]).
    pub fn look(&self) -> LockState {
        let Some(own) = self.client() else {
            return LockState::Unknown;
        };
        // keyring's store asks the same before it writes (`ReadAlias`, then
        // the collection's `Locked`) through the same crate: the look
        // reuses that code rather than bring its own into the daemon's
        // resident pages (the memory benchmark is at its edge).
        let locked = own.service.get_default_collection().and_then(|collection| {
            let locked = collection.is_locked()?;
            Ok((locked, collection.collection_path))
        });
        match locked {
            Ok((false, collection)) => {
                self.seen_unlocked(|prompted| prompted == collection.as_str());
                LockState::Unlocked
            }
            Ok((true, collection)) => {
                self.ask_for_prompt(&own.connection, &collection);
                LockState::Locked
            }
            Err(ServiceError::NoResult) => LockState::NoDefaultCollection,
            Err(e) => {
                tracing::debug!("could not tell whether the keyring is locked: {e}");
                // A connection that failed (the bus went away) is made anew
                // next time; an error answer leaves it as good as it was.
                if classify(&e) == Cause::NoBus {
                    *self.slot() = None;
                }
                LockState::Unknown
            }
        }
    }

    /// Takes the client, to be dropped where the caller chooses (see the
    /// store's `Drop`).
    pub fn take_client(&mut self) -> Option<Arc<OwnClient>> {
        self.client
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<OwnClient>>> {
        // An Option of a client: no panic can leave it half-set.
        self.client.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn prompted(&self) -> std::sync::MutexGuard<'_, Option<Prompted>> {
        // A time and paths, set whole.
        self.prompted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A collection seen unlocked: when `is_it` says it is the one tokend
    /// last asked to unlock, the next lock of it asks again, spacing or not.
    pub fn seen_unlocked(&self, is_it: impl Fn(&str) -> bool) {
        let mut prompted = self.prompted();
        if prompted.as_ref().is_some_and(|p| is_it(&p.collection)) {
            *prompted = None;
        }
    }

    /// tokend's own client, connected on first use; `None` without a bus
    /// or a Secret Service.
    pub fn client(&self) -> Option<Arc<OwnClient>> {
        if let Some(own) = self.slot().as_ref() {
            return Some(Arc::clone(own));
        }
        // Connected without the lock held: a racing look costs a spare one.
        let own = OwnClient::connect()
            .map_err(|e| tracing::debug!("cannot look at the keyring: {e}"))
            .ok()?;
        let own = Arc::new(own);
        *self.slot() = Some(Arc::clone(&own));
        Some(own)
    }

    /// `collection` is locked: asks for its unlock prompt unless tokend
    /// asked for one (of any collection) within [`PROMPT_SPACING`],
    /// dismissing that one first, so at most one of tokend's is open.
    pub fn ask_for_prompt(&self, connection: &Connection, collection: &ObjectPath<'_>) {
        let PromptClaim::Ask { dismiss } = self.claim_prompt(Instant::now(), collection.as_str())
        else {
            return;
        };
        if let Some(old) = dismiss {
            dismiss_prompt(connection, &old);
        }
        match show_unlock_prompt(connection, collection) {
            Ok(Some(prompt)) => {
                tracing::info!(
                    "the keyring is locked: asked the Secret Service for its unlock prompt"
                );
                *self.prompted() = Some(Prompted {
                    at: Instant::now(),
                    collection: collection.to_string(),
                    prompt: Some(prompt),
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!("could not ask for the keyring's unlock prompt: {e}");
                // Not asked: the next look may try again.
                *self.prompted() = None;
            }
        }
    }

    /// Whether this look asks for the prompt, decided and noted in one
    /// hold of the lock, so that looks at once (saves of several sessions
    /// refreshed together) ask for one prompt between them, not one each.
    fn claim_prompt(&self, now: Instant, collection: &str) -> PromptClaim {
        let mut prompted = self.prompted();
        if prompted
            .as_ref()
            .is_some_and(|p| now.saturating_duration_since(p.at) < PROMPT_SPACING)
        {
            return PromptClaim::AskedRecently;
        }
        let previous = prompted.replace(Prompted {
            at: now,
            collection: collection.to_owned(),
            prompt: None,
        });
        PromptClaim::Ask {
            dismiss: previous.and_then(|p| p.prompt),
        }
    }
}

/// Whether a look asks for the unlock prompt.
#[derive(Debug, PartialEq, Eq)]
enum PromptClaim {
    /// One was asked for within the spacing, or is being asked for now.
    AskedRecently,
    /// This look asks, dismissing tokend's earlier prompt first, if any.
    Ask { dismiss: Option<OwnedObjectPath> },
}

/// A Secret Service client of tokend's own, beside keyring's, for what
/// keyring's store does in a way tokend cannot use (it waits for prompts
/// holding its lock; its attribute update writes back every attribute),
/// and its bus connection (for the prompt, which the crate would wait for).
pub struct OwnClient {
    connection: Connection,
    service: SecretService<'static>,
}

impl OwnClient {
    /// The Secret Service client.
    pub fn service(&self) -> &SecretService<'static> {
        &self.service
    }

    /// The bus connection, for calls the client would wait on.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    fn connect() -> Result<Self, ServiceError> {
        let connection = Connection::session().map_err(ServiceError::Zbus)?;
        // The encryption keyring's store uses: its code is there already.
        let service = SecretService::connect_with_existing(EncryptionType::Dh, connection.clone())?;
        Ok(Self {
            connection,
            service,
        })
    }
}

/// Dismisses a prompt tokend asked for (closes its dialog). One answered
/// or closed is gone already: nothing to say then.
pub(super) fn dismiss_prompt(connection: &Connection, prompt: &OwnedObjectPath) {
    let _ = connection.call_method(
        Some(SECRETS),
        prompt.as_str(),
        Some(PROMPT_INTERFACE),
        "Dismiss",
        &(),
    );
}

/// `Unlock` of `collection`, then `Prompt` of the prompt it returns, which
/// shows it and returns at once (its `Completed` signal is not waited
/// for). `None` when no prompt was needed (unlocked meanwhile).
fn show_unlock_prompt(
    connection: &Connection,
    collection: &ObjectPath<'_>,
) -> zbus::Result<Option<OwnedObjectPath>> {
    let reply = connection.call_method(
        Some(SECRETS),
        SERVICE_PATH,
        Some(SERVICE_INTERFACE),
        "Unlock",
        &(vec![collection],),
    )?;
    let (_unlocked, prompt): (Vec<OwnedObjectPath>, OwnedObjectPath) =
        reply.body().deserialize()?;
    if prompt.as_str() == "/" {
        return Ok(None);
    }
    // The window id: none (tokend has no window).
    connection.call_method(
        Some(SECRETS),
        prompt.as_str(),
        Some(PROMPT_INTERFACE),
        "Prompt",
        &("",),
    )?;
    Ok(Some(prompt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_at_once_ask_for_one_prompt_between_them() {
        const LOGIN: &str = "/org/freedesktop/secrets/collection/login";
        const OTHER: &str = "/org/freedesktop/secrets/collection/other";
        let gate = UnlockGate::default();
        let now = Instant::now();
        let first = gate.claim_prompt(now, LOGIN);
        assert_eq!(first, PromptClaim::Ask { dismiss: None });
        // A look racing the first, its prompt not shown yet: asks for none,
        // whichever collection it found locked.
        assert_eq!(gate.claim_prompt(now, LOGIN), PromptClaim::AskedRecently);
        assert_eq!(gate.claim_prompt(now, OTHER), PromptClaim::AskedRecently);
        let shown = OwnedObjectPath::try_from("/p/1").unwrap();
        gate.prompted().as_mut().unwrap().prompt = Some(shown.clone());
        let within = gate.claim_prompt(now + PROMPT_SPACING / 2, LOGIN);
        assert_eq!(within, PromptClaim::AskedRecently);
        // Another collection seen unlocked leaves the spacing as it was...
        gate.seen_unlocked(|c| c == OTHER);
        let within = gate.claim_prompt(now + PROMPT_SPACING / 2, LOGIN);
        assert_eq!(within, PromptClaim::AskedRecently);
        // ...and after the spacing, one asks again, dismissing the old prompt.
        let again = gate.claim_prompt(now + PROMPT_SPACING, LOGIN);
        assert_eq!(
            again,
            PromptClaim::Ask {
                dismiss: Some(shown)
            }
        );
        let racing = gate.claim_prompt(now + PROMPT_SPACING, LOGIN);
        assert_eq!(racing, PromptClaim::AskedRecently);
        // The collection prompted for seen unlocked: locked again, it is
        // asked for at once.
        gate.seen_unlocked(|c| c == LOGIN);
        let relocked = gate.claim_prompt(now + PROMPT_SPACING, LOGIN);
        assert_eq!(relocked, PromptClaim::Ask { dismiss: None });
    }
}
