//! The desktop's notifications: a session that needs a login (or will
//! soon) is shown on the session bus's notification server.

use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use zbus::Connection;

use super::{NOTIFY_TIMEOUT, happened};
use crate::broker::{AttentionKind, EventFeed};

/// Shows a desktop notification for each session that needs a login (or
/// will soon), until `shutdown`.
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
        let Some(what) = happened(&event) else {
            continue;
        };
        let needs = if what.event == AttentionKind::LoginRequired.name() {
            "needs a login"
        } else if what.event == AttentionKind::RefreshTokenExpiring.name() {
            "needs a new login soon"
        } else {
            continue;
        };
        // On its own: a notification server that takes its time (or never
        // answers) must not hold the next.
        let (bus, provider) = (bus.clone(), what.provider.to_owned());
        tokio::spawn(async move {
            if tokio::time::timeout(NOTIFY_TIMEOUT, notify(&bus, &provider, needs))
                .await
                .is_err()
            {
                debug!(
                    provider,
                    "no desktop notification: no answer within {} s",
                    NOTIFY_TIMEOUT.as_secs()
                );
            }
        });
    }
}

/// A desktop notification (freedesktop Notifications) that `provider`
/// `needs` a login, with the command that does it.
async fn notify(bus: &Connection, provider: &str, needs: &str) {
    let summary = format!("tokend: {provider} {needs}");
    let body = format!("Run: tokenctl login {provider}");
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
