//! Audit an agent's actions from public data only: the chain, the indexed events
//! ([`crate::indexer`]) and the public records in a blob store ([`BlobStore::fetch_record`]).
//!
//! [`audit_token`] rebuilds a token's history from its indexed `ActionsLogged`, `AgentSet`,
//! `Transfer` and authorization events, then checks, for every logged action from seq 1 to the
//! on-chain head (`ActionLog.chainOf`):
//!
//! - the indexed hashes fold into the contract's head (`head_n = keccak(head_{n-1} ‖ hash_n)`)
//!   and cover every sequence number the chain reports;
//! - the record behind each hash can be fetched and has exactly that hash
//!   ([`Finding::MissingRecord`], [`Finding::ModifiedRecord`]);
//! - the record sits at its own sequence number and links to the previous logged hash
//!   ([`Finding::Reordered`], [`Finding::Misplaced`], [`Finding::BrokenLink`]);
//! - the batch was sent by an address allowed to log at its block: the agent registered then
//!   (the agent changes with each transfer, taken from `AgentSet` events), the owner, or a user
//!   whose LOG grant belonged to the token's epoch and had neither expired (`expiry` against
//!   the block's timestamp, read from the chain for grantee-logged batches only) nor been
//!   revoked (`UsageAuthorized` / `UsageRevoked` events) ([`Finding::UnauthorizedLogger`]);
//! - its signature recovers someone allowed to log at that block: when the logger was allowed,
//!   the chain vouches for the record and a bad signature is the store's copy
//!   ([`Finding::SignatureUnverified`]: the record hash does not cover the signature, so a
//!   store could swap it; the agent is not blamed), otherwise [`Finding::WrongSigner`];
//!   [`restore_records`] puts the runtime's own signed copies back;
//! - a record with a transaction hash has a receipt, whose status matches the record kind and
//!   whose token transfers match the recorded fill ([`Finding::ReceiptMissing`],
//!   [`Finding::ReceiptMismatch`]);
//! - a memory update ([`crate::memory`]) names a memory data hash that a `DataSet` event of the
//!   token set, in the recorded `updateData` transaction ([`Finding::MemoryNotSet`]). The memory
//!   itself is private: the audit sees its hashes, never its notes
//!   ([`AuditReport::memory_updates`]).
//!
//! Every finding names the sequence number of the action concerned. [`replay`] re-runs logged
//! inferences with the recorded prompt, sampler settings and seed (for the owner or an
//! authorized user, who can unseal the model) and compares output hashes.

pub mod html;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::Provider;
use alloy::sol_types::SolValue;
use inft_contracts::bindings::ActionLog;
use serde::Serialize;

use crate::blobstore::{BlobError, BlobStore};
use crate::db::{Db, DbError};
use crate::indexer::TokenEvent;
use crate::memory::{LoggedMemoryUpdate, MEMORY_UPDATE_KIND};
use crate::record::{ActionRecord, FIRST_SEQ, LogId, content_hash};
use inft_types::inference::{Inference, SamplerSettings};

