//! The limit on open files, raised at the start from the soft limit to
//! the hard one.
//!
//! Each socket connection holds a descriptor (up to
//! [`MAX_CONNECTIONS`] at once), beside the store's, the bus's, the
//! providers' connections and the hooks' pipes. A soft limit below that (a
//! shell's `ulimit -n 64`, a container's default) let a burst of clients
//! run tokend out of descriptors: new clients waited (`accept_failed`) and
//! refreshes could not connect ("Too many open files"). tokend polls with
//! epoll, never `select`, so descriptors numbered past 1024 do no harm,
//! and the soft limit is raised to the hard one, as systemd advises for
//! such programs. A hard limit still below what tokend may need is said.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tracing::{debug, warn};

use crate::ipc::socket::MAX_CONNECTIONS;

/// Descriptors tokend may hold besides its socket connections: the store,
/// the bus, connections to providers, hooks' pipes, the log.
const OWN_DESCRIPTORS: u64 = 128;

/// Raises the soft limit on open files to the hard one, and warns when
/// that is still less than tokend may need.
pub(super) fn raise_open_file_limit() {
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            debug!(
                "the soft limit on open files stays at {:?}: {e}",
                limit.current
            );
        }
    }
    let now = getrlimit(Resource::Nofile).current;
    let needed = MAX_CONNECTIONS as u64 + OWN_DESCRIPTORS;
    if let Some(open_files) = now.filter(|n| *n < needed) {
        warn!(
            event = "few_open_files",
            "tokend may have {open_files} files open (its hard limit: `ulimit -Hn`, \
             `LimitNOFILE=`), fewer than the {MAX_CONNECTIONS} socket connections it serves \
             at once and {OWN_DESCRIPTORS} of its own: a burst of clients can run it out of \
             them (new clients then wait, and refreshes cannot connect)"
        );
    }
}
