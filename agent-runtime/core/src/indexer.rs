//! The chain event indexer: `ActionLog` and `AgentNFT` events into the `chain_events` table,
//! with a cursor per contract, so audits read a token's history from the database.
//!
//! [`Indexer::sync`] reads logs from each contract's cursor up to the chain's latest block, in
//! ranges of at most [`IndexerConfig::max_range`] blocks; each range's events and the advanced
//! cursor are written before the next range is read, so an interrupted sync resumes where it
//! stopped. Events are keyed by their position (block, log index): indexing a range twice
//! writes the same rows (idempotent). Before going on, the cursor's last block hash is compared
//! with the chain's; if the chain reorganised under it, the last [`IndexerConfig::reorg_depth`]
//! blocks are dropped and indexed again.
//!
//! Indexed events ([`TokenEvent`]): `ActionsLogged` (ActionLog), `Transfer`, `AgentSet`,
//! `DataSet`, `TransferredWithProof`, `UsageAuthorized`, `UsageRevoked` and `ContributorsSet`
//! (AgentNFT). Their payloads are JSON objects with the fields of the structs below.

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use inft_contracts::bindings::{ActionLog, AgentNFT};
use serde::{Deserialize, Serialize};

use crate::db::{ChainCursor, ChainEvent, Db, DbError};

/// Why indexing stopped. The cursor stays at the last range fully written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// An RPC request failed.
    #[error("indexer RPC {what}: {detail}")]
    Rpc {
        /// What was being asked.
        what: &'static str,
        /// The transport error.
        detail: String,
    },
    /// A log the node returned lacks its position (a pending log) or does not decode.
    #[error("indexer: malformed log: {0}")]
    Malformed(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The `ActionsLogged` event: hashes appended to a token's action log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionsLogged {
    /// Sequence number of the first hash.
    pub first_seq: u64,
    /// Who sent `logActions` (the agent or an executor).
    pub sender: Address,
    /// The chain head before.
    pub prev_head: B256,
    /// The chain head after.
    pub new_head: B256,
    /// The record hashes, in order.
    pub action_hashes: Vec<B256>,
}

/// ERC-721 `Transfer` (mint when `from` is zero).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Previous owner.
    pub from: Address,
    /// New owner.
    pub to: Address,
}

/// `AgentSet`: the token's agent wallet (the key that signs its records) from now on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSet {
    /// The agent address.
    pub agent: Address,
    /// The token's epoch.
    pub epoch: u64,
}

/// `DataSet`: the token's private data as of an epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSet {
    /// The epoch.
    pub epoch: u64,
    /// The data hashes (commitments).
    pub data_hashes: Vec<B256>,
    /// Where the sealed blobs are stored.
    pub uris: Vec<String>,
}

/// `TransferredWithProof`: the token moved with a verified rotation proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferredWithProof {
    /// Previous owner.
    pub from: Address,
    /// New owner.
    pub to: Address,
    /// The new epoch.
    pub epoch: u64,
    /// Proof mode (0 receiver-verified, 1 oracle-attested).
    pub mode: u8,
    /// Who signed the proof.
    pub signer: Address,
}

/// `UsageAuthorized`: a user may use the token with `scopes` until `expiry` in `epoch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageAuthorized {
    /// The user.
    pub user: Address,
    /// The epoch the grant belongs to.
    pub epoch: u64,
    /// Scope bits.
    pub scopes: u8,
    /// Unix time the grant expires.
    pub expiry: u64,
}

/// `UsageRevoked`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRevoked {
    /// The user.
    pub user: Address,
    /// The epoch.
    pub epoch: u64,
}

/// `ContributorsSet`: the data contributors fixed at mint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContributorsSet {
    /// Contributor addresses.
    pub contributors: Vec<Address>,
    /// Their shares in basis points.
    pub contributor_bps: Vec<u16>,
}

/// An indexed event about one token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenEvent {
    /// See [`ActionsLogged`].
    ActionsLogged(ActionsLogged),
    /// See [`Transfer`].
    Transfer(Transfer),
    /// See [`AgentSet`].
    AgentSet(AgentSet),
    /// See [`DataSet`].
    DataSet(DataSet),
    /// See [`TransferredWithProof`].
    TransferredWithProof(TransferredWithProof),
    /// See [`UsageAuthorized`].
    UsageAuthorized(UsageAuthorized),
    /// See [`UsageRevoked`].
    UsageRevoked(UsageRevoked),
    /// See [`ContributorsSet`].
    ContributorsSet(ContributorsSet),
}