/// Why an audit could not be carried out at all (as opposed to [`Finding`]s about the history).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Reading the chain failed.
    #[error("audit: chain request {what} failed: {detail}")]
    Chain {
        /// What was asked.
        what: &'static str,
        /// The error.
        detail: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Which token to audit, and where its contracts are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditTarget {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The AgentNFT contract.
    pub agent_nft: Address,
    /// The ActionLog contract.
    pub action_log: Address,
    /// The token.
    pub token_id: U256,
}

impl AuditTarget {
    /// The token's action log.
    pub fn log_id(&self) -> LogId {
        LogId {
            chain_id: self.chain_id,
            action_log: self.action_log,
            token_id: self.token_id,
        }
    }
}

/// Something wrong with a token's history, naming the action (seq) concerned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Finding {
    /// The record logged at `seq` is not in the record store.
    MissingRecord {
        /// The action.
        seq: u64,
        /// Its hash on chain.
        record_hash: B256,
    },
    /// The record store holds something else under the hash logged at `seq` (altered bytes).
    ModifiedRecord {
        /// The action.
        seq: u64,
        /// Its hash on chain.
        record_hash: B256,
        /// What is wrong.
        detail: String,
    },
    /// The records of `seq` and `other_seq` were logged in each other's place.
    Reordered {
        /// The first position of the pair.
        seq: u64,
        /// The second.
        other_seq: u64,
    },
    /// The record logged at `seq` says it is action `record_seq`.
    Misplaced {
        /// The position on chain.
        seq: u64,
        /// The seq in the record.
        record_seq: u64,
    },
    /// The record at `seq` does not link to the hash logged before it.
    BrokenLink {
        /// The action.
        seq: u64,
        /// The hash logged at `seq - 1` (zero for the first action).
        expected_prev: B256,
        /// The record's `prev_record_hash`.
        record_prev: B256,
    },
    /// The record at `seq` belongs to another chain, contract or token.
    WrongLog {
        /// The action.
        seq: u64,
    },
    /// The record at `seq` is not signed by the agent registered when it was logged (nor by a
    /// user authorized to log then), and whoever logged it was not allowed to either
    /// ([`UnauthorizedLogger`](Self::UnauthorizedLogger)): nobody allowed vouches for it.
    WrongSigner {
        /// The action.
        seq: u64,
        /// The agent registered at the time.
        expected: Address,
        /// Who signed (zero if the signature recovers nobody).
        actual: Address,
    },
    /// The record at `seq` has the hash its logger put on chain, but the signature the record
    /// store returned is not the agent's (nor an authorized logger's). The logger was allowed
    /// to log, so the chain vouches for the record; the signature, which the record hash does
    /// not cover, was replaced or damaged at the store (or signed with a wrong key). Not
    /// [`WrongSigner`](Self::WrongSigner): a store's copy must not make an honest agent look
    /// like it acted for someone else. The runtime that ran the action can put its signed copy
    /// back ([`restore_records`]).
    SignatureUnverified {
        /// The action.
        seq: u64,
        /// The agent registered at the time.
        expected: Address,
        /// Whom the stored signature recovers (zero if nobody).
        actual: Address,
        /// Who logged the hash (allowed at that block).
        logged_by: Address,
    },
    /// The batch holding action `seq` was logged by an address that was not allowed to log at
    /// that block: not the agent of that epoch, not the owner, not a user with a LOG grant of
    /// that epoch that had neither expired nor been revoked. The contract refuses such a call,
    /// so this means the contract (or the node's history) is not what it should be.
    UnauthorizedLogger {
        /// The action.
        seq: u64,
        /// Who sent `logActions`.
        sender: Address,
        /// Why it was not allowed.
        reason: String,
    },
    /// The transaction recorded at `seq` has no receipt on this chain.
    ReceiptMissing {
        /// The action.
        seq: u64,
        /// The recorded transaction.
        tx_hash: B256,
    },
    /// The receipt of the transaction recorded at `seq` does not match the record.
    ReceiptMismatch {
        /// The action.
        seq: u64,
        /// The recorded transaction.
        tx_hash: B256,
        /// What differs.
        detail: String,
    },
    /// The indexed events do not fold into the contract's head, or miss actions: the index is
    /// incomplete or the node lies. `seq` is the chain's action count.
    HeadMismatch {
        /// The number of actions the contract reports.
        seq: u64,
        /// Actions found in the index.
        indexed: u64,
        /// The contract's head.
        chain_head: B256,
        /// The head folded from the indexed hashes.
        indexed_head: B256,
    },
    /// The memory update recorded at `seq` names a memory data hash that no indexed `DataSet`
    /// event of the token set (in the recorded transaction), or its details are unreadable.
    MemoryNotSet {
        /// The action.
        seq: u64,
        /// The recorded new memory hash (zero if unreadable).
        new_data_hash: B256,
    },
    /// The record at `seq` could not be checked (store unreachable, RPC error).
    Unchecked {
        /// The action.
        seq: u64,
        /// Why.
        detail: String,
    },
}

impl Finding {
    /// The action concerned.
    pub fn seq(&self) -> u64 {
        match self {
            Self::MissingRecord { seq, .. }
            | Self::ModifiedRecord { seq, .. }
            | Self::Reordered { seq, .. }
            | Self::Misplaced { seq, .. }
            | Self::BrokenLink { seq, .. }
            | Self::WrongLog { seq }
            | Self::WrongSigner { seq, .. }
            | Self::SignatureUnverified { seq, .. }
            | Self::UnauthorizedLogger { seq, .. }
            | Self::ReceiptMissing { seq, .. }
            | Self::ReceiptMismatch { seq, .. }
            | Self::HeadMismatch { seq, .. }
            | Self::MemoryNotSet { seq, .. }
            | Self::Unchecked { seq, .. } => *seq,
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingRecord { seq, record_hash } => {
                write!(
                    f,
                    "action {seq}: record {record_hash} is missing from the record store"
                )
            }
            Self::ModifiedRecord {
                seq,
                record_hash,
                detail,
            } => write!(
                f,
                "action {seq}: record {record_hash} was modified ({detail})"
            ),
            Self::Reordered { seq, other_seq } => {
                write!(
                    f,
                    "actions {seq} and {other_seq} were logged in each other's place"
                )
            }
            Self::Misplaced { seq, record_seq } => {
                write!(
                    f,
                    "action {seq}: the record logged here is action {record_seq}"
                )
            }
            Self::BrokenLink {
                seq,
                expected_prev,
                record_prev,
            } => write!(
                f,
                "action {seq}: links to {record_prev}, but {expected_prev} was logged before it"
            ),
            Self::WrongLog { seq } => {
                write!(
                    f,
                    "action {seq}: the record belongs to another chain, contract or token"
                )
            }
            Self::WrongSigner {
                seq,
                expected,
                actual,
            } => write!(
                f,
                "action {seq}: signed by {actual}, not by the agent {expected}"
            ),
            Self::SignatureUnverified {
                seq,
                expected,
                actual,
                logged_by,
            } => write!(
                f,
                "action {seq}: the record matches the hash {logged_by} logged, but the signature \
                 the record store returned recovers {actual}, not the agent {expected}: replaced \
                 or damaged at the store (or signed with a wrong key)"
            ),
            Self::UnauthorizedLogger {
                seq,
                sender,
                reason,
            } => write!(
                f,
                "action {seq}: logged by {sender}, who was not allowed to log then: {reason}"
            ),
            Self::ReceiptMissing { seq, tx_hash } => {
                write!(f, "action {seq}: transaction {tx_hash} has no receipt")
            }
            Self::ReceiptMismatch {
                seq,
                tx_hash,
                detail,
            } => write!(f, "action {seq}: transaction {tx_hash}: {detail}"),
            Self::HeadMismatch {
                seq,
                indexed,
                chain_head,
                indexed_head,
            } => write!(
                f,
                "the chain reports {seq} actions with head {chain_head}; the index holds {indexed} folding to {indexed_head}"
            ),
            Self::MemoryNotSet { seq, new_data_hash } => write!(
                f,
                "action {seq}: memory update to {new_data_hash}, but no DataSet event of the token set it"
            ),
            Self::Unchecked { seq, detail } => write!(f, "action {seq}: not checked: {detail}"),
        }
    }
}

