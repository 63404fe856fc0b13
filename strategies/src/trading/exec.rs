//! Execution: the swap built through the agent's token-bound account, simulated with `eth_call`,
//! then sent through a crash-safe nonce manager.
//!
//! The nonce manager follows the database's rule (`agent_runtime::db` `signed_txs`): a
//! transaction is **signed, persisted, then broadcast**. Each send carries a `reference` (for a
//! trade: the action-log position it is for); a second send with the same reference finds the
//! first instead of signing anew, so a restart rebroadcasts or waits for the persisted bytes and
//! never sends the trade twice. A transaction not mined within `stuck_after` is repriced: the
//! same nonce re-signed with fees raised by 12.5% (the minimum nodes accept as a replacement).

use std::time::Duration;

use agent_runtime::db::{Db, DbError, NewSignedTx, SignedTx, TxState};
use alloy::consensus::{SignableTransaction, TxEnvelope};
use alloy::eips::eip2718::{Decodable2718, Encodable2718};
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder, TxSignerSync};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use inft_contracts::bindings::{AgentAccount, IAgentAccount, TestToken, UniswapV2Router02};

use super::TradingError;
use super::firewall::{ApprovedTrade, Refusal};

/// The `executeBatch` call that makes the agent's account approve exactly `amount_in` to the
/// router and swap it: one atomic transaction, no allowance left behind.
pub fn swap_request(account: Address, trade: &ApprovedTrade) -> TransactionRequest {
    let approve = TestToken::approveCall {
        spender: trade.router,
        value: trade.amount_in,
    };
    let swap = UniswapV2Router02::swapExactTokensForTokensCall {
        amountIn: trade.amount_in,
        amountOutMin: trade.amount_out_min,
        path: vec![trade.token_in, trade.token_out],
        to: account,
        deadline: U256::from(trade.deadline),
    };
    let calls = vec![
        IAgentAccount::Call {
            target: trade.token_in,
            value: U256::ZERO,
            data: approve.abi_encode().into(),
        },
        IAgentAccount::Call {
            target: trade.router,
            value: U256::ZERO,
            data: swap.abi_encode().into(),
        },
    ];
    TransactionRequest::default()
        .with_to(account)
        .with_input(Bytes::from(
            AgentAccount::executeBatchCall { calls }.abi_encode(),
        ))
}

/// Simulates the swap with `eth_call` from the agent and returns the output the router would
/// give. Refuses when the call reverts or returns less than the trade's `amount_out_min`.
pub async fn simulate_swap(
    provider: &DynProvider,
    agent: Address,
    request: &TransactionRequest,
    trade: &ApprovedTrade,
) -> Result<U256, Refusal> {
    let simulation = |detail: String| Refusal::Simulation { detail };
    let out = provider
        .call(request.clone().with_from(agent))
        .await
        .map_err(|e| simulation(format!("eth_call failed: {e}")))?;
    let results = AgentAccount::executeBatchCall::abi_decode_returns(&out)
        .map_err(|e| simulation(format!("undecodable result: {e}")))?;
    let amounts = results
        .get(1)
        .map(|r| UniswapV2Router02::swapExactTokensForTokensCall::abi_decode_returns(r))
        .transpose()
        .map_err(|e| simulation(format!("undecodable swap result: {e}")))?
        .unwrap_or_default();
    let got = amounts.last().copied().unwrap_or_default();
    if got < trade.amount_out_min {
        return Err(simulation(format!(
            "simulated output {got} is below the minimum {}",
            trade.amount_out_min
        )));
    }
    Ok(got)
}

/// What a mined swap moved in and out of the account, from the receipt's ERC-20 `Transfer`s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fill {
    /// `token_in` that left the account.
    pub amount_in: U256,
    /// `token_out` that arrived.
    pub amount_out: U256,
}

/// The fill of a swap receipt for `account`.
pub fn fill_of(
    receipt: &TransactionReceipt,
    account: Address,
    token_in: Address,
    token_out: Address,
) -> Fill {
    let mut fill = Fill::default();
    for log in receipt.inner.logs() {
        let Ok(t) = log.log_decode::<TestToken::Transfer>() else {
            continue;
        };
        let (token, ev) = (t.address(), t.inner.data);
        if token == token_in && ev.from == account {
            fill.amount_in = fill.amount_in.saturating_add(ev.value);
        }
        if token == token_out && ev.to == account {
            fill.amount_out = fill.amount_out.saturating_add(ev.value);
        }
    }
    fill
}

