//! `tokend` (placeholder while the crate takes shape).

fn main() {}