/// One logged action as the audit saw it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditedAction {
    /// Position on chain.
    pub seq: u64,
    /// The hash logged there.
    pub record_hash: B256,
    /// Block of the `logActions` transaction.
    pub block_number: u64,
    /// The `logActions` transaction.
    pub log_tx: B256,
    /// Who sent it.
    pub sender: Address,
    /// The agent registered when it was logged.
    pub agent: Address,
    /// Who signed the record (if it was fetched and recovers).
    pub signer: Option<Address>,
    /// The record, if it was fetched and has the logged hash.
    pub record: Option<ActionRecord>,
    /// Whether no finding concerns this action.
    pub ok: bool,
}

/// A change of the token's owner or agent, for the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OwnershipChange {
    /// Block.
    pub block_number: u64,
    /// The transaction.
    pub tx_hash: B256,
    /// `Transfer` (owner) or `AgentSet` (agent key).
    pub event: &'static str,
    /// The new owner or agent.
    pub to: Address,
    /// The token's epoch, for `AgentSet`.
    pub epoch: Option<u64>,
}

/// The result of [`audit_token`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditReport {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// AgentNFT.
    pub agent_nft: Address,
    /// ActionLog.
    pub action_log: Address,
    /// The token.
    pub token_id: U256,
    /// `chainOf(token).seq`: actions on chain.
    pub chain_seq: u64,
    /// `chainOf(token).head`.
    pub chain_head: B256,
    /// Owner and agent changes, in chain order.
    pub history: Vec<OwnershipChange>,
    /// Every logged action, in sequence order.
    pub actions: Vec<AuditedAction>,
    /// What is wrong, in sequence order (empty: the history audits clean).
    pub findings: Vec<Finding>,
}

/// A point of the agent's PnL over time, from a record's `details.pnl_quote`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PnlPoint {
    /// The action.
    pub seq: u64,
    /// When it was recorded (ms since the Unix epoch).
    pub timestamp_ms: u64,
    /// PnL in quote-token units (18 decimals assumed).
    pub pnl: f64,
}

impl AuditReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// The findings about action `seq`.
    pub fn findings_for(&self, seq: u64) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.seq() == seq)
    }

    /// The memory updates the agent logged, in sequence order (old → new memory data hash).
    pub fn memory_updates(&self) -> Vec<(u64, LoggedMemoryUpdate)> {
        self.actions
            .iter()
            .filter_map(|a| Some((a.seq, LoggedMemoryUpdate::from_record(a.record.as_ref()?)?)))
            .collect()
    }

    /// The agent's PnL over time, from the records that carry `details.pnl_quote` (a signed
    /// decimal in quote base units, as the trading strategies record it).
    pub fn pnl_series(&self) -> Vec<PnlPoint> {
        self.actions
            .iter()
            .filter_map(|a| {
                let r = a.record.as_ref()?;
                let pnl = match &r.details["pnl_quote"] {
                    serde_json::Value::String(s) => s.parse::<f64>().ok()?,
                    serde_json::Value::Number(n) => n.as_f64()?,
                    _ => return None,
                };
                // "NaN", "inf" and overflowing numbers parse as floats: not a point to chart.
                if !pnl.is_finite() {
                    return None;
                }
                Some(PnlPoint {
                    seq: a.seq,
                    timestamp_ms: r.timestamp_ms,
                    pnl: pnl / 1e18,
                })
            })
            .collect()
    }
}

/// One hash at its position, with what was true on chain when it was logged.
struct Logged {
    seq: u64,
    hash: B256,
    block_number: u64,
    tx_hash: B256,
    sender: Address,
    agent: Address,
    /// Who could log (and sign) when the batch was logged.
    authority: Arc<Authority>,
}

const SCOPE_LOG: u8 = inft_contracts::scopes::LOG;

/// A usage grant as its last `UsageAuthorized` event set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Grant {
    epoch: u64,
    scopes: u8,
    expiry: u64,
}

