//! Notices that the Secret Service may work again, for the broker's retry
//! loop during an outage (see [`Store::change_feed`](super::Store)).
//!
//! Without them, an outage ends at the retry loop's next probe: 15 to 30 s
//! after it began, then up to 5 minutes apart (or at once when someone asks
//! for a token or the status). Meanwhile a rotated refresh token is only in
//! memory. Two signals on the session bus say that a probe may now pass:
//!
//! - the Secret Service's `CollectionChanged`, which gnome-keyring and
//!   `KeePassXC` send when a collection is locked or unlocked, however it
//!   was unlocked (tokend's prompt, Seahorse, `KeePassXC`'s window, a PAM
//!   login), and its `CollectionCreated` (`KeePassXC` opening a database);
//! - the bus's `NameOwnerChanged` for `org.freedesktop.secrets`: a keyring
//!   daemon started (or started again) after tokend.
//!
//! The broker also holds a feed while a provider's record cannot be read
//! for its own sake (two items matching it, say): the collections'
//! `ItemCreated`, `ItemDeleted` and `ItemChanged` (an item deleted in
//! Seahorse sends only these) make it read such records again.
//!
//! The feed has a bus connection of its own, made when an outage begins and
//! closed when it ends, so a store that works costs nothing. A notice only
//! makes the loop probe: anything on the bus can send these signals, and a
//! false one costs one probe (spaced by the loop).

use futures_util::{StreamExt as _, future, stream};
use zbus::MatchRule;
use zbus::blocking::{Connection, MessageIterator};
use zbus::message::Type;

use super::{SECRETS, SERVICE_INTERFACE, SERVICE_PATH};
use crate::store::ChangeFeed;

const BUS: &str = "org.freedesktop.DBus";

/// Where the collections are, and their interface (for item signals).
const COLLECTIONS: &str = "/org/freedesktop/secrets/collection";
const COLLECTION_INTERFACE: &str = "org.freedesktop.Secret.Collection";

/// Notices kept unread while the loop probes: a probe follows any of them,
/// so a few stand for many (a full queue only holds up the feed's own
/// connection).
const QUEUED: usize = 8;

/// Subscribes to both signals on a new connection to the session bus.
///
/// # Errors
/// No session bus, or the bus refused the match rules.
pub fn feed() -> zbus::Result<ChangeFeed> {
    let connection = Connection::session()?;
    // Every signal of the service: `CollectionChanged`, and also
    // `CollectionCreated`, which `KeePassXC` sends when it opens (unlocks)
    // a database after it took its name on the bus.
    let collection_changed = MatchRule::builder()
        .msg_type(Type::Signal)
        .path(SERVICE_PATH)?
        .interface(SERVICE_INTERFACE)?
        .build();
    let owner_changed = MatchRule::builder()
        .msg_type(Type::Signal)
        .sender(BUS)?
        .interface(BUS)?
        .member("NameOwnerChanged")?
        .add_arg(SECRETS)?
        .build();
    let item_changed = MatchRule::builder()
        .msg_type(Type::Signal)
        .path_namespace(COLLECTIONS)?
        .interface(COLLECTION_INTERFACE)?
        .build();
    let changed = MessageIterator::for_match_rule(collection_changed, &connection, Some(QUEUED))?
        .into_inner();
    let appeared =
        MessageIterator::for_match_rule(owner_changed, &connection, Some(QUEUED))?.into_inner();
    let items =
        MessageIterator::for_match_rule(item_changed, &connection, Some(QUEUED))?.into_inner();
    // An error item is a message the connection could not read: not a
    // notice. The stream ends when the connection does.
    let notices = stream::select(stream::select(changed, appeared), items)
        .filter_map(|message| future::ready(message.ok().map(drop)));
    Ok(Box::pin(notices))
}
