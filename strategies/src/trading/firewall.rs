//! The policy firewall: the owner's rules, checked between every intent and the signer.
//!
//! The [`Policy`] comes from the owner (a JSON file in the runtime's home), never from model
//! output; the model's only input to a trade is the [`TradeIntent`], which the firewall either
//! turns into an [`ApprovedTrade`] with a hard `amount_out_min` or refuses with a [`Refusal`].

use std::path::Path;

use alloy::primitives::{Address, I256, U256};
use serde::{Deserialize, Serialize};

use super::intent::{TradeAction, TradeIntent};
use super::market::{
    BPS, DEFAULT_TWAP_WINDOW_SECS, MarketSnapshot, apply_slippage, deviation_bps, get_amount_out,
    mul_div,
};

/// Seconds in the rolling window of the daily cap.
pub const DAY_SECS: u64 = 86_400;

mod decimal_u256 {
    use alloy::primitives::U256;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let s = String::deserialize(d)?;
        U256::from_str_radix(&s, 10)
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a decimal amount: {e}")))
    }
}

mod decimal_u256_opt {
    use alloy::primitives::U256;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<U256>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<U256>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| {
                U256::from_str_radix(&s, 10).map_err(|e| {
                    serde::de::Error::custom(format!("{s:?} is not a decimal amount: {e}"))
                })
            })
            .transpose()
    }
}

/// Default bound on the spot price's distance from the TWAP (5%).
pub const DEFAULT_MAX_TWAP_DEVIATION_BPS: u32 = 500;

fn default_twap_window_secs() -> u64 {
    DEFAULT_TWAP_WINDOW_SECS
}

fn default_max_twap_deviation_bps() -> u32 {
    DEFAULT_MAX_TWAP_DEVIATION_BPS
}

