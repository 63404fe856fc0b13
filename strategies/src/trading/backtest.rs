//! Backtests: trading policies compared on the same simulated Uniswap V2 pool, nothing sent.
//!
//! A [`PricePath`] (a seeded geometric random walk through up, down and flat regimes, or prices
//! given by hand) sets the pool's reserves at every step. Each policy gets its own portfolio
//! with the same starting balances and, every step, a full [`MarketSnapshot`] of it; its
//! [`Decision`](super::Decision) goes through the same [`Firewall`] and owner [`Policy`] as
//! live trading, and an approved trade is filled with the router's pool maths
//! ([`get_amount_out`]) on that step's reserves, so its own fee and price impact apply. The path is exogenous: a policy's trades
//! do not move the pool, so policies cannot affect each other and all see the same prices.
//!
//! Per policy the [`BacktestReport`] counts steps, valid decisions, trades, holds and refusals
//! by the firewall's rule, and measures PnL and maximum drawdown on equity marked at each
//! step's mid price, plus how often the policy picked the same side as the momentum rule.
//!
//! The [`TradingPolicy`] trait hands every policy an [`AgentSession`]; [`offline_session`]
//! makes one for a plaintext model, [`classical_session`] one for rules that never run a model.

use std::collections::BTreeMap;

use agent_runtime::record::LogId;
use alloy::primitives::{Address, I256, U256};
use alloy::signers::local::PrivateKeySigner;
use inft_contracts::deploy::Market;
use inft_engine::testmodel::{TestModelError, TestModelParams, llama_gguf_bytes};
use inft_engine::{
    ContextOptions, Engine, EngineError, MemModel, ModelOptions, SamplerSettings, SealedModel,
};
use inft_runtime::{AgentSession, StrategyError};
use inft_types::config::{AgentConfig, AgentKind, CONFIG_VERSION};
use serde::Serialize;

use super::decision::ScoredChoice;
use super::firewall::{Firewall, Policy, Refusal};
use super::intent::TradeAction;
use super::market::{
    BPS, MarketSnapshot, SeededRng, Twap, equity_quote, get_amount_out, price_x112, shorten,
    signed_diff, to_units,
};
use super::policies::{MeanReversion, Momentum, RuleParams, TradingPolicy};

/// The simulated traded asset (fixed: nothing is deployed).
pub const SIM_BASE: Address = Address::repeat_byte(0xBA);
/// The simulated quote token.
pub const SIM_QUOTE: Address = Address::repeat_byte(0x5D);
/// The simulated router.
pub const SIM_ROUTER: Address = Address::repeat_byte(0x7E);
/// The simulated pair.
pub const SIM_PAIR: Address = Address::repeat_byte(0xAA);
/// The simulated holder of each policy's funds.
pub const SIM_HOLDER: Address = Address::repeat_byte(0xAC);

/// Chain time of step 0 (any fixed value: only differences matter to the firewall).
const START_TIMESTAMP: u64 = 1_700_000_000;

/// One whole token (18 decimals).
fn e18(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

/// Whole tokens as a float to base units, rounding down (saturating; only for building
/// simulated reserves, never for amounts a check depends on).
fn from_units(units: f64) -> U256 {
    U256::from((units * 1e18) as u128)
}

mod decimal {
    use alloy::primitives::{I256, U256};
    use serde::Serializer;

    pub(super) fn u256<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(super) fn i256<S: Serializer>(v: &I256, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
}

/// Why a backtest could not run. Refusals and malformed model output are not errors: they
/// are counted in the report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BacktestError {
    /// The setup makes no sense (no steps, no policy, two policies with one name, …).
    #[error("invalid backtest: {0}")]
    Invalid(String),
    /// A policy failed (a failed step stops a live run too).
    #[error("policy {policy} failed at step {step}: {source}")]
    Policy {
        /// The policy's name.
        policy: String,
        /// The step.
        step: u64,
        /// What failed.
        #[source]
        source: StrategyError,
    },
    /// The model could not be loaded or given a context.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The placeholder model could not be generated.
    #[error(transparent)]
    TestModel(#[from] TestModelError),
}

/// Which way the simulated market is drifting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Regime {
    /// Drifting up.
    Up,
    /// Drifting down.
    Down,
    /// No drift, noise only.
    Flat,
}

/// The shape of a generated [`PricePath`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathParams {
    /// Mid price at step 0 (quote per base).
    pub start_price: f64,
    /// Base reserve at the start price, in whole tokens; the pool keeps the product of its
    /// reserves constant, as arbitrage against an outside price would.
    pub pool_base: f64,
    /// Standard deviation of one step's return, in bps.
    pub volatility_bps: f64,
    /// Drift of one step's return while trending, in bps.
    pub trend_bps: f64,
    /// Chance per step (0..1) that the regime changes.
    pub switch_probability: f64,
}

