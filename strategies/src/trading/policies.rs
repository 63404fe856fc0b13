//! Trading policies: what proposes an intent from the market. One trait for the model and the
//! classical baselines, so they can be compared on the same market under the same firewall.

use inft_engine::{ChatMessage, Generation};
use inft_runtime::{AgentSession, StrategyError};

use super::decision::{
    Choices, DECISION_MAX_TOKENS, DecisionError, ModelDecision, PairSymbols, check_symbols,
};
use super::firewall::{Firewall, Policy};
use super::intent::{IntentParseError, TradeAction, TradeIntent};
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

    /// The owner's firewall as it stands before a step (limits, volume used, kill switch), so
    /// a policy can offer its model only the choices the firewall would accept. The firewall
    /// still checks whatever the policy proposes. Classical rules ignore it.
    fn observe_firewall(&mut self, _firewall: &Firewall) {}

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

/// The model decides: the market as a chat prompt (its role and the owner's instruction as the
/// system message; prices, trend, holdings, memory and the open choices as the user message),
/// one [`ModelDecision`] out under a grammar that offers only what the firewall would accept
/// now. The runtime turns the decision into the [`TradeIntent`]; output that does not parse
/// becomes a refusal, never a trade.
#[derive(Debug, Clone)]
pub struct LlmPolicy {
    instruction: String,
    symbols: PairSymbols,
    firewall: Option<Firewall>,
    history: History,
}

/// The standing instruction of a model trader whose owner gave none: follow momentum in small
/// steps (what the classical momentum rule does, so the two can be compared).
pub const FOLLOW_THE_TREND: &str = "Follow the trend: buy when the price is rising, sell when it \
    is falling, hold when it is flat. Trade small fractions.";

/// Steps of the trend the prompt states (the momentum rule's default window).
const TREND_WINDOW: usize = 5;
/// A move smaller than this (bps from the window's mean) is called flat.
const TREND_THRESHOLD_BPS: f64 = 50.0;

impl LlmPolicy {
    /// A policy with the owner's standing instruction (e.g. "Follow the trend.").
    pub fn new(instruction: impl Into<String>) -> Self {
        Self {
            instruction: instruction.into(),
            symbols: PairSymbols::default(),
            firewall: None,
            history: History::new(TREND_WINDOW + 3),
        }
    }

    /// Names the pair's tokens by their symbols (e.g. `tGLD`, `tUSD`) in prompts and decisions.
    pub fn with_symbols(mut self, symbols: PairSymbols) -> Result<Self, DecisionError> {
        check_symbols(&symbols)?;
        self.symbols = symbols;
        Ok(self)
    }

    /// The price's move against the mean of the previous [`TREND_WINDOW`] prices, in bps, once
    /// there are that many.
    fn trend_bps(&self, price: f64) -> Option<f64> {
        let mean = self.history.mean(TREND_WINDOW)?;
        (mean > 0.0).then(|| (price - mean) / mean * f64::from(BPS))
    }

    /// The chat messages of one step.
    pub fn messages(
        &self,
        market: &MarketSnapshot,
        step: u64,
        choices: &Choices,
        memory: Option<&str>,
    ) -> Vec<ChatMessage> {
        let s = &self.symbols;
        let system = format!(
            "You are a trading agent for the pair {pair}: {base} priced in {quote}. {instr}\n\
             Each step you answer with one JSON object: a short reason that ends with what you \
             do (\"..., so I buy\", \"..., so I sell\" or \"..., so I hold\"), then, for buy or \
             sell, the fraction of your balance to pay.",
            pair = s.pair(),
            base = s.base,
            quote = s.quote,
            instr = self.instruction.trim(),
        );
        let price = market.price();
        let recent: Vec<String> = self
            .history
            .prices
            .iter()
            .map(|p| format!("{p:.2}"))
            .collect();
        let trend = match self.trend_bps(price) {
            Some(bps) if bps > TREND_THRESHOLD_BPS => {
                format!(
                    "rising ({:+.2}% above its {TREND_WINDOW}-step average)",
                    bps / 100.0
                )
            }
            Some(bps) if bps < -TREND_THRESHOLD_BPS => {
                format!(
                    "falling ({:+.2}% below its {TREND_WINDOW}-step average)",
                    bps / 100.0
                )
            }
            Some(bps) => format!(
                "flat ({:+.2}% from its {TREND_WINDOW}-step average)",
                bps / 100.0
            ),
            None => "unknown (not enough history yet)".to_owned(),
        };
        let mut user = String::new();
        if let Some(memory) = memory.filter(|m| !m.trim().is_empty()) {
            user.push_str(memory.trim());
            user.push_str("\n\n");
        }
        user.push_str(&format!(
            "Step {n}. Price: {price:.2} {quote} per {base}. Earlier prices: [{recent}]. \
             Trend: {trend}.\n\
             You hold {bb:.4} {base} and {bq:.2} {quote} (worth {eq:.2} {quote} in all).\n\
             Allowed now: {allowed}.",
            n = step + 1,
            base = s.base,
            quote = s.quote,
            recent = recent.join(", "),
            bb = to_units(market.balance_base),
            bq = to_units(market.balance_quote),
            eq = to_units(market.equity_quote()),
            allowed = choices.describe(),
        ));
        vec![ChatMessage::system(system), ChatMessage::user(user)]
    }
}

