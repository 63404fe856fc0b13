//! Trading policies: what proposes an intent from the market. One trait for the model and the
//! classical baselines, so they can be compared on the same market under the same firewall.

use alloy::primitives::{Address, U256};
use inft_engine::{ChatMessage, Generation};
use inft_runtime::{AgentSession, StrategyError};

use super::decision::{
    Choices, DECISION_MAX_TOKENS, DecisionError, ModelDecision, PairSymbols, STATES, ScoredChoice,
    channel_query, check_symbols,
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
    /// How a scoring policy chose (recorded in the action's details as `choice`).
    pub choice: Option<ScoredChoice>,
}

/// Proposes a trade intent from a market snapshot.
pub trait TradingPolicy: Send {
    /// A short name (`llm`, `momentum`, `mean-reversion`).
    fn name(&self) -> &str;

    /// The owner's firewall as it stands before a step (limits, volume used, kill switch), so
    /// a policy can offer its model only the choices the firewall would accept. The firewall
    /// still checks whatever the policy proposes. Classical rules size within its per-trade
    /// cap.
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
///
/// Each rule names the price in full ("sell when the price is falling", not "when it is"):
/// the model reads an instruction by how likely it finds a state after "I sell when the price
/// is" ([`ScoredChoice`]), and SmolLM2 matched the clauses written out that way on 93% of
/// backtest steps, those abbreviated "when it is" on 69%.
pub const FOLLOW_THE_TREND: &str = "Follow the trend: buy when the price is rising, sell when \
    the price is falling, hold when the price is flat. Trade small fractions.";

/// A standing instruction that names the mean-reversion rule: buy when the price has fallen
/// below its recent average, sell when it has risen above it (the signal's `falling` and
/// `rising`, measured against the same average).
pub const BUY_THE_DIPS: &str = "Buy the dips: buy when the price is falling, sell when the \
    price is rising, hold when the price is flat. Trade small fractions.";

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

    /// The market's state as the signal words it (` rising`, ` falling`, ` flat`), once there
    /// is enough history.
    fn state(&self, price: f64) -> Option<&'static str> {
        Some(match self.trend_bps(price)? {
            bps if bps > TREND_THRESHOLD_BPS => " rising",
            bps if bps < -TREND_THRESHOLD_BPS => " falling",
            _ => " flat",
        })
    }

    /// The chat messages of one step: the pair and the answer format as the system message;
    /// the holdings, the open choices and the owner's instruction, stated plainly and briefly,
    /// as the user message, the instruction last (a small model attends most to what it read
    /// last). The market's state is not stated: it is what the choice scores (see
    /// [`ScoredChoice`]), and the reason's grammar opens with it.
    pub fn messages(
        &self,
        market: &MarketSnapshot,
        step: u64,
        choices: &Choices,
        memory: Option<&str>,
    ) -> Vec<ChatMessage> {
        let s = &self.symbols;
        let system = format!(
            "You trade {base} against {quote}. Answer with one JSON object: the action, for buy \
             or sell the fraction of your balance to pay, and a one-sentence reason.",
            base = s.base,
            quote = s.quote,
        );
        let price = market.price();
        let equity = to_units(market.equity_quote());
        let in_base = if equity > 0.0 {
            to_units(market.balance_base) * price / equity * 100.0
        } else {
            0.0
        };
        let mut user = String::new();
        if let Some(memory) = memory.filter(|m| !m.trim().is_empty()) {
            user.push_str(memory.trim());
            user.push_str("\n\n");
        }
        user.push_str(&format!(
            "Step {n}. Price: {price:.2} {quote} per {base}. You hold {bb:.4} {base} and \
             {bq:.2} {quote} ({in_base:.0}% of your value in {base}).\n\
             Allowed: {allowed}.\n\
             Instruction: {instr}",
            n = step + 1,
            base = s.base,
            quote = s.quote,
            bb = to_units(market.balance_base),
            bq = to_units(market.balance_quote),
            allowed = choices.describe(s),
            instr = self.instruction.trim(),
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
        let state = self.state(market.price());
        self.history.push(market.price());

        // Without a signal there is nothing to read the instruction against: hold.
        let picked = match state {
            None => None,
            Some(state) => {
                let actions = choices.actions();
                let mut likelihoods = Vec::with_capacity(actions.len());
                for action in &actions {
                    let query = format!("{prompt}{}", channel_query(*action));
                    let l = session.score(&query, &STATES)?;
                    likelihoods.push([l[0], l[1], l[2]]);
                }
                Some(ScoredChoice::pick(state, actions, likelihoods))
            }
        };
        let choice = picked.as_ref().map_or(TradeAction::Hold, |c| c.picked);

        // The model then writes the decision with only the picked action open: its size and
        // a reason that explains the choice, opened with the market's state and the action
        // (left to itself, SmolLM2 wrote "the price is rising, so I will sell" for a buy).
        // This generation is what the record replays.
        let lead = reason_lead(state, choice, choices.actions().len() == 1);
        let mut settings = session.settings_for_step(step);
        settings.grammar = Some(choices.only(choice).grammar(&lead));
        settings.max_tokens = settings.max_tokens.max(DECISION_MAX_TOKENS);
        settings.temperature = 0.0;
        let generation = session.generate(&prompt, &settings)?;
        let intent = ModelDecision::parse(&generation.text, &choices)
            .map(|d| d.to_intent(market, &firewall))
            .map_err(IntentParseError::from);
        Ok(Decision {
            intent,
            prompt,
            generation: Some(generation),
            choice: picked,
        })
    }
}

/// How the reason of a model trader's decision opens: the market's state and the action
/// taken, and why there was no choice when the firewall left nothing open but hold (else the
/// reader sees "the price is rising, so I hold" under an instruction to buy a rising price).
fn reason_lead(state: Option<&str>, action: TradeAction, only_hold: bool) -> String {
    let verb = match action {
        TradeAction::Buy => "buy",
        TradeAction::Sell => "sell",
        TradeAction::Hold => "hold",
    };
    match state {
        Some(state) if only_hold => {
            format!("The price is{state}, but the firewall allows only holding now, so I {verb}")
        }
        Some(state) => format!("The price is{state}, so I {verb}"),
        None => format!("There are too few prices yet, so I {verb}"),
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
    cap: Option<U256>,
) -> TradeIntent {
    let mut intent =
        TradeIntent::sized(market, action, params.size_bps, params.slippage_bps, reason);
    if intent.action != TradeAction::Hold && intent.amount_in.is_zero() {
        return TradeIntent::hold(format!("{}; nothing to pay with", intent.reason));
    }
    if let Some(cap) = cap {
        let value = market.cap_value(intent.token_in, intent.amount_in);
        if value > cap {
            intent.amount_in = within_cap(market, intent.token_in, intent.amount_in, value, cap);
            intent.reason = format!("{}; sized down to the per-trade cap", intent.reason);
        }
    }
    intent
}

/// The most of `amount` (of `token`, valued `value` in quote as the firewall values it) that
/// stays within `cap`: a fixed fraction of a grown balance would otherwise be refused step
/// after step, and the rule would never trade.
fn within_cap(
    market: &MarketSnapshot,
    token: Address,
    amount: U256,
    value: U256,
    cap: U256,
) -> U256 {
    let scaled = amount.saturating_mul(cap) / value;
    // The valuation rounds; one basis point less is within the cap whatever the rounding.
    if market.cap_value(token, scaled) > cap {
        scaled - scaled / U256::from(BPS)
    } else {
        scaled
    }
}

/// A classical rule acting on the price's distance from its moving average.
#[derive(Clone, Debug)]
struct Rule {
    params: RuleParams,
    history: History,
    follow: bool,
    name: &'static str,
    /// The owner's per-trade cap in quote, once the firewall is seen: the rule sizes within it.
    cap: Option<U256>,
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
                    self.cap,
                )
            }
            _ => TradeIntent::hold("warming up"),
        };
        Decision {
            intent: Ok(intent),
            prompt,
            generation: None,
            choice: None,
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
            cap: None,
        })
    }
}

