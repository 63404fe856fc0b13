//! End-to-end tests against a real anvil chain, the real contracts and real llama.cpp.

mod audit;
mod creative;
mod foreign_log;
mod market;
mod memory;
mod provenance;
mod rekey;
mod trading;
mod transfer;
mod world;
