//! What a caller may see: the providers it has a role on (any other is
//! answered as one that does not exist), their properties, the store's
//! state when it sees at least one, and the introspection nodes.

use zbus::zvariant::Value;

use super::super::introspect::Node;
use super::super::objects::Object;
use super::super::properties::properties_of;
use super::{Handler, Refusal};
use crate::broker::{Caller, SessionReport, StoreReport};
use crate::config::object_path_element;

impl Handler {
    /// The status of the provider whose object path ends in `element`, if
    /// `caller` may see it.
    pub(super) fn visible_provider(&self, caller: &Caller, element: &str) -> Option<SessionReport> {
        // Names map to path elements one to one ('-' becomes '_'; the
        // config refuses two names with the same element), so the name is
        // the element itself unless it had a '-'.
        let name = if self.broker.role(caller, element) > crate::broker::Role::None {
            element.to_owned()
        } else if element.contains('_') {
            self.broker
                .provider_names(caller)
                .into_iter()
                .find(|name| object_path_element(name) == element)?
        } else {
            return None;
        };
        self.broker.status(caller, Some(&name)).ok()?.pop()
    }

    /// The properties of `interface` on `object` as `caller` may see them.
    pub(super) fn properties(
        &self,
        caller: &Caller,
        object: Object<'_>,
        provider: Option<&SessionReport>,
        interface: &str,
    ) -> Result<Vec<(&'static str, Value<'static>)>, Refusal> {
        let store = self.store_for(caller, object);
        properties_of(object, provider, store.as_ref(), interface).map_err(Refusal::Standard)
    }

    /// The store's state for the broker object's properties, when
    /// `caller` may see at least one provider (as on the socket: a caller
    /// who may see none learns nothing).
    pub(super) fn store_for(&self, caller: &Caller, object: Object<'_>) -> Option<StoreReport> {
        if !matches!(object, Object::Broker) {
            return None;
        }
        self.broker
            .sees_a_provider(caller)
            .then(|| self.broker.store_status())
    }

    /// The introspection node of `object`, with the children `caller` may see.
    pub(super) fn node<'a>(&self, object: Object<'a>, caller: &Caller) -> Node<'a> {
        match object {
            Object::Ancestor(child) => Node::Ancestor(child),
            Object::Broker => Node::Broker,
            Object::Providers => Node::Providers(
                self.broker
                    .provider_names(caller)
                    .iter()
                    .map(|name| object_path_element(name))
                    .collect(),
            ),
            Object::Provider(_) => Node::Provider,
        }
    }
}
