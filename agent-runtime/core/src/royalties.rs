//! Royalties: an agent's earnings settled into the `EarningsSplitter`, split between its
//! creator, its data contributors and its holder by the shares fixed at mint, and claimed by
//! each party (pull payments); ERC-2981 royalty info for sales.
//!
//! [`split_of`] reads a token's shares from the chain (the contributor list from its
//! `ContributorsSet` event, checked against the hash the NFT stores). [`credits`] computes what
//! a deposit credits each party exactly as the contract does (each share
//! `amount * bps / 10000` rounded down, the remainder to the holder), so a settlement can be
//! checked to the wei. [`settle`] deposits earnings (ETH or an ERC-20), [`owed`] reads a
//! party's balance and [`claim`] withdraws it.

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, TransactionReceipt, TransactionRequest};
use alloy::sol_types::{SolCall, SolEvent};
use inft_contracts::bindings::{AgentAccount, AgentNFT, EarningsSplitter, IAgentAccount};
use inft_contracts::contributors_hash;
use serde::Serialize;

mod erc20 {
    #![allow(missing_docs)]
    alloy::sol! {
        #[sol(rpc)]
        interface IERC20Approve {
            function approve(address spender, uint256 amount) external returns (bool);
        }
    }
}

/// Basis points in a whole.
pub const BPS: u64 = 10_000;

/// Why a royalty operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoyaltyError {
    /// A contract call or transaction failed (revert, RPC or transport error).
    #[error("{what}: {detail}")]
    Chain {
        /// What was being done.
        what: &'static str,
        /// The error.
        detail: String,
    },
    /// A transaction was mined but reverted.
    #[error("{what}: transaction {tx_hash} reverted")]
    Reverted {
        /// What was being done.
        what: &'static str,
        /// The transaction.
        tx_hash: B256,
    },
    /// The token's `ContributorsSet` event was not found or does not match the stored hash.
    #[error("the contributor list of token {token_id} cannot be established: {detail}")]
    Contributors {
        /// The token.
        token_id: U256,
        /// What is wrong.
        detail: String,
    },
    /// Nothing to deposit or claim.
    #[error("amount is zero")]
    ZeroAmount,
}

fn chain_err(what: &'static str) -> impl FnOnce(alloy::contract::Error) -> RoyaltyError {
    move |e| RoyaltyError::Chain {
        what,
        detail: match inft_contracts::revert_of(&e) {
            Some(revert) => format!("reverted: {revert:?}"),
            None => e.to_string(),
        },
    }
}

/// A token's earnings split, as fixed at mint (the holder is the owner now).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EarningsSplit {
    /// The token.
    pub token_id: U256,
    /// The creator (the minter).
    pub creator: Address,
    /// The creator's share.
    pub creator_bps: u16,
    /// Data contributors and their shares.
    pub contributors: Vec<(Address, u16)>,
    /// The current holder, who gets the rest.
    pub holder: Address,
    /// ERC-2981 royalty on sales, paid to the creator, in basis points.
    pub royalty_bps: u16,
}

/// Who a credit goes to (the contract's role numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The creator (role 0).
    Creator,
    /// A data contributor (role 1).
    Contributor,
    /// The holder (role 2).
    Holder,
}

/// What a deposit credits one party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Credit {
    /// The party.
    pub account: Address,
    /// In which role.
    pub role: Role,
    /// The amount (wei or token base units).
    pub amount: U256,
}

/// What a deposit of `amount` credits each party, exactly as `EarningsSplitter` computes it:
/// each share rounded down, the holder gets the remainder, so the credits sum to `amount`.
/// Zero credits are left out (the contract skips them too).
pub fn credits(split: &EarningsSplit, amount: U256) -> Vec<Credit> {
    let bps = U256::from(BPS);
    let mut rest = amount;
    let mut out = Vec::with_capacity(split.contributors.len() + 2);
    let mut credit = |account, role, share: U256, rest: &mut U256| {
        *rest = rest.saturating_sub(share);
        if !share.is_zero() {
            out.push(Credit {
                account,
                role,
                amount: share,
            });
        }
    };
    // amount * bps / 10000 without overflow: Math.mulDiv in the contract is exact; U256's
    // widening is emulated by splitting off the quotient.
    let share_of = |b: u16| {
        let b = U256::from(b);
        (amount / bps) * b + (amount % bps) * b / bps
    };
    credit(
        split.creator,
        Role::Creator,
        share_of(split.creator_bps),
        &mut rest,
    );
    for &(account, b) in &split.contributors {
        credit(account, Role::Contributor, share_of(b), &mut rest);
    }
    let holder_share = rest;
    credit(split.holder, Role::Holder, holder_share, &mut rest);
    out
}