impl Default for PathParams {
    /// The dev market's pool (1,000 base / 1,000,000 quote, price 1,000), 0.6% noise per
    /// step and trends of 0.4% per step that last about ten steps: a trend lifts the price
    /// well past the momentum rule's 0.5% threshold within a few steps, and the noise still
    /// makes some of its signals wrong.
    fn default() -> Self {
        Self {
            start_price: 1_000.0,
            pool_base: 1_000.0,
            volatility_bps: 60.0,
            trend_bps: 40.0,
            switch_probability: 0.1,
        }
    }
}

/// The pool at one step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathPoint {
    /// Mid price (quote per base) the reserves were built for.
    pub price: f64,
    /// The regime the step was drawn in (`flat` for hand-made paths).
    pub regime: Regime,
    /// Pool reserve of the base token.
    #[serde(serialize_with = "decimal::u256")]
    pub reserve_base: U256,
    /// Pool reserve of the quote token.
    #[serde(serialize_with = "decimal::u256")]
    pub reserve_quote: U256,
}

/// The pool's reserves at every step of a backtest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PricePath {
    /// The seed it was generated from (`None` for a hand-made path).
    pub seed: Option<u64>,
    /// One point per step.
    pub points: Vec<PathPoint>,
}

/// A standard normal draw, approximated by the sum of twelve uniforms less six: plain
/// additions, so the same seed gives bit-identical paths on every platform (`ln`/`cos` of a
/// Box–Muller transform may differ in the last bit between math libraries).
fn normal(rng: &mut SeededRng) -> f64 {
    (0..12).map(|_| uniform(rng)).sum::<f64>() - 6.0
}

/// A uniform draw in `[0, 1)` with 53 random bits.
fn uniform(rng: &mut SeededRng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

impl PricePath {
    /// `steps` points of a geometric random walk from `params.start_price`, deterministic in
    /// `seed`. The walk runs in regimes (up, down, flat) that switch with
    /// `params.switch_probability` per step, so a trend follower has something to catch.
    pub fn generate(params: &PathParams, seed: u64, steps: u64) -> Self {
        // SplitMix64, the generator of the on-chain noise trader: small, fixed forever, and
        // independent of the `rand` crate's version (whose StdRng may change between releases).
        let mut rng = SeededRng::new(seed);
        let mut regime = [Regime::Up, Regime::Down, Regime::Flat][rng.below(3) as usize];
        let mut price = params.start_price;
        let mut prices = Vec::new();
        for step in 0..steps {
            if step > 0 {
                if uniform(&mut rng) < params.switch_probability {
                    let others = match regime {
                        Regime::Up => [Regime::Down, Regime::Flat],
                        Regime::Down => [Regime::Up, Regime::Flat],
                        Regime::Flat => [Regime::Up, Regime::Down],
                    };
                    regime = others[rng.below(2) as usize];
                }
                let drift = match regime {
                    Regime::Up => params.trend_bps,
                    Regime::Down => -params.trend_bps,
                    Regime::Flat => 0.0,
                };
                let ret = (drift + params.volatility_bps * normal(&mut rng)) / f64::from(BPS);
                // A step never loses more than half: the price stays positive.
                price *= 1.0 + ret.max(-0.5);
            }
            prices.push((price, regime));
        }
        let mut path = Self::build(&prices, params.start_price, params.pool_base);
        path.seed = Some(seed);
        path
    }

    /// A path through the given prices (one step each), on a pool holding `pool_base` whole
    /// base tokens at the first price.
    pub fn from_prices(prices: &[f64], pool_base: f64) -> Self {
        let with_regime: Vec<(f64, Regime)> = prices.iter().map(|p| (*p, Regime::Flat)).collect();
        Self::build(
            &with_regime,
            prices.first().copied().unwrap_or(1.0),
            pool_base,
        )
    }

    fn build(prices: &[(f64, Regime)], start_price: f64, pool_base: f64) -> Self {
        // Constant product k = base × quote, fixed by the first step's pool.
        let k = pool_base * pool_base * start_price;
        let points = prices
            .iter()
            .map(|&(price, regime)| PathPoint {
                price,
                regime,
                reserve_base: from_units((k / price).sqrt()),
                reserve_quote: from_units((k * price).sqrt()),
            })
            .collect();
        Self { seed: None, points }
    }

    /// The number of steps.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the path has no step.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// The simulated market's addresses as a deployment's [`Market`], so the firewall policy is
/// built exactly as live trading builds it ([`Policy::for_market`]).
pub fn sim_market() -> Market {
    Market {
        weth: Address::repeat_byte(0xEE),
        factory: Address::repeat_byte(0xFA),
        router: SIM_ROUTER,
        quote_token: SIM_QUOTE,
        base_token: SIM_BASE,
        pair: SIM_PAIR,
    }
}

/// The largest fall of `equity` from its running peak, in bps of that peak (0 for a series
/// that never falls).
pub fn max_drawdown_bps(equity: &[U256]) -> u32 {
    let mut peak = U256::ZERO;
    let mut worst = 0u32;
    for &e in equity {
        peak = peak.max(e);
        if !peak.is_zero() {
            let dd = peak.saturating_sub(e).saturating_mul(U256::from(BPS)) / peak;
            worst = worst.max(u32::try_from(dd).unwrap_or(u32::MAX));
        }
    }
    worst
}

/// A backtest: a price path, the starting portfolio every policy gets, and the owner's rules.
#[derive(Clone, Debug, Serialize)]
pub struct Backtest {
    /// The pool at every step.
    pub path: PricePath,
    /// Base each policy starts with.
    #[serde(serialize_with = "decimal::u256")]
    pub start_base: U256,
    /// Quote each policy starts with.
    #[serde(serialize_with = "decimal::u256")]
    pub start_quote: U256,
    /// Chain seconds between steps (the rolling-day cap counts in chain time).
    pub step_secs: u64,
    /// The firewall's rules, the same for every policy.
    pub firewall: Policy,
    /// The rule agreement is measured against.
    pub reference: Reference,
}

/// The classical rule a policy's sides are compared with: the one its instruction names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reference {
    /// Buy above the moving average, sell below ("follow the trend").
    #[default]
    Momentum,
    /// Sell above the moving average, buy below ("buy the dips").
    MeanReversion,
}

impl Reference {
    /// The rule by its policy name (`momentum`, `mean-reversion`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "momentum" => Some(Self::Momentum),
            "mean-reversion" | "mean_reversion" => Some(Self::MeanReversion),
            _ => None,
        }
    }

    /// The rule's policy name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Momentum => "momentum",
            Self::MeanReversion => "mean-reversion",
        }
    }

    fn policy(self) -> Box<dyn TradingPolicy> {
        match self {
            Self::Momentum => Box::new(Momentum::new(RuleParams::default())),
            Self::MeanReversion => Box::new(MeanReversion::new(RuleParams::default())),
        }
    }
}

