#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod config;
mod fleet;
pub mod host;
mod http;
pub mod lines;
mod redact;
mod schedule;
mod serve;
pub mod shutdown;
mod state;
mod supervisor;
pub mod telemetry;

pub use config::{AgentSpec, Schedule, ServeConfig};
pub use host::{AgentError, AgentHost, HostedAgent, StepSummary, StopReason};
pub use serve::{Observer, ServeError, ServeReport, Service, serve};
pub use shutdown::Shutdown;
pub use state::{AgentState, AgentView, LastAction, StopInfo};
