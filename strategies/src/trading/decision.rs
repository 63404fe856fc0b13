//! What a language model decides for a trading agent, and how the runtime turns it into an order.
//!
//! A small model cannot be trusted to write token addresses or amounts in wei (SmolLM2-135M,
//! asked to, invented addresses and amounts of 10^27). It is asked only what it can judge: buy,
//! sell or hold on the allowlisted pair (by symbol), a size as a fraction of the balance it
//! would pay with, and a short reason. The grammar offers only the choices the owner's
//! [`Firewall`] would let through at this step, so a decision that parses is one the firewall
//! accepts (or a hold); the runtime then builds the [`TradeIntent`] (addresses, base units,
//! slippage) and the firewall checks that order exactly as it checks any other. The model has
//! less to get wrong and no more power.
//!
//! The answer is one JSON object, the decision first and a short reason after it:
//! `{"action":"buy","pair":"tGLD/tUSD","fraction":"0.1","reason":"The price is rising."}` or
//! `{"action":"hold","reason":"The price is flat."}`. The policy decodes it greedily, so the
//! action is the allowed one the model finds most likely right after reading the market and its
//! instruction; the reason, written after the choice, explains it rather than steering it. (A
//! reason written first made a 135M model echo the prompt and then pick a side by chance.)

use inft_engine::SamplerSettings;
use serde::{Deserialize, Serialize};

use super::firewall::Firewall;
use super::intent::{TradeAction, TradeIntent};
use super::market::MarketSnapshot;

/// The sizes a model may pick, as (JSON text, basis points of the balance paid in).
pub const FRACTIONS: [(&str, u32); 5] = [
    ("0.05", 500),
    ("0.1", 1_000),
    ("0.25", 2_500),
    ("0.5", 5_000),
    ("1", 10_000),
];

/// Most characters of the reason after its lead; it ends at its first full stop (a point
/// between digits is a decimal point).
const REASON_CHARS: u16 = 60;

/// Most tokens a decision can take with a byte-level vocabulary (one token per byte, plus
/// end-of-generation): a safe `max_tokens`.
pub const DECISION_MAX_TOKENS: u32 = 260;

/// The sampler settings a model trader is minted with: greedy (the most likely allowed answer;
/// see the module docs), with room for one decision. The seed is kept for settings that sample.
pub fn decision_sampler(seed: u32) -> SamplerSettings {
    SamplerSettings {
        temperature: 0.0,
        max_tokens: DECISION_MAX_TOKENS,
        ..SamplerSettings::instruct(seed)
    }
}

/// The symbols of the traded pair, as the model sees them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairSymbols {
    /// The traded asset (e.g. `tGLD`).
    pub base: String,
    /// What it is priced in (e.g. `tUSD`).
    pub quote: String,
}

impl Default for PairSymbols {
    fn default() -> Self {
        Self {
            base: "BASE".into(),
            quote: "QUOTE".into(),
        }
    }
}

impl PairSymbols {
    /// `BASE/QUOTE`, the pair's name in prompts and decisions.
    pub fn pair(&self) -> String {
        format!("{}/{}", self.base, self.quote)
    }

    fn usable(&self) -> bool {
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 16
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        };
        ok(&self.base) && ok(&self.quote)
    }
}

/// The choices open to the model at one step: which sizes of a buy and of a sell the firewall
/// would accept right now. Hold is always open.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize)]
pub struct Choices {
    /// The pair's name (`BASE/QUOTE`).
    pub pair: String,
    /// Fractions (JSON text) of the quote balance a buy may pay.
    pub buy: Vec<&'static str>,
    /// Fractions (JSON text) of the base balance a sell may pay.
    pub sell: Vec<&'static str>,
}

/// The intent of `action` paying `bps` of the balance it pays with, at the owner's slippage
/// bound.
fn sized_intent(
    market: &MarketSnapshot,
    firewall: &Firewall,
    action: TradeAction,
    bps: u32,
    reason: String,
) -> TradeIntent {
    let slippage = firewall.policy().max_slippage_bps;
    TradeIntent::sized(market, action, bps, slippage, reason)
}