/// The owner's trading rules. Amounts are in base units, written as decimal strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Tokens the agent may trade (both sides of every swap must be listed).
    pub tokens: Vec<Address>,
    /// Routers the agent may trade through; the first is the default.
    pub routers: Vec<Address>,
    /// Largest single trade, valued in quote at the higher of the mid price and the TWAP.
    #[serde(with = "decimal_u256")]
    pub max_trade_quote: U256,
    /// Most traded volume (in quote, valued as for `max_trade_quote`) in any rolling 24 hours
    /// of chain time.
    #[serde(with = "decimal_u256")]
    pub max_daily_quote: U256,
    /// Largest single trade in base units: what a sell pays, or what a buy gets by pool maths
    /// (no price can make it look smaller). Absent: no base cap.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_u256_opt"
    )]
    pub max_trade_base: Option<U256>,
    /// Most base traded (bought and sold) in any rolling 24 hours of chain time. Absent: no
    /// base cap.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "decimal_u256_opt"
    )]
    pub max_daily_base: Option<U256>,
    /// Seconds the pool's time-weighted average price (from its own price accumulators) is
    /// taken over [default: 1800].
    #[serde(default = "default_twap_window_secs")]
    pub twap_window_secs: u64,
    /// No trade while the spot price is further than this (bps) from the TWAP: the price may
    /// have been pushed just before the step [default: 500].
    #[serde(default = "default_max_twap_deviation_bps")]
    pub max_twap_deviation_bps: u32,
    /// Hard bound on slippage and on the trade's own price impact, in bps.
    pub max_slippage_bps: u32,
    /// Kill switch: no more trades once equity falls this far (bps) below its peak.
    pub max_drawdown_bps: u32,
    /// Seconds a sent swap stays valid (the router's `deadline`).
    pub deadline_secs: u64,
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("policy file {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not valid JSON of the policy's shape.
    #[error("policy file {path}: {source}")]
    Json {
        /// The file.
        path: std::path::PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The rules make no sense (e.g. no router, slippage ≥ 100%).
    #[error("invalid policy: {0}")]
    Invalid(String),
}

impl Policy {
    /// A conservative policy for a market: its two tokens and router, a per-trade cap of
    /// `max_trade_quote`, ten of those per day, no base caps, spot within 5% of the 30-minute
    /// TWAP, 1% slippage, 20% drawdown, 5-minute deadlines.
    pub fn for_market(market: &inft_contracts::deploy::Market, max_trade_quote: U256) -> Self {
        Self {
            tokens: vec![market.base_token, market.quote_token],
            routers: vec![market.router],
            max_trade_quote,
            max_daily_quote: max_trade_quote.saturating_mul(U256::from(10u64)),
            max_trade_base: None,
            max_daily_base: None,
            twap_window_secs: DEFAULT_TWAP_WINDOW_SECS,
            max_twap_deviation_bps: DEFAULT_MAX_TWAP_DEVIATION_BPS,
            max_slippage_bps: 100,
            max_drawdown_bps: 2_000,
            deadline_secs: 300,
        }
    }

    /// A policy that lets no trade through (no token, no router, zero caps): what a model is
    /// offered when its owner's limits are unknown.
    pub fn hold_only() -> Self {
        Self {
            tokens: Vec::new(),
            routers: Vec::new(),
            max_trade_quote: U256::ZERO,
            max_daily_quote: U256::ZERO,
            max_trade_base: Some(U256::ZERO),
            max_daily_base: Some(U256::ZERO),
            twap_window_secs: DEFAULT_TWAP_WINDOW_SECS,
            max_twap_deviation_bps: 0,
            max_slippage_bps: 0,
            max_drawdown_bps: BPS,
            deadline_secs: 1,
        }
    }

    /// Checks that the rules are usable.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.routers.is_empty() {
            return Err(PolicyError::Invalid("no router allowed".into()));
        }
        if self.tokens.len() < 2 {
            return Err(PolicyError::Invalid("fewer than two tokens allowed".into()));
        }
        if self.max_slippage_bps >= BPS || self.max_drawdown_bps > BPS {
            return Err(PolicyError::Invalid(
                "slippage must be < 10000 bps and drawdown ≤ 10000 bps".into(),
            ));
        }
        if self.deadline_secs == 0 {
            return Err(PolicyError::Invalid(
                "deadline_secs must be positive".into(),
            ));
        }
        if self.twap_window_secs == 0 || self.max_twap_deviation_bps > BPS {
            return Err(PolicyError::Invalid(
                "twap_window_secs must be positive and max_twap_deviation_bps ≤ 10000".into(),
            ));
        }
        Ok(())
    }

    /// Parses and validates a policy from JSON.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, PolicyError> {
        let policy: Policy = serde_json::from_str(text).map_err(|source| PolicyError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        policy.validate()?;
        Ok(policy)
    }

    /// Reads a policy file (JSON).
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// Writes the policy as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), PolicyError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|source| PolicyError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        text.push('\n');
        std::fs::write(path, text).map_err(|source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// An 18-decimal token amount in whole units, for a person reading a refusal (the record's
/// structured refusal keeps the exact integers).
fn units(amount: U256) -> String {
    format!("{:.4}", super::market::to_units(amount))
}

/// Why the firewall refused an intent. Recorded on chain with the refusal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refusal {
    /// The model's output was not an intent.
    #[error("malformed intent: {error}")]
    Malformed {
        /// The parse error.
        error: String,
    },
    /// The owner paused the token on chain.
    #[error("the owner paused this agent on chain")]
    Paused,
    /// The drawdown kill switch has tripped.
    #[error(
        "drawdown kill switch: equity {} is {drawdown_bps} bps below peak {}",
        units(*.equity),
        units(*.peak)
    )]
    Drawdown {
        /// Current equity (quote).
        #[serde(with = "decimal_u256")]
        equity: U256,
        /// Peak equity (quote).
        #[serde(with = "decimal_u256")]
        peak: U256,
        /// How far below the peak.
        drawdown_bps: u32,
    },
    /// A token not on the allowlist.
    #[error("token {token} is not allowed")]
    UnknownToken {
        /// The token.
        token: Address,
    },
    /// A router not on the allowlist.
    #[error("router {router} is not allowed")]
    UnknownRouter {
        /// The router.
        router: Address,
    },
    /// Allowed tokens, but not the two of the traded pool (or both the same).
    #[error("no pool for {token_in} → {token_out}")]
    NoPool {
        /// Paid in.
        token_in: Address,
        /// Bought.
        token_out: Address,
    },
    /// The action contradicts the tokens (e.g. `buy` paying in base).
    #[error("action {action:?} does not match the token direction")]
    ActionMismatch {
        /// The stated action.
        action: TradeAction,
    },
    /// Nothing to trade.
    #[error("zero amount")]
    ZeroAmount,
    /// More than the agent holds.
    #[error("amount {} exceeds the balance {}", units(*.amount), units(*.balance))]
    InsufficientBalance {
        /// Asked.
        #[serde(with = "decimal_u256")]
        amount: U256,
        /// Held.
        #[serde(with = "decimal_u256")]
        balance: U256,
    },
    /// Above the per-trade cap.
    #[error(
        "trade worth {} quote exceeds the per-trade cap {}",
        units(*.value),
        units(*.cap)
    )]
    TradeCap {
        /// The trade's value (quote).
        #[serde(with = "decimal_u256")]
        value: U256,
        /// The cap.
        #[serde(with = "decimal_u256")]
        cap: U256,
    },
    /// No time-weighted price to check the spot price against (the pool has no liquidity).
    #[error("no time-weighted average price for the pool")]
    NoTwap,
    /// The spot price is too far from the time-weighted average: it may have been pushed just
    /// before this step, and a trade would fill at the pushed price.
    #[error(
        "spot price is {deviation_bps} bps from the {secs}s time-weighted average (bound {max} bps)"
    )]
    TwapDeviation {
        /// Spot quote per base (UQ112x112).
        #[serde(with = "decimal_u256")]
        spot_x112: U256,
        /// Average quote per base (UQ112x112).
        #[serde(with = "decimal_u256")]
        twap_x112: U256,
        /// Seconds averaged.
        secs: u64,
        /// The distance, in bps of the TWAP.
        deviation_bps: u32,
        /// The policy's bound.
        max: u32,
    },
    /// Above the per-trade cap in base units.
    #[error(
        "trade of {} base exceeds the per-trade base cap {}",
        units(*.amount),
        units(*.cap)
    )]
    BaseCap {
        /// Base sold, or bought by pool maths.
        #[serde(with = "decimal_u256")]
        amount: U256,
        /// The cap.
        #[serde(with = "decimal_u256")]
        cap: U256,
    },
    /// Above what is left of the daily cap in base units.
    #[error(
        "trade of {} base exceeds the daily base cap {} ({} used)",
        units(*.amount),
        units(*.cap),
        units(*.used)
    )]
    DailyBaseCap {
        /// Base sold, or bought by pool maths.
        #[serde(with = "decimal_u256")]
        amount: U256,
        /// Already traded in the window.
        #[serde(with = "decimal_u256")]
        used: U256,
        /// The cap.
        #[serde(with = "decimal_u256")]
        cap: U256,
    },
    /// Above what is left of the daily cap.
    #[error(
        "trade worth {} quote exceeds the daily cap {} ({} used)",
        units(*.value),
        units(*.cap),
        units(*.used)
    )]
    DailyCap {
        /// The trade's value (quote).
        #[serde(with = "decimal_u256")]
        value: U256,
        /// Already traded in the window.
        #[serde(with = "decimal_u256")]
        used: U256,
        /// The cap.
        #[serde(with = "decimal_u256")]
        cap: U256,
    },
    /// The intent asks for more slippage than the owner allows.
    #[error("slippage {asked} bps exceeds the bound {max} bps")]
    Slippage {
        /// Asked by the intent.
        asked: u32,
        /// The policy's bound.
        max: u32,
    },
    /// The trade would move the price more than the slippage bound.
    #[error("price impact {impact_bps} bps exceeds the bound {max} bps")]
    PriceImpact {
        /// The trade's own impact.
        impact_bps: u32,
        /// The bound.
        max: u32,
    },
    /// The pool cannot fill it.
    #[error("the pool returns nothing for this trade")]
    NoLiquidity,
    /// The eth_call simulation reverted or returned less than the bound.
    #[error("simulation: {detail}")]
    Simulation {
        /// What went wrong.
        detail: String,
    },
}

