//! [`TradingStrategy`]: one observe → decide → firewall → simulate → send → record step per
//! `agent_runtime` step, with PnL accounting and a dry-run mode.

use std::sync::{Arc, Mutex};

use agent_runtime::db::Db;
use agent_runtime::record::{ActionDraft, ActionKind, FIRST_SEQ, LogId};
use alloy::primitives::{Address, B256, I256, U256};
use alloy::providers::DynProvider;
use inft_runtime::{AgentSession, Strategy, StrategyError};
use serde_json::{Value, json};

use super::TradingError;
use super::exec::{NonceManager, SendOptions, fill_of, simulate_swap, swap_request};
use super::firewall::{ApprovedTrade, Firewall, Refusal};
use super::intent::TradeIntent;
use super::market::{
    Flow, MarketReader, MarketSnapshot, PriceProcess, shorten, signed_diff, to_units,
};
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
    /// Money moved into the account less money moved out of it since trading started, other
    /// than by trading (top-ups, withdrawals, royalty settlements), each valued in quote when
    /// it moved.
    pub net_flows_quote: I256,
    /// The last action's kind and short reason.
    pub last: String,
}

/// Equity less what was put in: the starting equity and the net flows since.
pub fn pnl_of(equity: U256, start_equity: U256, net_flows: I256) -> I256 {
    signed_diff(equity, start_equity).saturating_sub(net_flows)
}

impl TradingStatus {
    /// Trading profit in quote base units: equity less the starting equity and the net flows
    /// ([`pnl_of`]), so a top-up is no profit and a withdrawal no loss.
    pub fn pnl_quote(&self) -> I256 {
        pnl_of(
            self.equity_quote,
            self.start_equity_quote,
            self.net_flows_quote,
        )
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

    /// The counts, balances, equity and PnL (wei amounts as decimal strings) and the price,
    /// for JSON reports (`inft run --json`, `inft serve`'s `/agents`).
    pub fn to_json(&self) -> Value {
        json!({
            "trades": self.trades,
            "refusals": self.refusals,
            "holds": self.holds,
            "balance_base": self.balance_base.to_string(),
            "balance_quote": self.balance_quote.to_string(),
            "equity_quote": self.equity_quote.to_string(),
            "pnl_quote": self.pnl_quote().to_string(),
            "price": self.price,
        })
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
    /// Equity at the first step of this log (`None` before it).
    start_equity: Option<U256>,
    /// Net flows since the start ([`TradingStatus::net_flows_quote`]).
    net_flows: I256,
    /// The last block scanned for flows (the previous step's snapshot).
    flows_scanned_to: Option<u64>,
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
    /// Without [`Self::with_sender`] it runs in dry-run mode. The reader's TWAP window is set
    /// from the firewall's policy.
    pub fn new(policy: P, firewall: Firewall, reader: MarketReader) -> Self {
        let reader = reader.with_twap_window(firewall.policy().twap_window_secs);
        Self {
            policy,
            firewall,
            reader,
            sender: None,
            mover: None,
            status: Arc::default(),
            restored: false,
            start_equity: None,
            net_flows: I256::ZERO,
            flows_scanned_to: None,
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

    /// Restores the caps' volume, the peak, the starting equity, the net flows and the last
    /// block scanned for flows from this log's earlier records, so a restart does not reset the
    /// owner's limits and counts no flow twice or never.
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
                    // As live: the step's flows rescale the peak before its equity is seen.
                    if let Some(net) = d.get("flows").and_then(|f| read_i256(f, "net_quote")) {
                        state.note_flow(net, eq);
                    }
                    state.peak_equity = state.peak_equity.max(eq);
                    if let Some(net) = read_i256(d, "net_flows_quote") {
                        self.net_flows = net;
                    }
                    if let Some(block) = d.get("block").and_then(Value::as_u64) {
                        self.flows_scanned_to = Some(block);
                    }
                }
                if r.kind == ActionKind::Trade
                    && let (Some(v), Some(t)) = (
                        d.get("trade").and_then(|t| read_u256(t, "value_quote")),
                        d.get("timestamp").and_then(Value::as_u64),
                    )
                {
                    // Records from before the base caps lack the base amount: the fill has it.
                    let base = d
                        .get("trade")
                        .and_then(|t| read_u256(t, "amount_base"))
                        .or_else(|| base_of_fill(d, self.reader.market().base_token))
                        .unwrap_or_default();
                    self.firewall.state_mut().record_trade(t, v, base);
                }
            }
        }
        if let Some(start) = start {
            self.start_equity = Some(start);
            let net = self.net_flows;
            self.update_status(|s| {
                s.start_equity_quote = start;
                s.net_flows_quote = net;
            });
        }
        Ok(())
    }