impl TradingPolicy for Momentum {
    fn name(&self) -> &str {
        "momentum"
    }

    fn observe_firewall(&mut self, firewall: &Firewall) {
        self.0.cap = Some(firewall.policy().max_trade_quote);
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
            cap: None,
        })
    }
}

impl TradingPolicy for MeanReversion {
    fn name(&self) -> &str {
        "mean-reversion"
    }

    fn observe_firewall(&mut self, firewall: &Firewall) {
        self.0.cap = Some(firewall.policy().max_trade_quote);
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
            cap: None,
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
    fn a_rule_sizes_its_trade_within_the_per_trade_cap() {
        let mut m = Momentum::new(RuleParams::default());
        let fw = Firewall::new(Policy {
            max_trade_quote: U256::from(500u64) * U256::from(10u64).pow(U256::from(18u64)),
            ..Policy::for_market(&crate::trading::backtest::sim_market(), U256::ZERO)
        });
        m.observe_firewall(&fw);
        for _ in 0..5 {
            m.0.decide(&market(1_000_000));
        }
        // 10% of 10,000 quote is 1,000: twice the cap.
        let up = market(1_020_000);
        let buy = m.0.decide(&up).intent.unwrap();
        let cap = fw.policy().max_trade_quote;
        let value = up.cap_value(buy.token_in, buy.amount_in);
        assert!(value <= cap, "{value} over {cap}");
        assert!(
            value > cap - cap / U256::from(100u64),
            "{value} far under {cap}"
        );
        assert!(
            buy.reason.ends_with("sized down to the per-trade cap"),
            "{}",
            buy.reason
        );
        // A trade already within the cap keeps its size.
        m.0.cap = Some(cap * U256::from(4u64));
        let buy = m.0.decide(&up).intent.unwrap();
        assert_eq!(buy.amount_in, up.balance_quote / U256::from(10u64));
    }

    #[test]
    fn the_reason_opens_with_the_state_the_action_and_a_closed_firewall() {
        use TradeAction::{Buy, Hold};
        assert_eq!(
            reason_lead(Some(" rising"), Buy, false),
            "The price is rising, so I buy"
        );
        assert_eq!(
            reason_lead(Some(" rising"), Hold, true),
            "The price is rising, but the firewall allows only holding now, so I hold"
        );
        assert_eq!(
            reason_lead(None, Hold, true),
            "There are too few prices yet, so I hold"
        );
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
            msgs[0].content.contains("tGLD against tUSD"),
            "{}",
            msgs[0].content
        );
        let user = &msgs[1].content;
        assert!(
            user.ends_with("Instruction: Follow the trend."),
            "the instruction comes last, and no signal line the choice could copy: {user}"
        );
        assert!(user.starts_with("Notes: bought early."), "{user}");
        assert!(user.contains("Price: 1020.00 tUSD per tGLD"), "{user}");
        assert!(
            user.contains("Allowed: buy (0.1 of your tUSD), hold."),
            "{user}"
        );
        assert_eq!(p.state(1_020.0), Some(" rising"));
        assert_eq!(p.state(1_000.0), Some(" flat"));
        assert_eq!(
            LlmPolicy::new("x").state(1_000.0),
            None,
            "no history, no state"
        );
    }
}