/// A provider for the other sender of the agent key (the action-log outbox): it asks the node
/// for the pending nonce on every transaction instead of caching it, so it keeps working while
/// the [`NonceManager`] sends trades from the same key. (alloy's default nonce cache would go
/// stale after the first trade and every later log batch would fail with "nonce too low".)
pub fn shared_key_provider(
    url: alloy::transports::http::reqwest::Url,
    signer: PrivateKeySigner,
) -> DynProvider {
    alloy::providers::ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url)
        .erased()
}

/// How long to wait before repricing, and how often to poll.
#[derive(Clone, Copy, Debug)]
pub struct SendOptions {
    /// A transaction not mined after this long is repriced.
    pub stuck_after: Duration,
    /// Receipt polling interval.
    pub poll: Duration,
    /// Most reprices of one transaction before giving up (it stays persisted).
    pub max_reprices: u32,
}

impl Default for SendOptions {
    /// Reprice after 30 s, poll every 250 ms, at most 5 reprices.
    fn default() -> Self {
        Self {
            stuck_after: Duration::from_secs(30),
            poll: Duration::from_millis(250),
            max_reprices: 5,
        }
    }
}

/// Sends transactions for one key: signed → persisted → broadcast, resumable after a crash.
#[derive(Debug)]
pub struct NonceManager {
    db: Db,
    provider: DynProvider,
    signer: PrivateKeySigner,
    chain_id: u64,
    options: SendOptions,
}

fn db_err(e: DbError) -> TradingError {
    TradingError::Db(Box::new(e))
}

/// Node answers that mean the transaction will never be mined as sent (its nonce is taken or
/// it is underpriced against one holding the nonce).
fn nonce_conflict(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("nonce too low") || m.contains("underpriced") || m.contains("nonce has already")
}

fn already_known(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("already known") || m.contains("already imported") || m.contains("alreadyknown")
}

impl NonceManager {
    /// A manager sending as `signer` through `provider` (a plain provider: it only reads and
    /// broadcasts raw bytes), persisting in `db`.
    pub fn new(
        db: Db,
        provider: DynProvider,
        signer: PrivateKeySigner,
        chain_id: u64,
        options: SendOptions,
    ) -> Self {
        Self {
            db,
            provider,
            signer,
            chain_id,
            options,
        }
    }

    /// The sending address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The transactions already recorded for `purpose`/`reference`, oldest first.
    pub async fn existing(
        &self,
        purpose: &str,
        reference: &str,
    ) -> Result<Vec<SignedTx>, TradingError> {
        self.db
            .txs_by_reference(self.chain_id, purpose, reference)
            .await
            .map_err(db_err)
    }

    /// The receipt of a transaction already sent for `purpose`/`reference`, after settling
    /// unfinished ones (rebroadcast, wait, reprice): `None` if none was ever mined.
    pub async fn resolved(
        &self,
        purpose: &str,
        reference: &str,
    ) -> Result<Option<TransactionReceipt>, TradingError> {
        self.settle_unfinished().await?;
        for tx in self.existing(purpose, reference).await? {
            if matches!(tx.state, TxState::Mined | TxState::Failed)
                && let Some(receipt) = self.receipt(tx.tx_hash).await?
            {
                return Ok(Some(receipt));
            }
        }
        Ok(None)
    }

    /// Sends `request` once per `reference`: if a transaction for it is already mined, returns
    /// its receipt; if one is unfinished, rebroadcasts and waits for it; otherwise signs a new
    /// one. Unfinished transactions of other references are settled first, so nonces stay in
    /// order after a restart.
    pub async fn send_once(
        &self,
        request: TransactionRequest,
        purpose: &str,
        reference: &str,
    ) -> Result<TransactionReceipt, TradingError> {
        if let Some(receipt) = self.resolved(purpose, reference).await? {
            return Ok(receipt);
        }
        // Nonce conflicts with another sender of this key (the action logger) are retried with
        // the next nonce: the refused transaction exists nowhere but in our database.
        let mut last = String::new();
        for _ in 0..5 {
            let pending = self
                .provider
                .get_transaction_count(self.address())
                .pending()
                .await
                .map_err(TradingError::rpc("eth_getTransactionCount"))?;
            let fees = self
                .provider
                .estimate_eip1559_fees()
                .await
                .map_err(TradingError::rpc("fee estimate"))?;
            let gas = self
                .provider
                .estimate_gas(request.clone().with_from(self.address()))
                .await
                .map_err(TradingError::rpc("eth_estimateGas"))?;
            let req = request
                .clone()
                .with_from(self.address())
                .with_chain_id(self.chain_id)
                .with_nonce(pending)
                .with_gas_limit(super::market::swap_gas_limit(gas))
                .with_max_fee_per_gas(fees.max_fee_per_gas)
                .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
            let envelope = req
                .build(&EthereumWallet::from(self.signer.clone()))
                .await
                .map_err(|e| TradingError::Sign(e.to_string()))?;
            let tx = self.persist(&envelope, purpose, reference, false).await?;
            match self.broadcast(&tx).await {
                Ok(()) => match self.wait(tx, purpose, reference).await {
                    // Another transaction took the nonce: ours can never be mined, so a new
                    // one at the next nonce cannot double-send.
                    Err(TradingError::Replaced { nonce }) => {
                        last = format!("nonce {nonce} taken by another transaction");
                    }
                    other => return other,
                },
                Err(e) if nonce_conflict(&e) => {
                    self.set_state(tx.tx_hash, TxState::Dropped, None).await?;
                    last = e;
                    tokio::time::sleep(self.options.poll).await;
                }
                Err(e) => {
                    self.set_state(tx.tx_hash, TxState::Failed, None).await?;
                    return Err(TradingError::Chain(format!("broadcast refused: {e}")));
                }
            }
        }
        Err(TradingError::Chain(format!(
            "could not find a free nonce: {last}"
        )))
    }