impl TokenEvent {
    /// The event name (the `kind` column).
    pub fn name(&self) -> &'static str {
        match self {
            Self::ActionsLogged(_) => "ActionsLogged",
            Self::Transfer(_) => "Transfer",
            Self::AgentSet(_) => "AgentSet",
            Self::DataSet(_) => "DataSet",
            Self::TransferredWithProof(_) => "TransferredWithProof",
            Self::UsageAuthorized(_) => "UsageAuthorized",
            Self::UsageRevoked(_) => "UsageRevoked",
            Self::ContributorsSet(_) => "ContributorsSet",
        }
    }

    fn payload(&self) -> serde_json::Value {
        let v = match self {
            Self::ActionsLogged(e) => serde_json::to_value(e),
            Self::Transfer(e) => serde_json::to_value(e),
            Self::AgentSet(e) => serde_json::to_value(e),
            Self::DataSet(e) => serde_json::to_value(e),
            Self::TransferredWithProof(e) => serde_json::to_value(e),
            Self::UsageAuthorized(e) => serde_json::to_value(e),
            Self::UsageRevoked(e) => serde_json::to_value(e),
            Self::ContributorsSet(e) => serde_json::to_value(e),
        };
        // Plain structs of addresses, hashes, numbers and strings always serialize.
        v.unwrap_or(serde_json::Value::Null)
    }

    /// Decodes an indexed row; `None` for kinds this version does not know or a payload that
    /// does not parse.
    pub fn from_indexed(kind: &str, payload: &serde_json::Value) -> Option<Self> {
        let p = payload.clone();
        Some(match kind {
            "ActionsLogged" => Self::ActionsLogged(serde_json::from_value(p).ok()?),
            "Transfer" => Self::Transfer(serde_json::from_value(p).ok()?),
            "AgentSet" => Self::AgentSet(serde_json::from_value(p).ok()?),
            "DataSet" => Self::DataSet(serde_json::from_value(p).ok()?),
            "TransferredWithProof" => Self::TransferredWithProof(serde_json::from_value(p).ok()?),
            "UsageAuthorized" => Self::UsageAuthorized(serde_json::from_value(p).ok()?),
            "UsageRevoked" => Self::UsageRevoked(serde_json::from_value(p).ok()?),
            "ContributorsSet" => Self::ContributorsSet(serde_json::from_value(p).ok()?),
            _ => return None,
        })
    }
}

/// Decodes a raw log of the indexed contracts into (token id, event); `None` for events the
/// indexer does not keep. Does not look at the emitter: check `log.address()` where it matters
/// (the indexer asks each contract for its own logs; [`crate::provenance`] checks receipts).
pub fn decode_log(log: &Log) -> Option<(U256, TokenEvent)> {
    let topic0 = *log.topic0()?;
    let inner = &log.inner;
    macro_rules! dec {
        ($ty:ty) => {
            <$ty>::decode_log(inner).ok()?.data
        };
    }
    Some(match topic0 {
        ActionLog::ActionsLogged::SIGNATURE_HASH => {
            let e = dec!(ActionLog::ActionsLogged);
            (
                e.tokenId,
                TokenEvent::ActionsLogged(ActionsLogged {
                    first_seq: e.firstSeq,
                    sender: e.sender,
                    prev_head: e.prevHead,
                    new_head: e.newHead,
                    action_hashes: e.actionHashes,
                }),
            )
        }
        AgentNFT::Transfer::SIGNATURE_HASH => {
            let e = dec!(AgentNFT::Transfer);
            (
                e.tokenId,
                TokenEvent::Transfer(Transfer {
                    from: e.from,
                    to: e.to,
                }),
            )
        }
        AgentNFT::AgentSet::SIGNATURE_HASH => {
            let e = dec!(AgentNFT::AgentSet);
            (
                e.tokenId,
                TokenEvent::AgentSet(AgentSet {
                    agent: e.agent,
                    epoch: e.epoch,
                }),
            )
        }
        AgentNFT::DataSet::SIGNATURE_HASH => {
            let e = dec!(AgentNFT::DataSet);
            (
                e.tokenId,
                TokenEvent::DataSet(DataSet {
                    epoch: e.epoch,
                    data_hashes: e.dataHashes,
                    uris: e.uris,
                }),
            )
        }
        AgentNFT::TransferredWithProof::SIGNATURE_HASH => {
            let e = dec!(AgentNFT::TransferredWithProof);
            (
                e.tokenId,
                TokenEvent::TransferredWithProof(TransferredWithProof {
                    from: e.from,
                    to: e.to,
                    epoch: e.epoch,
                    mode: e.mode,
                    signer: e.signer,
                }),
            )
        }
        AgentNFT::UsageAuthorized::SIGNATURE_HASH => {
            let e = dec!(AgentNFT::UsageAuthorized);
            (
                e.tokenId,
                TokenEvent::UsageAuthorized(UsageAuthorized {
                    user: e.user,
                    epoch: e.epoch,
                    scopes: e.scopes,
                    expiry: e.expiry,
                }),
            )
        }
        AgentNFT::UsageRevoked::SIGNATURE_HASH => {
            let e = dec!(AgentNFT::UsageRevoked);
            (
                e.tokenId,
                TokenEvent::UsageRevoked(UsageRevoked {
                    user: e.user,
                    epoch: e.epoch,
                }),
            )
        }
        AgentNFT::ContributorsSet::SIGNATURE_HASH => {
            let e = dec!(AgentNFT::ContributorsSet);
            (
                e.tokenId,
                TokenEvent::ContributorsSet(ContributorsSet {
                    contributors: e.contributors,
                    contributor_bps: e.contributorBps,
                }),
            )
        }
        _ => return None,
    })
}

