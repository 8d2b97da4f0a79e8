//! The desktop's notifications: a session that needs a login (or will
//! soon) is shown on the session bus's notification server.

use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use zbus::Connection;

use super::{NOTIFY_TIMEOUT, happened};
use crate::broker::{AttentionKind, EventFeed};

/// Events that come together are shown together once more than this many
/// sessions need the same: one notification naming how many, not one each
/// (2,000 sessions revoked at once showed 2,000).
const MAX_SHOWN_ONE_BY_ONE: usize = 3;

/// How long the first event that needs a person waits for others to come
/// with it (a revocation ends every session within a few seconds).
const GATHER: std::time::Duration = std::time::Duration::from_secs(1);

/// Shows a desktop notification for each session that needs a login (or
/// will soon), until `shutdown`; several at once as one.
pub(super) async fn notify_of_events(
    bus: Connection,
    mut events: EventFeed,
    shutdown: &CancellationToken,
) {
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            () = shutdown.cancelled() => return,
        };
        let Some(event) = event else {
            return;
        };
        let Some(first) = needs(&event) else {
            continue;
        };
        tokio::select! {
            () = tokio::time::sleep(GATHER) => {}
            () = shutdown.cancelled() => return,
        }
        let mut login = Vec::new();
        let mut soon = Vec::new();
        for (provider, need) in std::iter::once(first)
            .chain(std::iter::from_fn(|| events.try_recv()).filter_map(|e| needs(&e)))
        {
            match need {
                Need::Login => login.push(provider),
                Need::LoginSoon => soon.push(provider),
            }
        }
        for (need, providers) in [(Need::Login, login), (Need::LoginSoon, soon)] {
            if providers.len() > MAX_SHOWN_ONE_BY_ONE {
                show(&bus, many(need, &providers));
            } else {
                for provider in providers {
                    show(&bus, one(need, &provider));
                }
            }
        }
    }
}

/// What a session needs of a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Login,
    LoginSoon,
}

/// The provider and what it needs, for the events a notification is for.
fn needs(event: &crate::broker::BrokerEvent) -> Option<(String, Need)> {
    let what = happened(event)?;
    let need = if what.event == AttentionKind::LoginRequired.name() {
        Need::Login
    } else if what.event == AttentionKind::RefreshTokenExpiring.name() {
        Need::LoginSoon
    } else {
        return None;
    };
    Some((what.provider.to_owned(), need))
}

/// Whether `event` is one a notification is shown for (see [`needs`]).
#[cfg(test)]
pub(super) fn notifies(event: &crate::broker::BrokerEvent) -> bool {
    needs(event).is_some()
}

/// A notification's summary and body, and whom it is about (for the log).
struct Notification {
    summary: String,
    body: String,
    about: String,
}

fn one(need: Need, provider: &str) -> Notification {
    let needs = match need {
        Need::Login => "needs a login",
        Need::LoginSoon => "needs a new login soon",
    };
    Notification {
        summary: format!("tokend: {provider} {needs}"),
        body: format!("Run: tokenctl login {provider}"),
        about: provider.to_owned(),
    }
}

fn many(need: Need, providers: &[String]) -> Notification {
    let needs = match need {
        Need::Login => "need a login",
        Need::LoginSoon => "need a new login soon",
    };
    let named = providers[..MAX_SHOWN_ONE_BY_ONE].join(", ");
    let more = providers.len() - MAX_SHOWN_ONE_BY_ONE;
    Notification {
        summary: format!("tokend: {} providers {needs}", providers.len()),
        body: format!(
            "{named} and {more} more: run tokenctl login NAME for each (tokenctl status lists them)"
        ),
        about: format!("{} providers", providers.len()),
    }
}

/// Shows `notification` on its own: a notification server that takes its
/// time (or never answers) must not hold the next.
fn show(bus: &Connection, notification: Notification) {
    let bus = bus.clone();
    tokio::spawn(async move {
        if tokio::time::timeout(NOTIFY_TIMEOUT, notify(&bus, &notification))
            .await
            .is_err()
        {
            debug!(
                provider = notification.about,
                "no desktop notification: no answer within {} s",
                NOTIFY_TIMEOUT.as_secs()
            );
        }
    });
}

/// A desktop notification (freedesktop Notifications) that sessions
/// need a login, with the command that does it.
async fn notify(bus: &Connection, notification: &Notification) {
    let Notification {
        summary,
        body,
        about: provider,
    } = notification;
    let hints: std::collections::HashMap<&str, zbus::zvariant::Value<'_>> =
        std::collections::HashMap::new();
    let sent = bus
        .call_method(
            Some("org.freedesktop.Notifications"),
            "/org/freedesktop/Notifications",
            Some("org.freedesktop.Notifications"),
            "Notify",
            &(
                "tokend",
                0_u32,
                "",
                summary.as_str(),
                body.as_str(),
                Vec::<&str>::new(),
                hints,
                -1_i32,
            ),
        )
        .await;
    match sent {
        Ok(_) => info!(provider, event = "notified", "desktop notification shown"),
        Err(e) => debug!(provider, "no desktop notification: {e}"),
    }
}
