//! The trading agent: observe a Uniswap V2 market → a policy (model or classical rule) proposes
//! a [`TradeIntent`] → the owner's [`Firewall`] approves or refuses it → the swap is simulated
//! with `eth_call` → sent through a crash-safe [`NonceManager`] from the agent's token-bound
//! account → recorded (trades, refusals and holds alike) in the on-chain action log.
//!
//! - [`market`]: pool maths identical to the router's, [`MarketSnapshot`]s, and a seeded
//!   [`PriceProcess`] that moves the pool.
//! - [`decision`]: what a model decides (buy / sell / hold, a fraction, a reason) and the
//!   order the runtime makes of it.
//! - [`policies`]: the [`TradingPolicy`] trait, [`LlmPolicy`], [`Momentum`], [`MeanReversion`].
//! - [`firewall`]: the owner's [`Policy`] and the checks between intent and signer.
//! - [`exec`]: swap building, simulation, the nonce manager.
//! - [`strategy`]: [`TradingStrategy`], the `agent_runtime` strategy that ties it together,
//!   with PnL accounting and a dry-run mode.
//! - [`backtest`]: policies compared on a seeded simulated pool under the same firewall,
//!   nothing sent.

pub mod backtest;
pub mod decision;
pub mod exec;
pub mod firewall;
pub mod intent;
pub mod market;
pub mod policies;
pub mod strategy;

pub use decision::{Choices, ModelDecision, PairSymbols};
pub use exec::{Fill, NonceManager, SendOptions, shared_key_provider};
pub use firewall::{ApprovedTrade, Firewall, FirewallState, Policy, PolicyError, Refusal};
pub use intent::{TradeAction, TradeIntent};
pub use market::{MarketReader, MarketSnapshot, PriceProcess, get_amount_out};
pub use policies::{
    BUY_THE_DIPS, Decision, FOLLOW_THE_TREND, LlmPolicy, MeanReversion, Momentum, RuleParams,
    TradingPolicy, policy_by_name,
};
pub use strategy::{TradingStatus, TradingStrategy};

/// Why a trading step could not complete (refusals are not errors: they are recorded).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TradingError {
    /// An RPC request failed.
    #[error("{what}: {detail}")]
    Rpc {
        /// What was being done.
        what: &'static str,
        /// The transport error.
        detail: String,
    },
    /// A contract call failed.
    #[error("{what}: {detail}")]
    Call {
        /// What was being called.
        what: &'static str,
        /// The error.
        detail: String,
    },
    /// The chain answered something unexpected.
    #[error("chain: {0}")]
    Chain(String),
    /// Signing a transaction failed.
    #[error("signing: {0}")]
    Sign(String),
    /// The nonce manager's database failed.
    #[error("nonce database: {0}")]
    Db(#[source] Box<agent_runtime::db::DbError>),
    /// Another transaction of this key took the nonce before ours was mined.
    #[error("nonce {nonce} was used by another transaction")]
    Replaced {
        /// The nonce.
        nonce: u64,
    },
}

impl TradingError {
    /// Whether the nonce manager's fenced database refused to persist a signed transaction
    /// because this node's lease on the agent was lost ([`DbError::LeaseLost`]): nothing was
    /// signed into the database or broadcast, and the agent must stop here (another node owns
    /// it now). The [`DbError`] is also this error's [`source`](std::error::Error::source).
    ///
    /// [`DbError`]: agent_runtime::db::DbError
    /// [`DbError::LeaseLost`]: agent_runtime::db::DbError::LeaseLost
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, Self::Db(e) if e.is_lease_lost())
    }

    pub(crate) fn rpc<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> Self {
        move |e| Self::Rpc {
            what,
            detail: e.to_string(),
        }
    }

    pub(crate) fn call<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> Self {
        move |e| Self::Call {
            what,
            detail: e.to_string(),
        }
    }
}

impl From<TradingError> for inft_runtime::StrategyError {
    fn from(e: TradingError) -> Self {
        Self::Other(Box::new(e))
    }
}
