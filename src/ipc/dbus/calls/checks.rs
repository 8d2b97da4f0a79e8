//! What a call must be before it is routed: a method the object has, with
//! the arguments it takes (the standard errors otherwise), `Peer` answered
//! at any path, and `Set` refused as every property is read-only.

use zbus::Message;

use super::super::BROKER_INTERFACE;
use super::super::methods::{
    BROKER_METHODS, INTROSPECTABLE, OBJECT_MANAGER, PEER, PROPERTIES, PROVIDER_INTERFACE,
    STANDARD_METHODS,
};
use super::super::objects::Object;
use super::super::properties::shown_name;
use super::{Answer, Refusal, Reply};

/// The answer to a call of `org.freedesktop.DBus.Peer` (named, or the
/// only interface with `member` when none is), at whatever path: the
/// specification has Peer answered at any (as libdbus, sd-bus and GDBus
/// do), and it says nothing of the objects. `None` for any other call.
pub(super) fn peer_call(call: &Message, interface: Option<&str>, member: &str) -> Option<Answer> {
    let peer = interface == Some(PEER)
        || (interface.is_none()
            && STANDARD_METHODS
                .iter()
                .any(|(i, name, _)| *i == PEER && *name == member));
    if !peer {
        return None;
    }
    let signature = call.body().signature().to_string_no_parens();
    Some(
        check_signature(Object::Broker, PEER, member, &signature).and_then(|()| {
            if member == "Ping" {
                Ok(Reply::Empty)
            } else {
                machine_id()
            }
        }),
    )
}

/// Why `Set` of `iface`'s property `name` is refused, given the
/// interface's `properties` (looked up as `Get` looks them up): a
/// property that is there is read-only; one that is not is named so.
pub(super) fn refuse_set<V>(properties: &[(&str, V)], iface: &str, name: &str) -> Refusal {
    Refusal::Standard(if properties.iter().any(|(key, _)| *key == name) {
        zbus::fdo::Error::PropertyReadOnly(format!(
            "{}.{name} is read-only, as every property of tokend is",
            shown_name(iface)
        ))
    } else {
        zbus::fdo::Error::UnknownProperty(format!(
            "{} has no property {}",
            shown_name(iface),
            shown_name(name)
        ))
    })
}

/// The interface of a call that names none: the only one with `member`
/// on the object.
pub(super) fn implied_interface(object: Object<'_>, member: &str) -> &'static str {
    if matches!(object, Object::Broker) && BROKER_METHODS.iter().any(|m| m.name == member) {
        return BROKER_INTERFACE;
    }
    STANDARD_METHODS
        .iter()
        .find(|(_, name, _)| *name == member)
        .map_or("", |(interface, _, _)| interface)
}

/// Refuses a call of a method the object does not have, or with the wrong
/// arguments, as the standard errors say.
pub(super) fn check_signature(
    object: Object<'_>,
    interface: &str,
    member: &str,
    signature: &str,
) -> Result<(), Refusal> {
    let expected = match interface {
        BROKER_INTERFACE if matches!(object, Object::Broker) => BROKER_METHODS
            .iter()
            .find(|m| m.name == member)
            .map(|m| m.input),
        OBJECT_MANAGER if !matches!(object, Object::Broker) => {
            // Said where it is: "has no method GetManagedObjects" would
            // suggest the interface lacks it.
            return Err(Refusal::Standard(zbus::fdo::Error::UnknownInterface(
                format!(
                    "{OBJECT_MANAGER} is served at {}, not here",
                    super::super::BROKER_PATH
                ),
            )));
        }
        PROPERTIES | INTROSPECTABLE | PEER | OBJECT_MANAGER => STANDARD_METHODS
            .iter()
            .find(|(i, name, _)| *i == interface && *name == member)
            .map(|(_, _, input)| *input),
        // The provider's interface is there, with properties only.
        PROVIDER_INTERFACE if matches!(object, Object::Provider(_)) => None,
        // A call that names no interface, of a member none has here.
        "" => {
            return Err(Refusal::Standard(zbus::fdo::Error::UnknownMethod(format!(
                "no interface here has a method {member}"
            ))));
        }
        // tokend's interfaces, on the wrong object: said where they are.
        BROKER_INTERFACE => {
            return Err(Refusal::Standard(zbus::fdo::Error::UnknownInterface(
                format!(
                    "{BROKER_INTERFACE} is served at {}, not here",
                    super::super::BROKER_PATH
                ),
            )));
        }
        PROVIDER_INTERFACE => {
            return Err(Refusal::Standard(zbus::fdo::Error::UnknownInterface(
                format!(
                    "{PROVIDER_INTERFACE} is served at {}/NAME, one object per provider (its GetToken is {BROKER_INTERFACE}'s, at {}), not here",
                    super::super::PROVIDERS_PATH,
                    super::super::BROKER_PATH
                ),
            )));
        }
        _ => {
            return Err(Refusal::Standard(zbus::fdo::Error::UnknownInterface(
                format!("no interface {interface} here"),
            )));
        }
    };
    match expected {
        None => Err(Refusal::Standard(zbus::fdo::Error::UnknownMethod(format!(
            "{interface} has no method {member}"
        )))),
        Some(expected) if expected != signature => {
            Err(Refusal::Standard(zbus::fdo::Error::InvalidArgs(format!(
                "{interface}.{member} takes ({expected}), got ({signature})"
            ))))
        }
        Some(_) => Ok(()),
    }
}

/// `Peer.GetMachineId`'s answer: this machine's D-Bus machine id.
fn machine_id() -> Answer {
    std::fs::read_to_string("/etc/machine-id")
        .map(|id| Reply::Text(id.trim().to_owned()))
        .map_err(|e| {
            Refusal::Standard(zbus::fdo::Error::Failed(format!(
                "cannot read /etc/machine-id: {e}"
            )))
        })
}
