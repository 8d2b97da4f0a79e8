//! `tokend-emulator` (placeholder while the crate takes shape).

fn main() {}
