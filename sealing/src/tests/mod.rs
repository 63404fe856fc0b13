//! Unit tests with access to the deterministic sealing hooks.

mod roundtrip;
