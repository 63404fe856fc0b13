//! One module per subcommand; shared option groups and helpers in [`common`].

pub(crate) mod audit;
pub(crate) mod authorize;
#[cfg(feature = "engine")]
pub(crate) mod backtest;
pub(crate) mod common;
pub(crate) mod creations;
pub(crate) mod deploy;
pub(crate) mod dev;
#[cfg(feature = "engine")]
pub(crate) mod dev_models;
pub(crate) mod gateway;
pub(crate) mod keys;
#[cfg(feature = "engine")]
pub(crate) mod launch;
pub(crate) mod market;
#[cfg(feature = "engine")]
pub(crate) mod mint;
pub(crate) mod node;
pub(crate) mod oracle;
pub(crate) mod provenance;
pub(crate) mod royalties;
#[cfg(feature = "engine")]
pub(crate) mod run;
pub(crate) mod seal;
#[cfg(feature = "engine")]
pub(crate) mod serve;
pub(crate) mod transfer;
pub(crate) mod unseal;

use crate::cli::Context;

/// A subcommand: its parsed arguments, run once.
pub(crate) trait Run {
    /// Runs the command, printing results through `ctx`.
    async fn run(self, ctx: &Context) -> anyhow::Result<()>;
}
