//! `inft run`: load an agent from the chain, unseal it into memory and run it, logging every
//! action on chain.

use agent_runtime::memory::MemoryNote;
use alloy::primitives::{Address, U256};
use clap::Args;
use inft_runtime::{Remembered, RunMemory, StepReport, Strategy as _, remember_run, run_steps};
use serde_json::json;
use strategies::trading::PairSymbols;
use strategies::trading::market::to_units;

use super::Run;
use super::launch::{LaunchOptions, Launched, MarketChoice, TradingSetup, launch};
use super::node::{NodeOpts, WalletOpts};
use crate::cli::Context;
use crate::ids::{Id, TokenArg, parse_token_arg};

/// `inft run`
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The token id: decimal, 0x-hex, or the first hex digits of it as human output shows
    /// them (`1a2b3c4d`; a unique start is enough).
    #[arg(value_parser = parse_token_arg)]
    token: TokenArg,
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
    /// Number of steps (actions) to run.
    #[arg(long, default_value_t = 5)]
    steps: u64,
    /// Inference threads [default: all cores].
    #[arg(long)]
    threads: Option<u32>,
    /// Model layers to offload to the GPU (needs a build with `--features cuda`).
    #[arg(long, default_value_t = 0)]
    gpu_layers: u32,
    #[command(flatten)]
    trading: TradingOpts,
    /// Do not append this run's note to the agent's memory (by default the owner's run does,
    /// for a token minted with memory, and logs the update as an action).
    #[arg(long)]
    no_memory_update: bool,
}

/// Options of trading agents.
#[derive(Debug, Args)]
struct TradingOpts {
    /// The owner's trading policy (JSON) [default: HOME/trading-policy.json, written with
    /// conservative defaults on first use]. Never taken from the model.
    #[arg(long, value_name = "FILE")]
    policy: Option<std::path::PathBuf>,
    /// Check and simulate every trade with the same maths, but send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Before running, fund the agent's token-bound account from this keystore (e.g. `deployer`
    /// on a dev chain) with --fund-base base and --fund-quote quote tokens.
    #[arg(long, value_name = "NAME")]
    fund_from: Option<String>,
    /// Base tokens (whole units) sent by --fund-from.
    #[arg(long, default_value_t = 10)]
    fund_base: u64,
    /// Quote tokens (whole units) sent by --fund-from.
    #[arg(long, default_value_t = 10_000)]
    fund_quote: u64,
    /// Move the market before each step with a seeded noise trader (dev chains; the trader is
    /// --market-maker, which needs both tokens).
    #[arg(long, value_name = "SEED")]
    move_market: Option<u64>,
    /// Keystore of the noise trader used by --move-market.
    #[arg(long, value_name = "NAME", default_value = "deployer")]
    market_maker: String,
    /// Trade through this existing Uniswap V2 Router02 (its factory and WETH are read from
    /// it) [default: the deployment file's market's].
    #[arg(long, value_name = "ADDRESS")]
    router: Option<Address>,
    /// The token to buy and sell; the pair is found with the router's factory.getPair
    /// [default: the deployment market's].
    #[arg(long, value_name = "ADDRESS")]
    base_token: Option<Address>,
    /// The token prices are counted in [default: the deployment market's].
    #[arg(long, value_name = "ADDRESS")]
    quote_token: Option<Address>,
}

impl TradingOpts {
    fn setup(&self) -> TradingSetup {
        TradingSetup {
            policy: self.policy.clone(),
            dry_run: self.dry_run,
            fund: self
                .fund_from
                .clone()
                .map(|from| (from, self.fund_base, self.fund_quote)),
            move_market: self
                .move_market
                .map(|seed| (seed, self.market_maker.clone())),
            market: MarketChoice {
                router: self.router,
                base_token: self.base_token,
                quote_token: self.quote_token,
            },
        }
    }
}