/// Reads a token's split: `splitOf` and `tokenInfo` from the NFT, the contributor list from its
/// `ContributorsSet` event (searched from `from_block`), checked against the stored hash.
pub async fn split_of<P: Provider>(
    provider: &P,
    agent_nft: Address,
    token_id: U256,
    from_block: u64,
) -> Result<EarningsSplit, RoyaltyError> {
    let nft = AgentNFT::new(agent_nft, provider);
    let split = nft
        .splitOf(token_id)
        .call()
        .await
        .map_err(chain_err("AgentNFT.splitOf"))?;
    let info = nft
        .tokenInfo(token_id)
        .call()
        .await
        .map_err(chain_err("AgentNFT.tokenInfo"))?;
    let contributors = if split.contributorsHash == B256::ZERO {
        Vec::new()
    } else {
        let filter = Filter::new()
            .address(agent_nft)
            .event_signature(AgentNFT::ContributorsSet::SIGNATURE_HASH)
            .topic1(B256::from(token_id))
            .from_block(from_block);
        let logs = provider
            .get_logs(&filter)
            .await
            .map_err(|e| RoyaltyError::Chain {
                what: "eth_getLogs ContributorsSet",
                detail: e.to_string(),
            })?;
        let bad = |detail: String| RoyaltyError::Contributors { token_id, detail };
        let log = logs
            .last()
            .ok_or_else(|| bad("no ContributorsSet event".into()))?;
        let event = AgentNFT::ContributorsSet::decode_log(&log.inner)
            .map_err(|e| bad(e.to_string()))?
            .data;
        if contributors_hash(&event.contributors, &event.contributorBps) != split.contributorsHash {
            return Err(bad("the event does not match the stored hash".into()));
        }
        event
            .contributors
            .into_iter()
            .zip(event.contributorBps)
            .collect()
    };
    Ok(EarningsSplit {
        token_id,
        creator: split.creator,
        creator_bps: split.creatorBps,
        contributors,
        holder: split.holder,
        royalty_bps: info.royaltyBps,
    })
}

/// Everything deposited so far for `token_id` in `currency` (zero address: ETH), from the
/// splitter's `Deposited` events since `from_block`.
pub async fn deposited<P: Provider>(
    provider: &P,
    splitter: Address,
    token_id: U256,
    currency: Address,
    from_block: u64,
) -> Result<U256, RoyaltyError> {
    let filter = Filter::new()
        .address(splitter)
        .event_signature(EarningsSplitter::Deposited::SIGNATURE_HASH)
        .topic1(B256::from(token_id))
        .topic2(currency.into_word())
        .from_block(from_block);
    let logs = provider
        .get_logs(&filter)
        .await
        .map_err(|e| RoyaltyError::Chain {
            what: "eth_getLogs Deposited",
            detail: e.to_string(),
        })?;
    let mut total = U256::ZERO;
    for log in &logs {
        if let Ok(e) = EarningsSplitter::Deposited::decode_log(&log.inner) {
            total = total.saturating_add(e.data.amount);
        }
    }
    Ok(total)
}

/// Realized earnings not settled yet: the latest `pnl_quote` of the audited history (in quote
/// base units; a loss counts as zero) minus what was already deposited for the token in the
/// quote token ([`earnings_due`]). Settling this amount after each epoch keeps the splitter
/// level with the agent's earnings; `None` if the history records no PnL.
///
/// A trading agent's `pnl_quote` is net of money moved in or out of its account (top-ups,
/// withdrawals, settlements paid from the account; see the strategies crate), so a settlement
/// lowers what is due once, by its deposit, and never a second time through the PnL.
pub fn unsettled_earnings(
    report: &crate::audit::AuditReport,
    already_deposited: U256,
) -> Option<U256> {
    let last = report.actions.iter().rev().find_map(|a| {
        let r = a.record.as_ref()?;
        match &r.details["pnl_quote"] {
            serde_json::Value::String(s) => Some(s.clone()),
            _ => None,
        }
    })?;
    earnings_due(&last, already_deposited)
}

