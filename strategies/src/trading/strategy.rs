//! [`TradingStrategy`]: one observe → decide → firewall → simulate → send → record step per
//! `agent_runtime` step, with PnL accounting and a dry-run mode.

use std::sync::{Arc, Mutex};

use agent_runtime::agent::{AgentSession, Strategy, StrategyError};
use agent_runtime::db::Db;
use agent_runtime::record::{ActionDraft, ActionKind, FIRST_SEQ, LogId};
use alloy::primitives::{Address, B256, I256, U256};
use alloy::providers::DynProvider;
use serde_json::{Value, json};

use super::TradingError;
use super::exec::{NonceManager, SendOptions, fill_of, simulate_swap, swap_request};
use super::firewall::{ApprovedTrade, Firewall, Refusal};
use super::intent::TradeIntent;
use super::market::{MarketReader, MarketSnapshot, PriceProcess, shorten, signed_diff, to_units};
use super::policies::{Decision, TradingPolicy};

/// The nonce manager's purpose for swap transactions.
pub const TRADE_PURPOSE: &str = "trade";

/// Where the agent stands after a step: for progress lines and reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TradingStatus {
    /// Steps run by this strategy instance.
    pub steps: u64,
    /// Trades sent (or, in dry-run mode, that would have been).
    pub trades: u64,
    /// Intents refused by the firewall (malformed output included).
    pub refusals: u64,
    /// Holds.
    pub holds: u64,
    /// Base held.
    pub balance_base: U256,
    /// Quote held.
    pub balance_quote: U256,
    /// Pool mid price (quote per base).
    pub price: f64,
    /// Pool mid price at this instance's first step.
    pub start_price: f64,
    /// Equity in quote.
    pub equity_quote: U256,
    /// Equity when trading started (quote).
    pub start_equity_quote: U256,
    /// The last action's kind and short reason.
    pub last: String,
}

impl TradingStatus {
    /// Equity minus starting equity, in quote base units.
    pub fn pnl_quote(&self) -> I256 {
        signed_diff(self.equity_quote, self.start_equity_quote)
    }

    /// What a run did, for the agent's memory: steps, trades, holds and refusals, the price's
    /// move and the PnL.
    pub fn memory_note(&self, policy: &str) -> String {
        let pnl = self.pnl_quote();
        let sign = if pnl.is_negative() { "-" } else { "+" };
        let change = if self.start_price > 0.0 {
            (self.price - self.start_price) / self.start_price * 100.0
        } else {
            0.0
        };
        format!(
            "{policy} policy, {} steps: {} trades, {} holds, {} refused. Price {:.2} -> {:.2} ({change:+.2}%). PnL {sign}{:.2} quote; ended with {:.4} base and {:.2} quote.",
            self.steps,
            self.trades,
            self.holds,
            self.refusals,
            self.start_price,
            self.price,
            to_units(pnl.unsigned_abs()),
            to_units(self.balance_base),
            to_units(self.balance_quote),
        )
    }

    /// One readable line: position, price, equity and PnL in whole tokens.
    pub fn line(&self) -> String {
        let pnl = self.pnl_quote();
        let pnl_units = to_units(pnl.unsigned_abs());
        let sign = if pnl.is_negative() { "-" } else { "+" };
        format!(
            "pos {:.4} base + {:.2} quote · price {:.4} · equity {:.2} · PnL {sign}{pnl_units:.4} · {} trades, {} refused · {}",
            to_units(self.balance_base),
            to_units(self.balance_quote),
            self.price,
            to_units(self.equity_quote),
            self.trades,
            self.refusals,
            self.last
        )
    }
}

/// The trading agent as an `agent_runtime` [`Strategy`].
///
/// Every step records exactly one action: a `trade` (with its transaction hash and fill), a
/// `refusal` (with the firewall's rule and reason), a `hold`, or in dry-run mode a
/// `dry-run-trade` (the same checks and maths, nothing sent).
pub struct TradingStrategy<P> {
    policy: P,
    firewall: Firewall,
    reader: MarketReader,
    sender: Option<NonceManager>,
    mover: Option<PriceProcess>,
    status: Arc<Mutex<TradingStatus>>,
    restored: bool,
}

impl<P> std::fmt::Debug for TradingStrategy<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TradingStrategy")
            .field("firewall", &self.firewall)
            .field("holder", &self.reader.holder())
            .field("dry_run", &self.sender.is_none())
            .finish_non_exhaustive()
    }
}