impl Run for RunArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let token_id = self.token.resolve(&node).await?;
        let wallet = self.wallet.signer(&node.home)?;
        let db = node.db().await?;
        let trading_setup = self.trading.setup();
        let Launched {
            opened,
            nft,
            store,
            secret,
            mut session,
            outbox,
            role,
            record_signer,
            mut strategy,
            trading,
        } = launch(
            &node,
            &wallet,
            LaunchOptions {
                token: token_id,
                threads: self.threads,
                gpu_layers: self.gpu_layers,
                trading: &trading_setup,
                db,
            },
        )
        .await?;
        let agent = opened.agent;

        let progress = ctx.spinner(&format!(
            "running token {} as {role} {}",
            Id(token_id),
            record_signer.address()
        ));
        let symbols = trading.as_ref().map(|(_, symbols)| symbols);
        let on_step = |s: &StepReport| {
            let line = trading
                .as_ref()
                .and_then(|(status, _)| status.lock().ok().map(|t| format!(" · {}", t.line())))
                .unwrap_or_default();
            progress.set_message(format!(
                "step {}/{}{line}",
                (s.step + 2).min(self.steps),
                self.steps
            ));
            show_action(ctx, &progress, s, symbols);
        };
        let report = run_steps(&mut session, &mut strategy, &outbox, self.steps, on_step).await?;
        let trading_status = trading
            .as_ref()
            .and_then(|(status, _)| status.lock().ok().map(|t| t.clone()));
        let memory_note = strategy.memory_note();
        progress.finish_and_clear();

        // The owner's run leaves the strategy's note in the token's memory (only the owner may:
        // see agent_runtime::memory); the update is logged like any action, without the note.
        let (mut memory_line, mut memory_json) = (String::new(), serde_json::Value::Null);
        if let (Some(memory), Some(note), "agent", false) = (
            agent.memory.clone(),
            memory_note,
            role,
            self.no_memory_update,
        ) {
            let seqs = (report.steps.first())
                .zip(report.steps.last())
                .map(|(a, b)| [a.seq, b.seq]);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            let note = MemoryNote::new(now, report.steps.len() as u64, seqs, &note);
            let remembered = match note {
                Some(note) => Some(
                    remember_run(
                        session.log(),
                        session.signer(),
                        &outbox,
                        RunMemory {
                            nft: &nft,
                            owner: wallet.address(),
                            store: store.as_ref(),
                            owner_key: &secret.public_key(),
                            token: token_id,
                            memory,
                        },
                        note,
                    )
                    .await?,
                ),
                None => None,
            };
            if let Some(Remembered { update, record }) = remembered {
                let old = update
                    .old_data_hash
                    .map_or_else(|| "none".to_owned(), |h| h.to_string());
                memory_line = format!(
                    "\nmemory updated: {} notes, data hash {old} → {}",
                    update.notes, update.new_data_hash
                );
                memory_json = json!({
                    "notes": update.notes,
                    "old_data_hash": update.old_data_hash,
                    "new_data_hash": update.new_data_hash,
                    "tx": update.tx_hash,
                    "seq": record.record().seq,
                });
            }
        }

        let steps: Vec<_> = report
            .steps
            .iter()
            .map(|s| json!({ "step": s.step, "seq": s.seq, "kind": s.kind.to_string(), "record_hash": s.record_hash }))
            .collect();

        // Records another account's log entries displaced were re-signed further on (the agent
        // key is at hand here): say so, the seqs shown above are the final ones.
        let rebase_line: String = report
            .flush
            .rebases
            .iter()
            .map(|r| {
                let (first, last) = (r.moved.first(), r.moved.last());
                format!(
                    "\nseq {} was taken by {} (not this {role}): {} records re-signed at seq {}..={}",
                    r.seq,
                    r.taken_by,
                    r.moved.len(),
                    first.map_or(0, |m| m.new_seq),
                    last.map_or(0, |m| m.new_seq),
                )
            })
            .collect();
        let rebase_json: Vec<_> = report
            .flush
            .rebases
            .iter()
            .map(|r| {
                let moved: Vec<_> = r
                    .moved
                    .iter()
                    .map(|m| json!({ "old_seq": m.old_seq, "new_seq": m.new_seq, "record_hash": m.new_hash }))
                    .collect();
                json!({ "seq": r.seq, "taken_by": r.taken_by, "moved": moved })
            })
            .collect();

        let (trading_line, trading_json) = match &trading_status {
            Some(t) => (format!("\n{}", t.line()), {
                let mut json = t.to_json();
                json["dry_run"] = json!(self.trading.dry_run);
                json
            }),
            None => (String::new(), serde_json::Value::Null),
        };
        ctx.emit(
            format!(
                "token {} ran {} steps as {role} {} (model {}{}){trading_line}\nevery action logged and confirmed on chain{}{rebase_line}{memory_line}",
                Id(token_id),
                report.steps.len(),
                record_signer.address(),
                agent.model.sha256_hex(),
                if agent.model_was_cached { ", shared" } else { "" },
                match (report.steps.first(), report.steps.last()) {
                    (Some(a), Some(b)) => format!(" (seq {}..={})", a.seq, b.seq),
                    _ => String::new(),
                },
            ),
            json!({
                "token_id": token_id.to_string(),
                "signer": record_signer.address(),
                "role": role,
                "model_sha256": agent.model.sha256_hex(),
                "steps": steps,
                "transactions": report.flush.transactions,
                "rebased": rebase_json,
                "trading": trading_json,
                "memory": memory_json,
            }),
        );
        Ok(())
    }
}

/// Prints one recorded action as it happens (stderr, above the spinner; not with `--json`).
fn show_action(
    ctx: &Context,
    progress: &indicatif::ProgressBar,
    step: &StepReport,
    symbols: Option<&PairSymbols>,
) {
    if ctx.json {
        return;
    }
    let line = action_line(step, symbols);
    progress.suspend(|| eprintln!("{line}"));
}

