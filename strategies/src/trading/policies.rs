//! Trading policies: what proposes an intent from the market. One trait for the model and the
//! classical baselines, so they can be compared on the same market under the same firewall.

use agent_runtime::agent::{AgentSession, StrategyError};
use agent_runtime::engine::Generation;
use agent_runtime::engine::grammar::{TRADE_INTENT_MAX_TOKENS, trade_intent_grammar};
use alloy::primitives::U256;

use super::intent::{IntentParseError, TradeAction, TradeIntent, parse_model_intent};
use super::market::{BPS, MarketSnapshot, to_units};

/// What a policy proposed in one step.
#[derive(Debug)]
pub struct Decision {
    /// The proposal, or why the output was not one (recorded as a refusal, never traded).
    pub intent: Result<TradeIntent, IntentParseError>,
    /// The prompt (or, for a classical rule, a description of its inputs).
    pub prompt: String,
    /// The model's generation, for model policies: recorded for replay.
    pub generation: Option<Generation>,
}

/// Proposes a trade intent from a market snapshot.
pub trait TradingPolicy: Send {
    /// A short name (`llm`, `momentum`, `mean-reversion`).
    fn name(&self) -> &str;

    /// Proposes the intent of step `step` from `market`.
    fn decide(
        &mut self,
        session: &mut AgentSession,
        market: &MarketSnapshot,
        step: u64,
    ) -> Result<Decision, StrategyError>;
}

/// Prices seen so far, newest last (at most `keep`).
#[derive(Clone, Debug, Default)]
struct History {
    prices: Vec<f64>,
    keep: usize,
}

impl History {
    fn new(keep: usize) -> Self {
        Self {
            prices: Vec::new(),
            keep: keep.max(2),
        }
    }

    fn push(&mut self, price: f64) {
        self.prices.push(price);
        if self.prices.len() > self.keep {
            self.prices.remove(0);
        }
    }

    /// The mean of the last `n` prices, if there are that many.
    fn mean(&self, n: usize) -> Option<f64> {
        (n > 0 && self.prices.len() >= n)
            .then(|| self.prices[self.prices.len() - n..].iter().sum::<f64>() / n as f64)
    }
}

/// The model proposes: market state in the prompt, one JSON intent out under
/// `trade_intent_grammar`. Output that does not parse becomes a refusal, never a trade.
#[derive(Debug, Clone)]
pub struct LlmPolicy {
    instruction: String,
    history: History,
}

impl LlmPolicy {
    /// A policy with a standing instruction (e.g. "Trade tGLD against tUSD carefully.").
    pub fn new(instruction: impl Into<String>) -> Self {
        Self {
            instruction: instruction.into(),
            history: History::new(8),
        }
    }

    /// The prompt for `market` (the recent prices included).
    pub fn prompt(&self, market: &MarketSnapshot, step: u64) -> String {
        let recent: Vec<String> = self
            .history
            .prices
            .iter()
            .map(|p| format!("{p:.4}"))
            .collect();
        format!(
            "{instr}\nStep {step}. Pool base {base} / quote {quote}. Price {price:.4} quote per base. \
             Recent prices: [{recent}]. You hold {bb:.6} base and {bq:.6} quote (amounts in 18-decimal units: \
             base {rb} wei, quote {rq} wei). Answer with one JSON trade intent.\n",
            instr = self.instruction,
            base = market.base,
            quote = market.quote,
            price = market.price(),
            recent = recent.join(", "),
            bb = to_units(market.balance_base),
            bq = to_units(market.balance_quote),
            rb = market.balance_base,
            rq = market.balance_quote,
        )
    }
}

impl TradingPolicy for LlmPolicy {
    fn name(&self) -> &str {
        "llm"
    }

