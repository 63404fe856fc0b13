//! [`ChainLog`] over the deployed `ActionLog` contract, with alloy.

use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::providers::Provider;
use async_trait::async_trait;
use inft_contracts::bindings::ActionLog;
use inft_contracts::{ContractRevert, revert_of};

use super::{ChainHead, ChainLog, ChainLogError, LoggedAction, TxConfirmation};
use crate::record::LogId;

/// The `ActionLog` contract through an alloy provider.
///
/// The provider must sign with the token's agent key (or an account the owner authorized with
/// the LOG scope): `logActions` is sent from its default signer. Sequence numbers map 1:1 to the
/// contract's (`chainOf(tokenId).seq` is the last logged seq, so [`ChainHead::next_seq`] is
/// `seq + 1`). Logged hashes, and who sent them, are read back from `ActionsLogged` events,
/// scanning from `from_block` (the deployment's start block).
///
/// Errors: a `SequenceMismatch` revert at gas estimation (another writer, or a send that
/// landed unseen) is retryable, so the outbox reconciles and carries on; so is `TokenPaused`
/// (the owner paused the token: the records wait, pending, until it is unpaused);
/// `NotAgentOrExecutor` and `EmptyBatch` are [`ChainLogError::Rejected`]; transport errors are
/// transient.
#[derive(Clone, Debug)]
pub struct AlloyChainLog<P> {
    provider: P,
    from_block: u64,
    confirm_timeout: Duration,
    poll_interval: Duration,
}

impl<P: Provider + Clone> AlloyChainLog<P> {
    /// A chain log through `provider`, reading events from block `from_block` on.
    pub fn new(provider: P, from_block: u64) -> Self {
        Self {
            provider,
            from_block,
            confirm_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_millis(250),
        }
    }

    /// How long [`confirm`](ChainLog::confirm) waits for a receipt (default 120 s), and how often
    /// it asks (default 250 ms).
    pub fn with_confirm_timeout(mut self, timeout: Duration, poll_interval: Duration) -> Self {
        self.confirm_timeout = timeout;
        self.poll_interval = poll_interval;
        self
    }

    fn contract(&self, address: Address) -> ActionLog::ActionLogInstance<P> {
        ActionLog::new(address, self.provider.clone())
    }
}

fn classify(e: alloy::contract::Error) -> ChainLogError {
    match revert_of(&e) {
        Some(ContractRevert::ActionLog(ActionLog::ActionLogErrors::SequenceMismatch(m))) => {
            ChainLogError::transient(format!(
                "sequence mismatch: the contract expects seq {}, got {}",
                m.expected, m.got
            ))
        }
        // A pause is the owner's to lift: the records stay pending (retried with backoff, never
        // dropped) and are logged once the token is unpaused.
        Some(ContractRevert::ActionLog(ActionLog::ActionLogErrors::TokenPaused(p))) => {
            ChainLogError::transient(format!(
                "token {} is paused by its owner: only the owner may log until it is unpaused; \
                 the records stay pending",
                p.tokenId
            ))
        }
        Some(ContractRevert::ActionLog(ActionLog::ActionLogErrors::NotAgentOrExecutor(n))) => {
            ChainLogError::Rejected(format!(
                "{} is neither the agent of token {} nor authorized to log for it",
                n.caller, n.tokenId
            ))
        }
        Some(other) => ChainLogError::Rejected(format!("logActions reverted: {other:?}")),
        None => ChainLogError::transient(e),
    }
}

#[async_trait]
impl<P: Provider + Clone + 'static> ChainLog for AlloyChainLog<P> {
    async fn head(&self, log: &LogId) -> Result<ChainHead, ChainLogError> {
        let r = self
            .contract(log.action_log)
            .chainOf(log.token_id)
            .call()
            .await
            .map_err(classify)?;
        Ok(ChainHead {
            next_seq: r.seq.saturating_add(1),
            head: r.head,
        })
    }

    async fn logged_hashes(
        &self,
        log: &LogId,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<B256>, ChainLogError> {
        let actions = self.logged_actions(log, from_seq, to_seq).await?;
        Ok(actions.into_iter().map(|a| a.hash).collect())
    }

    async fn logged_actions(
        &self,
        log: &LogId,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<LoggedAction>, ChainLogError> {
        if to_seq <= from_seq {
            return Ok(Vec::new());
        }
        let events = self
            .contract(log.action_log)
            .ActionsLogged_filter()
            .topic1(B256::from(log.token_id))
            .from_block(self.from_block)
            .query()
            .await
            .map_err(ChainLogError::transient)?;
        let mut out = Vec::with_capacity((to_seq - from_seq) as usize);
        for (ev, _) in events {
            for (i, h) in ev.actionHashes.iter().enumerate() {
                let seq = ev.firstSeq.saturating_add(i as u64);
                if seq >= from_seq && seq < to_seq {
                    out.push(LoggedAction {
                        seq,
                        hash: *h,
                        sender: ev.sender,
                    });
                }
            }
        }
        out.sort_by_key(|a| a.seq);
        let complete = out.len() as u64 == to_seq - from_seq
            && out
                .iter()
                .enumerate()
                .all(|(i, a)| a.seq == from_seq + i as u64);
        if !complete {
            // The node may lag behind the head it just reported; try again later.
            return Err(ChainLogError::transient(format!(
                "ActionsLogged events cover {} of seq {from_seq}..{to_seq}",
                out.len()
            )));
        }
        Ok(out)
    }

    async fn log_actions(
        &self,
        log: &LogId,
        first_seq: u64,
        hashes: &[B256],
    ) -> Result<B256, ChainLogError> {
        let pending = self
            .contract(log.action_log)
            .logActions(log.token_id, first_seq, hashes.to_vec())
            .send()
            .await
            .map_err(classify)?;
        Ok(*pending.tx_hash())
    }

    async fn confirm(&self, tx_hash: B256) -> Result<TxConfirmation, ChainLogError> {
        let deadline = tokio::time::Instant::now() + self.confirm_timeout;
        loop {
            let receipt = self
                .provider
                .get_transaction_receipt(tx_hash)
                .await
                .map_err(ChainLogError::transient)?;
            if let Some(r) = receipt {
                let Some(block_number) = r.block_number else {
                    return Err(ChainLogError::transient("receipt without a block number"));
                };
                if !r.status() {
                    return Ok(TxConfirmation {
                        block_number,
                        success: false,
                    });
                }
                return Ok(TxConfirmation {
                    block_number,
                    success: true,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ChainLogError::transient(format!(
                    "transaction {tx_hash} not mined in time"
                )));
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }
}
