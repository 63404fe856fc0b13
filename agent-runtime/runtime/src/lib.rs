#![doc = include_str!("../README.md")]

mod open;
mod remember;
mod runner;
mod strategy;

pub use open::{OpenedAgent, UnsealError, UnsealOptions, UnsealedAgent, open_agent, unseal_agent};
pub use remember::{RememberError, Remembered, RunMemory, remember_run};
pub use runner::{
    RunError, RunReport, StepReport, record_action, record_signed, run_step, run_steps,
};
pub use strategy::{AgentSession, GenerationTotals, Strategy, StrategyError};