    fn decide(
        &mut self,
        session: &mut AgentSession,
        market: &MarketSnapshot,
        step: u64,
    ) -> Result<Decision, StrategyError> {
        let prompt = self.prompt(market, step);
        self.history.push(market.price());
        let mut settings = session.settings_for_step(step);
        // The trade grammar always applies: a configured grammar for another shape would only
        // produce refusals.
        settings.grammar = Some(trade_intent_grammar().to_owned());
        settings.max_tokens = settings.max_tokens.max(TRADE_INTENT_MAX_TOKENS);
        let generation = session.generate(&prompt, &settings)?;
        Ok(Decision {
            intent: parse_model_intent(&generation.text),
            prompt,
            generation: Some(generation),
        })
    }
}

/// Shared sizing of the classical rules: a fixed fraction of the balance paid in.
#[derive(Clone, Debug)]
pub struct RuleParams {
    /// Moving-average window (steps).
    pub window: usize,
    /// How far (bps) the price must be from its average to act.
    pub threshold_bps: u32,
    /// Fraction (bps) of the input balance to trade.
    pub size_bps: u32,
    /// Slippage to ask for (the firewall's bound still applies).
    pub slippage_bps: u32,
}

impl Default for RuleParams {
    /// A 5-step window, a 0.5% threshold, 10% of the balance, 0.5% slippage.
    fn default() -> Self {
        Self {
            window: 5,
            threshold_bps: 50,
            size_bps: 1_000,
            slippage_bps: 50,
        }
    }
}

fn rule_intent(
    market: &MarketSnapshot,
    params: &RuleParams,
    action: TradeAction,
    reason: String,
) -> TradeIntent {
    let (token_in, token_out, balance) = match action {
        TradeAction::Buy => (market.quote, market.base, market.balance_quote),
        TradeAction::Sell => (market.base, market.quote, market.balance_base),
        TradeAction::Hold => return TradeIntent::hold(reason),
    };
    let amount_in = balance.saturating_mul(U256::from(params.size_bps)) / U256::from(BPS);
    if amount_in.is_zero() {
        return TradeIntent::hold(format!("{reason}; nothing to pay with"));
    }
    TradeIntent {
        action,
        token_in,
        token_out,
        amount_in,
        max_slippage_bps: params.slippage_bps,
        router: None,
        reason,
    }
}

/// A classical rule acting on the price's distance from its moving average.
#[derive(Clone, Debug)]
struct Rule {
    params: RuleParams,
    history: History,
    follow: bool,
    name: &'static str,
}

impl Rule {
    fn decide(&mut self, market: &MarketSnapshot) -> Decision {
        let price = market.price();
        let mean = self.history.mean(self.params.window);
        self.history.push(price);
        let prompt = format!(
            "{}: price {price:.6}, mean of last {} {mean:?}, threshold {} bps",
            self.name, self.params.window, self.params.threshold_bps
        );
        let intent = match mean {
            Some(mean) if mean > 0.0 => {
                let dev_bps = (price - mean) / mean * f64::from(BPS);
                let t = f64::from(self.params.threshold_bps);
                let up = dev_bps > t;
                let down = dev_bps < -t;
                let action = match (up, down, self.follow) {
                    (true, _, true) | (_, true, false) => TradeAction::Buy,
                    (_, true, true) | (true, _, false) => TradeAction::Sell,
                    _ => TradeAction::Hold,
                };
                rule_intent(
                    market,
                    &self.params,
                    action,
                    format!("price {dev_bps:+.0} bps from its mean"),
                )
            }
            _ => TradeIntent::hold("warming up"),
        };
        Decision {
            intent: Ok(intent),
            prompt,
            generation: None,
        }
    }
}

/// Momentum: buy when the price is above its moving average, sell when below.
#[derive(Clone, Debug)]
pub struct Momentum(Rule);

impl Momentum {
    /// Momentum with `params`.
    pub fn new(params: RuleParams) -> Self {
        let keep = params.window + 1;
        Self(Rule {
            params,
            history: History::new(keep),
            follow: true,
            name: "momentum",
        })
    }
}

impl TradingPolicy for Momentum {
    fn name(&self) -> &str {
        "momentum"
    }

    fn decide(
        &mut self,
        _session: &mut AgentSession,
        market: &MarketSnapshot,
        _step: u64,
    ) -> Result<Decision, StrategyError> {
        Ok(self.0.decide(market))
    }
}

