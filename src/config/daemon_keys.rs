//! The keys of `[daemon]`: named by the table's reader and, to say where a
//! key written elsewhere belongs, by every other table's. A leaf module, so
//! that naming them brings no import.

/// The keys `[daemon]` reads itself.
pub(super) const DAEMON_KEYS: &[&str] = &[
    "socket",
    "socket_mode",
    "socket_group",
    "bus",
    "store",
    "log_level",
    "http_timeout",
    "store_timeout",
    "max_concurrent_refreshes",
    "on_event",
    "notify",
    "refresh_token_warning_days",
];

/// The keys of `[daemon]` that the store's part reads.
pub(super) const STORE_KEYS: &[&str] =
    &["state_directory", "store_key_file", "store_key_credential"];
