//! End-to-end tests against a real anvil chain, the real contracts and real llama.cpp.

mod creative;
mod transfer;
mod world;