impl Backtest {
    /// A backtest on `path` with what `inft run` uses on the dev market: 10 base and 10,000
    /// quote to start (its `--fund-base`/`--fund-quote` defaults) and its default firewall
    /// policy (1,000 quote per trade, 10,000 per day, 1% slippage, 20% drawdown). One step
    /// is an hour, so the daily cap spans 24 steps.
    pub fn new(path: PricePath) -> Self {
        Self {
            path,
            start_base: e18(10),
            start_quote: e18(10_000),
            step_secs: 3_600,
            firewall: Policy::for_market(&sim_market(), e18(1_000)),
            reference: Reference::Momentum,
        }
    }

    /// The same backtest, measuring agreement with `reference`.
    pub fn with_reference(mut self, reference: Reference) -> Self {
        self.reference = reference;
        self
    }

    fn snapshot(&self, step: usize, balance_base: U256, balance_quote: U256) -> MarketSnapshot {
        let point = &self.path.points[step];
        MarketSnapshot {
            block: 1 + step as u64,
            timestamp: START_TIMESTAMP + step as u64 * self.step_secs,
            base: SIM_BASE,
            quote: SIM_QUOTE,
            router: SIM_ROUTER,
            pair: SIM_PAIR,
            reserve_base: point.reserve_base,
            reserve_quote: point.reserve_quote,
            holder: SIM_HOLDER,
            balance_base,
            balance_quote,
            paused: false,
            twap: Some(self.twap(step)),
        }
    }

    /// The TWAP a Uniswap V2 pair's accumulators would give at `step` over the policy's
    /// window: each step's price holds from its step's time until the next step's, as if the
    /// path's moves were swaps at those times; before step 0 there is no history.
    pub fn twap(&self, step: usize) -> Twap {
        let s = self.step_secs.max(1);
        let now = step as u64 * s;
        let from = now.saturating_sub(self.firewall.twap_window_secs);
        let price = |j: usize| {
            let p = &self.path.points[j];
            price_x112(p.reserve_base, p.reserve_quote)
        };
        let mut sum = U256::ZERO;
        for j in (from / s) as usize..step {
            let (start, end) = (j as u64 * s, (j as u64 + 1) * s);
            let overlap = end.min(now).saturating_sub(start.max(from));
            sum = sum.saturating_add(price(j).saturating_mul(U256::from(overlap)));
        }
        let secs = now - from;
        Twap {
            price_x112: if secs == 0 {
                price(step)
            } else {
                sum / U256::from(secs)
            },
            from_timestamp: START_TIMESTAMP + from,
            secs,
        }
    }

