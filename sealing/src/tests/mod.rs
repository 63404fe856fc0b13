//! Unit tests with access to the deterministic sealing hooks.

mod keys;
mod roundtrip;
mod tamper;
mod vectors;