/// One trade sent, as the daily caps count it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traded {
    /// Chain time of the snapshot it was approved on.
    pub timestamp: u64,
    /// Its value in quote (as the quote caps count it).
    pub value_quote: U256,
    /// Base sold or bought.
    pub amount_base: U256,
}

/// The firewall's memory between steps: volume in the rolling day and peak equity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FirewallState {
    /// Each trade sent.
    pub trades: Vec<Traded>,
    /// Highest equity seen (quote), rescaled by money moved in or out since
    /// ([`Self::note_flow`]).
    pub peak_equity: U256,
    /// Set once the drawdown kill switch trips; only a new run (an owner decision) resets it.
    pub halted: bool,
}

impl FirewallState {
    fn since(&self, now: u64) -> impl Iterator<Item = &Traded> {
        let from = now.saturating_sub(DAY_SECS);
        self.trades.iter().filter(move |t| t.timestamp > from)
    }

    /// Volume (quote) traded in the 24 hours up to `now`.
    pub fn volume_since(&self, now: u64) -> U256 {
        self.since(now)
            .fold(U256::ZERO, |acc, t| acc.saturating_add(t.value_quote))
    }

    /// Base traded in the 24 hours up to `now`.
    pub fn base_volume_since(&self, now: u64) -> U256 {
        self.since(now)
            .fold(U256::ZERO, |acc, t| acc.saturating_add(t.amount_base))
    }

