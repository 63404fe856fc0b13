//! Trade intents: what a policy (a model or a classical rule) proposes. An intent is only a
//! proposal; the [`Firewall`](super::Firewall) decides whether anything is sent.

use alloy::primitives::{Address, U256};
use serde::{Deserialize, Serialize};

/// Buy base with quote, sell base for quote, or do nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TradeAction {
    /// Quote in, base out.
    Buy,
    /// Base in, quote out.
    Sell,
    /// No trade.
    Hold,
}

/// A proposed swap of an exact input amount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeIntent {
    /// What the proposer says it wants.
    pub action: TradeAction,
    /// The token paid in.
    pub token_in: Address,
    /// The token bought.
    pub token_out: Address,
    /// Exact input, in `token_in` base units.
    pub amount_in: U256,
    /// The slippage the proposer accepts, in bps (the firewall's bound still applies).
    pub max_slippage_bps: u32,
    /// The router to trade through; `None` uses the policy's first allowed router. Model
    /// intents never name one (the grammar has no such field).
    pub router: Option<Address>,
    /// The proposer's free-text reason (recorded, never interpreted).
    pub reason: String,
}

impl TradeIntent {
    /// A buy (paying quote) or sell (paying base) of `bps` of the balance paid with, asking
    /// `max_slippage_bps`; a hold for [`TradeAction::Hold`].
    pub fn sized(
        market: &super::market::MarketSnapshot,
        action: TradeAction,
        bps: u32,
        max_slippage_bps: u32,
        reason: String,
    ) -> Self {
        let (token_in, token_out, balance) = match action {
            TradeAction::Buy => (market.quote, market.base, market.balance_quote),
            TradeAction::Sell => (market.base, market.quote, market.balance_base),
            TradeAction::Hold => return Self::hold(reason),
        };
        Self {
            action,
            token_in,
            token_out,
            amount_in: balance.saturating_mul(U256::from(bps)) / U256::from(super::market::BPS),
            max_slippage_bps,
            router: None,
            reason,
        }
    }

    /// A hold.
    pub fn hold(reason: impl Into<String>) -> Self {
        Self {
            action: TradeAction::Hold,
            token_in: Address::ZERO,
            token_out: Address::ZERO,
            amount_in: U256::ZERO,
            max_slippage_bps: 0,
            router: None,
            reason: reason.into(),
        }
    }
}

/// Why a proposal is not an intent (recorded as a refusal, never traded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntentParseError {
    /// Not JSON of the expected shape.
    #[error("malformed intent JSON: {0}")]
    Json(String),
    /// The model's decision is not one of the choices it was offered.
    #[error(transparent)]
    Decision(#[from] super::decision::DecisionError),
}