/// Who may log a token's actions at one point of its history, as the contract decides it:
/// its agent, its owner, and users whose grant of the current epoch has the LOG scope and has
/// not expired at the block (`expiry > block.timestamp`) nor been revoked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Authority {
    agent: Address,
    owner: Address,
    epoch: u64,
    grants: HashMap<Address, Grant>,
    /// Users whose grant was revoked (and not granted again since).
    revoked: HashSet<Address>,
}

impl Authority {
    /// Whether `who` could log at a block with this timestamp (`None`: not known, which
    /// only matters for grantees), and if not, why.
    fn check(&self, who: Address, block_time: Option<u64>) -> Result<(), String> {
        if who == Address::ZERO {
            return Err("the zero address".into());
        }
        if who == self.agent || who == self.owner {
            return Ok(());
        }
        let Some(g) = self.grants.get(&who) else {
            return Err(if self.revoked.contains(&who) {
                "its grant had been revoked".into()
            } else {
                "it is not the agent, the owner or a user granted LOG".into()
            });
        };
        if g.epoch != self.epoch {
            return Err(format!(
                "its grant belongs to epoch {} and the token was in epoch {} (grants end with a transfer)",
                g.epoch, self.epoch
            ));
        }
        if g.scopes & SCOPE_LOG == 0 {
            return Err(format!(
                "its grant (scopes {:#04x}) does not include LOG",
                g.scopes
            ));
        }
        match block_time {
            Some(t) if g.expiry <= t => Err(format!(
                "its grant expired at {} and the block's time was {t}",
                g.expiry
            )),
            _ => Ok(()),
        }
    }

    /// Whether `who` holds a grant whose expiry depends on the block time.
    fn needs_time(&self, who: Address) -> bool {
        who != self.agent && who != self.owner && self.grants.contains_key(&who)
    }
}