    /// Runs every policy over the path. `session` is handed to every policy (only model
    /// policies use it); `progress` is called after each policy's step.
    ///
    /// The [`Reference`] rule with the default parameters runs alongside for
    /// [`PolicyReport::agreement`]: it always sees the starting portfolio, so its side depends
    /// on the prices alone.
    pub fn run(
        &self,
        session: &mut AgentSession,
        policies: Vec<Box<dyn TradingPolicy>>,
        mut progress: impl FnMut(&StepProgress<'_>),
    ) -> Result<BacktestReport, BacktestError> {
        if self.path.is_empty() {
            return Err(BacktestError::Invalid("the price path has no step".into()));
        }
        if policies.is_empty() {
            return Err(BacktestError::Invalid("no policy to run".into()));
        }
        self.firewall
            .validate()
            .map_err(|e| BacktestError::Invalid(e.to_string()))?;
        let mut names: Vec<&str> = policies.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(BacktestError::Invalid(format!(
                "policy {} is listed twice",
                w[0]
            )));
        }

        let first = &self.path.points[0];
        let start_equity = equity_quote(
            self.start_base,
            self.start_quote,
            first.reserve_base,
            first.reserve_quote,
        );
        let mut runners: Vec<Runner> = policies
            .into_iter()
            .map(|policy| Runner::new(policy, self, start_equity))
            .collect();
        let mut reference = self.reference.policy();
        let steps = self.path.len() as u64;

        for step in 0..self.path.len() {
            let n = step as u64;
            let reference_snap = self.snapshot(step, self.start_base, self.start_quote);
            let reference_side = reference
                .decide(session, &reference_snap, n)
                .map_err(|source| BacktestError::Policy {
                    policy: format!("{} (reference)", self.reference.name()),
                    step: n,
                    source,
                })?
                .intent
                .ok()
                .map(|i| i.action);
            for runner in &mut runners {
                runner.step(self, session, step, reference_side)?;
                if let Some(record) = runner.decisions.last() {
                    progress(&StepProgress {
                        step: n,
                        steps,
                        price: self.path.points[step].price,
                        policy: runner.policy.name(),
                        record,
                    });
                }
            }
        }
        Ok(BacktestReport {
            seed: self.path.seed,
            steps,
            setup: self.clone(),
            policies: runners.into_iter().map(Runner::finish).collect(),
        })
    }
}

/// One policy's step, for progress lines.
#[derive(Debug)]
pub struct StepProgress<'a> {
    /// The step (from 0).
    pub step: u64,
    /// Steps in the backtest.
    pub steps: u64,
    /// The step's mid price.
    pub price: f64,
    /// The policy that just stepped.
    pub policy: &'a str,
    /// What it did.
    pub record: &'a StepRecord,
}

/// What became of a policy's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Approved and filled.
    Trade,
    /// The policy held.
    Hold,
    /// Malformed output, or refused by the firewall.
    Refused,
}

/// One step of one policy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepRecord {
    /// The step (from 0).
    pub step: u64,
    /// The side the policy picked (`None` when its output was not an intent).
    pub side: Option<TradeAction>,
    /// What became of it.
    pub outcome: Outcome,
    /// The refusal's rule (the [`Refusal`] variant, `malformed` for unparsable output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The policy's reason, or why it was refused (shortened).
    pub note: String,
    /// How a model policy scored its choice (see [`ScoredChoice`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choice: Option<ScoredChoice>,
    /// Equity after the step, at the step's mid price.
    #[serde(serialize_with = "decimal::u256")]
    pub equity_quote: U256,
}

/// How often a policy picked the side the reference rule picked on the same step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Agreement {
    /// The reference rule.
    pub reference: Reference,
    /// Steps where both produced an intent (malformed output has no side).
    pub compared: u64,
    /// Of those, steps with the same side (buy, sell or hold).
    pub same_side: u64,
    /// `same_side / compared` (`None` when nothing was compared).
    pub share: Option<f64>,
}

/// One policy's results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyReport {
    /// The policy's name.
    pub name: String,
    /// Steps run.
    pub steps: u64,
    /// Decisions that parsed and were either holds or approved by the firewall.
    pub valid: u64,
    /// Trades filled.
    pub trades: u64,
    /// Holds.
    pub holds: u64,
    /// Refused decisions (malformed output included): `trades + holds + refused == steps`.
    pub refused: u64,
    /// Refusals by rule (`trade_cap`, `daily_cap`, `drawdown`, …, `malformed`).
    pub refusals: BTreeMap<String, u64>,
    /// Quote value (at the mid price) of everything traded.
    #[serde(serialize_with = "decimal::u256")]
    pub volume_quote: U256,
    /// Base held at the end.
    #[serde(serialize_with = "decimal::u256")]
    pub end_base: U256,
    /// Quote held at the end.
    #[serde(serialize_with = "decimal::u256")]
    pub end_quote: U256,
    /// Equity at the start (step 0's mid price).
    #[serde(serialize_with = "decimal::u256")]
    pub start_equity_quote: U256,
    /// Equity at the end (the last step's mid price).
    #[serde(serialize_with = "decimal::u256")]
    pub end_equity_quote: U256,
    /// `end_equity_quote - start_equity_quote`.
    #[serde(serialize_with = "decimal::i256")]
    pub pnl_quote: I256,
    /// PnL in percent of the starting equity.
    pub pnl_pct: f64,
    /// Largest fall of equity from its peak, marked at each step's mid price (bps).
    pub max_drawdown_bps: u32,
    /// Agreement with the reference rule (`None` for the reference rule itself).
    pub agreement: Option<Agreement>,
    /// Every step.
    pub decisions: Vec<StepRecord>,
}