    /// Scans the account's flows since the last step ([`MarketReader::flows`]) and counts them:
    /// into the net flows (so they are no PnL) and into the drawdown peak (so they are no
    /// drawdown). The first step of a log only marks where scanning starts: what the account
    /// holds then is the starting equity. Returns the step's flows for its record (`Null` when
    /// none).
    async fn account_flows(&mut self, snap: &MarketSnapshot) -> Result<Value, TradingError> {
        let Some(after) = self
            .flows_scanned_to
            .filter(|_| self.start_equity.is_some())
        else {
            self.start_equity = Some(snap.equity_quote());
            self.flows_scanned_to = Some(snap.block);
            let (start, net) = (snap.equity_quote(), self.net_flows);
            self.update_status(|s| {
                s.start_equity_quote = start;
                s.net_flows_quote = net;
            });
            return Ok(Value::Null);
        };
        if snap.block <= after {
            return Ok(Value::Null);
        }
        let flows = self.reader.flows(after, snap).await?;
        self.flows_scanned_to = Some(snap.block);
        if flows.is_empty() {
            return Ok(Value::Null);
        }
        let sum = |incoming: bool| {
            flows
                .iter()
                .filter(|f| f.incoming == incoming)
                .fold(U256::ZERO, |acc, f| acc.saturating_add(f.value_quote))
        };
        let (inflow, outflow) = (sum(true), sum(false));
        let net = signed_diff(inflow, outflow);
        self.net_flows = self.net_flows.saturating_add(net);
        self.firewall
            .state_mut()
            .note_flow(net, snap.equity_quote());
        let total = self.net_flows;
        self.update_status(|s| s.net_flows_quote = total);
        tracing::info!(count = flows.len(), %net, "money moved in or out of the account");
        Ok(flows_json(&flows, inflow, outflow, net))
    }

    /// The step's market, holdings and accounts, and the flows counted at this step.
    fn market_details(&self, snap: &MarketSnapshot, flows: Value) -> Value {
        let equity = snap.equity_quote();
        let start = self.start_equity.unwrap_or(equity);
        let pnl = pnl_of(equity, start, self.net_flows);
        let mut details = json!({
            "block": snap.block,
            "timestamp": snap.timestamp,
            "reserve_base": dec(snap.reserve_base),
            "reserve_quote": dec(snap.reserve_quote),
            "balance_base": dec(snap.balance_base),
            "balance_quote": dec(snap.balance_quote),
            "equity_quote": dec(equity),
            "start_equity_quote": dec(start),
            "net_flows_quote": self.net_flows.to_string(),
            "pnl_quote": pnl.to_string(),
        });
        if let Some(twap) = snap.twap {
            details["twap"] = json!({
                "price_x112": dec(twap.price_x112),
                "secs": twap.secs,
                "from_timestamp": twap.from_timestamp,
            });
        }
        if !flows.is_null() {
            details["flows"] = flows;
        }
        details
    }