fn dec(v: U256) -> String {
    v.to_string()
}

fn read_u256(v: &Value, key: &str) -> Option<U256> {
    v.get(key)?
        .as_str()
        .and_then(|s| U256::from_str_radix(s, 10).ok())
}

impl<P: TradingPolicy> TradingStrategy<P> {
    /// A strategy proposing with `policy` under `firewall`, reading the market with `reader`
    /// (whose holder must be the agent's token-bound account).
    ///
    /// Without [`Self::with_sender`] it runs in dry-run mode.
    pub fn new(policy: P, firewall: Firewall, reader: MarketReader) -> Self {
        Self {
            policy,
            firewall,
            reader,
            sender: None,
            mover: None,
            status: Arc::default(),
            restored: false,
        }
    }

    /// Sends trades: signed by the agent key through a nonce manager persisting in `db`.
    pub fn with_sender(
        mut self,
        db: Db,
        provider: DynProvider,
        signer: alloy::signers::local::PrivateKeySigner,
        chain_id: u64,
        options: SendOptions,
    ) -> Self {
        self.sender = Some(NonceManager::new(db, provider, signer, chain_id, options));
        self
    }

    /// Moves the market with `process` before each step (dev chains and demos).
    pub fn with_market_mover(mut self, process: PriceProcess) -> Self {
        self.mover = Some(process);
        self
    }

    /// A handle on the status, readable while the runner holds the strategy.
    pub fn status(&self) -> Arc<Mutex<TradingStatus>> {
        Arc::clone(&self.status)
    }

    /// The firewall (and its state).
    pub fn firewall(&self) -> &Firewall {
        &self.firewall
    }

    /// Whether trades are only simulated.
    pub fn is_dry_run(&self) -> bool {
        self.sender.is_none()
    }