/// The results of a backtest.
#[derive(Clone, Debug, Serialize)]
pub struct BacktestReport {
    /// The market's seed (`None` for a hand-made path).
    pub seed: Option<u64>,
    /// Steps run.
    pub steps: u64,
    /// The path, balances and firewall rules the policies ran under.
    pub setup: Backtest,
    /// One report per policy, in the order given.
    pub policies: Vec<PolicyReport>,
}

/// A policy's portfolio, firewall and tallies during a run.
struct Runner {
    policy: Box<dyn TradingPolicy>,
    firewall: Firewall,
    base: U256,
    quote: U256,
    start_equity: U256,
    equity: Vec<U256>,
    volume: U256,
    refusals: BTreeMap<String, u64>,
    valid: u64,
    reference: Reference,
    compared: u64,
    same_side: u64,
    decisions: Vec<StepRecord>,
}

/// The rule a refusal is counted under: its serialized tag (`trade_cap`, `malformed`, …).
fn rule_of(refusal: &Refusal) -> String {
    serde_json::to_value(refusal)
        .ok()
        .and_then(|v| v.get("rule")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "other".into())
}

impl Runner {
    fn new(policy: Box<dyn TradingPolicy>, bt: &Backtest, start_equity: U256) -> Self {
        Self {
            policy,
            firewall: Firewall::new(bt.firewall.clone()),
            base: bt.start_base,
            quote: bt.start_quote,
            start_equity,
            equity: vec![start_equity],
            volume: U256::ZERO,
            refusals: BTreeMap::new(),
            valid: 0,
            reference: bt.reference,
            compared: 0,
            same_side: 0,
            decisions: Vec::new(),
        }
    }

    fn is_reference(&self) -> bool {
        self.policy.name() == self.reference.name()
    }

    /// Observe → decide → firewall → fill, as the live strategy does in dry-run mode.
    fn step(
        &mut self,
        bt: &Backtest,
        session: &mut AgentSession,
        step: usize,
        reference_side: Option<TradeAction>,
    ) -> Result<(), BacktestError> {
        let n = step as u64;
        let snap = bt.snapshot(step, self.base, self.quote);
        // As live: the kill switch sees every step's equity, holds included.
        let kill = self.firewall.observe(&snap);
        self.policy.observe_firewall(&self.firewall);
        let decision =
            self.policy
                .decide(session, &snap, n)
                .map_err(|source| BacktestError::Policy {
                    policy: self.policy.name().to_owned(),
                    step: n,
                    source,
                })?;
        let side = decision.intent.as_ref().ok().map(|i| i.action);
        let choice = decision.choice;
        if let (Some(mine), Some(theirs)) = (side, reference_side) {
            self.compared += 1;
            self.same_side += u64::from(mine == theirs);
        }
        let (outcome, refusal, note) = match decision.intent {
            Err(e) => (
                Outcome::Refused,
                Some(Refusal::Malformed {
                    error: e.to_string(),
                }),
                String::new(),
            ),
            Ok(intent) => {
                let checked = match kill {
                    Some(refusal) if intent.action != TradeAction::Hold => Err(refusal),
                    _ => self.firewall.check(&intent, &snap),
                };
                match checked {
                    Ok(None) => {
                        self.valid += 1;
                        (Outcome::Hold, None, intent.reason)
                    }
                    Err(refusal) => (Outcome::Refused, Some(refusal), intent.reason),
                    Ok(Some(trade)) => {
                        self.valid += 1;
                        // The approved trade filled on this step's reserves: its own fee and
                        // price impact apply. The same reserves priced the approval, so the
                        // fill meets `amount_out_min` unless the maths disagree.
                        let out = snap
                            .reserves_for(trade.token_in, trade.token_out)
                            .and_then(|(r_in, r_out)| get_amount_out(trade.amount_in, r_in, r_out))
                            .filter(|out| *out >= trade.amount_out_min);
                        match out {
                            Some(out) => {
                                if trade.token_in == SIM_QUOTE {
                                    self.quote = self.quote.saturating_sub(trade.amount_in);
                                    self.base = self.base.saturating_add(out);
                                } else {
                                    self.base = self.base.saturating_sub(trade.amount_in);
                                    self.quote = self.quote.saturating_add(out);
                                }
                                self.volume = self.volume.saturating_add(trade.value_quote);
                                self.firewall.state_mut().record_trade(
                                    snap.timestamp,
                                    trade.value_quote,
                                    trade.amount_base,
                                );
                                (Outcome::Trade, None, intent.reason)
                            }
                            None => (
                                Outcome::Refused,
                                Some(Refusal::Simulation {
                                    detail: "fill below amountOutMin".into(),
                                }),
                                intent.reason,
                            ),
                        }
                    }
                }
            }
        };
        let rule = refusal.as_ref().map(rule_of);
        if let Some(rule) = &rule {
            *self.refusals.entry(rule.clone()).or_default() += 1;
        }
        let note = match &refusal {
            Some(r) if note.is_empty() => r.to_string(),
            Some(r) => format!("{r} ({note})"),
            None => note,
        };
        let equity = equity_quote(self.base, self.quote, snap.reserve_base, snap.reserve_quote);
        self.equity.push(equity);
        self.decisions.push(StepRecord {
            step: n,
            side,
            outcome,
            rule,
            note: shorten(&note, 120),
            choice,
            equity_quote: equity,
        });
        Ok(())
    }