impl Choices {
    /// The sizes the firewall would accept on `market`, asking the firewall itself (on a copy,
    /// so nothing is noted), so the grammar and the checks cannot disagree.
    pub fn allowed(market: &MarketSnapshot, firewall: &Firewall, symbols: &PairSymbols) -> Self {
        let open = |action| -> Vec<&'static str> {
            FRACTIONS
                .iter()
                .filter(|(_, bps)| {
                    let intent = sized_intent(market, firewall, action, *bps, String::new());
                    matches!(firewall.clone().check(&intent, market), Ok(Some(_)))
                })
                .map(|(text, _)| *text)
                .collect()
        };
        Self {
            pair: symbols.pair(),
            buy: open(TradeAction::Buy),
            sell: open(TradeAction::Sell),
        }
    }

    /// The GBNF grammar (root rule `root`) of a decision among these choices: the action,
    /// for a buy or sell the pair and one of the offered fractions, then a one-sentence reason
    /// that opens with `reason_lead` (reduced to letters, digits, spaces and commas) and goes
    /// on in lowercase words, numbers, "I" and the pair's own symbols. Left free, SmolLM2
    /// invented tickers ("so I sell tGDL to buy tLDA").
    pub fn grammar(&self, reason_lead: &str) -> String {
        let lead: String = reason_lead
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | ','))
            .collect();
        let sized = |action: &str, fractions: &[&str]| -> Option<String> {
            if fractions.is_empty() {
                return None;
            }
            let alts: Vec<String> = fractions
                .iter()
                .map(|f| format!("\"\\\"{f}\\\"\""))
                .collect();
            Some(format!(
                "\"{action}\\\",\\\"pair\\\":\\\"{pair}\\\",\\\"fraction\\\":\" ({alts}) reason",
                pair = self.pair,
                alts = alts.join(" | ")
            ))
        };
        let symbols: String = self
            .pair
            .split('/')
            .map(|symbol| format!(" | \"{symbol}\""))
            .collect();
        let mut decisions = vec!["\"hold\\\"\" reason".to_owned()];
        decisions.extend(sized("buy", &self.buy));
        decisions.extend(sized("sell", &self.sell));
        format!(
            "root ::= \"{{\\\"action\\\":\\\"\" decision\n\
             decision ::= {decisions}\n\
             reason ::= \",\\\"reason\\\":\\\"{lead}\" char{{0,{REASON_CHARS}}} \".\\\"}}\"\n\
             char ::= [a-z0-9 ,'%-] | [0-9] \".\" [0-9] | \"I\"{symbols}\n",
            decisions = decisions.join(" | "),
        )
    }

    /// The choices in words, for the prompt: `buy (0.05 or 0.1 of your tUSD), sell (…), hold`.
    pub fn describe(&self, symbols: &PairSymbols) -> String {
        let sized = |verb: &str, fractions: &[&str], pays: &str| {
            (!fractions.is_empty())
                .then(|| format!("{verb} ({} of your {pays})", fractions.join(" or ")))
        };
        [
            sized("buy", &self.buy, &symbols.quote),
            sized("sell", &self.sell, &symbols.base),
            Some("hold".to_owned()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
    }
}

impl Choices {
    /// The actions open: hold, then buy and sell where a size of them is.
    pub fn actions(&self) -> Vec<TradeAction> {
        let mut out = vec![TradeAction::Hold];
        if !self.buy.is_empty() {
            out.push(TradeAction::Buy);
        }
        if !self.sell.is_empty() {
            out.push(TradeAction::Sell);
        }
        out
    }

    /// These choices with `action` the only one open (its sizes kept), for writing the reason
    /// of a decision already taken.
    pub fn only(&self, action: TradeAction) -> Self {
        Self {
            pair: self.pair.clone(),
            buy: if action == TradeAction::Buy {
                self.buy.clone()
            } else {
                Vec::new()
            },
            sell: if action == TradeAction::Sell {
                self.sell.clone()
            } else {
                Vec::new()
            },
        }
    }
}

/// How the model chose among the open actions, by the noisy-channel reading of its instruction:
/// for each open action `A`, how likely the model finds each market state ([`STATES`]) right
/// after "I A when the price is", following the step's prompt with the owner's instruction
/// (without the signal line), normalised over the states (which cancels how much an action's
/// words favour one state whatever the instruction). An instruction says what to do in each
/// state, one action each, so the model's reading of it is the pairing of open actions with
/// distinct states whose normalised scores sum highest; the pick is the action paired with the
/// observed state. A state no action is paired with (fewer actions open than states) goes to
/// the action under which it is most likely.
///
/// Scoring each state alone, SmolLM2 found " flat" a little more likely after "I sell" than
/// after "I hold" and sold on flat markets, though "I sell" made " falling" far likelier still:
/// the pairing gives sell to falling, and flat to hold.
///
/// Asked "what do you do?", a 135M model answers with its favourite word whatever the market
/// (it bought on 90% of steps under either instruction); asked which action makes what it sees
/// most expected, it reads its instruction ("sell when the price is falling") the way small models
/// read best, by matching text. Recorded in the action's details (`choice`), with the texts
/// scored, so an audit scores them again after the record's prompt and compares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredChoice {
    /// The market's state as scored (` rising`, ` falling`, ` flat`).
    pub state: String,
    /// The open actions, in the order scored.
    pub actions: Vec<TradeAction>,
    /// Per action, the text scored after the record's prompt ([`channel_query`]).
    pub queries: Vec<String>,
    /// The continuations scored after each query ([`STATES`]).
    pub states: Vec<String>,
    /// Per action, the log-likelihood of each of [`STATES`] after its query.
    pub likelihoods: Vec<[f64; 3]>,
    /// Per action, the log-probability of [`Self::state`] among [`STATES`].
    pub scores: Vec<f64>,
    /// Per action, the state it was paired with.
    pub pairing: Vec<String>,
    /// The action taken.
    pub picked: TradeAction,
}