/// What is due on a cumulative trading profit `pnl_quote` (a signed decimal, as records carry
/// it) when `already_deposited` was settled before: the profit above what was paid (a
/// high-water mark: a loss is made good before anything is due again). `None` if `pnl_quote`
/// is not a number.
pub fn earnings_due(pnl_quote: &str, already_deposited: U256) -> Option<U256> {
    // A negative PnL has nothing to share.
    let earned = if pnl_quote.starts_with('-') {
        U256::ZERO
    } else {
        U256::from_str_radix(pnl_quote.trim_start_matches('+'), 10).ok()?
    };
    Some(earned.saturating_sub(already_deposited))
}

/// ERC-2981: who receives how much royalty on a sale of `token_id` at `sale_price`, as the
/// NFT's `royaltyInfo` answers (marketplaces pay it).
pub async fn royalty_on_sale<P: Provider>(
    provider: &P,
    agent_nft: Address,
    token_id: U256,
    sale_price: U256,
) -> Result<(Address, U256), RoyaltyError> {
    let r = AgentNFT::new(agent_nft, provider)
        .royaltyInfo(token_id, sale_price)
        .call()
        .await
        .map_err(chain_err("AgentNFT.royaltyInfo"))?;
    Ok((r._0, r._1))
}

/// A settled deposit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Settlement {
    /// The deposit transaction.
    pub tx_hash: B256,
    /// The token paid (zero for ETH).
    pub currency: Address,
    /// The amount deposited.
    pub amount: U256,
    /// What each party was credited.
    pub credits: Vec<Credit>,
}

/// Who pays a deposit into the splitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payer {
    /// The provider's own wallet.
    Wallet,
    /// The token's agent account (`AgentAccount`, driven by its owner, whose wallet the
    /// provider holds): an agent's earnings leave the account that earned them.
    AgentAccount(Address),
}

/// Deposits `amount` of earnings for `split.token_id` into the splitter, paid by `payer`: ETH
/// when `currency` is zero, else that ERC-20 (approved first; from an agent account, approve
/// and deposit are one atomic batch).
pub async fn settle<P: Provider>(
    provider: &P,
    splitter: Address,
    split: &EarningsSplit,
    currency: Address,
    amount: U256,
    payer: Payer,
) -> Result<Settlement, RoyaltyError> {
    if amount.is_zero() {
        return Err(RoyaltyError::ZeroAmount);
    }
    let (accounts, bps): (Vec<Address>, Vec<u16>) = split.contributors.iter().copied().unzip();
    // The deposit, and for an ERC-20 the approval that must precede it.
    let (approve, deposit) = if currency == Address::ZERO {
        let deposit = EarningsSplitter::depositCall {
            tokenId: split.token_id,
            contributors: accounts,
            contributorBps: bps,
        };
        let deposit = Call::new("EarningsSplitter.deposit", splitter, amount, deposit);
        (None, deposit)
    } else {
        let approve = erc20::IERC20Approve::approveCall {
            spender: splitter,
            amount,
        };
        let deposit = EarningsSplitter::depositTokenCall {
            tokenId: split.token_id,
            token: currency,
            amount,
            contributors: accounts,
            contributorBps: bps,
        };
        (
            Some(Call::new("ERC20.approve", currency, U256::ZERO, approve)),
            Call::new(
                "EarningsSplitter.depositToken",
                splitter,
                U256::ZERO,
                deposit,
            ),
        )
    };
    let receipt = match payer {
        Payer::Wallet => {
            if let Some(approve) = approve {
                send_and_confirm(provider, approve.what, approve.request()).await?;
            }
            send_and_confirm(provider, deposit.what, deposit.request()).await?
        }
        Payer::AgentAccount(account) => {
            let calls = approve
                .into_iter()
                .chain([deposit])
                .map(|c| IAgentAccount::Call {
                    target: c.target,
                    value: c.value,
                    data: c.data,
                })
                .collect();
            let batch = AgentAccount::executeBatchCall { calls };
            let request = TransactionRequest::default()
                .with_to(account)
                .with_input(Bytes::from(batch.abi_encode()));
            send_and_confirm(provider, "AgentAccount.executeBatch (deposit)", request).await?
        }
    };
    // What the contract credited, from its events (fee-on-transfer tokens credit less).
    let mut credited = Vec::new();
    for log in receipt.inner.logs() {
        if log.address() != splitter {
            continue;
        }
        if let Ok(e) = EarningsSplitter::Credited::decode_log(&log.inner) {
            let role = match e.data.role {
                0 => Role::Creator,
                1 => Role::Contributor,
                _ => Role::Holder,
            };
            credited.push(Credit {
                account: e.data.account,
                role,
                amount: e.data.amount,
            });
        }
    }
    Ok(Settlement {
        tx_hash: receipt.transaction_hash,
        currency,
        amount,
        credits: credited,
    })
}

