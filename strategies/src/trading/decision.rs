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
//! The answer is one JSON object, reason first, a sentence that ends in the decision (a small
//! model decides better after saying why, and the verb binds the action):
//! `{"reason":"The price is rising, so I buy a little","action":"buy","pair":"tGLD/tUSD","fraction":"0.25"}`
//! or `{"reason":"…, so I hold","action":"hold"}`.

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

/// What the reason says just before the decision's verb.
const SO_I: &str = ", so I ";
/// Most characters of the reason before [`SO_I`] (after its first letter).
const LEAD_CHARS: u16 = 80;
/// Most characters of the reason after the verb.
const TAIL_CHARS: u16 = 40;

/// Most tokens a decision can take with a byte-level vocabulary (one token per byte, plus
/// end-of-generation): a safe `max_tokens`.
pub const DECISION_MAX_TOKENS: u32 = 260;

/// Sampling temperature of a model trader: low, so its decisions follow its instruction rather
/// than vary.
pub const DECISION_TEMPERATURE: f32 = 0.2;

/// The sampler settings a model trader is minted with: [`SamplerSettings::instruct`] at
/// [`DECISION_TEMPERATURE`], with room for one decision.
pub fn decision_sampler(seed: u32) -> SamplerSettings {
    SamplerSettings {
        temperature: DECISION_TEMPERATURE,
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

    /// The GBNF grammar (root rule `root`) of a decision among these choices.
    ///
    /// The reason is a sentence that ends in the decision ("…, so I buy a little"), and the
    /// verb it ends in picks the branch the rest of the object follows, so the recorded reason
    /// and action always agree. A 135M model asked for a free reason and then an `action` field
    /// often wrote "the price is flat, so I wait" followed by `"buy"`.
    pub fn grammar(&self) -> String {
        let sized = |action: &str, fractions: &[&str]| -> Option<String> {
            if fractions.is_empty() {
                return None;
            }
            let alts: Vec<String> = fractions
                .iter()
                .map(|f| format!("\"\\\"{f}\\\"\""))
                .collect();
            Some(format!(
                "\"{action}\" tail \"\\\",\\\"action\\\":\\\"{action}\\\",\\\"pair\\\":\\\"{pair}\\\",\\\"fraction\\\":\" ({alts})",
                pair = self.pair,
                alts = alts.join(" | ")
            ))
        };
        let mut decisions = vec!["\"hold\" tail \"\\\",\\\"action\\\":\\\"hold\\\"\"".to_owned()];
        decisions.extend(sized("buy", &self.buy));
        decisions.extend(sized("sell", &self.sell));
        format!(
            "root ::= \"{{\\\"reason\\\":\\\"\" lead \"{SO_I}\" decision \"}}\"\n\
             decision ::= {decisions}\n\
             lead ::= [A-Za-z] char{{0,{LEAD_CHARS}}}\n\
             tail ::= char{{0,{TAIL_CHARS}}}\n\
             char ::= [ !#-\\[\\]-~]\n",
            decisions = decisions.join(" | "),
        )
    }

    /// The choices in words, for the prompt.
    pub fn describe(&self) -> String {
        let list = |v: &[&str]| {
            if v.is_empty() {
                "not allowed now".to_owned()
            } else {
                v.join(", ")
            }
        };
        format!(
            "buy fractions of your quote balance: {}; sell fractions of your base balance: {}; hold is always allowed",
            list(&self.buy),
            list(&self.sell)
        )
    }
}

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
    /// The reason does not end in the decision it comes with ("…, so I sell").
    #[error("the reason does not end in \"so I {verb}\"")]
    Reason {
        /// The verb of the decision.
        verb: &'static str,
    },
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
        let verb = match decision.action {
            TradeAction::Buy => "buy",
            TradeAction::Sell => "sell",
            TradeAction::Hold => "hold",
        };
        if !decision.reason.contains(&format!("{SO_I}{verb}")) {
            return Err(DecisionError::Reason { verb });
        }
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
        assert!(!c.grammar().contains("buy"), "{}", c.grammar());
    }

    #[test]
    fn a_parsed_decision_becomes_an_order_the_firewall_accepts() {
        let m = market();
        let mut fw = firewall(3_000);
        let c = Choices::allowed(&m, &fw, &symbols());
        let d = ModelDecision::parse(
            r#"{"reason":"The price is rising, so I buy some","action":"buy","pair":"tGLD/tUSD","fraction":"0.25"}"#,
            &c,
        )
        .unwrap();
        let intent = d.to_intent(&m, &fw);
        assert_eq!(intent.token_in, m.quote);
        assert_eq!(intent.amount_in, e18(2_500));
        assert!(fw.check(&intent, &m).unwrap().is_some());
        let hold =
            ModelDecision::parse(r#"{"reason":"Flat, so I hold","action":"hold"}"#, &c).unwrap();
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
            (
                r#"{"reason":"Flat, so I hold","action":"buy","pair":"tGLD/tUSD","fraction":"0.1"}"#,
                "so I buy",
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
        let g = c.grammar();
        assert!(
            g.starts_with(r#"root ::= "{\"reason\":\"" lead ", so I " decision "}""#),
            "{g}"
        );
        assert!(
            g.contains(r#""buy" tail "\",\"action\":\"buy\",\"pair\":\"tGLD/tUSD\",\"fraction\":" ("\"0.1\"")"#),
            "{g}"
        );
        assert!(!g.contains("sell"), "{g}");
        assert!(g.contains(r#""hold" tail "\",\"action\":\"hold\"""#), "{g}");
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
                grammar: Some(c.grammar()),
                max_tokens: DECISION_MAX_TOKENS,
                ..SamplerSettings::instruct(seed)
            };
            let g = ctx.generate("Decide.", &settings).unwrap();
            let d = ModelDecision::parse(&g.text, &c).unwrap_or_else(|e| panic!("{e}: {}", g.text));
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
