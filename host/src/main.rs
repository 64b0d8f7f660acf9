//! The `capt-host` command line.

fn main() {}