/// Mean reversion: sell when the price is above its moving average, buy when below.
#[derive(Clone, Debug)]
pub struct MeanReversion(Rule);

impl MeanReversion {
    /// Mean reversion with `params`.
    pub fn new(params: RuleParams) -> Self {
        let keep = params.window + 1;
        Self(Rule {
            params,
            history: History::new(keep),
            follow: false,
            name: "mean-reversion",
        })
    }
}

impl TradingPolicy for MeanReversion {
    fn name(&self) -> &str {
        "mean-reversion"
    }

    fn decide(
        &mut self,
        _session: &mut AgentSession,
        market: &MarketSnapshot,
        _step: u64,
    ) -> Result<Decision, StrategyError> {
        Ok(self.0.decide(market))
    }
}

/// A policy by name: `llm` (with `instruction`), `momentum` or `mean-reversion`.
pub fn policy_by_name(name: &str, instruction: &str) -> Option<Box<dyn TradingPolicy>> {
    Some(match name {
        "llm" => Box::new(LlmPolicy::new(instruction)),
        "momentum" => Box::new(Momentum::new(RuleParams::default())),
        "mean-reversion" | "mean_reversion" => Box::new(MeanReversion::new(RuleParams::default())),
        _ => return None,
    })
}

impl TradingPolicy for Box<dyn TradingPolicy> {
    fn name(&self) -> &str {
        self.as_ref().name()
    }

    fn decide(
        &mut self,
        session: &mut AgentSession,
        market: &MarketSnapshot,
        step: u64,
    ) -> Result<Decision, StrategyError> {
        self.as_mut().decide(session, market, step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::Address;

    fn market(reserve_quote: u64) -> MarketSnapshot {
        let e18 = U256::from(10u64).pow(U256::from(18u64));
        MarketSnapshot {
            block: 1,
            timestamp: 1,
            base: Address::repeat_byte(1),
            quote: Address::repeat_byte(2),
            router: Address::repeat_byte(3),
            pair: Address::repeat_byte(4),
            reserve_base: U256::from(1_000u64) * e18,
            reserve_quote: U256::from(reserve_quote) * e18,
            holder: Address::repeat_byte(5),
            balance_base: U256::from(10u64) * e18,
            balance_quote: U256::from(10_000u64) * e18,
            paused: false,
        }
    }

    #[test]
    fn momentum_follows_and_mean_reversion_fades() {
        let mut m = Rule {
            params: RuleParams::default(),
            history: History::new(6),
            follow: true,
            name: "momentum",
        };
        let mut r = Rule {
            follow: false,
            name: "mean-reversion",
            ..m.clone()
        };
        for _ in 0..5 {
            assert_eq!(
                m.decide(&market(1_000_000)).intent.unwrap().action,
                TradeAction::Hold
            );
            r.decide(&market(1_000_000));
        }
        let up = market(1_020_000);
        let buy = m.decide(&up).intent.unwrap();
        assert_eq!(buy.action, TradeAction::Buy);
        assert_eq!(buy.token_in, up.quote);
        assert_eq!(buy.amount_in, up.balance_quote / U256::from(10u64));
        let sell = r.decide(&up).intent.unwrap();
        assert_eq!(sell.action, TradeAction::Sell);
        assert_eq!(sell.token_in, up.base);
    }

    #[test]
    fn policies_by_name() {
        assert_eq!(policy_by_name("momentum", "").unwrap().name(), "momentum");
        assert_eq!(
            policy_by_name("mean-reversion", "").unwrap().name(),
            "mean-reversion"
        );
        assert_eq!(policy_by_name("llm", "x").unwrap().name(), "llm");
        assert!(policy_by_name("yolo", "").is_none());
    }

    #[test]
    fn llm_prompt_carries_the_market() {
        let p = LlmPolicy::new("Trade carefully.");
        let m = market(1_000_000);
        let prompt = p.prompt(&m, 3);
        assert!(prompt.starts_with("Trade carefully."));
        assert!(prompt.contains("Price 1000.0000"));
        assert!(prompt.contains(&m.base.to_string()));
    }
}
