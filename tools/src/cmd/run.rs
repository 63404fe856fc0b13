//! `inft run`: load an agent from the chain, unseal it into memory and run it, logging every
//! action on chain.

use std::sync::Arc;

use agent_runtime::agent::{
    AgentKind, AgentSession, StepReport, Strategy as _, record_action, run_steps,
};
use agent_runtime::engine::{ContextOptions, ModelOptions};
use agent_runtime::lifecycle::open_agent;
use agent_runtime::memory::{AgentMemory, MemoryNote, memory_update_draft, update_memory};
use agent_runtime::outbox::{AlloyChainLog, Outbox, OutboxConfig};
use agent_runtime::pipeline::UnsealOptions;
use agent_runtime::record::LogId;
use agent_runtime::token::Access;
use alloy::primitives::U256;
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context as _, bail};
use clap::Args;
use inft_contracts::bindings::{AgentAccountFactory, TestToken};
use inft_contracts::scopes;
use sealing::SealOptions;
use serde_json::json;
use strategies::creative::CreativeStrategy;
use strategies::trading::market::to_units;
use strategies::trading::policies::FOLLOW_THE_TREND;
use strategies::trading::{
    Firewall, LlmPolicy, MarketReader, PairSymbols, Policy, PriceProcess, SendOptions,
    TradingPolicy, TradingStrategy, policy_by_name, shared_key_provider,
};

use super::Run;
use super::node::{Node, NodeOpts, WalletOpts};
use crate::cli::Context;

/// `inft run`
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The token id (decimal or 0x-hex).
    #[arg(value_parser = parse_token_id)]
    token: U256,
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
    /// on a dev chain) with --fund-base tGLD and --fund-quote tUSD.
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
}

/// Which policy proposes a trading agent's intents, as its sealed config names it.
#[derive(Clone, Copy)]
struct PolicyChoice<'a> {
    /// `llm`, `momentum` or `mean-reversion`.
    name: &'a str,
    /// The owner's standing instruction to a model policy.
    instruction: Option<&'a str>,
    /// The pair's token symbols, as a model sees them.
    symbols: &'a PairSymbols,
}

impl TradingOpts {
    /// The trading strategy for token `token`: the owner's policy, the token-bound account
    /// (created if missing, funded if asked), the market mover if asked, and the nonce manager
    /// unless this is a dry run.
    async fn strategy(
        &self,
        node: &Node,
        wallet: &PrivateKeySigner,
        choice: &PolicyChoice<'_>,
        token: U256,
        signer: &PrivateKeySigner,
        db: agent_runtime::db::Db,
    ) -> anyhow::Result<TradingStrategy<Box<dyn TradingPolicy>>> {
        let market = &node.deployment.market;
        let path = self
            .policy
            .clone()
            .unwrap_or_else(|| node.home.join("trading-policy.json"));
        let policy = if path.is_file() {
            Policy::load(&path)?
        } else {
            let e18 = U256::from(10u64).pow(U256::from(18u64));
            let policy = Policy::for_market(market, U256::from(1_000u64) * e18);
            policy.save(&path)?;
            tracing::info!(path = %path.display(), "wrote a default trading policy");
            policy
        };
        let PolicyChoice {
            name,
            instruction,
            symbols,
        } = *choice;
        let instruction = instruction.unwrap_or(FOLLOW_THE_TREND);
        let policy_impl: Box<dyn TradingPolicy> = if name == "llm" {
            Box::new(LlmPolicy::new(instruction).with_symbols(symbols.clone())?)
        } else {
            policy_by_name(name, instruction).with_context(|| {
                format!("unknown trading strategy {name:?} (llm, momentum, mean-reversion)")
            })?
        };

        let owner_provider = node.provider(wallet)?;
        let factory =
            AgentAccountFactory::new(node.deployment.agent_account_factory, &owner_provider);
        let account = factory.accountOf(token).call().await?;
        if owner_provider.get_code_at(account).await?.is_empty() {
            factory
                .createAccount(token)
                .send()
                .await?
                .get_receipt()
                .await?;
        }
        let e18 = U256::from(10u64).pow(U256::from(18u64));
        if let Some(from) = &self.fund_from {
            let funder = WalletOpts {
                keystore: None,
                account: Some(from.clone()),
            }
            .signer(&node.home)?;
            let p = node.provider(&funder)?;
            for (t, n) in [
                (market.base_token, self.fund_base),
                (market.quote_token, self.fund_quote),
            ] {
                if n > 0 {
                    TestToken::new(t, &p)
                        .transfer(account, U256::from(n) * e18)
                        .send()
                        .await?
                        .get_receipt()
                        .await?;
                }
            }
        }
        let reader = MarketReader::new(
            node.reader()?,
            market.clone(),
            node.deployment.agent_nft,
            token,
            account,
        );
        let mut strategy = TradingStrategy::new(policy_impl, Firewall::new(policy), reader);
        if !self.dry_run {
            strategy = strategy.with_sender(
                db,
                node.reader()?,
                signer.clone(),
                node.deployment.chain_id,
                SendOptions::default(),
            );
        }
        if let Some(seed) = self.move_market {
            let maker = WalletOpts {
                keystore: None,
                account: Some(self.market_maker.clone()),
            }
            .signer(&node.home)?;
            let process = PriceProcess::new(
                node.provider(&maker)?,
                maker.address(),
                market.clone(),
                seed,
            );
            process.prepare().await?;
            strategy = strategy.with_market_mover(process);
        }
        Ok(strategy)
    }
}

