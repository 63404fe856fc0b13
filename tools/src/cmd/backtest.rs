//! `inft backtest`: compare trading policies on the same simulated market, nothing sent.

use std::fmt::Write as _;
use std::path::PathBuf;

use alloy::primitives::I256;
use anyhow::{Context as _, bail};
use clap::Args;
use inft_engine::{ContextOptions, MemModel, ModelOptions};
use inft_types::config::{AgentConfig, AgentKind, CONFIG_VERSION};
use strategies::trading::backtest::{
    Backtest, BacktestReport, Outcome, PathParams, PolicyReport, PricePath, Reference,
    classical_session, offline_session,
};
use strategies::trading::decision::decision_sampler;
use strategies::trading::market::{equity_quote, to_units};
use strategies::trading::{
    FOLLOW_THE_TREND, LlmPolicy, PairSymbols, TradingPolicy, policy_by_name,
};

use super::Run;
use crate::cli::Context;

/// `inft backtest`
#[derive(Debug, Args)]
pub(crate) struct BacktestArgs {
    /// A plaintext GGUF model for the `llm` policy, read into memory (never sealed, nothing
    /// sent). Without it the `llm` policy is skipped.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// The policies to compare, comma-separated: llm, momentum, mean-reversion.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "llm,momentum,mean-reversion"
    )]
    policies: Vec<String>,
    /// Steps of the simulated market (one per hour of simulated chain time).
    #[arg(long, default_value_t = 30)]
    steps: u64,
    /// Seeds of the simulated market, comma-separated: the same seed gives the same prices.
    /// With several, every policy runs on each market and a summary of agreement follows.
    #[arg(long = "seed", value_delimiter = ',', default_value = "7")]
    seeds: Vec<u64>,
    /// The rule a policy's sides are compared with: the one its instruction names
    /// (momentum for "follow the trend", mean-reversion for "buy the dips").
    #[arg(long, default_value = "momentum", value_parser = parse_reference)]
    agree_with: Reference,
    /// The `llm` policy's standing instruction [default: the one a trading agent minted
    /// without `--prompt` gets].
    #[arg(long, default_value = FOLLOW_THE_TREND, hide_default_value = true)]
    instruction: String,
    /// Inference threads [default: all cores].
    #[arg(long)]
    threads: Option<u32>,
}

fn parse_reference(name: &str) -> Result<Reference, String> {
    Reference::parse(name).ok_or_else(|| format!("{name:?} is not momentum or mean-reversion"))
}

/// The base seed of a minted agent's sampler (`inft mint --seed` default).
const MINT_SEED: u32 = 42;

/// The config `inft mint --kind trading --strategy llm` seals with its defaults, so the model
/// runs here as a minted agent's would ([`decision_sampler`]).
fn trading_agent_config(
    model_sha256: String,
    instruction: &str,
    threads: Option<u32>,
) -> AgentConfig {
    AgentConfig {
        version: CONFIG_VERSION,
        name: "backtest".into(),
        kind: AgentKind::Trading {
            strategy: "llm".into(),
            instruction: Some(instruction.to_owned()),
        },
        model_sha256,
        sampler: decision_sampler(MINT_SEED),
        context: ContextOptions {
            n_threads: threads,
            ..ContextOptions::default()
        },
        private_prompts: false,
    }
}

/// The pair's symbols as the dev market names its test tokens.
fn dev_symbols() -> PairSymbols {
    PairSymbols {
        base: "tGLD".into(),
        quote: "tUSD".into(),
    }
}

impl BacktestArgs {
    /// The policies to run, in the order given; `llm` only with a model.
    fn policies(&self) -> anyhow::Result<Vec<Box<dyn TradingPolicy>>> {
        let mut out: Vec<Box<dyn TradingPolicy>> = Vec::new();
        for name in self.policies.iter().map(|n| n.trim()) {
            if name == "llm" {
                if self.model.is_none() {
                    continue;
                }
                out.push(Box::new(
                    LlmPolicy::new(self.instruction.as_str()).with_symbols(dev_symbols())?,
                ));
            } else {
                out.push(policy_by_name(name, &self.instruction).with_context(|| {
                    format!("unknown policy {name:?} (llm, momentum, mean-reversion)")
                })?);
            }
        }
        if out.is_empty() {
            bail!("no policy to run");
        }
        Ok(out)
    }
}

