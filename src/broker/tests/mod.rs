//! Tests of the broker as a whole, through its API: each file one concern.
//! The session's state machine has its own table tests next to it
//! (`session/machine/tests.rs`).

mod prepared_save;
mod restore_waits_for_store;
mod status_pages;
mod store_health;
mod write_order;