    fn draft(
        &self,
        session: &AgentSession,
        kind: ActionKind,
        decision: &Decision,
        mut details: Value,
    ) -> ActionDraft {
        if let Some(choice) = &decision.choice {
            details["choice"] = json!(choice);
        }
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
        flows: Value,
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
        let mut details = self.market_details(snap, flows);
        details["policy"] = json!(self.policy.name());
        details["resumed"] = json!(true);
        details["fill"] = json!({
            "token_in": token_in,
            "token_out": token_out,
            "amount_in": dec(fill.amount_in),
            "amount_out": dec(fill.amount_out),
        });
        let base = if token_in == snap.base {
            fill.amount_in
        } else {
            fill.amount_out
        };
        details["trade"] = json!({
            "value_quote": dec(snap.cap_value(token_in, fill.amount_in)),
            "amount_base": dec(base),
        });
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

    /// One step. A step that fails records nothing, so it counts no flow either: the next
    /// step scans the same blocks again.
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
        let saved = (
            self.start_equity,
            self.net_flows,
            self.flows_scanned_to,
            self.firewall.state().peak_equity,
        );
        let result = self.try_step(session, step).await;
        if result.is_err() {
            let (start, net, scanned, peak) = saved;
            (self.start_equity, self.net_flows, self.flows_scanned_to) = (start, net, scanned);
            self.firewall.state_mut().peak_equity = peak;
            self.update_status(|s| {
                s.start_equity_quote = start.unwrap_or_default();
                s.net_flows_quote = net;
            });
        }
        result
    }

    async fn try_step(
        &mut self,
        session: &mut AgentSession,
        step: u64,
    ) -> Result<ActionDraft, StrategyError> {
        let log = *session.log();
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
                Some(log.position_reference(seq))
            }
            None => None,
        };
        // A trade sent for this position before a crash is recorded, not decided again.
        if let (Some(sender), Some(reference)) = (&self.sender, &reference)
            && let Some(receipt) = sender.resolved(TRADE_PURPOSE, reference).await?
        {
            let snap = self.reader.snapshot().await?;
            let flows = self.account_flows(&snap).await?;
            let draft = self.resumed_draft(holder, &snap, flows, &receipt);
            let value = read_u256(&draft.details["trade"], "value_quote").unwrap_or_default();
            let base = read_u256(&draft.details["trade"], "amount_base").unwrap_or_default();
            if draft.kind == ActionKind::Trade {
                self.firewall
                    .state_mut()
                    .record_trade(snap.timestamp, value, base);
            }
            self.finish_status(&snap, "trade (resumed)", |s| s.trades += 1);
            return Ok(draft);
        }

        let snap = self.reader.snapshot().await?;
        let flows = self.account_flows(&snap).await?;
        let kill = self.firewall.observe(&snap);
        self.policy.observe_firewall(&self.firewall);
        let decision = self.policy.decide(session, &snap, step)?;
        let mut details = self.market_details(&snap, flows);
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
            self.firewall.state_mut().record_trade(
                snap.timestamp,
                trade.value_quote,
                trade.amount_base,
            );
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
            self.firewall.state_mut().record_trade(
                snap.timestamp,
                trade.value_quote,
                trade.amount_base,
            );
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

fn read_i256(v: &Value, key: &str) -> Option<I256> {
    v.get(key)?.as_str()?.parse().ok()
}

/// The base amount of a trade record's fill (sold, or bought).
fn base_of_fill(d: &Value, base: Address) -> Option<U256> {
    let fill = d.get("fill")?;
    let token_in: Address = fill.get("token_in")?.as_str()?.parse().ok()?;
    let key = if token_in == base {
        "amount_in"
    } else {
        "amount_out"
    };
    read_u256(fill, key)
}

/// Most flows listed by transaction in a step's record (anyone can send the account dust; the
/// totals always count them all).
const LISTED_FLOWS: usize = 8;

fn flows_json(flows: &[Flow], inflow: U256, outflow: U256, net: I256) -> Value {
    let listed: Vec<Value> = flows
        .iter()
        .take(LISTED_FLOWS)
        .map(|f| {
            json!({
                "block": f.block,
                "tx": f.tx_hash,
                "token": f.token,
                "direction": if f.incoming { "in" } else { "out" },
                "amount": dec(f.amount),
                "value_quote": dec(f.value_quote),
            })
        })
        .collect();
    json!({
        "count": flows.len(),
        "in_quote": dec(inflow),
        "out_quote": dec(outflow),
        "net_quote": net.to_string(),
        "listed": listed,
    })
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