/// One contract call of a settlement, sent on its own or inside an agent account's batch.
struct Call {
    what: &'static str,
    target: Address,
    value: U256,
    data: Bytes,
}

impl Call {
    fn new(what: &'static str, target: Address, value: U256, call: impl SolCall) -> Self {
        Self {
            what,
            target,
            value,
            data: call.abi_encode().into(),
        }
    }

    /// The call as a transaction from the provider's wallet.
    fn request(self) -> TransactionRequest {
        TransactionRequest::default()
            .with_to(self.target)
            .with_value(self.value)
            .with_input(self.data)
    }
}

/// Sends `request` and waits for its receipt, which must show success.
async fn send_and_confirm<P: Provider>(
    provider: &P,
    what: &'static str,
    request: TransactionRequest,
) -> Result<TransactionReceipt, RoyaltyError> {
    let receipt = provider
        .send_transaction(request)
        .await
        .map_err(|e| RoyaltyError::Chain {
            what,
            // A revert shows up when the node estimates gas: decode it into our typed errors.
            detail: match e
                .as_error_resp()
                .and_then(|resp| resp.as_revert_data())
                .and_then(|data| inft_contracts::decode_revert(&data))
            {
                Some(revert) => format!("reverted: {revert:?}"),
                None => e.to_string(),
            },
        })?
        .get_receipt()
        .await
        .map_err(|e| RoyaltyError::Chain {
            what,
            detail: e.to_string(),
        })?;
    if !receipt.status() {
        return Err(RoyaltyError::Reverted {
            what,
            tx_hash: receipt.transaction_hash,
        });
    }
    Ok(receipt)
}

/// What `account` can claim from the splitter in `currency` (zero address: ETH).
pub async fn owed<P: Provider>(
    provider: &P,
    splitter: Address,
    account: Address,
    currency: Address,
) -> Result<U256, RoyaltyError> {
    EarningsSplitter::new(splitter, provider)
        .balanceOf(account, currency)
        .call()
        .await
        .map_err(chain_err("EarningsSplitter.balanceOf"))
}

