//! Introspection data, per object and per caller.
//!
//! tokend's own interfaces are described once, in the committed
//! `dist/dbus/org.tokend.Broker1.xml`, which is compiled in and served
//! from here: what a client introspects is that file. The method table of
//! `calls` is checked against it by a unit test below.

use std::fmt::Write as _;

/// The committed interface file.
pub(super) const INTERFACE_FILE: &str = include_str!("../../../dist/dbus/org.tokend.Broker1.xml");

const HEADER: &str = r#"<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
"#;

/// The standard interfaces every object of tokend has.
const STANDARD: &str = r#"  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect">
      <arg name="xml_data" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping"/>
    <method name="GetMachineId">
      <arg name="machine_uuid" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="out"/>
    </method>
    <method name="GetAll">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="properties" type="a{sv}" direction="out"/>
    </method>
    <method name="Set">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="in"/>
    </method>
    <signal name="PropertiesChanged">
      <arg name="interface_name" type="s"/>
      <arg name="changed_properties" type="a{sv}"/>
      <arg name="invalidated_properties" type="as"/>
    </signal>
  </interface>
"#;

const OBJECT_MANAGER: &str = r#"  <interface name="org.freedesktop.DBus.ObjectManager">
    <method name="GetManagedObjects">
      <arg name="object_paths_interfaces_and_properties" type="a{oa{sa{sv}}}" direction="out"/>
    </method>
    <signal name="InterfacesAdded">
      <arg name="object_path" type="o"/>
      <arg name="interfaces_and_properties" type="a{sa{sv}}"/>
    </signal>
    <signal name="InterfacesRemoved">
      <arg name="object_path" type="o"/>
      <arg name="interfaces" type="as"/>
    </signal>
  </interface>
"#;

/// The `<interface name="NAME">…</interface>` block of the committed file,
/// indented as there.
///
/// # Panics
/// Never: the names asked for are in the file (a unit test checks).
pub(super) fn interface_block(name: &str) -> &'static str {
    let open = format!("  <interface name=\"{name}\">");
    let start = INTERFACE_FILE
        .find(&open)
        .expect("the interface is in the committed file");
    let close = "</interface>\n";
    let end = start
        + INTERFACE_FILE[start..]
            .find(close)
            .expect("the interface block is closed")
        + close.len();
    &INTERFACE_FILE[start..end]
}

/// What an object holds, for its introspection.
pub(super) enum Node<'a> {
    /// A node on the way to the broker, with its one child.
    Ancestor(&'a str),
    /// `/org/tokend/Broker1`.
    Broker,
    /// `/org/tokend/Broker1/providers`, with the path elements of the
    /// providers the caller may see.
    Providers(Vec<String>),
    /// One provider the caller may see.
    Provider,
}

/// The introspection XML of `node`.
pub(super) fn xml(node: &Node<'_>) -> String {
    let mut out = String::from(HEADER);
    out.push_str("<node>\n");
    match node {
        // The nodes on the way answer the standard interfaces as every
        // object does (`Peer` at any path, `Properties` with none), so
        // they list them, as sd-bus and GDBus do for theirs.
        Node::Ancestor(child) => {
            out.push_str(STANDARD);
            let _ = writeln!(out, "  <node name=\"{child}\"/>");
        }
        Node::Broker => {
            out.push_str(interface_block("org.tokend.Broker1"));
            out.push_str(OBJECT_MANAGER);
            out.push_str(STANDARD);
            out.push_str("  <node name=\"providers\"/>\n");
        }
        Node::Providers(children) => {
            out.push_str(STANDARD);
            for child in children {
                let _ = writeln!(out, "  <node name=\"{child}\"/>");
            }
        }
        Node::Provider => {
            out.push_str(interface_block("org.tokend.Provider1"));
            out.push_str(STANDARD);
        }
    }
    out.push_str("</node>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_list_shows_only_the_children_given() {
        let xml = xml(&Node::Providers(vec!["a".into(), "b_c".into()]));
        assert!(xml.contains("<node name=\"a\"/>") && xml.contains("<node name=\"b_c\"/>"));
        assert_eq!(xml.matches("<node name=").count(), 2);
        assert!(!xml.contains("org.tokend"), "{xml}");
    }

    /// Every node lists the standard interfaces it answers, the nodes on
    /// the way to the broker too (they listed none: `busctl introspect`
    /// showed an empty table).
    #[test]
    fn every_node_lists_the_standard_interfaces() {
        for node in [
            Node::Ancestor("org"),
            Node::Broker,
            Node::Providers(Vec::new()),
            Node::Provider,
        ] {
            let xml = xml(&node);
            for interface in [
                "org.freedesktop.DBus.Introspectable",
                "org.freedesktop.DBus.Peer",
                "org.freedesktop.DBus.Properties",
            ] {
                assert!(
                    xml.contains(&format!("<interface name=\"{interface}\">")),
                    "{xml}"
                );
            }
        }
    }
}