/// The market states, as scored after a [`channel_query`].
pub const STATES: [&str; 3] = [" rising", " falling", " flat"];

/// The text scored for `action`, appended to the step's prompt.
pub fn channel_query(action: TradeAction) -> &'static str {
    match action {
        TradeAction::Buy => "I buy when the price is",
        TradeAction::Sell => "I sell when the price is",
        TradeAction::Hold => "I hold when the price is",
    }
}

impl ScoredChoice {
    /// The pick for `state` (one of [`STATES`]) from the `likelihoods` of each of `actions`
    /// (in order, at most three): the action of the best pairing (see [`ScoredChoice`]); among
    /// equal pairings, the first found with the earlier actions on the earlier states.
    pub fn pick(state: &str, actions: Vec<TradeAction>, likelihoods: Vec<[f64; 3]>) -> Self {
        let at = STATES.iter().position(|s| *s == state).unwrap_or(0);
        let normalised: Vec<[f64; 3]> = likelihoods
            .iter()
            .map(|l| {
                let max = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let log_sum = l.iter().map(|x| (x - max).exp()).sum::<f64>().ln() + max;
                l.map(|x| x - log_sum)
            })
            .collect();
        let n = actions.len().min(normalised.len()).min(STATES.len());
        let mut best: Option<(f64, [usize; 3])> = None;
        for order in STATE_ORDERS {
            let total: f64 = (0..n).map(|i| normalised[i][order[i]]).sum();
            if best.is_none_or(|(b, _)| total > b) {
                best = Some((total, order));
            }
        }
        let pairing = best.map_or([0, 1, 2], |(_, order)| order);
        let scores: Vec<f64> = normalised.iter().map(|l| l[at]).collect();
        let picked = match (0..n).find(|&i| pairing[i] == at) {
            Some(i) => actions[i],
            None => {
                let mut picked = (TradeAction::Hold, f64::NEG_INFINITY);
                for (action, score) in actions.iter().zip(&scores) {
                    if *score > picked.1 {
                        picked = (*action, *score);
                    }
                }
                picked.0
            }
        };
        Self {
            state: state.to_owned(),
            queries: actions
                .iter()
                .map(|a| channel_query(*a).to_owned())
                .collect(),
            states: STATES.iter().map(|s| (*s).to_owned()).collect(),
            pairing: (0..n).map(|i| STATES[pairing[i]].to_owned()).collect(),
            actions,
            likelihoods,
            scores,
            picked,
        }
    }
}

/// Every order of the three states (indices into [`STATES`]), the identity first: the first
/// `k` of an order pair `k` actions with distinct states.
const STATE_ORDERS: [[usize; 3]; 6] = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
];