impl Run for BacktestArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        if self.steps == 0 {
            bail!("--steps must be at least 1");
        }
        if self.seeds.is_empty() {
            bail!("--seed needs at least one seed");
        }
        if self.model.is_none() && self.policies.iter().any(|n| n.trim() == "llm") {
            eprintln!("note: no --model given: the llm policy is skipped");
        }
        let mut first_policies = self.policies()?;
        let wants_model = first_policies.iter().any(|p| p.name() == "llm");
        let mut session = match (&self.model, wants_model) {
            (Some(path), true) => {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                // Straight into an in-memory file, as an unsealed agent's model is.
                let model = MemModel::from_reader("backtest-model", std::io::BufReader::new(file))
                    .with_context(|| format!("reading {}", path.display()))?;
                let config = trading_agent_config(
                    alloy::primitives::hex::encode(model.sha256()),
                    &self.instruction,
                    self.threads,
                );
                offline_session(model, config, &ModelOptions::default())
                    .with_context(|| format!("loading {}", path.display()))?
            }
            (model, _) => {
                if model.is_some() {
                    eprintln!("note: --model is unused: no llm policy in --policies");
                }
                classical_session()?
            }
        };

        let progress = ctx.spinner("backtest");
        let mut reports = Vec::with_capacity(self.seeds.len());
        for (i, &seed) in self.seeds.iter().enumerate() {
            // Every market starts the policies afresh (their price history included).
            let policies = if i == 0 {
                std::mem::take(&mut first_policies)
            } else {
                self.policies()?
            };
            let backtest = Backtest::new(PricePath::generate(
                &PathParams::default(),
                seed,
                self.steps,
            ))
            .with_reference(self.agree_with);
            let report = backtest.run(&mut session, policies, |p| {
                let what = match (p.record.outcome, &p.record.side, &p.record.rule) {
                    (Outcome::Refused, _, Some(rule)) => format!("refused ({rule})"),
                    (outcome, Some(side), _) => format!("{outcome:?} {side:?}").to_lowercase(),
                    (outcome, None, _) => format!("{outcome:?}").to_lowercase(),
                };
                progress.set_message(format!(
                    "seed {seed} · step {}/{} · price {:.2} · {}: {what}",
                    p.step + 1,
                    p.steps,
                    p.price,
                    p.policy
                ));
            })?;
            reports.push(report);
        }
        progress.finish_and_clear();
        if let [report] = reports.as_slice() {
            ctx.emit(table(report), serde_json::to_value(report)?);
        } else {
            let human = reports
                .iter()
                .map(table)
                .chain(std::iter::once(summary(&reports)))
                .collect::<Vec<_>>()
                .join("\n\n");
            ctx.emit(human, serde_json::json!({ "runs": reports }));
        }
        Ok(())
    }
}

/// Agreement of each policy with the reference rule, seed by seed and on average.
fn summary(reports: &[BacktestReport]) -> String {
    let mut out = String::new();
    let Some(first) = reports.first() else {
        return out;
    };
    let _ = write!(
        out,
        "agreement with {} over {} seeds:",
        first.setup.reference.name(),
        reports.len()
    );
    for (i, policy) in first.policies.iter().enumerate() {
        let shares: Vec<(Option<u64>, f64)> = reports
            .iter()
            .filter_map(|r| {
                let share = r.policies.get(i)?.agreement.as_ref()?.share?;
                Some((r.seed, share))
            })
            .collect();
        if shares.is_empty() {
            continue;
        }
        let per_seed: Vec<String> = shares
            .iter()
            .map(|(seed, share)| {
                let seed = seed.map_or_else(|| "-".to_owned(), |s| s.to_string());
                format!("seed {seed} {:.0}%", share * 100.0)
            })
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let mean = shares.iter().map(|(_, s)| s).sum::<f64>() / shares.len() as f64;
        let _ = write!(
            out,
            "\n  {}: {} · mean {:.0}%",
            policy.name,
            per_seed.join(", "),
            mean * 100.0
        );
    }
    out
}

fn signed_units(v: I256) -> String {
    let sign = if v.is_negative() { "-" } else { "+" };
    format!("{sign}{:.2}", to_units(v.unsigned_abs()))
}

fn refusals(p: &PolicyReport) -> String {
    if p.refusals.is_empty() {
        return "-".into();
    }
    p.refusals
        .iter()
        .map(|(rule, n)| format!("{rule} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn agreement(p: &PolicyReport) -> String {
    match &p.agreement {
        None => "-".into(),
        Some(a) => match a.share {
            Some(share) => format!("{:.0}% of {}", share * 100.0, a.compared),
            None => "n/a (0 compared)".into(),
        },
    }
}

/// The human-readable result: the market in one line, then one row per policy.
fn table(report: &BacktestReport) -> String {
    let setup = &report.setup;
    let points = &setup.path.points;
    let (first, last) = (&points[0], &points[points.len() - 1]);
    let start = equity_quote(
        setup.start_base,
        setup.start_quote,
        first.reserve_base,
        first.reserve_quote,
    );
    let idle = equity_quote(
        setup.start_base,
        setup.start_quote,
        last.reserve_base,
        last.reserve_quote,
    );
    let idle_pnl = I256::try_from(idle)
        .unwrap_or(I256::MAX)
        .saturating_sub(I256::try_from(start).unwrap_or(I256::MAX));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "seed {} · {} steps · price {:.2} → {:.2} ({:+.2}%) · each policy starts with {} base + {} quote; doing nothing: PnL {} ({:+.2}%) · reference: {}",
        report
            .seed
            .map_or_else(|| "-".to_owned(), |s| s.to_string()),
        report.steps,
        first.price,
        last.price,
        (last.price / first.price - 1.0) * 100.0,
        to_units(setup.start_base),
        to_units(setup.start_quote),
        signed_units(idle_pnl),
        (to_units(idle) / to_units(start) - 1.0) * 100.0,
        setup.reference.name(),
    );
    let rows: Vec<[String; 9]> = report
        .policies
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                p.steps.to_string(),
                p.valid.to_string(),
                p.trades.to_string(),
                p.holds.to_string(),
                refusals(p),
                format!("{} ({:+.2}%)", signed_units(p.pnl_quote), p.pnl_pct),
                format!("{:.2}%", f64::from(p.max_drawdown_bps) / 100.0),
                agreement(p),
            ]
        })
        .collect();
    let header = [
        "policy",
        "steps",
        "valid",
        "trades",
        "holds",
        "refusals",
        "PnL (quote)",
        "max DD",
        "agrees w/ reference",
    ]
    .map(str::to_owned);
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            std::iter::once(&header)
                .chain(&rows)
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                // Names and reasons left, numbers right.
                if matches!(i, 0 | 5 | 8) {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out.trim_end().to_owned()
}