/// Audits `target`'s action history. Reads the indexed events from `db` (run
/// [`Indexer::sync`](crate::indexer::Indexer::sync) first), the head (as of the last indexed
/// block) and receipts from `provider`, and the records from `records`. Needs no wallet.
pub async fn audit_token<P: Provider>(
    provider: &P,
    db: &Db,
    records: &dyn BlobStore,
    target: &AuditTarget,
) -> Result<AuditReport, AuditError> {
    let mut events = db
        .chain_events_for_token(target.chain_id, target.agent_nft, target.token_id)
        .await?;
    events.extend(
        db.chain_events_for_token(target.chain_id, target.action_log, target.token_id)
            .await?,
    );
    events.sort_by_key(|e| (e.block_number, e.log_index));

    // Walk the history: who the agent and the owner are, who may log, and every logged hash.
    let mut authority = Authority::default();
    let mut history = Vec::new();
    let mut logged: BTreeMap<u64, Logged> = BTreeMap::new();
    // (transaction, memory data hash) of every DataSet that set a memory entry.
    let mut memory_sets: HashSet<(B256, B256)> = HashSet::new();
    // One snapshot per change of authority, shared by the batches logged under it.
    let mut current: Option<Arc<Authority>> = None;
    for e in &events {
        let Some(event) = TokenEvent::from_indexed(&e.kind, &e.payload) else {
            continue;
        };
        if !matches!(event, TokenEvent::ActionsLogged(_)) {
            current = None;
        }
        match event {
            TokenEvent::AgentSet(a) => {
                authority.agent = a.agent;
                authority.epoch = authority.epoch.max(a.epoch);
                history.push(OwnershipChange {
                    block_number: e.block_number,
                    tx_hash: e.tx_hash,
                    event: "AgentSet",
                    to: a.agent,
                    epoch: Some(a.epoch),
                });
            }
            TokenEvent::Transfer(t) => {
                authority.owner = t.to;
                history.push(OwnershipChange {
                    block_number: e.block_number,
                    tx_hash: e.tx_hash,
                    event: "Transfer",
                    to: t.to,
                    epoch: None,
                });
            }
            TokenEvent::TransferredWithProof(t) => {
                authority.epoch = authority.epoch.max(t.epoch);
            }
            TokenEvent::UsageAuthorized(g) => {
                authority.revoked.remove(&g.user);
                authority.grants.insert(
                    g.user,
                    Grant {
                        epoch: g.epoch,
                        scopes: g.scopes,
                        expiry: g.expiry,
                    },
                );
            }
            TokenEvent::UsageRevoked(r) => {
                // A revoke of a user holding no grant changes nothing.
                let held = authority.grants.remove(&r.user).is_some();
                if held {
                    authority.revoked.insert(r.user);
                }
            }
            TokenEvent::DataSet(d) => {
                if let Some(memory) = d
                    .data_hashes
                    .get(inft_types::config::EntryKind::Memory.index())
                {
                    memory_sets.insert((e.tx_hash, *memory));
                }
            }
            TokenEvent::ActionsLogged(l) => {
                let snapshot = current
                    .get_or_insert_with(|| Arc::new(authority.clone()))
                    .clone();
                for (i, h) in l.action_hashes.iter().enumerate() {
                    let seq = l.first_seq.saturating_add(i as u64);
                    logged.insert(
                        seq,
                        Logged {
                            seq,
                            hash: *h,
                            block_number: e.block_number,
                            tx_hash: e.tx_hash,
                            sender: l.sender,
                            agent: authority.agent,
                            authority: snapshot.clone(),
                        },
                    );
                }
            }
            _ => {}
        }
    }

    // The head as of the last block the index covers, so actions logged since the last sync
    // (a live agent) are not mistaken for a gap in the index.
    let indexed_to = db
        .chain_cursor(target.chain_id, target.action_log)
        .await?
        .and_then(|c| c.next_block.checked_sub(1));
    let contract = ActionLog::new(target.action_log, provider);
    let call = contract.chainOf(target.token_id);
    let call = match indexed_to {
        Some(block) => call.block(alloy::eips::BlockId::number(block)),
        None => call,
    };
    let chain = call.call().await.map_err(|e| AuditError::Chain {
        what: "ActionLog.chainOf",
        detail: e.to_string(),
    })?;
    let mut findings = Vec::new();

    // The index must hold every seq from 1 to the head and fold into the contract's head.
    let on_chain: Vec<&Logged> = logged.values().take_while(|l| l.seq <= chain.seq).collect();
    let contiguous = on_chain
        .iter()
        .enumerate()
        .all(|(i, l)| l.seq == FIRST_SEQ + i as u64);
    let indexed_head = on_chain
        .iter()
        .fold(B256::ZERO, |head, l| keccak256((head, l.hash).abi_encode()));
    if !contiguous || on_chain.len() as u64 != chain.seq || indexed_head != chain.head {
        findings.push(Finding::HeadMismatch {
            seq: chain.seq,
            indexed: on_chain.len() as u64,
            chain_head: chain.head,
            indexed_head,
        });
    }

    // Who logged each batch: allowed at its block? Grant expiry is compared with the block's
    // time, read once per block and only for batches a grantee logged.
    let mut block_times: HashMap<u64, Option<u64>> = HashMap::new();
    let mut time_of = async |block: u64| -> Option<u64> {
        if let Some(t) = block_times.get(&block) {
            return *t;
        }
        let t = provider
            .get_block_by_number(block.into())
            .await
            .ok()
            .flatten()
            .map(|b| b.header.timestamp);
        block_times.insert(block, t);
        t
    };
    // Whether the logger of each seq was allowed, and the block time where it mattered.
    let mut logger_ok: HashMap<u64, bool> = HashMap::new();
    let mut time_at: HashMap<u64, Option<u64>> = HashMap::new();
    for l in &on_chain {
        let auth = &l.authority;
        let time = if auth.needs_time(l.sender) {
            time_of(l.block_number).await
        } else {
            None
        };
        time_at.insert(l.seq, time);
        let verdict = auth.check(l.sender, time);
        if auth.needs_time(l.sender) && time.is_none() && verdict.is_ok() {
            findings.push(Finding::Unchecked {
                seq: l.seq,
                detail: format!(
                    "logged by grantee {} in block {}, whose time could not be read to check the grant's expiry",
                    l.sender, l.block_number
                ),
            });
        }
        if let Err(reason) = &verdict {
            findings.push(Finding::UnauthorizedLogger {
                seq: l.seq,
                sender: l.sender,
                reason: reason.clone(),
            });
        }
        logger_ok.insert(l.seq, verdict.is_ok());
    }

    // Fetch every record.
    let log_id = target.log_id();
    let mut actions = Vec::with_capacity(on_chain.len());
    let mut fetched: HashMap<u64, ActionRecord> = HashMap::new();
    for l in &on_chain {
        let mut action = AuditedAction {
            seq: l.seq,
            record_hash: l.hash,
            block_number: l.block_number,
            log_tx: l.tx_hash,
            sender: l.sender,
            agent: l.agent,
            signer: None,
            record: None,
            ok: true,
        };
        match records.fetch_record(l.hash).await {
            Ok(signed) => {
                let signer = signed.signer().unwrap_or(Address::ZERO);
                action.signer = Some(signer);
                let time = match time_at.get(&l.seq).copied().flatten() {
                    None if l.authority.needs_time(signer) => time_of(l.block_number).await,
                    t => t,
                };
                if l.authority.check(signer, time).is_err() {
                    // The hash is on chain: if its logger was allowed, the chain vouches for
                    // the record and only the store's copy of the signature is in question.
                    findings.push(if logger_ok.get(&l.seq).copied().unwrap_or(false) {
                        Finding::SignatureUnverified {
                            seq: l.seq,
                            expected: l.agent,
                            actual: signer,
                            logged_by: l.sender,
                        }
                    } else {
                        Finding::WrongSigner {
                            seq: l.seq,
                            expected: l.agent,
                            actual: signer,
                        }
                    });
                }
                let record = signed.into_record();
                fetched.insert(l.seq, record.clone());
                action.record = Some(record);
            }
            Err(BlobError::NotFound { .. }) => findings.push(Finding::MissingRecord {
                seq: l.seq,
                record_hash: l.hash,
            }),
            Err(BlobError::RecordMismatch { detail, .. }) => {
                findings.push(Finding::ModifiedRecord {
                    seq: l.seq,
                    record_hash: l.hash,
                    detail,
                })
            }
            Err(e) => findings.push(Finding::Unchecked {
                seq: l.seq,
                detail: e.to_string(),
            }),
        }
        actions.push(action);
    }

    // Positions and links.
    let hash_at: HashMap<u64, B256> = on_chain.iter().map(|l| (l.seq, l.hash)).collect();
    let hash_of_seq: HashMap<u64, B256> = on_chain
        .iter()
        .filter_map(|l| fetched.get(&l.seq).map(|r| (r.seq, l.hash)))
        .collect();
    let mut paired: HashSet<u64> = HashSet::new();
    for l in &on_chain {
        let Some(r) = fetched.get(&l.seq) else {
            continue;
        };
        if r.log_id() != log_id {
            findings.push(Finding::WrongLog { seq: l.seq });
            continue;
        }
        if r.seq != l.seq {
            if paired.contains(&l.seq) {
                continue;
            }
            let swapped = fetched.get(&r.seq).is_some_and(|other| other.seq == l.seq);
            if swapped {
                paired.insert(l.seq);
                paired.insert(r.seq);
                findings.push(Finding::Reordered {
                    seq: l.seq.min(r.seq),
                    other_seq: l.seq.max(r.seq),
                });
            } else {
                findings.push(Finding::Misplaced {
                    seq: l.seq,
                    record_seq: r.seq,
                });
            }
            continue;
        }
        // The previous record is the one carrying seq - 1, wherever it was logged (after a
        // reported swap, the record behind the pair links to the pair's second record).
        let expected_prev = if l.seq == FIRST_SEQ {
            B256::ZERO
        } else {
            hash_of_seq
                .get(&(l.seq - 1))
                .or_else(|| hash_at.get(&(l.seq - 1)))
                .copied()
                .unwrap_or_default()
        };
        if r.prev_record_hash != expected_prev {
            findings.push(Finding::BrokenLink {
                seq: l.seq,
                expected_prev,
                record_prev: r.prev_record_hash,
            });
        }
    }

    // Memory updates: the new memory hash went on chain in the recorded transaction.
    for l in &on_chain {
        let Some(r) = fetched.get(&l.seq) else {
            continue;
        };
        if r.kind.as_str() != MEMORY_UPDATE_KIND {
            continue;
        }
        let set = LoggedMemoryUpdate::from_record(r)
            .filter(|u| memory_sets.contains(&(u.tx.unwrap_or_default(), u.new_data_hash)));
        if set.is_none() {
            findings.push(Finding::MemoryNotSet {
                seq: l.seq,
                new_data_hash: LoggedMemoryUpdate::from_record(r)
                    .map(|u| u.new_data_hash)
                    .unwrap_or_default(),
            });
        }
    }

    // Receipts of recorded transactions.
    for l in &on_chain {
        let Some(r) = fetched.get(&l.seq) else {
            continue;
        };
        let Some(tx_hash) = r.tx_hash else {
            continue;
        };
        match provider.get_transaction_receipt(tx_hash).await {
            Ok(Some(receipt)) => {
                if let Some(detail) = receipt_mismatch(r, &receipt) {
                    findings.push(Finding::ReceiptMismatch {
                        seq: l.seq,
                        tx_hash,
                        detail,
                    });
                }
            }
            Ok(None) => findings.push(Finding::ReceiptMissing {
                seq: l.seq,
                tx_hash,
            }),
            Err(e) => findings.push(Finding::Unchecked {
                seq: l.seq,
                detail: format!("receipt of {tx_hash}: {e}"),
            }),
        }
    }

    findings.sort_by_key(Finding::seq);
    for a in &mut actions {
        a.ok = !findings
            .iter()
            .any(|f| f.seq() == a.seq && !matches!(f, Finding::HeadMismatch { .. }));
    }
    Ok(AuditReport {
        chain_id: target.chain_id,
        agent_nft: target.agent_nft,
        action_log: target.action_log,
        token_id: target.token_id,
        chain_seq: chain.seq,
        chain_head: chain.head,
        history,
        actions,
        findings,
    })
}

