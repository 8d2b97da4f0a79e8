//! Real services for integration tests: a private `dbus-daemon` per test and
//! a `gnome-keyring-daemon` on it. Each helper owns the process it spawns and
//! kills it on `Drop`, so a failing test leaves nothing running.

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod bus;
pub mod keyring;

pub mod daemon;
