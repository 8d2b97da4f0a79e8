//! The methods tokend serves on D-Bus, by interface and signature: the
//! table the call router (`calls.rs`) checks each incoming call against,
//! and which a unit test compares with the committed interface file.

/// The provider objects' interface.
pub(super) const PROVIDER_INTERFACE: &str = "org.tokend.Provider1";
pub(super) const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
pub(super) const INTROSPECTABLE: &str = "org.freedesktop.DBus.Introspectable";
pub(super) const PEER: &str = "org.freedesktop.DBus.Peer";
pub(super) const OBJECT_MANAGER: &str = "org.freedesktop.DBus.ObjectManager";

/// A method of `org.tokend.Broker1`: its name and D-Bus signatures.
pub(super) struct Method {
    /// The member name.
    pub(super) name: &'static str,
    /// The signature of its arguments.
    pub(super) input: &'static str,
    /// The signature of its answer (for the check against the file).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by the test against the interface file")
    )]
    pub(super) output: &'static str,
}

/// The methods of `org.tokend.Broker1`, as the committed interface file
/// declares them (a unit test checks the two agree).
pub(super) const BROKER_METHODS: [Method; 7] = [
    Method {
        name: "GetToken",
        input: "s",
        output: "sx",
    },
    Method {
        name: "GetTokenMinValid",
        input: "su",
        output: "sx",
    },
    Method {
        name: "Login",
        input: "s",
        output: "sssu",
    },
    Method {
        name: "Logout",
        input: "s",
        output: "",
    },
    Method {
        name: "CancelLogin",
        input: "s",
        output: "b",
    },
    Method {
        name: "ListProviders",
        input: "",
        output: "as",
    },
    Method {
        name: "GetMetrics",
        input: "",
        output: "s",
    },
];

/// The standard methods and their argument signatures.
pub(super) const STANDARD_METHODS: [(&str, &str, &str); 7] = [
    (INTROSPECTABLE, "Introspect", ""),
    (PEER, "Ping", ""),
    (PEER, "GetMachineId", ""),
    (PROPERTIES, "Get", "ss"),
    (PROPERTIES, "GetAll", "s"),
    (PROPERTIES, "Set", "ssv"),
    (OBJECT_MANAGER, "GetManagedObjects", ""),
];

#[cfg(test)]
mod tests {
    use super::BROKER_METHODS;
    use crate::ipc::dbus::introspect::interface_block;

    /// `(name, in-signature, out-signature)` of each method of `interface`
    /// in the committed file.
    fn methods_in_file(interface: &str) -> Vec<(String, String, String)> {
        let block = interface_block(interface);
        let mut methods = Vec::new();
        for method in block.split("<method name=\"").skip(1) {
            let name = method[..method.find('"').unwrap()].to_owned();
            let body = &method[..method.find("</method>").unwrap_or(method.len())];
            let (mut input, mut output) = (String::new(), String::new());
            for arg in body.split("<arg ").skip(1) {
                let ty = arg.split("type=\"").nth(1).unwrap();
                let ty = &ty[..ty.find('"').unwrap()];
                if arg.contains("direction=\"in\"") {
                    input.push_str(ty);
                } else {
                    output.push_str(ty);
                }
            }
            methods.push((name, input, output));
        }
        methods.sort();
        methods
    }

    #[test]
    fn the_method_table_matches_the_committed_interface_file() {
        let mut served: Vec<(String, String, String)> = BROKER_METHODS
            .iter()
            .map(|m| (m.name.to_owned(), m.input.to_owned(), m.output.to_owned()))
            .collect();
        served.sort();
        assert_eq!(served, methods_in_file("org.tokend.Broker1"));
        assert!(methods_in_file("org.tokend.Provider1").is_empty());
    }
}