/// What [`restore_records`] did for one action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RestoredRecord {
    /// The action.
    pub seq: u64,
    /// Where the record was put back, or why it could not be.
    pub outcome: Result<String, String>,
}

/// Puts this runtime's own signed copies of records back into `store` where the audit found
/// the store's copy missing, altered or carrying a signature that is not the agent's
/// ([`Finding::MissingRecord`], [`Finding::ModifiedRecord`], [`Finding::SignatureUnverified`],
/// [`Finding::WrongSigner`]). Only records this database holds with exactly the hash logged
/// on chain are restored (the runtime that ran the actions has them: `inft audit --repair`);
/// others are skipped. Uses [`BlobStore::restore_record`]: a local directory (the runtime's
/// own) is overwritten, a gateway holding another valid signature refuses (write-once).
pub async fn restore_records(
    db: &Db,
    store: &dyn BlobStore,
    report: &AuditReport,
) -> Result<Vec<RestoredRecord>, AuditError> {
    let log = LogId {
        chain_id: report.chain_id,
        action_log: report.action_log,
        token_id: report.token_id,
    };
    let mut restored = Vec::new();
    for a in &report.actions {
        let damaged = report.findings_for(a.seq).any(|f| {
            matches!(
                f,
                Finding::MissingRecord { .. }
                    | Finding::ModifiedRecord { .. }
                    | Finding::SignatureUnverified { .. }
                    | Finding::WrongSigner { .. }
            )
        });
        if !damaged {
            continue;
        }
        let Some(stored) = db.record(&log, a.seq).await? else {
            continue;
        };
        if stored.record.record_hash() != a.record_hash {
            continue;
        }
        let outcome = store
            .restore_record(&stored.record)
            .await
            .map_err(|e| e.to_string());
        match &outcome {
            Ok(uri) => {
                tracing::info!(seq = a.seq, %uri, "action record restored from the database")
            }
            Err(e) => {
                tracing::warn!(seq = a.seq, error = %e, "action record could not be restored")
            }
        }
        restored.push(RestoredRecord {
            seq: a.seq,
            outcome,
        });
    }
    Ok(restored)
}