    fn finish(self) -> PolicyReport {
        let count = |o: Outcome| self.decisions.iter().filter(|d| d.outcome == o).count() as u64;
        let end_equity = self.equity.last().copied().unwrap_or(self.start_equity);
        let pnl = signed_diff(end_equity, self.start_equity);
        let pnl_pct = if self.start_equity.is_zero() {
            0.0
        } else {
            let sign = if pnl.is_negative() { -1.0 } else { 1.0 };
            sign * to_units(pnl.unsigned_abs()) / to_units(self.start_equity) * 100.0
        };
        let agreement = (!self.is_reference()).then(|| Agreement {
            reference: self.reference,
            compared: self.compared,
            same_side: self.same_side,
            share: (self.compared > 0).then(|| self.same_side as f64 / self.compared as f64),
        });
        PolicyReport {
            name: self.policy.name().to_owned(),
            steps: self.decisions.len() as u64,
            valid: self.valid,
            trades: count(Outcome::Trade),
            holds: count(Outcome::Hold),
            refused: count(Outcome::Refused),
            refusals: self.refusals,
            volume_quote: self.volume,
            end_base: self.base,
            end_quote: self.quote,
            start_equity_quote: self.start_equity,
            end_equity_quote: end_equity,
            pnl_quote: pnl,
            pnl_pct,
            max_drawdown_bps: max_drawdown_bps(&self.equity),
            agreement,
            decisions: self.decisions,
        }
    }
}

/// The log id of an offline session: chain 0, no contract, token 0 (nothing is logged).
pub fn offline_log_id() -> LogId {
    LogId {
        chain_id: 0,
        action_log: Address::ZERO,
        token_id: U256::ZERO,
    }
}

/// A session running `model` under `config` offline: the model loaded from memory through
/// the engine's cache, a throwaway agent key (nothing it signs is sent or logged) and
/// [`offline_log_id`]. The context uses `config.context`.
pub fn offline_session(
    model: SealedModel,
    config: AgentConfig,
    options: &ModelOptions,
) -> Result<AgentSession, BacktestError> {
    let engine = Engine::global()?;
    let loaded = engine.load(model, options)?;
    let context = loaded.new_context(&config.context)?;
    Ok(AgentSession::new(
        offline_log_id(),
        Address::ZERO,
        config,
        PrivateKeySigner::random(),
        context,
    ))
}