/// One action in words: a piece's title and text, a trade's fill, a hold's or a refusal's
/// reason.
pub(crate) fn action_line(step: &StepReport, symbols: Option<&PairSymbols>) -> String {
    let d = &step.details;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let what = match step.kind.as_str() {
        "creative" => {
            let piece: serde_json::Value = serde_json::from_str(&step.output).unwrap_or_default();
            let body = text(&piece["text"]).replace('\n', "\n      ");
            format!("\"{}\"\n      {body}", text(&piece["title"]))
        }
        "trade" | "dry-run-trade" => {
            let fill = if d["fill"].is_object() {
                &d["fill"]
            } else {
                &d["trade"]
            };
            let out = if fill["amount_out"].is_string() {
                &fill["amount_out"]
            } else {
                &fill["expected_out"]
            };
            let (action, pay, get) = trade_words(d, symbols);
            format!(
                "{action} {:.4} {pay} → {:.4} {get} · {}",
                units(&fill["amount_in"]),
                units(out),
                text(&d["intent"]["reason"])
            )
        }
        "hold" => format!("· {}", text(&d["intent"]["reason"])),
        // A refused intent in words; a proposal that never became one, as the model wrote it.
        "refusal" if d["intent"].is_object() => {
            let (action, pay, _) = trade_words(d, symbols);
            format!(
                "{action} {:.4} {pay} refused: {}",
                units(&d["intent"]["amount_in"]),
                text(&d["reason"])
            )
        }
        "refusal" => format!(
            "{} (model: {})",
            text(&d["reason"]),
            short_output(&step.output)
        ),
        _ => {
            let why = [&d["error"], &d["reason"]]
                .into_iter()
                .find_map(|v| v.as_str())
                .unwrap_or_default();
            format!("{why} {}", short_output(&step.output))
                .trim()
                .to_owned()
        }
    };
    let hash = step.record_hash.to_string();
    format!(
        "  seq {:>3}  {:<9} {what}  [{}…]",
        step.seq,
        step.kind.as_str(),
        &hash[..10]
    )
}

/// A trade's action and the symbols it pays and gets ("in" and "out" without the pair's).
fn trade_words<'a>(
    details: &'a serde_json::Value,
    symbols: Option<&'a PairSymbols>,
) -> (&'a str, &'a str, &'a str) {
    let action = details["intent"]["action"].as_str().unwrap_or_default();
    let (pay, get) = match (symbols, action) {
        (Some(s), "buy") => (s.quote.as_str(), s.base.as_str()),
        (Some(s), "sell") => (s.base.as_str(), s.quote.as_str()),
        _ => ("in", "out"),
    };
    (action, pay, get)
}

/// An amount recorded as a decimal string of 18-decimal base units, in whole units.
fn units(amount: &serde_json::Value) -> f64 {
    amount
        .as_str()
        .and_then(|a| U256::from_str_radix(a, 10).ok())
        .map_or(0.0, to_units)
}

/// The start of a model output, on one line.
fn short_output(output: &str) -> String {
    let one_line = output.replace('\n', " ");
    match one_line.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_runtime::record::ActionKind;
    use serde_json::json;

    fn step(kind: ActionKind, output: &str, details: serde_json::Value) -> StepReport {
        StepReport {
            step: 0,
            seq: 9,
            record_hash: alloy::primitives::B256::repeat_byte(0xab),
            tx_hash: None,
            kind,
            output: output.into(),
            details,
        }
    }

    fn symbols() -> PairSymbols {
        PairSymbols {
            base: "tGLD".into(),
            quote: "tUSD".into(),
        }
    }

    #[test]
    fn a_trade_and_a_refused_intent_read_in_whole_units_and_symbols() {
        let intent = json!({ "action": "sell", "amount_in": "1200000000000000000", "reason": "price -80 bps from its mean" });
        let trade = step(
            ActionKind::Trade,
            "",
            json!({
                "intent": intent,
                "fill": { "amount_in": "1200000000000000000", "amount_out": "1146150000000000000000" },
            }),
        );
        assert_eq!(
            action_line(&trade, Some(&symbols())),
            "  seq   9  trade     sell 1.2000 tGLD → 1146.1500 tUSD · price -80 bps from its mean  [0xabababab…]"
        );
        let refused = step(
            ActionKind::Refusal,
            r#"{"action":"sell"}"#,
            json!({ "intent": intent, "reason": "trade worth 1146.1500 quote exceeds the per-trade cap 1000.0000" }),
        );
        assert_eq!(
            action_line(&refused, Some(&symbols())),
            "  seq   9  refusal   sell 1.2000 tGLD refused: trade worth 1146.1500 quote exceeds the per-trade cap 1000.0000  [0xabababab…]"
        );
        // A proposal that never became an intent is shown as the model wrote it.
        let malformed = step(
            ActionKind::Refusal,
            "{\"action\": \"moon\"}",
            json!({ "reason": "malformed intent: unknown action" }),
        );
        assert_eq!(
            action_line(&malformed, None),
            "  seq   9  refusal   malformed intent: unknown action (model: {\"action\": \"moon\"})  [0xabababab…]"
        );
    }
}
