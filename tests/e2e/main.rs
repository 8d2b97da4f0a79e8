//! tokend's end-to-end tests, in one binary so the suite compiles its
//! support code and links once: the real `tokend` and `tokenctl` against
//! provider emulators on 127.0.0.1, a private `dbus-daemon` and
//! `gnome-keyring-daemon` per test, and real clients (`busctl`, `gdbus`,
//! `secret-tool`, Python).
//!
//! One module per subject; `cargo test --test e2e socket::` runs one.

mod support;

mod allow_units;
mod bus_groups;
mod config_check;
mod config_check_daemon_user;
mod config_presets;
mod config_private_group;
mod dbus;
mod dbus_loss;
mod default_requests;
mod device_login;
mod device_login_hang;
mod dialect_generic_v1;
mod dialect_oracle;
mod dialect_quirks;
mod dialect_trakt;
mod dialect_twilio;
mod discovery;
mod dist;
mod dist_dbus;
mod docker_credential;
mod faults;
mod garbled_answers;
mod git_credential;
mod group_recheck;
mod hardening;
mod hooks;
mod hostile_clients;
mod journald;
mod kubectl_credential;
mod late_answers;
mod login_cancel;
mod malformed_answers;
mod metrics;
mod need_to_know;
mod need_to_know_departure;
mod need_to_know_store;
mod one_daemon_per_store;
mod open_files;
mod persistence_crash;
mod persistence_file_store;
mod persistence_restart;
mod persistence_secret_service;
mod primary_group_change;
mod properties;
mod provider_texts;
mod record_reread;
mod refresh;
mod refresh_storm;
mod refresh_token_expiry;
mod reload_during_refresh;
mod reload_refusals;
mod reload_standing;
mod runtime_dir;
mod sleep;
mod socket;
mod source_layout;
mod start_up_signals;
mod status_check;
mod status_many;
mod stop_in_flight;
mod store_hang;
mod store_hang_threads;
mod store_outage;
mod store_outage_logout;
mod store_secret_service;
mod systemd;
mod tls_roots;
mod tokenctl_cli;
mod tokenctl_exec;
mod world;