    fn update_status(&self, f: impl FnOnce(&mut TradingStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// Restores the caps' volume, the peak and the starting equity from this log's earlier
    /// records, so a restart does not reset the owner's limits.
    async fn restore(&mut self, db: &Db, log: &LogId) -> Result<(), TradingError> {
        let mut from = FIRST_SEQ;
        let mut start = None;
        loop {
            let batch = db
                .records(log, from, 500)
                .await
                .map_err(|e| TradingError::Db(Box::new(e)))?;
            let Some(last) = batch.last() else { break };
            from = last.record.record().seq + 1;
            for stored in &batch {
                let r = stored.record.record();
                let d = &r.details;
                if start.is_none() {
                    start = read_u256(d, "start_equity_quote");
                }
                if let Some(eq) = read_u256(d, "equity_quote") {
                    let state = self.firewall.state_mut();
                    state.peak_equity = state.peak_equity.max(eq);
                }
                if r.kind == ActionKind::Trade
                    && let (Some(v), Some(t)) = (
                        d.get("trade").and_then(|t| read_u256(t, "value_quote")),
                        d.get("timestamp").and_then(Value::as_u64),
                    )
                {
                    self.firewall.state_mut().record_trade(t, v);
                }
            }
        }
        if let Some(start) = start {
            self.update_status(|s| s.start_equity_quote = start);
        }
        Ok(())
    }

    fn market_details(&self, snap: &MarketSnapshot) -> Value {
        let status = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        let equity = snap.equity_quote();
        let start = if status.start_equity_quote.is_zero() {
            equity
        } else {
            status.start_equity_quote
        };
        let pnl = signed_diff(equity, start);
        json!({
            "block": snap.block,
            "timestamp": snap.timestamp,
            "reserve_base": dec(snap.reserve_base),
            "reserve_quote": dec(snap.reserve_quote),
            "balance_base": dec(snap.balance_base),
            "balance_quote": dec(snap.balance_quote),
            "equity_quote": dec(equity),
            "start_equity_quote": dec(start),
            "pnl_quote": pnl.to_string(),
        })
    }

    fn draft(
        &self,
        session: &AgentSession,
        kind: ActionKind,
        decision: &Decision,
        details: Value,
    ) -> ActionDraft {
        match &decision.generation {
            Some(g) => session.draft(kind, &decision.prompt, g, details),
            None => ActionDraft {
                kind,
                // A classical rule uses no model.
                model_hash: B256::ZERO,
                prompt: decision.prompt.clone(),
                keep_prompt: true,
                output: match &decision.intent {
                    Ok(i) => serde_json::to_string(i).unwrap_or_default(),
                    Err(e) => e.to_string(),
                },
                sampler: Value::Null,
                seed: 0,
                llama_build: String::new(),
                tx_hash: None,
                details,
            },
        }
    }

    /// Records a trade that an earlier run sent for this log position but crashed before
    /// recording.
    fn resumed_draft(
        &self,
        holder: Address,
        snap: &MarketSnapshot,
        receipt: &alloy::rpc::types::TransactionReceipt,
    ) -> ActionDraft {
        let (fill, token_in, token_out) = {
            let buy = fill_of(receipt, holder, snap.quote, snap.base);
            if buy.amount_in.is_zero() {
                (
                    fill_of(receipt, holder, snap.base, snap.quote),
                    snap.base,
                    snap.quote,
                )
            } else {
                (buy, snap.quote, snap.base)
            }
        };
        let mut details = self.market_details(snap);
        details["policy"] = json!(self.policy.name());
        details["resumed"] = json!(true);
        details["fill"] = json!({
            "token_in": token_in,
            "token_out": token_out,
            "amount_in": dec(fill.amount_in),
            "amount_out": dec(fill.amount_out),
        });
        details["trade"] =
            json!({ "value_quote": dec(snap.quote_value(token_in, fill.amount_in)) });
        let kind = if receipt.status() {
            ActionKind::Trade
        } else {
            ActionKind::Other("trade-reverted".into())
        };
        ActionDraft {
            kind,
            model_hash: B256::ZERO,
            prompt: String::new(),
            keep_prompt: true,
            output: String::new(),
            sampler: Value::Null,
            seed: 0,
            llama_build: String::new(),
            tx_hash: Some(receipt.transaction_hash),
            details,
        }
    }

    async fn run_step(
        &mut self,
        session: &mut AgentSession,
        step: u64,
    ) -> Result<ActionDraft, StrategyError> {
        let log = *session.log();
        if !self.restored {
            if let Some(sender) = &self.sender {
                let db = sender.db().clone();
                self.restore(&db, &log).await?;
            }
            self.restored = true;
        }
        if let Some(mover) = &mut self.mover {
            mover.step().await?;
        }
        let holder = self.reader.holder();
        // The position this step's action takes in the log: the idempotence key of its trade.
        let reference = match &self.sender {
            Some(sender) => {
                let last = sender
                    .db()
                    .last_record(&log)
                    .await
                    .map_err(|e| TradingError::Db(Box::new(e)))?;
                let seq = last.map_or(FIRST_SEQ, |r| r.record.record().seq + 1);
                Some(format!("{log}@{seq}"))
            }
            None => None,
        };
        // A trade sent for this position before a crash is recorded, not decided again.
        if let (Some(sender), Some(reference)) = (&self.sender, &reference)
            && let Some(receipt) = sender.resolved(TRADE_PURPOSE, reference).await?
        {
            let snap = self.reader.snapshot().await?;
            let draft = self.resumed_draft(holder, &snap, &receipt);
            let value = read_u256(&draft.details["trade"], "value_quote").unwrap_or_default();
            if draft.kind == ActionKind::Trade {
                self.firewall
                    .state_mut()
                    .record_trade(snap.timestamp, value);
            }
            self.finish_status(&snap, "trade (resumed)", |s| s.trades += 1);
            return Ok(draft);
        }

        let snap = self.reader.snapshot().await?;
        if self
            .status
            .lock()
            .map(|s| s.start_equity_quote.is_zero())
            .unwrap_or(false)
        {
            let eq = snap.equity_quote();
            self.update_status(|s| s.start_equity_quote = eq);
        }
        let kill = self.firewall.observe(&snap);
        self.policy.observe_firewall(&self.firewall);
        let decision = self.policy.decide(session, &snap, step)?;
        let mut details = self.market_details(&snap);
        details["policy"] = json!(self.policy.name());
        details["dry_run"] = json!(self.sender.is_none());

        let intent = match &decision.intent {
            Ok(intent) => intent.clone(),
            Err(e) => {
                let refusal = Refusal::Malformed {
                    error: e.to_string(),
                };
                return Ok(self.refusal(session, &decision, details, &snap, &refusal));
            }
        };
        details["intent"] = intent_json(&intent);
        let checked = match kill {
            Some(refusal) if intent.action != super::intent::TradeAction::Hold => Err(refusal),
            _ => self.firewall.check(&intent, &snap),
        };
        let trade = match checked {
            Ok(Some(trade)) => trade,
            Ok(None) => {
                let draft = self.draft(
                    session,
                    ActionKind::Other("hold".into()),
                    &decision,
                    details,
                );
                self.finish_status(&snap, &format!("hold: {}", short(&intent.reason)), |s| {
                    s.holds += 1
                });
                return Ok(draft);
            }
            Err(refusal) => {
                return Ok(self.refusal(session, &decision, details, &snap, &refusal));
            }
        };
        details["trade"] = serde_json::to_value(&trade).unwrap_or(Value::Null);
        let request = swap_request(holder, &trade);
        let agent = session.address();
        let simulated = match simulate_swap(self.reader.provider(), agent, &request, &trade).await {
            Ok(out) => out,
            Err(refusal) => {
                return Ok(self.refusal(session, &decision, details, &snap, &refusal));
            }
        };
        details["simulated_out"] = json!(dec(simulated));

        let (Some(sender), Some(reference)) = (&self.sender, &reference) else {
            // Dry run: the same checks and maths, nothing sent.
            self.firewall
                .state_mut()
                .record_trade(snap.timestamp, trade.value_quote);
            let kind = ActionKind::Other("dry-run-trade".into());
            let draft = self.draft(session, kind, &decision, details);
            self.finish_status(&snap, &describe(&trade, "would trade"), |s| s.trades += 1);
            return Ok(draft);
        };
        let receipt = sender.send_once(request, TRADE_PURPOSE, reference).await?;
        let fill = fill_of(&receipt, holder, trade.token_in, trade.token_out);
        details["fill"] = json!({
            "token_in": trade.token_in,
            "token_out": trade.token_out,
            "amount_in": dec(fill.amount_in),
            "amount_out": dec(fill.amount_out),
        });
        details["block_mined"] = json!(receipt.block_number);
        let kind = if receipt.status() {
            self.firewall
                .state_mut()
                .record_trade(snap.timestamp, trade.value_quote);
            ActionKind::Trade
        } else {
            ActionKind::Other("trade-reverted".into())
        };
        let mut draft = self.draft(session, kind.clone(), &decision, details);
        draft.tx_hash = Some(receipt.transaction_hash);
        // Balances after the trade, for the status line.
        let after = self.reader.snapshot().await?;
        self.finish_status(&after, &describe(&trade, kind.as_str()), |s| s.trades += 1);
        Ok(draft)
    }

    fn refusal(
        &mut self,
        session: &AgentSession,
        decision: &Decision,
        mut details: Value,
        snap: &MarketSnapshot,
        refusal: &Refusal,
    ) -> ActionDraft {
        tracing::info!(%refusal, "intent refused");
        details["refusal"] = serde_json::to_value(refusal).unwrap_or(Value::Null);
        details["reason"] = json!(refusal.to_string());
        let draft = self.draft(session, ActionKind::Refusal, decision, details);
        self.finish_status(snap, &format!("refused: {refusal}"), |s| s.refusals += 1);
        draft
    }

    fn finish_status(&self, snap: &MarketSnapshot, last: &str, f: impl FnOnce(&mut TradingStatus)) {
        self.update_status(|s| {
            if s.steps == 0 {
                s.start_price = snap.price();
            }
            s.steps += 1;
            s.balance_base = snap.balance_base;
            s.balance_quote = snap.balance_quote;
            s.price = snap.price();
            s.equity_quote = snap.equity_quote();
            s.last = short(last);
            f(s);
        });
    }
}

fn short(s: &str) -> String {
    shorten(s, 60)
}

fn describe(trade: &ApprovedTrade, what: &str) -> String {
    format!(
        "{what} {:.4} → min {:.4}",
        to_units(trade.amount_in),
        to_units(trade.amount_out_min)
    )
}

fn intent_json(intent: &TradeIntent) -> Value {
    json!({
        "action": intent.action,
        "token_in": intent.token_in,
        "token_out": intent.token_out,
        "amount_in": dec(intent.amount_in),
        "max_slippage_bps": intent.max_slippage_bps,
        "router": intent.router,
        "reason": intent.reason,
    })
}

impl<P: TradingPolicy> Strategy for TradingStrategy<P> {
    fn name(&self) -> &str {
        self.policy.name()
    }

    async fn step(
        &mut self,
        session: &mut AgentSession,
        step: u64,
    ) -> Result<ActionDraft, StrategyError> {
        self.run_step(session, step).await
    }

    fn memory_note(&self) -> Option<String> {
        let s = self.status.lock().ok()?.clone();
        (s.steps > 0).then(|| s.memory_note(self.policy.name()))
    }
}