    /// Notes a sent trade.
    pub fn record_trade(&mut self, timestamp: u64, value_quote: U256, amount_base: U256) {
        self.trades.push(Traded {
            timestamp,
            value_quote,
            amount_base,
        });
    }

    /// Notes money moved into (`net_flow > 0`) or out of the account other than by trading,
    /// leaving `equity_after`. The peak is scaled by the same factor as the capital (as a
    /// fund's unit value is), so a deposit is no gain and a withdrawal no loss: the drawdown
    /// measures trading alone.
    pub fn note_flow(&mut self, net_flow: I256, equity_after: U256) {
        if net_flow.is_zero() || self.peak_equity.is_zero() {
            return;
        }
        let after = I256::try_from(equity_after).unwrap_or(I256::MAX);
        let before = after.saturating_sub(net_flow);
        if before <= I256::ZERO {
            // Nothing was left before the deposit: a fresh start.
            self.peak_equity = equity_after;
            return;
        }
        self.peak_equity = mul_div(self.peak_equity, equity_after, before.unsigned_abs());
    }
}

/// An intent the firewall let through, with everything needed to build the swap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApprovedTrade {
    /// The router.
    pub router: Address,
    /// Paid in.
    pub token_in: Address,
    /// Bought.
    pub token_out: Address,
    /// Exact input.
    #[serde(with = "decimal_u256")]
    pub amount_in: U256,
    /// Output by pool maths on the snapshot.
    #[serde(with = "decimal_u256")]
    pub expected_out: U256,
    /// The swap reverts below this: `expected_out` less the slippage bound.
    #[serde(with = "decimal_u256")]
    pub amount_out_min: U256,
    /// The trade's value in quote at the higher of the mid price and the TWAP (what the quote
    /// caps count).
    #[serde(with = "decimal_u256")]
    pub value_quote: U256,
    /// Base sold, or bought by pool maths (what the base caps count).
    #[serde(with = "decimal_u256")]
    pub amount_base: U256,
    /// The slippage bound applied (the smaller of the intent's and the policy's).
    pub slippage_bps: u32,
    /// Router deadline (chain seconds).
    pub deadline: u64,
}

/// The firewall: the owner's [`Policy`] plus its [`FirewallState`].
#[derive(Clone, Debug)]
pub struct Firewall {
    policy: Policy,
    state: FirewallState,
}

fn bps_of(part: U256, whole: U256) -> u32 {
    if whole.is_zero() {
        return BPS;
    }
    let bps = part.saturating_mul(U256::from(BPS)) / whole;
    u32::try_from(bps).unwrap_or(u32::MAX)
}

impl Firewall {
    /// A firewall enforcing `policy` from a fresh state.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            state: FirewallState::default(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The state.
    pub fn state(&self) -> &FirewallState {
        &self.state
    }

    /// The state, to restore it after a restart or to note trades.
    pub fn state_mut(&mut self) -> &mut FirewallState {
        &mut self.state
    }

    /// Updates the peak and the kill switch from `snapshot`'s equity. Returns the refusal that
    /// applies to every trade while the switch is tripped.
    pub fn observe(&mut self, snapshot: &MarketSnapshot) -> Option<Refusal> {
        let equity = snapshot.equity_quote();
        if equity > self.state.peak_equity {
            self.state.peak_equity = equity;
        }
        let peak = self.state.peak_equity;
        let drawdown_bps = bps_of(peak.saturating_sub(equity), peak);
        if !peak.is_zero() && drawdown_bps >= self.policy.max_drawdown_bps {
            self.state.halted = true;
        }
        self.state.halted.then_some(Refusal::Drawdown {
            equity,
            peak,
            drawdown_bps: if peak.is_zero() { 0 } else { drawdown_bps },
        })
    }

