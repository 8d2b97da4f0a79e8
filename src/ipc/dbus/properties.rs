//! What D-Bus callers read of the broker's reports: the properties of
//! provider objects (`org.tokend.Provider1`) and of the broker object (the
//! store's state), built from the core's [`SessionReport`] and
//! [`StoreReport`] each time they are asked for. Nothing is cached here:
//! the broker is asked again, as the caller, for every call and signal.

use std::collections::HashMap;
use std::time::SystemTime;

use zbus::zvariant::Value;

use super::BROKER_INTERFACE;
use super::methods::{INTROSPECTABLE, OBJECT_MANAGER, PEER, PROPERTIES, PROVIDER_INTERFACE};
use super::objects::Object;
use crate::broker::clock::unix_secs;
use crate::broker::{SessionReport, StoreReport};

/// The longest interface or property name an error shows whole: the bus's
/// limit on a name (255 bytes).
const MAX_SHOWN_NAME: usize = 255;

/// An interface or property name a caller sent as an argument of `Get`,
/// `GetAll` or `Set`, as an error message shows it: escaped, so no control
/// or bidi character reaches a terminal that prints the error, and cut
/// after [`MAX_SHOWN_NAME`] bytes, so a megabyte of name is not echoed
/// back. The bus checks the names in a call's header, not its arguments.
pub(super) fn shown_name(name: &str) -> String {
    let mut end = name.len().min(MAX_SHOWN_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let shown = name[..end].escape_debug().to_string();
    if end == name.len() {
        shown
    } else {
        format!("{shown}… ({} bytes)", name.len())
    }
}

/// The properties of `interface` on `object`: a provider's, and the
/// store's on the broker object (`store`: for callers who may see it).
pub(super) fn properties_of(
    object: Object<'_>,
    provider: Option<&SessionReport>,
    store: Option<&StoreReport>,
    interface: &str,
) -> Result<Vec<(&'static str, Value<'static>)>, zbus::fdo::Error> {
    match (provider, interface) {
        (Some(report), PROVIDER_INTERFACE | "") => Ok(provider_properties(report)),
        (_, BROKER_INTERFACE | "") if matches!(object, Object::Broker) => {
            Ok(store.map_or_else(unknown_store_properties, store_properties))
        }
        (_, OBJECT_MANAGER) if matches!(object, Object::Broker) => Ok(Vec::new()),
        (_, PROPERTIES | INTROSPECTABLE | PEER | "") => Ok(Vec::new()),
        _ => Err(zbus::fdo::Error::UnknownInterface(format!(
            "no interface {}",
            shown_name(interface)
        ))),
    }
}

/// The store's properties on `org.tokend.Broker1`.
pub(super) fn store_properties(store: &StoreReport) -> Vec<(&'static str, Value<'static>)> {
    let (reason, since) = match &store.outage {
        None => (String::new(), 0),
        Some(outage) => (outage.reason.clone(), unix_secs(outage.since)),
    };
    vec![
        ("StoreState", Value::from(store.state_name())),
        ("StoreError", Value::from(reason)),
        ("StoreUnavailableSince", Value::from(since)),
    ]
}

/// The store's properties as a caller who may see no provider reads them:
/// there (as introspection says), and empty.
fn unknown_store_properties() -> Vec<(&'static str, Value<'static>)> {
    vec![
        ("StoreState", Value::from("")),
        ("StoreError", Value::from("")),
        ("StoreUnavailableSince", Value::from(0_i64)),
    ]
}

/// The `org.tokend.Provider1` properties of a provider.
pub(super) fn provider_properties(report: &SessionReport) -> Vec<(&'static str, Value<'static>)> {
    vec![
        ("Name", Value::from(report.name.clone())),
        ("Dialect", Value::from(report.dialect)),
        ("State", Value::from(report.phase.name())),
        (
            "ExpiresAt",
            Value::from(unix_secs_or_zero(report.expires_at)),
        ),
        ("Scopes", Value::from(report.scopes.clone())),
        (
            "LastError",
            Value::from(report.last_error.clone().unwrap_or_default()),
        ),
        (
            "LoginNeededBy",
            Value::from(unix_secs_or_zero(report.login_needed_by)),
        ),
    ]
}

/// A time as D-Bus properties and signals carry it: Unix seconds, 0 for
/// none.
pub(super) fn unix_secs_or_zero(time: Option<SystemTime>) -> i64 {
    time.map_or(0, unix_secs)
}

/// A provider's entry in `GetManagedObjects` and `InterfacesAdded`.
pub(super) fn managed_object(
    report: &SessionReport,
) -> HashMap<&'static str, HashMap<&'static str, Value<'static>>> {
    HashMap::from([
        (
            PROVIDER_INTERFACE,
            provider_properties(report).into_iter().collect(),
        ),
        (PROPERTIES, HashMap::new()),
        (INTROSPECTABLE, HashMap::new()),
        (PEER, HashMap::new()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name a caller sent is shown escaped and cut: a terminal printing
    /// the error meets no escape sequence or bidi control, and a megabyte
    /// of name is not sent back. A real name is shown as it is.
    #[test]
    fn a_callers_name_is_shown_escaped_and_cut() {
        assert_eq!(shown_name("org.tokend.Provider1"), "org.tokend.Provider1");
        let shown = shown_name("X\u{1b}[31mRED\u{7}\n\u{202e}evil");
        assert!(
            !shown.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{shown:?}"
        );
        assert!(shown.contains("\\u{1b}[31mRED"), "{shown}");
        let huge = "é".repeat(1 << 19);
        let shown = shown_name(&huge);
        assert!(shown.len() < 2 * MAX_SHOWN_NAME, "{}", shown.len());
        assert!(shown.ends_with("… (1048576 bytes)"), "{shown}");
        let Err(refused) = properties_of(Object::Broker, None, None, &huge) else {
            panic!("a megabyte of interface name was served");
        };
        assert!(refused.to_string().len() < 2 * MAX_SHOWN_NAME, "{refused}");
    }
}