    /// Rebroadcasts and waits for every unfinished transaction of this key (after a restart).
    pub async fn settle_unfinished(&self) -> Result<(), TradingError> {
        let unfinished = self
            .db
            .unfinished_txs(self.chain_id, self.address())
            .await
            .map_err(db_err)?;
        for tx in unfinished {
            let (purpose, reference) =
                (tx.purpose.clone(), tx.reference.clone().unwrap_or_default());
            // The same nonce may have several (repriced) versions; settling one settles all.
            let current = self
                .db
                .signed_tx(self.chain_id, tx.tx_hash)
                .await
                .map_err(db_err)?;
            if current.is_some_and(|t| t.state.is_unfinished()) {
                match self.wait(tx, &purpose, &reference).await {
                    // Its nonce went to another transaction: it never happened.
                    Ok(_) | Err(TradingError::Replaced { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    async fn persist(
        &self,
        envelope: &TxEnvelope,
        purpose: &str,
        reference: &str,
        replacement: bool,
    ) -> Result<SignedTx, TradingError> {
        let fees = envelope.as_eip1559().map(|s| {
            let t = s.tx();
            (t.max_fee_per_gas, t.max_priority_fee_per_gas)
        });
        let new = NewSignedTx {
            chain_id: self.chain_id,
            tx_hash: *envelope.tx_hash(),
            sender: self.address(),
            nonce: alloy::consensus::Transaction::nonce(envelope),
            raw_tx: envelope.encoded_2718().into(),
            purpose: purpose.to_owned(),
            reference: Some(reference.to_owned()),
            max_fee_per_gas: fees.map(|f| f.0),
            max_priority_fee_per_gas: fees.map(|f| f.1),
            replacement,
        };
        self.db.record_signed_tx(&new).await.map_err(db_err)?;
        self.db
            .signed_tx(self.chain_id, new.tx_hash)
            .await
            .map_err(db_err)?
            .ok_or_else(|| TradingError::Chain("persisted transaction vanished".into()))
    }

    async fn set_state(
        &self,
        hash: B256,
        state: TxState,
        block: Option<u64>,
    ) -> Result<(), TradingError> {
        self.db
            .set_tx_state(self.chain_id, hash, state, block)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Broadcasts persisted bytes; `Err` carries the node's message.
    async fn broadcast(&self, tx: &SignedTx) -> Result<(), String> {
        match self.provider.send_raw_transaction(&tx.raw_tx).await {
            Ok(_) => {}
            Err(e) if already_known(&e.to_string()) => {}
            Err(e) => return Err(e.to_string()),
        }
        // Only the state changes; a database error here is retried by the next settle.
        let _ = self
            .db
            .set_tx_state(self.chain_id, tx.tx_hash, TxState::Broadcast, None)
            .await;
        Ok(())
    }

    async fn receipt(&self, hash: B256) -> Result<Option<TransactionReceipt>, TradingError> {
        self.provider
            .get_transaction_receipt(hash)
            .await
            .map_err(TradingError::rpc("eth_getTransactionReceipt"))
    }

    /// Waits for `tx` (or a repriced version of it) to be mined; rebroadcasts it first, and
    /// reprices it when stuck.
    async fn wait(
        &self,
        tx: SignedTx,
        purpose: &str,
        reference: &str,
    ) -> Result<TransactionReceipt, TradingError> {
        let mut versions = vec![tx.clone()];
        let mut latest = tx;
        let mut reprices = 0;
        if let Err(e) = self.broadcast(&latest).await
            && !nonce_conflict(&e)
        {
            tracing::warn!(tx = %latest.tx_hash, error = %e, "rebroadcast refused");
        }
        let mut since = tokio::time::Instant::now();
        // Polls in a row that found the nonce used and none of our versions mined.
        let mut consumed_polls = 0;
        loop {
            if let Some(r) = self.mined_version(&versions).await? {
                return Ok(r);
            }
            let mined_nonce = self
                .provider
                .get_transaction_count(self.address())
                .latest()
                .await
                .map_err(TradingError::rpc("eth_getTransactionCount"))?;
            // The nonce is used but no version has a receipt: another transaction took it, or
            // the node (or the one behind a load balancer) counts the nonce before it serves
            // our receipt. Concluding "replaced" too early would sign the same swap again at
            // the next nonce, so it takes two polls in a row, and none of our versions may be
            // known to the node as mined.
            consumed_polls = if mined_nonce > latest.nonce {
                consumed_polls + 1
            } else {
                0
            };
            if consumed_polls >= 2 {
                // Look again: ours may have been mined between the receipt query and this one.
                if let Some(r) = self.mined_version(&versions).await? {
                    return Ok(r);
                }
                if !self.any_in_a_block(&versions).await? {
                    for v in &versions {
                        self.set_state(v.tx_hash, TxState::Replaced, None).await?;
                    }
                    return Err(TradingError::Replaced {
                        nonce: latest.nonce,
                    });
                }
            }
            if since.elapsed() >= self.options.stuck_after {
                if reprices >= self.options.max_reprices {
                    return Err(TradingError::Chain(format!(
                        "transaction {} not mined after {reprices} reprices",
                        latest.tx_hash
                    )));
                }
                reprices += 1;
                let replacement = self.reprice(&latest, purpose, reference).await?;
                tracing::info!(old = %latest.tx_hash, new = %replacement.tx_hash, "repriced a stuck transaction");
                if let Err(e) = self.broadcast(&replacement).await {
                    tracing::warn!(error = %e, "replacement refused");
                }
                versions.push(replacement.clone());
                latest = replacement;
                since = tokio::time::Instant::now();
            }
            tokio::time::sleep(self.options.poll).await;
        }
    }

    /// The receipt of the first of `versions` that is mined, recording its state.
    async fn mined_version(
        &self,
        versions: &[SignedTx],
    ) -> Result<Option<TransactionReceipt>, TradingError> {
        for v in versions {
            if let Some(r) = self.receipt(v.tx_hash).await? {
                let state = if r.status() {
                    TxState::Mined
                } else {
                    TxState::Failed
                };
                self.set_state(v.tx_hash, state, r.block_number).await?;
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Whether the node knows any of `versions` as included in a block (its receipt may
    /// still be on its way).
    async fn any_in_a_block(&self, versions: &[SignedTx]) -> Result<bool, TradingError> {
        for v in versions {
            let tx = self
                .provider
                .get_transaction_by_hash(v.tx_hash)
                .await
                .map_err(TradingError::rpc("eth_getTransactionByHash"))?;
            if tx.is_some_and(|t| t.block_number.is_some()) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The same transaction at the same nonce with fees raised by 12.5% (plus one wei).
    async fn reprice(
        &self,
        tx: &SignedTx,
        purpose: &str,
        reference: &str,
    ) -> Result<SignedTx, TradingError> {
        let envelope = TxEnvelope::decode_2718(&mut tx.raw_tx.as_ref())
            .map_err(|e| TradingError::Sign(format!("persisted transaction: {e}")))?;
        let signed = envelope
            .as_eip1559()
            .ok_or_else(|| TradingError::Sign("only EIP-1559 transactions are repriced".into()))?;
        let mut inner = signed.tx().clone();
        let bump = |fee: u128| fee.saturating_add(fee / 8).saturating_add(1);
        inner.max_fee_per_gas = bump(inner.max_fee_per_gas);
        inner.max_priority_fee_per_gas = bump(inner.max_priority_fee_per_gas);
        let signature = self
            .signer
            .sign_transaction_sync(&mut inner)
            .map_err(|e| TradingError::Sign(e.to_string()))?;
        let replacement = TxEnvelope::from(inner.into_signed(signature));
        self.persist(&replacement, purpose, reference, true).await
    }
}
