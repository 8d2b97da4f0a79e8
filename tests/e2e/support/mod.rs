//! Real parts for integration tests, each owning the process it spawns and
//! killing it on `Drop`, so a failing test leaves nothing running:
//! - [`bus`]: a private `dbus-daemon` per test;
//! - [`keyring`]: a `gnome-keyring-daemon` on that bus;
//! - [`daemon`]: the real `tokend`, and ([`tokenctl_run`]) `tokenctl` against it;
//!   [`held_config`]: one caught while it reads its config;
//! - [`file_store`]: a state directory and key for the encrypted file store;
//! - [`provider`]: a provider emulator on its own runtime;
//! - [`process`]: what `/proc` says about a process;
//! - [`logind`]: a stub logind that announces sleeps and hands out inhibitors;
//! - [`other_uid`]: a second local user, with binaries it can reach;
//! - [`tmpfs`]: a small file system that fills up or turns read-only (root);
//! - [`skip`]: saying a test is skipped where it shows.

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod bus;
pub mod child_lines;
pub mod daemon;
pub mod file_store;
pub mod flows;
pub mod held_config;
pub mod hung_mount;
pub mod keyring;
pub mod login_run;
pub mod logind;
pub mod mount_namespace;
pub mod openmetrics;
pub mod other_uid;
pub mod process;
pub mod provider;
pub mod script_server;
pub mod skip;
pub mod tmpfs;
pub mod tokenctl_run;