impl TradingPolicy for LlmPolicy {
    fn name(&self) -> &str {
        "llm"
    }

    fn observe_firewall(&mut self, firewall: &Firewall) {
        self.firewall = Some(firewall.clone());
    }

    fn decide(
        &mut self,
        session: &mut AgentSession,
        market: &MarketSnapshot,
        step: u64,
    ) -> Result<Decision, StrategyError> {
        // Without the owner's limits the model is offered nothing but hold.
        let firewall = self
            .firewall
            .clone()
            .unwrap_or_else(|| Firewall::new(Policy::hold_only()));
        let choices = Choices::allowed(market, &firewall, &self.symbols);
        let messages = self.messages(market, step, &choices, session.memory());
        let prompt = session.render(&messages)?;
        self.history.push(market.price());
        let mut settings = session.settings_for_step(step);
        // The decision grammar always applies: a configured grammar for another shape would
        // only produce refusals.
        settings.grammar = Some(choices.grammar());
        settings.max_tokens = settings.max_tokens.max(DECISION_MAX_TOKENS);
        let generation = session.generate(&prompt, &settings)?;
        let intent = ModelDecision::parse(&generation.text, &choices)
            .map(|d| d.to_intent(market, &firewall))
            .map_err(IntentParseError::from);
        Ok(Decision {
            intent,
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
    let intent = TradeIntent::sized(market, action, params.size_bps, params.slippage_bps, reason);
    if intent.action != TradeAction::Hold && intent.amount_in.is_zero() {
        return TradeIntent::hold(format!("{}; nothing to pay with", intent.reason));
    }
    intent
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

    fn observe_firewall(&mut self, firewall: &Firewall) {
        self.as_mut().observe_firewall(firewall);
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
    use alloy::primitives::{Address, U256};

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
            twap: None,
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
    fn llm_prompt_carries_the_market_trend_memory_and_choices() {
        let mut p = LlmPolicy::new("Follow the trend.")
            .with_symbols(PairSymbols {
                base: "tGLD".into(),
                quote: "tUSD".into(),
            })
            .unwrap();
        for _ in 0..5 {
            p.history.push(1000.0);
        }
        let m = market(1_020_000);
        let choices = Choices {
            pair: "tGLD/tUSD".into(),
            buy: vec!["0.1"],
            sell: vec![],
        };
        let msgs = p.messages(&m, 3, &choices, Some("Notes: bought early."));
        assert_eq!(msgs.len(), 2);
        assert!(
            msgs[0].content.contains("Follow the trend."),
            "{}",
            msgs[0].content
        );
        assert!(msgs[0].content.contains("tGLD/tUSD"));
        let user = &msgs[1].content;
        assert!(user.starts_with("Notes: bought early."), "{user}");
        assert!(user.contains("Price: 1020.00 tUSD per tGLD"), "{user}");
        assert!(user.contains("Trend: rising (+2.00%"), "{user}");
        assert!(
            user.contains("buy fractions of your quote balance: 0.1"),
            "{user}"
        );
        assert!(
            user.contains("sell fractions of your base balance: not allowed now"),
            "{user}"
        );
    }
}
