//! Rust bindings for the inft contracts.