/// A decision as the model wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDecision {
    /// Why, in the model's words (recorded, never interpreted).
    pub reason: String,
    /// Buy, sell or hold.
    pub action: TradeAction,
    /// The pair traded (absent for a hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<String>,
    /// The fraction of the balance paid in (absent for a hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<String>,
}

/// Why model output is not a decision among the offered choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecisionError {
    /// Not JSON of the decision's shape.
    #[error("malformed decision JSON: {0}")]
    Json(String),
    /// A buy or sell without a pair or fraction, or a hold with them.
    #[error("a {0:?} decision with a missing or extra field")]
    Shape(TradeAction),
    /// A pair other than the one offered.
    #[error("pair {0:?} was not offered")]
    Pair(String),
    /// A size that was not offered for this action at this step.
    #[error("fraction {0:?} was not offered for this action")]
    Fraction(String),
    /// The pair's symbols cannot be written in a grammar.
    #[error("unusable pair symbols {0:?}")]
    Symbols(String),
}

impl ModelDecision {
    /// Parses model output and checks it against `choices` (a grammar-constrained model always
    /// passes; anything else, e.g. a replayed record from another build, is refused here).
    pub fn parse(text: &str, choices: &Choices) -> Result<Self, DecisionError> {
        let decision: ModelDecision =
            serde_json::from_str(text.trim()).map_err(|e| DecisionError::Json(e.to_string()))?;
        let offered = match decision.action {
            TradeAction::Hold => {
                if decision.pair.is_some() || decision.fraction.is_some() {
                    return Err(DecisionError::Shape(decision.action));
                }
                return Ok(decision);
            }
            TradeAction::Buy => &choices.buy,
            TradeAction::Sell => &choices.sell,
        };
        let (Some(pair), Some(fraction)) = (&decision.pair, &decision.fraction) else {
            return Err(DecisionError::Shape(decision.action));
        };
        if *pair != choices.pair {
            return Err(DecisionError::Pair(pair.clone()));
        }
        if !offered.contains(&fraction.as_str()) {
            return Err(DecisionError::Fraction(fraction.clone()));
        }
        Ok(decision)
    }

    /// The fraction in basis points (0 for a hold).
    pub fn fraction_bps(&self) -> u32 {
        self.fraction
            .as_deref()
            .and_then(|f| FRACTIONS.iter().find(|(t, _)| *t == f))
            .map_or(0, |(_, bps)| *bps)
    }

    /// The order this decision stands for on `market`: the pair's addresses, the fraction of
    /// the balance in base units, the owner's slippage bound.
    pub fn to_intent(&self, market: &MarketSnapshot, firewall: &Firewall) -> TradeIntent {
        sized_intent(
            market,
            firewall,
            self.action,
            self.fraction_bps(),
            self.reason.clone(),
        )
    }
}