/// Withdraws everything the provider's wallet is owed in `currency` to `to`; returns the
/// transaction and the amount.
pub async fn claim<P: Provider>(
    provider: &P,
    splitter: Address,
    account: Address,
    currency: Address,
    to: Address,
) -> Result<(B256, U256), RoyaltyError> {
    let amount = owed(provider, splitter, account, currency).await?;
    if amount.is_zero() {
        return Err(RoyaltyError::ZeroAmount);
    }
    let receipt = EarningsSplitter::new(splitter, provider)
        .withdraw(currency, to)
        .send()
        .await
        .map_err(chain_err("EarningsSplitter.withdraw"))?
        .get_receipt()
        .await
        .map_err(|e| RoyaltyError::Chain {
            what: "withdraw receipt",
            detail: e.to_string(),
        })?;
    if !receipt.status() {
        return Err(RoyaltyError::Reverted {
            what: "EarningsSplitter.withdraw",
            tx_hash: receipt.transaction_hash,
        });
    }
    Ok((receipt.transaction_hash, amount))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(creator_bps: u16, contributors: Vec<(Address, u16)>) -> EarningsSplit {
        EarningsSplit {
            token_id: U256::from(1u64),
            creator: Address::repeat_byte(1),
            creator_bps,
            contributors,
            holder: Address::repeat_byte(9),
            royalty_bps: 0,
        }
    }

    #[test]
    fn credits_round_down_and_sum_exactly() {
        let s = split(
            1000,
            vec![(Address::repeat_byte(2), 333), (Address::repeat_byte(3), 1)],
        );
        for amount in [1u64, 7, 9_999, 10_000, 10_001, 1_000_000_000_000_000_007] {
            let c = credits(&s, U256::from(amount));
            let sum: U256 = c.iter().map(|c| c.amount).sum();
            assert_eq!(sum, U256::from(amount), "{amount}");
        }
        let c = credits(&s, U256::from(10_001u64));
        assert_eq!(c[0].amount, U256::from(1_000u64));
        assert_eq!(c[1].amount, U256::from(333u64));
        assert_eq!(c[2].amount, U256::from(1u64));
        assert_eq!(c[3].role, Role::Holder);
        assert_eq!(c[3].amount, U256::from(10_001u64 - 1_334));
        // Tiny amounts: shares round to zero and are left out; the holder takes all.
        let c = credits(&s, U256::from(3u64));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].role, Role::Holder);
        // No overflow near the top of the range.
        let c = credits(&s, U256::MAX);
        assert_eq!(c.iter().map(|c| c.amount).sum::<U256>(), U256::MAX);
    }

    fn report_with_pnl(pnls: &[&str]) -> crate::audit::AuditReport {
        use crate::record::{ActionDraft, ActionKind, ActionRecord, LogId};
        let log = LogId {
            chain_id: 1,
            action_log: Address::ZERO,
            token_id: U256::from(1u64),
        };
        let actions = pnls
            .iter()
            .enumerate()
            .map(|(i, pnl)| {
                let draft = ActionDraft {
                    kind: ActionKind::Trade,
                    model_hash: B256::ZERO,
                    prompt: String::new(),
                    keep_prompt: true,
                    output: String::new(),
                    sampler: serde_json::Value::Null,
                    seed: 0,
                    llama_build: String::new(),
                    tx_hash: None,
                    details: serde_json::json!({ "pnl_quote": pnl }),
                };
                crate::audit::AuditedAction {
                    seq: i as u64 + 1,
                    record_hash: B256::ZERO,
                    block_number: 0,
                    log_tx: B256::ZERO,
                    sender: Address::ZERO,
                    agent: Address::ZERO,
                    signer: None,
                    record: Some(ActionRecord::new(&log, i as u64 + 1, B256::ZERO, draft, 0)),
                    ok: true,
                }
            })
            .collect();
        crate::audit::AuditReport {
            chain_id: 1,
            agent_nft: Address::ZERO,
            action_log: Address::ZERO,
            token_id: U256::from(1u64),
            chain_seq: pnls.len() as u64,
            chain_head: B256::ZERO,
            history: vec![],
            actions,
            findings: vec![],
        }
    }

    #[test]
    fn unsettled_earnings_are_the_latest_pnl_less_deposits() {
        let r = report_with_pnl(&["-5", "700", "1000"]);
        assert_eq!(
            unsettled_earnings(&r, U256::ZERO),
            Some(U256::from(1000u64))
        );
        assert_eq!(
            unsettled_earnings(&r, U256::from(400u64)),
            Some(U256::from(600u64))
        );
        assert_eq!(
            unsettled_earnings(&r, U256::from(5000u64)),
            Some(U256::ZERO)
        );
        let loss = report_with_pnl(&["10", "-3"]);
        assert_eq!(unsettled_earnings(&loss, U256::ZERO), Some(U256::ZERO));
        assert_eq!(unsettled_earnings(&report_with_pnl(&[]), U256::ZERO), None);
    }

    #[test]
    fn all_to_shares_leaves_the_holder_nothing() {
        let s = split(5_000, vec![(Address::repeat_byte(2), 5_000)]);
        let c = credits(&s, U256::from(10u64));
        assert_eq!(c.len(), 2);
        assert!(c.iter().all(|c| c.role != Role::Holder));
    }
}