/// Parses a uint256 token id, decimal or `0x`-hex.
pub(crate) fn parse_token_id(s: &str) -> Result<U256, String> {
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => U256::from_str_radix(hex, 16),
        None => U256::from_str_radix(s, 10),
    };
    parsed.map_err(|e| format!("invalid token id {s:?}: {e}"))
}

impl Run for RunArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let wallet = self.wallet.signer(&node.home)?;
        let nft = node.nft(&wallet)?;
        let store = node.store()?;
        let secret = node.sealing_secret(&wallet).await?;

        let model_opts = ModelOptions {
            gpu_layers: self.gpu_layers,
            ..ModelOptions::default()
        };
        let opened = open_agent(
            &nft,
            store.as_ref(),
            wallet.address(),
            &secret,
            self.token,
            scopes::RUN,
            &UnsealOptions {
                model: model_opts,
                seal: SealOptions::default(),
            },
        )
        .await?;
        let agent = opened.agent;
        // The owner runs as the agent (its unsealed key signs and logs); an authorized user is
        // never given the agent key and acts as an executor with its own wallet.
        let (record_signer, role) = match (&agent.agent_key, opened.access) {
            (Some(key), _) => (key.clone(), "agent"),
            (None, Access::Authorized { scopes: s, .. }) if s & scopes::LOG != 0 => {
                (wallet.clone(), "executor")
            }
            (None, _) => bail!(
                "this authorization does not include the log scope, so its actions cannot be logged"
            ),
        };

        let context_opts = ContextOptions {
            n_threads: self.threads.or(agent.config.context.n_threads),
            ..agent.config.context
        };
        let context = agent.model.new_context(&context_opts)?;
        let log = LogId {
            chain_id: node.deployment.chain_id,
            action_log: node.deployment.action_log,
            token_id: self.token,
        };
        let mut session = AgentSession::new(
            log,
            nft.address(),
            agent.config.clone(),
            record_signer.clone(),
            context,
        );
        session.set_memory(agent.memory.as_ref().and_then(AgentMemory::prompt_text));

        let trading = matches!(agent.config.kind, AgentKind::Trading { .. });
        // A trading agent's key also sends trades (through the nonce manager): the logger must
        // not cache nonces.
        let log_provider = if trading {
            shared_key_provider(node.rpc_url.parse()?, record_signer.clone())
        } else {
            node.provider(&record_signer)?
        };
        let chain = AlloyChainLog::new(log_provider, node.deployment.start_block);
        let db = node.db().await?;
        // Every record is published to the blob store before its hash goes on chain, so
        // anyone can `inft audit` the agent.
        let outbox = Outbox::publishing(
            db.clone(),
            Arc::new(chain),
            store.clone(),
            OutboxConfig::default(),
        );

        let progress = ctx.spinner(&format!(
            "running token {} as {role} {}",
            self.token,
            record_signer.address()
        ));
        let mut trading_status = None;
        let memory_note;
        let report = match &agent.config.kind {
            AgentKind::Creative { prompt } => {
                let on_step = |s: &StepReport| {
                    progress.set_message(format!(
                        "step {}/{}",
                        (s.step + 2).min(self.steps),
                        self.steps
                    ));
                    show_action(ctx, &progress, s, None);
                };
                let mut strategy = CreativeStrategy::new(prompt.clone());
                let report =
                    run_steps(&mut session, &mut strategy, &outbox, self.steps, on_step).await?;
                memory_note = strategy.memory_note();
                report
            }
            AgentKind::Trading {
                strategy,
                instruction,
            } => {
                let symbols = pair_symbols(&node).await?;
                let mut strategy = self
                    .trading
                    .strategy(
                        &node,
                        &wallet,
                        &PolicyChoice {
                            name: strategy,
                            instruction: instruction.as_deref(),
                            symbols: &symbols,
                        },
                        self.token,
                        &record_signer,
                        db,
                    )
                    .await?;
                let status = strategy.status();
                let on_step = |s: &StepReport| {
                    let line = status.lock().map(|t| t.line()).unwrap_or_default();
                    progress.set_message(format!(
                        "step {}/{} · {line}",
                        (s.step + 2).min(self.steps),
                        self.steps
                    ));
                    show_action(ctx, &progress, s, Some(&symbols));
                };
                let report =
                    run_steps(&mut session, &mut strategy, &outbox, self.steps, on_step).await?;
                trading_status = status.lock().ok().map(|t| t.clone());
                memory_note = strategy.memory_note();
                report
            }
            other => bail!("unsupported agent kind {other:?}"),
        };
        progress.finish_and_clear();

        // The owner's run leaves the strategy's note in the token's memory (only the owner may:
        // see agent_runtime::memory); the update is logged like any action, without the note.
        let (mut memory_line, mut memory_json) = (String::new(), serde_json::Value::Null);
        if let (Some(mut memory), Some(note), "agent", false) = (
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
            if let Some(note) = MemoryNote::new(now, report.steps.len() as u64, seqs, &note) {
                memory.push(note);
                let entries = nft.entries_for(self.token, wallet.address()).await?;
                let update = update_memory(
                    &nft,
                    store.as_ref(),
                    &secret.public_key(),
                    self.token,
                    &entries,
                    &memory,
                    &SealOptions::default(),
                )
                .await
                .context("updating the agent's memory")?;
                let (record, _) = record_action(&session, &outbox, memory_update_draft(&update))
                    .await
                    .context("logging the memory update")?;
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
            Some(t) => (
                format!("\n{}", t.line()),
                json!({
                    "trades": t.trades,
                    "refusals": t.refusals,
                    "holds": t.holds,
                    "balance_base": t.balance_base.to_string(),
                    "balance_quote": t.balance_quote.to_string(),
                    "equity_quote": t.equity_quote.to_string(),
                    "pnl_quote": t.pnl_quote().to_string(),
                    "dry_run": self.trading.dry_run,
                }),
            ),
            None => (String::new(), serde_json::Value::Null),
        };
        ctx.emit(
            format!(
                "token {} ran {} steps as {role} {} (model {}{}){trading_line}\nevery action logged and confirmed on chain{}{rebase_line}{memory_line}",
                self.token,
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
                "token_id": self.token.to_string(),
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

/// The traded pair's token symbols, read from the tokens (ERC-20 `symbol()`).
async fn pair_symbols(node: &Node) -> anyhow::Result<PairSymbols> {
    let market = &node.deployment.market;
    let provider = node.reader()?;
    let symbol = |token| {
        let provider = provider.clone();
        async move {
            TestToken::new(token, &provider)
                .symbol()
                .call()
                .await
                .with_context(|| format!("reading the symbol of token {token}"))
        }
    };
    Ok(PairSymbols {
        base: symbol(market.base_token).await?,
        quote: symbol(market.quote_token).await?,
    })
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
fn action_line(step: &StepReport, symbols: Option<&PairSymbols>) -> String {
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
            let amount = |key: &str| {
                fill[key]
                    .as_str()
                    .and_then(|a| U256::from_str_radix(a, 10).ok())
                    .map_or(0.0, to_units)
            };
            let (pay, get) = match (symbols, text(&d["intent"]["action"]).as_str()) {
                (Some(s), "buy") => (s.quote.as_str(), s.base.as_str()),
                (Some(s), "sell") => (s.base.as_str(), s.quote.as_str()),
                _ => ("in", "out"),
            };
            let out = if fill["amount_out"].is_string() {
                amount("amount_out")
            } else {
                amount("expected_out")
            };
            format!(
                "{} {:.4} {pay} → {out:.4} {get} · {}",
                text(&d["intent"]["action"]),
                amount("amount_in"),
                text(&d["intent"]["reason"])
            )
        }
        "hold" => format!("· {}", text(&d["intent"]["reason"])),
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

/// The start of a model output, on one line.
fn short_output(output: &str) -> String {
    let one_line = output.replace('\n', " ");
    match one_line.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}
