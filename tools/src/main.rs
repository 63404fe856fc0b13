//! The `inft` command-line program.

fn main() {}
