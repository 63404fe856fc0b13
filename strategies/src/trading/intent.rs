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

/// The JSON object `trade_intent_grammar` produces.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelIntent {
    action: TradeAction,
    token_in: Address,
    token_out: Address,
    amount_in: String,
    max_slippage_bps: u32,
    reason: String,
}

/// Why model output is not an intent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntentParseError {
    /// Not JSON of the intent's shape.
    #[error("malformed intent JSON: {0}")]
    Json(String),
    /// `amount_in` is not a canonical decimal integer that fits 256 bits.
    #[error("amount_in {0:?} is not a decimal integer")]
    Amount(String),
}

/// Parses model output (the `trade_intent_grammar` JSON). Anything else is an error, which the
/// strategy records as a refusal: a parse failure never becomes a trade.
pub fn parse_model_intent(text: &str) -> Result<TradeIntent, IntentParseError> {
    let raw: ModelIntent =
        serde_json::from_str(text.trim()).map_err(|e| IntentParseError::Json(e.to_string()))?;
    let canonical = !raw.amount_in.is_empty()
        && raw.amount_in.len() <= 78
        && raw.amount_in.bytes().all(|b| b.is_ascii_digit())
        && (raw.amount_in == "0" || !raw.amount_in.starts_with('0'));
    if !canonical {
        return Err(IntentParseError::Amount(raw.amount_in));
    }
    let amount_in = U256::from_str_radix(&raw.amount_in, 10)
        .map_err(|_| IntentParseError::Amount(raw.amount_in.clone()))?;
    Ok(TradeIntent {
        action: raw.action,
        token_in: raw.token_in,
        token_out: raw.token_out,
        amount_in,
        max_slippage_bps: raw.max_slippage_bps,
        router: None,
        reason: raw.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grammar_output() {
        let text = r#"{"action":"buy","token_in":"0x1111111111111111111111111111111111111111","token_out":"0x2222222222222222222222222222222222222222","amount_in":"1000","max_slippage_bps":50,"reason":"up"}"#;
        let i = parse_model_intent(text).unwrap();
        assert_eq!(i.action, TradeAction::Buy);
        assert_eq!(i.amount_in, U256::from(1000u64));
        assert_eq!(i.router, None);
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "buy everything",
            r#"{"action":"buy"}"#,
            r#"{"action":"yolo","token_in":"0x1111111111111111111111111111111111111111","token_out":"0x2222222222222222222222222222222222222222","amount_in":"1","max_slippage_bps":1,"reason":""}"#,
            r#"{"action":"buy","token_in":"0x1111111111111111111111111111111111111111","token_out":"0x2222222222222222222222222222222222222222","amount_in":"-1","max_slippage_bps":1,"reason":""}"#,
            r#"{"action":"buy","token_in":"0x1111111111111111111111111111111111111111","token_out":"0x2222222222222222222222222222222222222222","amount_in":"0x10","max_slippage_bps":1,"reason":""}"#,
            r#"{"action":"buy","token_in":"0x1111111111111111111111111111111111111111","token_out":"0x2222222222222222222222222222222222222222","amount_in":"1","max_slippage_bps":1,"reason":"","router":"0x3333333333333333333333333333333333333333"}"#,
            // 2^256 does not fit.
            r#"{"action":"buy","token_in":"0x1111111111111111111111111111111111111111","token_out":"0x2222222222222222222222222222222222222222","amount_in":"115792089237316195423570985008687907853269984665640564039457584007913129639936","max_slippage_bps":1,"reason":""}"#,
        ] {
            assert!(parse_model_intent(bad).is_err(), "{bad}");
        }
    }
}