    /// Checks `intent` against the policy on `snapshot`. A `Hold` is not checked (nothing is
    /// sent) and returns `Ok(None)`.
    pub fn check(
        &mut self,
        intent: &TradeIntent,
        snapshot: &MarketSnapshot,
    ) -> Result<Option<ApprovedTrade>, Refusal> {
        if intent.action == TradeAction::Hold {
            return Ok(None);
        }
        if snapshot.paused {
            return Err(Refusal::Paused);
        }
        if let Some(refusal) = self.observe(snapshot) {
            return Err(refusal);
        }
        let p = &self.policy;
        let router = intent
            .router
            .or(p.routers.first().copied())
            .unwrap_or(Address::ZERO);
        if !p.routers.contains(&router) {
            return Err(Refusal::UnknownRouter { router });
        }
        for token in [intent.token_in, intent.token_out] {
            if !p.tokens.contains(&token) {
                return Err(Refusal::UnknownToken { token });
            }
        }
        // Only the snapshot's router and pool are priced here; another allowed router would
        // need its own pool maths.
        if router != snapshot.router {
            return Err(Refusal::UnknownRouter { router });
        }
        let (reserve_in, reserve_out) = snapshot
            .reserves_for(intent.token_in, intent.token_out)
            .ok_or(Refusal::NoPool {
                token_in: intent.token_in,
                token_out: intent.token_out,
            })?;
        let direction_ok = match intent.action {
            TradeAction::Buy => intent.token_in == snapshot.quote,
            TradeAction::Sell => intent.token_in == snapshot.base,
            TradeAction::Hold => true,
        };
        if !direction_ok {
            return Err(Refusal::ActionMismatch {
                action: intent.action,
            });
        }
        if intent.amount_in.is_zero() {
            return Err(Refusal::ZeroAmount);
        }
        let balance = snapshot.balance_of(intent.token_in);
        if intent.amount_in > balance {
            return Err(Refusal::InsufficientBalance {
                amount: intent.amount_in,
                balance,
            });
        }
        // The price the trade would fill at must not have been pushed away from its recent
        // average: a sell after a push down fills at the pushed price.
        let twap = snapshot.twap.ok_or(Refusal::NoTwap)?;
        let spot_x112 = snapshot.spot_x112();
        let deviation = deviation_bps(spot_x112, twap.price_x112);
        if deviation > p.max_twap_deviation_bps {
            return Err(Refusal::TwapDeviation {
                spot_x112,
                twap_x112: twap.price_x112,
                secs: twap.secs,
                deviation_bps: deviation,
                max: p.max_twap_deviation_bps,
            });
        }
        let value_quote = snapshot.cap_value(intent.token_in, intent.amount_in);
        if value_quote > p.max_trade_quote {
            return Err(Refusal::TradeCap {
                value: value_quote,
                cap: p.max_trade_quote,
            });
        }
        let used = self.state.volume_since(snapshot.timestamp);
        if used.saturating_add(value_quote) > p.max_daily_quote {
            return Err(Refusal::DailyCap {
                value: value_quote,
                used,
                cap: p.max_daily_quote,
            });
        }
        if intent.max_slippage_bps > p.max_slippage_bps {
            return Err(Refusal::Slippage {
                asked: intent.max_slippage_bps,
                max: p.max_slippage_bps,
            });
        }
        let expected_out = get_amount_out(intent.amount_in, reserve_in, reserve_out)
            .ok_or(Refusal::NoLiquidity)?;
        if expected_out.is_zero() {
            return Err(Refusal::NoLiquidity);
        }
        let amount_base = if intent.token_in == snapshot.base {
            intent.amount_in
        } else {
            expected_out
        };
        if let Some(cap) = p.max_trade_base
            && amount_base > cap
        {
            return Err(Refusal::BaseCap {
                amount: amount_base,
                cap,
            });
        }
        if let Some(cap) = p.max_daily_base {
            let used = self.state.base_volume_since(snapshot.timestamp);
            if used.saturating_add(amount_base) > cap {
                return Err(Refusal::DailyBaseCap {
                    amount: amount_base,
                    used,
                    cap,
                });
            }
        }
        // The trade's own impact (fee included) against the mid price.
        let mid_out = super::market::mid_value(intent.amount_in, reserve_in, reserve_out);
        let impact_bps = bps_of(mid_out.saturating_sub(expected_out), mid_out);
        if impact_bps > p.max_slippage_bps {
            return Err(Refusal::PriceImpact {
                impact_bps,
                max: p.max_slippage_bps,
            });
        }
        let slippage_bps = intent.max_slippage_bps.min(p.max_slippage_bps);
        Ok(Some(ApprovedTrade {
            router,
            token_in: intent.token_in,
            token_out: intent.token_out,
            amount_in: intent.amount_in,
            expected_out,
            amount_out_min: apply_slippage(expected_out, slippage_bps),
            value_quote,
            amount_base,
            slippage_bps,
            deadline: snapshot.timestamp.saturating_add(p.deadline_secs),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trading::market::{Twap, price_x112};

    fn e18(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
    }

    const BASE: Address = Address::repeat_byte(0xBB);
    const QUOTE: Address = Address::repeat_byte(0x44);
    const ROUTER: Address = Address::repeat_byte(0x77);

    fn snapshot() -> MarketSnapshot {
        MarketSnapshot {
            block: 10,
            timestamp: 1_000_000,
            base: BASE,
            quote: QUOTE,
            router: ROUTER,
            pair: Address::repeat_byte(0x99),
            reserve_base: e18(1_000),
            reserve_quote: e18(1_000_000),
            holder: Address::repeat_byte(0xAC),
            balance_base: e18(10),
            balance_quote: e18(50_000),
            paused: false,
            twap: Some(Twap {
                price_x112: price_x112(e18(1_000), e18(1_000_000)),
                from_timestamp: 1_000_000 - 1_800,
                secs: 1_800,
            }),
        }
    }

    fn policy() -> Policy {
        Policy {
            tokens: vec![BASE, QUOTE],
            routers: vec![ROUTER],
            max_trade_quote: e18(5_000),
            max_daily_quote: e18(12_000),
            max_trade_base: None,
            max_daily_base: None,
            twap_window_secs: 1_800,
            max_twap_deviation_bps: 500,
            max_slippage_bps: 100,
            max_drawdown_bps: 1_000,
            deadline_secs: 300,
        }
    }

    fn buy(amount: U256) -> TradeIntent {
        TradeIntent {
            action: TradeAction::Buy,
            token_in: QUOTE,
            token_out: BASE,
            amount_in: amount,
            max_slippage_bps: 50,
            router: None,
            reason: String::new(),
        }
    }

    #[test]
    fn allows_a_trade_inside_the_policy_with_a_hard_minimum() {
        let mut fw = Firewall::new(policy());
        let t = fw.check(&buy(e18(1_000)), &snapshot()).unwrap().unwrap();
        let expected = get_amount_out(e18(1_000), e18(1_000_000), e18(1_000)).unwrap();
        assert_eq!(t.expected_out, expected);
        assert_eq!(t.amount_out_min, apply_slippage(expected, 50));
        assert_eq!(t.value_quote, e18(1_000));
        assert_eq!(t.router, ROUTER);
        assert_eq!(t.deadline, 1_000_300);
        // The intent's slippage is capped by the policy's, never the other way round.
        let mut tight = buy(e18(1_000));
        tight.max_slippage_bps = 10;
        assert_eq!(
            fw.check(&tight, &snapshot()).unwrap().unwrap().slippage_bps,
            10
        );
    }

    #[test]
    fn hostile_intents_are_refused() {
        let snap = snapshot();
        let mut fw = Firewall::new(policy());
        let stranger = Address::repeat_byte(0x66);
        type Expect = fn(&Refusal) -> bool;
        let cases: Vec<(TradeIntent, Expect)> = vec![
            (buy(e18(6_000)), |r| matches!(r, Refusal::TradeCap { .. })),
            (buy(e18(60_000)), |r| {
                matches!(r, Refusal::InsufficientBalance { .. })
            }),
            (buy(U256::MAX), |r| {
                matches!(r, Refusal::InsufficientBalance { .. })
            }),
            (buy(U256::ZERO), |r| matches!(r, Refusal::ZeroAmount)),
            (
                TradeIntent {
                    token_out: stranger,
                    ..buy(e18(1))
                },
                |r| matches!(r, Refusal::UnknownToken { .. }),
            ),
            (
                TradeIntent {
                    token_in: stranger,
                    ..buy(e18(1))
                },
                |r| matches!(r, Refusal::UnknownToken { .. }),
            ),
            (
                TradeIntent {
                    router: Some(stranger),
                    ..buy(e18(1))
                },
                |r| matches!(r, Refusal::UnknownRouter { .. }),
            ),
            (
                TradeIntent {
                    max_slippage_bps: 9_999,
                    ..buy(e18(1))
                },
                |r| matches!(r, Refusal::Slippage { .. }),
            ),
            (
                TradeIntent {
                    token_out: QUOTE,
                    ..buy(e18(1))
                },
                |r| matches!(r, Refusal::NoPool { .. }),
            ),
            (
                TradeIntent {
                    action: TradeAction::Sell,
                    ..buy(e18(1))
                },
                |r| matches!(r, Refusal::ActionMismatch { .. }),
            ),
        ];
        for (intent, expected) in cases {
            let refusal = fw.check(&intent, &snap).unwrap_err();
            assert!(expected(&refusal), "{intent:?} gave {refusal:?}");
        }
        // Nothing was counted against the caps by refused intents.
        assert_eq!(fw.state().volume_since(snap.timestamp), U256::ZERO);
    }

    #[test]
    fn price_impact_beyond_the_bound_is_refused() {
        let mut p = policy();
        p.max_trade_quote = e18(1_000_000);
        p.max_daily_quote = e18(1_000_000);
        let mut snap = snapshot();
        snap.balance_quote = e18(1_000_000);
        let mut fw = Firewall::new(p);
        // 5% of the quote reserve moves the price by ~5%.
        let r = fw.check(&buy(e18(50_000)), &snap).unwrap_err();
        assert!(matches!(r, Refusal::PriceImpact { .. }), "{r:?}");
    }

    #[test]
    fn daily_cap_counts_a_rolling_day() {
        let mut fw = Firewall::new(policy());
        let snap = snapshot();
        for _ in 0..2 {
            let t = fw.check(&buy(e18(5_000)), &snap).unwrap().unwrap();
            fw.state_mut()
                .record_trade(snap.timestamp, t.value_quote, t.amount_base);
        }
        let r = fw.check(&buy(e18(5_000)), &snap).unwrap_err();
        assert!(matches!(r, Refusal::DailyCap { .. }), "{r:?}");
        // A day later the window is empty again.
        let mut later = snap.clone();
        later.timestamp += DAY_SECS;
        assert!(fw.check(&buy(e18(5_000)), &later).unwrap().is_some());
    }

    #[test]
    fn pause_and_drawdown_stop_every_trade() {
        let mut fw = Firewall::new(policy());
        let mut snap = snapshot();
        snap.paused = true;
        assert_eq!(fw.check(&buy(e18(1)), &snap), Err(Refusal::Paused));
        snap.paused = false;
        assert!(fw.check(&buy(e18(1)), &snap).unwrap().is_some());
        // Equity 60,000 → a 10% fall trips the switch, and it stays tripped on recovery.
        let mut crash = snap.clone();
        crash.balance_quote = e18(44_000);
        assert!(matches!(
            fw.check(&buy(e18(1)), &crash),
            Err(Refusal::Drawdown { .. })
        ));
        assert!(matches!(
            fw.check(&buy(e18(1)), &snap),
            Err(Refusal::Drawdown { .. })
        ));
        // Holding is still fine: nothing is sent.
        assert_eq!(fw.check(&TradeIntent::hold("wait"), &snap), Ok(None));
    }

    fn sell(amount: U256) -> TradeIntent {
        TradeIntent {
            action: TradeAction::Sell,
            token_in: BASE,
            token_out: QUOTE,
            amount_in: amount,
            max_slippage_bps: 50,
            router: None,
            reason: String::new(),
        }
    }

    /// Someone sells 300 base into the pool just before the agent's step: the mid price falls
    /// from 1,000 to ~770 while the TWAP (the accumulators) still says 1,000. A sell of 6 base
    /// (6,000 quote at the fair price, over the 5,000 cap) looks like ~4,600 at the pushed price.
    #[test]
    fn a_price_pushed_down_before_the_step_does_not_let_a_large_sell_through() {
        let mut pushed = snapshot();
        pushed.reserve_base = e18(1_300);
        pushed.reserve_quote = e18(1_000_000) * U256::from(1_000u64) / U256::from(1_300u64);
        assert!(
            pushed.quote_value(BASE, e18(6)) < e18(5_000),
            "looks small at spot"
        );
        let mut fw = Firewall::new(policy());
        let r = fw.check(&sell(e18(6)), &pushed).unwrap_err();
        assert!(
            matches!(r, Refusal::TwapDeviation { deviation_bps, max: 500, secs: 1_800, .. } if deviation_bps > 2_000),
            "{r:?}"
        );
        // Even with the deviation bound opened wide, the caps count it at the TWAP.
        let mut loose = policy();
        loose.max_twap_deviation_bps = BPS;
        let r = Firewall::new(loose.clone())
            .check(&sell(e18(6)), &pushed)
            .unwrap_err();
        assert!(
            matches!(r, Refusal::TradeCap { value, .. } if value == e18(6_000)),
            "{r:?}"
        );
        assert_eq!(
            r.to_string(),
            "trade worth 6000.0000 quote exceeds the per-trade cap 5000.0000"
        );
        // The model is offered nothing that sells or buys at the pushed price.
        let symbols = crate::trading::PairSymbols::default();
        let choices = crate::trading::Choices::allowed(&pushed, &fw, &symbols);
        assert!(
            choices.buy.is_empty() && choices.sell.is_empty(),
            "{choices:?}"
        );
        // Without any TWAP there is no trade at all.
        let mut blind = snapshot();
        blind.twap = None;
        assert_eq!(fw.check(&sell(e18(1)), &blind), Err(Refusal::NoTwap));
        // A normal price passes.
        assert!(fw.check(&sell(e18(4)), &snapshot()).unwrap().is_some());
    }

    /// In a pool of a cheap base token a huge amount of base is worth little quote: the quote
    /// caps let it through, the base caps do not.
    #[test]
    fn base_cap_refuses_an_oversize_order_even_when_its_quote_value_is_small() {
        let mut p = policy();
        p.max_trade_base = Some(e18(2));
        p.max_daily_base = Some(e18(3));
        let mut fw = Firewall::new(p);
        let snap = snapshot();
        // 3 base = 3,000 quote: inside the quote caps, over the base cap.
        let r = fw.check(&sell(e18(3)), &snap).unwrap_err();
        assert_eq!(
            r,
            Refusal::BaseCap {
                amount: e18(3),
                cap: e18(2)
            }
        );
        // A buy counts the base it gets.
        let r = fw.check(&buy(e18(2_500)), &snap).unwrap_err();
        assert!(matches!(r, Refusal::BaseCap { .. }), "{r:?}");
        // The daily base cap counts both sides over a rolling day.
        let t = fw.check(&sell(e18(2)), &snap).unwrap().unwrap();
        assert_eq!(t.amount_base, e18(2));
        fw.state_mut()
            .record_trade(snap.timestamp, t.value_quote, t.amount_base);
        let t = fw.check(&buy(e18(900)), &snap).unwrap().unwrap();
        fw.state_mut()
            .record_trade(snap.timestamp, t.value_quote, t.amount_base);
        let r = fw.check(&sell(e18(1)), &snap).unwrap_err();
        assert!(matches!(r, Refusal::DailyBaseCap { .. }), "{r:?}");
    }

    /// The owner takes 60% of the account out: equity falls 60%, but nothing was lost trading.
    #[test]
    fn a_withdrawal_does_not_trip_the_kill_switch() {
        let mut fw = Firewall::new(policy());
        let snap = snapshot(); // equity 60,000
        assert_eq!(fw.observe(&snap), None);
        let mut after = snap.clone();
        after.balance_quote = e18(14_000); // 36,000 withdrawn
        fw.state_mut().note_flow(
            I256::try_from(e18(36_000)).unwrap().wrapping_neg(),
            e18(24_000),
        );
        assert_eq!(fw.observe(&after), None);
        assert_eq!(fw.state().peak_equity, e18(24_000));
        // A real 10% loss after it still trips the switch.
        let mut loss = after.clone();
        loss.balance_quote = e18(11_600);
        assert!(matches!(fw.observe(&loss), Some(Refusal::Drawdown { .. })));
        // A deposit does not hide a drawdown either: the peak grows with the capital.
        let mut fw = Firewall::new(policy());
        fw.observe(&snap);
        let mut down = snap.clone();
        down.balance_quote = e18(45_000); // -8.3%
        fw.observe(&down);
        let mut topped = down.clone();
        topped.balance_quote = e18(95_000); // +50,000 deposited
        fw.state_mut()
            .note_flow(I256::try_from(e18(50_000)).unwrap(), topped.equity_quote());
        assert!(fw.state().peak_equity > topped.equity_quote());
        // Everything out and back in starts afresh.
        fw.state_mut()
            .note_flow(I256::try_from(e18(105_000)).unwrap(), e18(105_000));
        assert_eq!(fw.state().peak_equity, e18(105_000));
    }

    #[test]
    fn policy_files_round_trip_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        policy().save(&path).unwrap();
        assert_eq!(Policy::load(&path).unwrap(), policy());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"5000000000000000000000\""), "{text}");
        let mut bad = policy();
        bad.routers.clear();
        bad.save(&path).unwrap();
        assert!(matches!(Policy::load(&path), Err(PolicyError::Invalid(_))));
        // A file written before the TWAP and base caps existed still loads, with the defaults.
        let mut old: serde_json::Value = serde_json::to_value(policy()).unwrap();
        for key in ["twap_window_secs", "max_twap_deviation_bps"] {
            old.as_object_mut().unwrap().remove(key);
        }
        assert!(old.get("max_trade_base").is_none(), "{old}");
        std::fs::write(&path, old.to_string()).unwrap();
        let loaded = Policy::load(&path).unwrap();
        assert_eq!(loaded.twap_window_secs, DEFAULT_TWAP_WINDOW_SECS);
        assert_eq!(
            loaded.max_twap_deviation_bps,
            DEFAULT_MAX_TWAP_DEVIATION_BPS
        );
        let mut capped = policy();
        capped.max_daily_base = Some(e18(7));
        capped.save(&path).unwrap();
        assert_eq!(Policy::load(&path).unwrap(), capped);
        std::fs::write(&path, r#"{"tokens":[]}"#).unwrap();
        assert!(matches!(Policy::load(&path), Err(PolicyError::Json { .. })));
        assert!(matches!(
            Policy::load(&dir.path().join("missing.json")),
            Err(PolicyError::Io { .. })
        ));
    }
}
