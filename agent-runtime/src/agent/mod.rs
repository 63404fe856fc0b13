//! Agents: what a token's sealed data holds, and the loop that runs a strategy on it.
//!
//! A token's private data is three entries, in this order ([`EntryKind`]):
//! the GGUF model, the agent's secp256k1 private key (32 bytes) and the [`AgentConfig`] as JSON,
//! optionally followed by a fourth, the agent's memory ([`crate::memory`]).
//! [`run_steps`] drives a [`Strategy`] over an [`AgentSession`]: each step's [`ActionDraft`]
//! becomes a signed record in the outbox before anything touches the chain.
//!
//! [`ActionDraft`]: crate::record::ActionDraft

mod config;
mod runner;
mod strategy;

pub use config::{AgentConfig, AgentKind, CONFIG_VERSION, ConfigError, EntryKind};
pub use runner::{RunError, RunReport, StepReport, record_action, run_step, run_steps};
pub use strategy::{AgentSession, GenerationTotals, Strategy, StrategyError};