/// A session for classical policies only. They never run the model, but the
/// [`TradingPolicy`] trait hands every policy a session, and a session holds an inference
/// context; so it is made over the smallest generated model (about 21 KiB, in memory).
pub fn classical_session() -> Result<AgentSession, BacktestError> {
    let bytes = llama_gguf_bytes(&TestModelParams::tiny(), 0)?;
    let model = MemModel::from_reader("backtest-placeholder", bytes.as_slice())?;
    let config = AgentConfig {
        version: CONFIG_VERSION,
        name: "backtest".into(),
        kind: AgentKind::Trading {
            strategy: "momentum".into(),
            instruction: None,
        },
        model_sha256: alloy::primitives::hex::encode(model.sha256()),
        sampler: SamplerSettings::default(),
        context: ContextOptions {
            n_ctx: 256,
            n_batch: 256,
            n_threads: Some(1),
        },
        private_prompts: false,
    };
    offline_session(model, config, &ModelOptions::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trading::intent::{IntentParseError, TradeIntent};
    use crate::trading::policies::{Decision, MeanReversion};

    fn rising(steps: usize) -> PricePath {
        let prices: Vec<f64> = (0..steps)
            .map(|i| 1_000.0 * 1.01f64.powi(i as i32))
            .collect();
        PricePath::from_prices(&prices, 1_000.0)
    }

    #[test]
    fn a_seeded_path_is_reproducible() {
        let p = PathParams::default();
        let a = PricePath::generate(&p, 7, 50);
        assert_eq!(a, PricePath::generate(&p, 7, 50));
        assert_ne!(a.points, PricePath::generate(&p, 8, 50).points);
        assert_eq!(a.len(), 50);
        assert_eq!(a.seed, Some(7));
        assert_eq!(a.points[0].price, 1_000.0);
        // Reserves price the pool at the path's price, on a constant product.
        let k0 = a.points[0].reserve_base * a.points[0].reserve_quote;
        for pt in &a.points {
            let snap_price = to_units(pt.reserve_quote) / to_units(pt.reserve_base);
            assert!((snap_price / pt.price - 1.0).abs() < 1e-9, "{pt:?}");
            let k = pt.reserve_base * pt.reserve_quote;
            let drift = if k > k0 { k - k0 } else { k0 - k };
            assert!(drift < k0 / U256::from(1_000_000_000u64), "{pt:?}");
        }
        // Regimes change over a long path, and the price moves.
        let long = PricePath::generate(&p, 7, 500);
        let up = long
            .points
            .iter()
            .filter(|x| x.regime == Regime::Up)
            .count();
        let down = long
            .points
            .iter()
            .filter(|x| x.regime == Regime::Down)
            .count();
        assert!(up > 0 && down > 0, "{up} up, {down} down");
    }

    #[test]
    fn momentum_buys_a_rising_path_and_mean_reversion_sells_it() {
        let mut session = classical_session().unwrap();
        let bt = Backtest::new(rising(12));
        let mut seen = 0;
        let report = bt
            .run(
                &mut session,
                vec![
                    Box::new(Momentum::new(RuleParams::default())),
                    Box::new(MeanReversion::new(RuleParams::default())),
                ],
                |p| {
                    assert_eq!(p.steps, 12);
                    seen += 1;
                },
            )
            .unwrap();
        assert_eq!(seen, 24);
        let [m, r] = &report.policies[..] else {
            panic!("two policies")
        };
        assert_eq!(m.name, "momentum");
        // Five steps of warm-up, then a buy every step.
        assert_eq!(m.holds, 5);
        assert_eq!(m.trades, 7);
        assert!(
            m.decisions[5..]
                .iter()
                .all(|d| d.side == Some(TradeAction::Buy) && d.outcome == Outcome::Trade)
        );
        assert!(m.end_base > bt.start_base && m.end_quote < bt.start_quote);
        assert!(m.pnl_quote > I256::ZERO, "{m:?}");
        assert_eq!(m.agreement, None);
        // Mean reversion sells into the rise: it never agrees after the warm-up.
        assert!(
            r.decisions[5..]
                .iter()
                .all(|d| d.side == Some(TradeAction::Sell))
        );
        let a = r.agreement.as_ref().unwrap();
        assert_eq!((a.compared, a.same_side), (12, 5));
        assert!(r.pnl_quote < m.pnl_quote);
        for p in &report.policies {
            assert_eq!(p.trades + p.holds + p.refused, p.steps);
            assert_eq!(p.valid, p.trades + p.holds);
        }
    }

    /// Buys the whole quote balance (over the per-trade cap) on even steps, and answers
    /// something that is not an intent on odd ones.
    struct Reckless;

    impl TradingPolicy for Reckless {
        fn name(&self) -> &str {
            "reckless"
        }

        fn decide(
            &mut self,
            _session: &mut AgentSession,
            market: &MarketSnapshot,
            step: u64,
        ) -> Result<Decision, StrategyError> {
            let intent = if step.is_multiple_of(2) {
                Ok(TradeIntent {
                    action: TradeAction::Buy,
                    token_in: market.quote,
                    token_out: market.base,
                    amount_in: market.balance_quote,
                    max_slippage_bps: 50,
                    router: None,
                    reason: "all in".into(),
                })
            } else {
                Err(IntentParseError::Json("not json".into()))
            };
            Ok(Decision {
                intent,
                prompt: String::new(),
                generation: None,
                choice: None,
            })
        }
    }

    #[test]
    fn over_cap_and_malformed_decisions_are_counted_by_rule() {
        let mut session = classical_session().unwrap();
        let bt = Backtest::new(PricePath::generate(&PathParams::default(), 1, 9));
        let report = bt
            .run(&mut session, vec![Box::new(Reckless)], |_| {})
            .unwrap();
        let p = &report.policies[0];
        assert_eq!(
            (p.steps, p.valid, p.trades, p.holds, p.refused),
            (9, 0, 0, 0, 9)
        );
        let expected: BTreeMap<String, u64> =
            [("trade_cap".to_owned(), 5), ("malformed".to_owned(), 4)].into();
        assert_eq!(p.refusals, expected);
        assert_eq!(
            p.pnl_quote,
            signed_diff(p.end_equity_quote, p.start_equity_quote)
        );
        assert_eq!((p.end_base, p.end_quote), (bt.start_base, bt.start_quote));
        assert_eq!(p.decisions[0].rule.as_deref(), Some("trade_cap"));
        assert_eq!(p.decisions[1].side, None);
        // Malformed steps have no side to compare.
        assert_eq!(p.agreement.as_ref().unwrap().compared, 5);
        // Duplicate names are refused.
        let twice: Vec<Box<dyn TradingPolicy>> = vec![Box::new(Reckless), Box::new(Reckless)];
        assert!(matches!(
            bt.run(&mut session, twice, |_| {}),
            Err(BacktestError::Invalid(_))
        ));
    }

    /// Buys 1,000 quote of base on step 0, then holds.
    struct BuyOnce;

    impl TradingPolicy for BuyOnce {
        fn name(&self) -> &str {
            "buy-once"
        }

        fn decide(
            &mut self,
            _session: &mut AgentSession,
            market: &MarketSnapshot,
            step: u64,
        ) -> Result<Decision, StrategyError> {
            let intent = if step == 0 {
                TradeIntent {
                    action: TradeAction::Buy,
                    token_in: market.quote,
                    token_out: market.base,
                    amount_in: e18(1_000),
                    max_slippage_bps: 100,
                    router: None,
                    reason: "once".into(),
                }
            } else {
                TradeIntent::hold("done")
            };
            Ok(Decision {
                intent: Ok(intent),
                prompt: String::new(),
                generation: None,
                choice: None,
            })
        }
    }

    #[test]
    fn the_simulated_pool_has_a_twap_as_the_pair_would() {
        let mut bt = Backtest::new(PricePath::from_prices(
            &[1_000.0, 1_100.0, 1_210.0],
            1_000.0,
        ));
        let spot = |i: usize| {
            let p = &bt.path.points[i];
            price_x112(p.reserve_base, p.reserve_quote)
        };
        // No history at step 0; then the last step's price over a window shorter than a step.
        assert_eq!((bt.twap(0).price_x112, bt.twap(0).secs), (spot(0), 0));
        assert_eq!(bt.twap(2).price_x112, spot(1));
        assert_eq!(bt.twap(2).secs, bt.firewall.twap_window_secs);
        // Over two steps: their average.
        bt.firewall.twap_window_secs = 2 * bt.step_secs;
        let avg = (spot(0) + spot(1)) / U256::from(2u64);
        assert_eq!(bt.twap(2).price_x112, avg);
    }

    #[test]
    fn equity_and_drawdown_maths() {
        // Peak 120 → 90 is the worst fall (25%); 130 → 117 is only 10%.
        let series: Vec<U256> = [100u64, 120, 90, 130, 117]
            .iter()
            .map(|v| U256::from(*v))
            .collect();
        assert_eq!(max_drawdown_bps(&series), 2_500);
        assert_eq!(max_drawdown_bps(&series[3..]), 1_000);
        assert_eq!(max_drawdown_bps(&[]), 0);
        assert_eq!(max_drawdown_bps(&[U256::ZERO, U256::ZERO]), 0);
        assert_eq!(
            equity_quote(e18(2), e18(5), e18(1_000), e18(1_000_000)),
            e18(2_005)
        );

        // Buy 1,000 quote at price 1,000, then the price falls 10% and recovers to 950.
        let path = PricePath::from_prices(&[1_000.0, 900.0, 950.0], 1_000.0);
        let mut session = classical_session().unwrap();
        let bt = Backtest::new(path.clone());
        let report = bt
            .run(&mut session, vec![Box::new(BuyOnce)], |_| {})
            .unwrap();
        let p = &report.policies[0];
        let pts = &path.points;
        let bought = get_amount_out(e18(1_000), pts[0].reserve_quote, pts[0].reserve_base).unwrap();
        let (base, quote) = (e18(10) + bought, e18(9_000));
        let eq: Vec<U256> = std::iter::once(equity_quote(
            e18(10),
            e18(10_000),
            pts[0].reserve_base,
            pts[0].reserve_quote,
        ))
        .chain(
            pts.iter()
                .map(|pt| equity_quote(base, quote, pt.reserve_base, pt.reserve_quote)),
        )
        .collect();
        assert_eq!((p.end_base, p.end_quote), (base, quote));
        assert_eq!(p.start_equity_quote, eq[0]);
        assert_eq!(p.end_equity_quote, eq[3]);
        assert_eq!(p.max_drawdown_bps, max_drawdown_bps(&eq));
        // Start 20,000; at 900 the position is worth 9,000 + ~10.996 × 900 ≈ 18,896: ~5.5%.
        assert!(
            (545..=555).contains(&p.max_drawdown_bps),
            "{}",
            p.max_drawdown_bps
        );
        let pnl = signed_diff(eq[3], eq[0]);
        assert_eq!(p.pnl_quote, pnl);
        assert!(p.pnl_pct < 0.0 && p.pnl_pct > -4.0, "{}", p.pnl_pct);
        assert_eq!((p.trades, p.holds, p.valid), (1, 2, 3));
        assert_eq!(p.volume_quote, e18(1_000));
    }
}