/// Checks that `symbols` can be offered in a grammar.
pub fn check_symbols(symbols: &PairSymbols) -> Result<(), DecisionError> {
    if symbols.usable() {
        Ok(())
    } else {
        Err(DecisionError::Symbols(symbols.pair()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trading::firewall::Policy;
    use alloy::primitives::{Address, U256};

    fn e18(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
    }

    fn market() -> MarketSnapshot {
        MarketSnapshot {
            block: 1,
            timestamp: 1_000,
            base: Address::repeat_byte(0xBB),
            quote: Address::repeat_byte(0x44),
            router: Address::repeat_byte(0x77),
            pair: Address::repeat_byte(0x99),
            reserve_base: e18(1_000),
            reserve_quote: e18(1_000_000),
            holder: Address::repeat_byte(0xAC),
            balance_base: e18(10),
            balance_quote: e18(10_000),
            paused: false,
            twap: Some(crate::trading::market::Twap {
                price_x112: crate::trading::market::price_x112(e18(1_000), e18(1_000_000)),
                from_timestamp: 0,
                secs: 1_000,
            }),
        }
    }

    fn firewall(max_trade: u64) -> Firewall {
        Firewall::new(Policy {
            tokens: vec![Address::repeat_byte(0xBB), Address::repeat_byte(0x44)],
            routers: vec![Address::repeat_byte(0x77)],
            max_trade_quote: e18(max_trade),
            max_daily_quote: e18(max_trade * 10),
            ..Policy::for_market(&crate::trading::backtest::sim_market(), e18(max_trade))
        })
    }

    fn symbols() -> PairSymbols {
        PairSymbols {
            base: "tGLD".into(),
            quote: "tUSD".into(),
        }
    }

    #[test]
    fn only_sizes_within_the_caps_are_offered() {
        // 10,000 quote and 10 base (worth 10,000 quote); cap 3,000 quote per trade.
        let c = Choices::allowed(&market(), &firewall(3_000), &symbols());
        assert_eq!(c.pair, "tGLD/tUSD");
        assert_eq!(c.buy, ["0.05", "0.1", "0.25"]);
        assert_eq!(c.sell, ["0.05", "0.1", "0.25"]);
        // A paused token offers nothing but hold.
        let mut paused = market();
        paused.paused = true;
        let c = Choices::allowed(&paused, &firewall(3_000), &symbols());
        assert!(c.buy.is_empty() && c.sell.is_empty());
        assert!(
            !c.grammar("Paused").contains("buy"),
            "{}",
            c.grammar("Paused")
        );
    }

    #[test]
    fn a_parsed_decision_becomes_an_order_the_firewall_accepts() {
        let m = market();
        let mut fw = firewall(3_000);
        let c = Choices::allowed(&m, &fw, &symbols());
        let d = ModelDecision::parse(
            r#"{"action":"buy","pair":"tGLD/tUSD","fraction":"0.25","reason":"The price is rising."}"#,
            &c,
        )
        .unwrap();
        let intent = d.to_intent(&m, &fw);
        assert_eq!(intent.token_in, m.quote);
        assert_eq!(intent.amount_in, e18(2_500));
        assert!(fw.check(&intent, &m).unwrap().is_some());
        let hold = ModelDecision::parse(r#"{"action":"hold","reason":"Flat."}"#, &c).unwrap();
        assert_eq!(hold.to_intent(&m, &fw).action, TradeAction::Hold);
    }

    #[test]
    fn anything_not_offered_is_refused() {
        let c = Choices::allowed(&market(), &firewall(3_000), &symbols());
        for (bad, want) in [
            (
                r#"{"reason":"x, so I buy","action":"buy","pair":"tGLD/tUSD","fraction":"1"}"#,
                "fraction",
            ),
            (
                r#"{"reason":"x, so I sell","action":"sell","pair":"ETH/tUSD","fraction":"0.1"}"#,
                "pair",
            ),
            (r#"{"reason":"x, so I buy","action":"buy"}"#, "missing"),
            (
                r#"{"reason":"x, so I hold","action":"hold","fraction":"0.1"}"#,
                "extra",
            ),
            (r#"{"reason":"x, so I hold","action":"yolo"}"#, "JSON"),
            ("buy everything", "JSON"),
        ] {
            let e = ModelDecision::parse(bad, &c).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn grammar_lists_exactly_the_offered_choices() {
        let c = Choices {
            pair: "tGLD/tUSD".into(),
            buy: vec!["0.1"],
            sell: vec![],
        };
        let g = c.grammar("The price is \"rising");
        assert!(
            g.starts_with(r#"root ::= "{\"action\":\"" decision"#),
            "{g}"
        );
        assert!(
            g.contains(r#""buy\",\"pair\":\"tGLD/tUSD\",\"fraction\":" ("\"0.1\"") reason"#),
            "{g}"
        );
        assert!(!g.contains("sell"), "{g}");
        assert!(g.contains(r#""hold\"" reason"#), "{g}");
        assert!(
            g.contains(r#"reason ::= ",\"reason\":\"The price is rising" char{0,"#),
            "the lead opens the reason, reduced to plain words: {g}"
        );
        assert!(
            g.contains(r#"char ::= [a-z0-9 ,'%-] | [0-9] "." [0-9] | "I" | "tGLD" | "tUSD""#),
            "then plain words and the pair's symbols: {g}"
        );
        assert_eq!(
            c.describe(&symbols()),
            "buy (0.1 of your tUSD), hold",
            "the prompt names exactly what the grammar offers"
        );
    }

    /// Real llama.cpp sampling under the grammar: whatever a (random-weight) model writes, the
    /// grammar completes and the decision parses among the offered choices.
    #[test]
    fn every_output_under_the_grammar_parses() {
        use inft_engine::testmodel::{TestModelParams, llama_gguf_bytes};
        use inft_engine::{ContextOptions, Engine, MemModel, ModelOptions, SamplerSettings};
        let bytes = llama_gguf_bytes(&TestModelParams::for_size(1 << 20), 91).unwrap();
        let mut sink = MemModel::new("decision-test").unwrap();
        std::io::copy(&mut bytes.as_slice(), &mut sink).unwrap();
        let model = Engine::global()
            .unwrap()
            .load(sink.finish().unwrap(), &ModelOptions::default())
            .unwrap();
        let mut ctx = model
            .new_context(&ContextOptions {
                n_ctx: 512,
                n_batch: 128,
                n_threads: Some(1),
            })
            .unwrap();
        let m = market();
        let fw = firewall(3_000);
        let c = Choices::allowed(&m, &fw, &symbols());
        for seed in 0..6 {
            let settings = SamplerSettings {
                grammar: Some(c.grammar("The price is rising")),
                max_tokens: DECISION_MAX_TOKENS,
                ..SamplerSettings::instruct(seed)
            };
            let g = ctx.generate("Decide.", &settings).unwrap();
            let d = ModelDecision::parse(&g.text, &c).unwrap_or_else(|e| panic!("{e}: {}", g.text));
            assert!(
                d.reason.starts_with("The price is rising") && d.reason.ends_with('.'),
                "{}",
                g.text
            );
            let intent = d.to_intent(&m, &fw);
            if intent.action != TradeAction::Hold {
                assert!(
                    fw.clone().check(&intent, &m).unwrap().is_some(),
                    "{}",
                    g.text
                );
            }
        }
    }

    #[test]
    fn the_pick_is_the_action_paired_with_the_state() {
        use TradeAction::{Buy, Hold, Sell};
        // Rows: hold, buy, sell; columns: rising, falling, flat. Sell makes " flat" likelier
        // than hold does (-1.33 against -1.62 after normalising), but it makes " falling" far
        // likelier still: the pairing gives sell to falling and flat to hold.
        let likelihoods = vec![[-1.0, -0.8, -1.6], [-0.2, -3.0, -3.0], [-4.0, -0.3, -1.3]];
        let flat = ScoredChoice::pick(" flat", vec![Hold, Buy, Sell], likelihoods.clone());
        assert!(
            flat.scores[2] > flat.scores[0],
            "sell alone would win flat: {flat:?}"
        );
        assert_eq!(flat.picked, Hold, "{flat:?}");
        assert_eq!(flat.pairing, [" flat", " rising", " falling"]);
        let rising = ScoredChoice::pick(" rising", vec![Hold, Buy, Sell], likelihoods.clone());
        assert_eq!(rising.picked, Buy);
        let falling = ScoredChoice::pick(" falling", vec![Hold, Buy, Sell], likelihoods);
        assert_eq!(falling.picked, Sell);
        // With two actions open, the state left unpaired goes to the action under which it is
        // the most likely.
        let two = vec![[-1.0, -0.8, -1.6], [-0.2, -3.0, -3.0]];
        let flat = ScoredChoice::pick(" flat", vec![Hold, Buy], two);
        assert_eq!(flat.pairing, [" falling", " rising"]);
        assert_eq!(flat.picked, Hold);
        // A tie goes to the earlier action on the earlier state (hold first).
        let tie = ScoredChoice::pick(" rising", vec![Hold, Buy], vec![[-1.0; 3], [-1.0; 3]]);
        assert_eq!(tie.picked, Hold);
        assert!(
            tie.scores
                .iter()
                .all(|s| (s - (1.0f64 / 3.0).ln()).abs() < 1e-12)
        );
        // Only hold open: hold, whatever the state.
        let only = ScoredChoice::pick(" falling", vec![Hold], vec![[-3.0, -0.1, -3.0]]);
        assert_eq!(only.picked, Hold);
    }

    #[test]
    fn symbols_must_be_plain() {
        check_symbols(&symbols()).unwrap();
        for bad in ["", "t\"GLD", "a b", "x/y"] {
            let s = PairSymbols {
                base: bad.into(),
                quote: "tUSD".into(),
            };
            assert!(check_symbols(&s).is_err(), "{bad:?}");
        }
    }
}