/// Tuning of the indexer.
#[derive(Clone, Debug)]
pub struct IndexerConfig {
    /// Most blocks per `eth_getLogs` request (public RPCs cap the range).
    pub max_range: u64,
    /// Blocks dropped and indexed again when the chain reorganised under the cursor.
    pub reorg_depth: u64,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        Self {
            max_range: 2_000,
            reorg_depth: 64,
        }
    }
}

/// What one [`Indexer::sync`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Rows written (new or re-indexed).
    pub events: u64,
    /// The chain's latest block when the sync started; everything up to it is indexed.
    pub to_block: u64,
    /// Whether a reorganisation was detected and rewound.
    pub rewound: bool,
}

/// Indexes the `ActionLog` and `AgentNFT` contracts of a deployment into a database.
#[derive(Clone, Debug)]
pub struct Indexer<P> {
    provider: P,
    chain_id: u64,
    contracts: Vec<Address>,
    start_block: u64,
    config: IndexerConfig,
}

fn rpc(what: &'static str) -> impl FnOnce(alloy::transports::TransportError) -> IndexError {
    move |e| IndexError::Rpc {
        what,
        detail: e.to_string(),
    }
}

impl<P: Provider> Indexer<P> {
    /// An indexer of `agent_nft` and `action_log` on chain `chain_id`, from `start_block` (the
    /// deployment's start block) on.
    pub fn new(
        provider: P,
        chain_id: u64,
        agent_nft: Address,
        action_log: Address,
        start_block: u64,
    ) -> Self {
        Self {
            provider,
            chain_id,
            contracts: vec![agent_nft, action_log],
            start_block,
            config: IndexerConfig::default(),
        }
    }

    /// Replaces the tuning.
    pub fn with_config(mut self, config: IndexerConfig) -> Self {
        self.config = config;
        self
    }

    async fn block_hash(&self, number: u64) -> Result<Option<B256>, IndexError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await
            .map_err(rpc("eth_getBlockByNumber"))?;
        Ok(block.map(|b| b.header.hash))
    }

    /// Indexes every contract up to the chain's latest block.
    pub async fn sync(&self, db: &Db) -> Result<SyncReport, IndexError> {
        let latest = self
            .provider
            .get_block_number()
            .await
            .map_err(rpc("eth_blockNumber"))?;
        let mut report = SyncReport {
            to_block: latest,
            ..SyncReport::default()
        };
        for &contract in &self.contracts {
            let mut cursor =
                db.chain_cursor(self.chain_id, contract)
                    .await?
                    .unwrap_or(ChainCursor {
                        next_block: self.start_block,
                        last_block_hash: None,
                    });
            // A reorganisation under the cursor: drop the recent blocks and index them again.
            if let (Some(expected), Some(below)) =
                (cursor.last_block_hash, cursor.next_block.checked_sub(1))
                && self.block_hash(below).await? != Some(expected)
            {
                let from = cursor
                    .next_block
                    .saturating_sub(self.config.reorg_depth)
                    .max(self.start_block);
                tracing::warn!(%contract, from, "chain reorganised under the indexer; re-indexing");
                db.delete_contract_events_from(self.chain_id, contract, from)
                    .await?;
                cursor = ChainCursor {
                    next_block: from,
                    last_block_hash: None,
                };
                report.rewound = true;
            }
            while cursor.next_block <= latest {
                let from = cursor.next_block;
                let to = latest.min(from.saturating_add(self.config.max_range.max(1) - 1));
                let filter = Filter::new()
                    .address(contract)
                    .from_block(from)
                    .to_block(to);
                let logs = self
                    .provider
                    .get_logs(&filter)
                    .await
                    .map_err(rpc("eth_getLogs"))?;
                let mut events = Vec::new();
                for log in &logs {
                    let Some((token_id, event)) = decode_log(log) else {
                        continue;
                    };
                    let (Some(block_number), Some(log_index), Some(block_hash), Some(tx_hash)) = (
                        log.block_number,
                        log.log_index,
                        log.block_hash,
                        log.transaction_hash,
                    ) else {
                        return Err(IndexError::Malformed(
                            "a log without block, index or transaction".into(),
                        ));
                    };
                    events.push(ChainEvent {
                        chain_id: self.chain_id,
                        block_number,
                        log_index,
                        block_hash,
                        tx_hash,
                        contract,
                        token_id: Some(token_id),
                        kind: event.name().to_owned(),
                        payload: event.payload(),
                    });
                }
                report.events += db.insert_chain_events(&events).await?;
                cursor = ChainCursor {
                    next_block: to + 1,
                    last_block_hash: self.block_hash(to).await?,
                };
                db.set_chain_cursor(self.chain_id, contract, &cursor)
                    .await?;
                tracing::debug!(%contract, from, to, events = events.len(), "indexed");
            }
        }
        Ok(report)
    }
}