/// `Transfer(address,address,uint256)` of ERC-20 (and ERC-721) tokens.
const ERC20_TRANSFER: B256 =
    alloy::primitives::b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");

/// Compares a receipt with the record: status against the kind, `details.block_mined` against
/// the receipt's block, and the recorded fill (`details.fill.{token_in, token_out, amount_in,
/// amount_out}`, as the trading strategies record it) against the receipt's ERC-20 transfers.
/// `None` if they agree.
fn receipt_mismatch(
    record: &ActionRecord,
    receipt: &alloy::rpc::types::TransactionReceipt,
) -> Option<String> {
    let reverted_kind = record.kind.as_str().ends_with("reverted");
    if receipt.status() == reverted_kind {
        return Some(format!(
            "the record says {} but the receipt status is {}",
            record.kind,
            if receipt.status() {
                "success"
            } else {
                "reverted"
            }
        ));
    }
    if let (Some(recorded), Some(mined)) =
        (record.details["block_mined"].as_u64(), receipt.block_number)
        && recorded != mined
    {
        return Some(format!(
            "the record says it was mined in block {recorded}, the receipt says {mined}"
        ));
    }
    let fill = &record.details["fill"];
    if !fill.is_object() || !receipt.status() {
        return None;
    }
    let addr = |k: &str| fill[k].as_str().and_then(|s| s.parse::<Address>().ok());
    let amount = |k: &str| {
        fill[k]
            .as_str()
            .and_then(|s| U256::from_str_radix(s, 10).ok())
    };
    let moved = |token: Address, value: U256| {
        receipt.inner.logs().iter().any(|log| {
            log.address() == token
                && log.topics().first() == Some(&ERC20_TRANSFER)
                && U256::try_from_be_slice(log.data().data.as_ref()) == Some(value)
        })
    };
    for (token_key, amount_key) in [("token_in", "amount_in"), ("token_out", "amount_out")] {
        let (Some(token), Some(value)) = (addr(token_key), amount(amount_key)) else {
            return Some(format!(
                "the recorded fill has no valid {token_key}/{amount_key}"
            ));
        };
        if !moved(token, value) {
            return Some(format!(
                "no transfer of {value} of token {token} in the receipt (recorded {amount_key})"
            ));
        }
    }
    None
}

/// Whether one logged inference reproduced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReplayOutcome {
    /// Same output hash.
    Reproduced,
    /// A different output: `reason` says what differs between the recorded run and this one.
    Diverged {
        /// `keccak256` of the replayed output.
        replayed_output_hash: B256,
        /// Why it may differ.
        reason: String,
    },
    /// Not replayable: `reason` says why (no prompt kept, a different model, not an inference).
    NotReplayable {
        /// Why.
        reason: String,
    },
}

/// A replayed action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplayedAction {
    /// The action.
    pub seq: u64,
    /// What happened.
    #[serde(flatten)]
    pub outcome: ReplayOutcome,
}

/// The private prompts this database holds for `records` (see [`replay_with_prompts`]).
pub async fn private_prompts_of(
    db: &Db,
    records: &[ActionRecord],
) -> Result<HashMap<B256, String>, DbError> {
    let mut prompts = HashMap::new();
    for r in records.iter().filter(|r| r.prompt.is_none()) {
        if let Some(p) = db.private_prompt(r.prompt_hash).await? {
            prompts.insert(r.prompt_hash, p);
        }
    }
    Ok(prompts)
}

/// Re-runs the logged inferences of `records` on `engine` (the token's unsealed model, through
/// the engine's [`Inference`]) with each record's prompt, sampler settings and seed, and compares
/// output hashes. A divergence under a different llama.cpp build than the engine's (or a GPU run
/// replayed on CPU) is explained as such.
///
/// Blocking (runs the model): call it from a blocking thread in async code.
pub fn replay<I: Inference>(engine: &mut I, records: &[ActionRecord]) -> Vec<ReplayedAction> {
    replay_with_prompts(engine, records, &HashMap::new())
}

