//! Front-ends: they translate requests into [`crate::broker::Broker`] calls
//! and hold no state or policy of their own.

pub mod caller_unit;
pub mod dbus;
pub mod lines;
pub mod per_uid;
pub mod primary_groups;
pub mod socket;
