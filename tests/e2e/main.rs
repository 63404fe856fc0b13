//! End-to-end tests against a real anvil chain, the real contracts and real llama.cpp.

mod audit;
mod creative;
mod memory;
mod trading;
mod transfer;
mod world;