/// [`replay`], with the text of prompts that records published only by hash (an agent minted
/// with private prompts), keyed by `keccak256` of the text: [`private_prompts_of`] collects them
/// from the database of the runtime that ran the actions. A text is used only for the record
/// whose `prompt_hash` it matches.
pub fn replay_with_prompts<I: Inference>(
    engine: &mut I,
    records: &[ActionRecord],
    private_prompts: &HashMap<B256, String>,
) -> Vec<ReplayedAction> {
    records
        .iter()
        .map(|r| {
            let prompt = r.prompt.as_deref().or_else(|| {
                private_prompts
                    .get(&r.prompt_hash)
                    .filter(|p| content_hash(p.as_bytes()) == r.prompt_hash)
                    .map(String::as_str)
            });
            ReplayedAction {
                seq: r.seq,
                outcome: replay_one(engine, r, prompt),
            }
        })
        .collect()
}

/// The scores a policy chose by (a record's `details.choice`: `queries`, `states` and, per
/// query, the recorded log-likelihood of each state after the prompt and that query), computed
/// again and compared exactly: the choice reproduces only if every score does.
fn replay_choice<I: Inference>(
    engine: &mut I,
    prompt: &str,
    choice: &serde_json::Value,
    replayed: B256,
) -> ReplayOutcome {
    #[derive(serde::Deserialize)]
    struct Scored {
        queries: Vec<String>,
        states: Vec<String>,
        likelihoods: Vec<Vec<f64>>,
    }
    let scored: Scored = match serde_json::from_value(choice.clone()) {
        Ok(s) => s,
        Err(e) => {
            return ReplayOutcome::NotReplayable {
                reason: format!("unreadable choice scores: {e}"),
            };
        }
    };
    let states: Vec<&str> = scored.states.iter().map(String::as_str).collect();
    for (query, recorded) in scored.queries.iter().zip(&scored.likelihoods) {
        let again = match engine.score(&format!("{prompt}{query}"), &states) {
            Ok(again) => again,
            Err(e) => {
                return ReplayOutcome::NotReplayable {
                    reason: format!("scoring failed: {e}"),
                };
            }
        };
        if &again != recorded {
            return ReplayOutcome::Diverged {
                replayed_output_hash: replayed,
                reason: format!(
                    "the output reproduced, but the scores of the choice did not: after \
                     {query:?} recorded {recorded:?}, replayed {again:?}"
                ),
            };
        }
    }
    if scored.queries.len() != scored.likelihoods.len() {
        return ReplayOutcome::NotReplayable {
            reason: "the choice records a different number of queries and scores".into(),
        };
    }
    ReplayOutcome::Reproduced
}

fn replay_one<I: Inference>(
    engine: &mut I,
    r: &ActionRecord,
    prompt: Option<&str>,
) -> ReplayOutcome {
    let not = |reason: String| ReplayOutcome::NotReplayable { reason };
    if r.sampler.is_null() || r.model_hash == B256::ZERO {
        return not("not a model inference (no model or sampler settings recorded)".into());
    }
    let Some(prompt) = prompt else {
        return not(
            "the prompt is private (the record holds only its hash) and this database does not \
             hold it: only the runtime that ran the action keeps it"
                .into(),
        );
    };
    let model_hash = B256::from(engine.model_sha256());
    if r.model_hash != model_hash {
        return not(format!(
            "recorded with model {}, this agent's model is {model_hash}",
            r.model_hash
        ));
    }
    let settings: SamplerSettings = match serde_json::from_value(r.sampler.clone()) {
        Ok(s) => s,
        Err(e) => return not(format!("unreadable sampler settings: {e}")),
    };
    if u64::from(settings.seed) != r.seed {
        return not(format!(
            "the record's seed {} differs from its sampler seed {}",
            r.seed, settings.seed
        ));
    }
    let generation = match engine.generate(prompt, &settings) {
        Ok(g) => g,
        Err(e) => return not(format!("inference failed: {e}")),
    };
    let replayed = content_hash(generation.text.as_bytes());
    if replayed == r.output_hash {
        return match r.details.get("choice") {
            Some(choice) => replay_choice(engine, prompt, choice, replayed),
            None => ReplayOutcome::Reproduced,
        };
    }
    let local_build = engine.llama_build();
    let reason = if r.llama_build != local_build {
        // Build strings name the backend, e.g. "cuda=on" / "cuda=off".
        let gpu = |b: &str| {
            let b = b.to_ascii_lowercase();
            b.contains("cuda") && !b.contains("cuda=off")
        };
        if gpu(&r.llama_build) && !gpu(local_build) {
            format!(
                "recorded on a GPU build ({}), replayed on CPU ({local_build}): GPU kernels round differently",
                r.llama_build
            )
        } else {
            format!(
                "recorded with llama.cpp build {}, replayed with {local_build}",
                r.llama_build
            )
        }
    } else {
        "same model, settings and llama.cpp build, yet a different output: the recorded output was not produced by this inference".into()
    };
    ReplayOutcome::Diverged {
        replayed_output_hash: replayed,
        reason,
    }
}
