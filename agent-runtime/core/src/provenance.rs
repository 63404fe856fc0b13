//! Proof of creatorship anyone can check: from a piece of content back to the agent, the token
//! and the chain.
//!
//! A creative agent signs each piece it writes: the agent key signs the EIP-712 typed data
//! `Creation(uint256 tokenId,bytes32 contentHash)` under the domain `{name: "inft Creation",
//! version: "1", chainId, verifyingContract: AgentNFT}` ([`creation_digest`]), where
//! `contentHash = keccak256(output bytes)`. The piece's action record (which carries the output,
//! its hash and the signature in `details`) is signed by the agent key too and its hash is
//! logged on chain by `ActionLog.logActions`.
//!
//! This module has one job: turn that into something a stranger can check.
//!
//! - A [`ProofBundle`] is a self-contained JSON proof of one piece (format below).
//! - [`verify_bundle`] checks a bundle against the content and a JSON-RPC endpoint, nothing
//!   else: no database, no blob store, no wallet. Each refusal is its own [`ProvenanceError`].
//! - [`creations`] lists a token's pieces from an audit ([`crate::audit::audit_token`]), with a
//!   bundle each; [`write_piece`] exports one as `piece-<seq>.txt` + `piece-<seq>.proof.json`.
//! - [`find_by_content`] looks a piece up by its content hash alone: the record store's content
//!   index ([`BlobStore::records_by_content`], `GET /by-content/<hex>` on a gateway) names the
//!   candidate records, the indexed `ActionsLogged` events name the transaction that logged
//!   each, and every candidate is verified as a bundle would be.
//!
//! # The piece
//!
//! The piece is the agent's output exactly as signed: the bytes whose `keccak256` is the
//! record's `output_hash` (for the creative strategy, the JSON object with its `title` and
//! `text`). Any change, one byte or one space, is another hash: an edited copy is unknown.
//!
//! # Bundle format (`inft/v1/proof-bundle`)
//!
//! ```json
//! {
//!   "format": "inft/v1/proof-bundle",
//!   "chain_id": 31337,
//!   "agent_nft": "0x…",            // the deployment's AgentNFT (EIP-712 verifying contract)
//!   "action_log": "0x…",           // the deployment's ActionLog (emitter of ActionsLogged)
//!   "token_id": "1234",            // decimal string
//!   "content_hash": "0x…",         // keccak256 of the piece
//!   "creator_signature": "0x…",    // 65 bytes r‖s‖v: the agent's Creation signature
//!   "record_hash": "0x…",          // the hash logged on chain
//!   "record": {"record": {…}, "signature": "0x…"},   // the signed record envelope
//!   "seq": 2,                      // the record's position in the token's log
//!   "log_tx": "0x…",               // the logActions transaction
//!   "block_number": 17             // its block
//! }
//! ```
//!
//! Unknown fields are refused; a future format gets a new `format` string.
//!
//! # Verification ([`verify_bundle`])
//!
//! Offline, from the bundle and the content:
//! 1. `keccak256(content)` is `content_hash` ([`ProvenanceError::ContentAltered`]);
//! 2. the record parses, its content hashes match what it carries, it hashes to `record_hash`,
//!    sits at `seq` and its `output_hash` is `content_hash` ([`ProvenanceError::RecordAltered`]);
//!    it belongs to the bundle's chain ([`ProvenanceError::WrongChain`]), ActionLog
//!    ([`ProvenanceError::ForeignDeployment`]) and token ([`ProvenanceError::WrongToken`]).
//!
//! Against the chain (one RPC endpoint):
//! 3. the endpoint's chain id is `chain_id` ([`ProvenanceError::WrongChain`]); the contracts are
//!    the deployment the verifier trusts, when it names one, and `ActionLog.nft()` is
//!    `agent_nft` ([`ProvenanceError::ForeignDeployment`]);
//! 4. the receipt of `log_tx` succeeded, in `block_number`, and holds an `ActionsLogged` event
//!    emitted by `action_log` ([`ProvenanceError::ForeignDeployment`] if only another contract's
//!    is there) for `token_id` ([`ProvenanceError::WrongToken`]) whose hashes carry
//!    `record_hash` at `seq` ([`ProvenanceError::NotInTransaction`]);
//! 5. the agent registered for the token at that point of the chain — the last `AgentSet` event
//!    of the token before that log, so a piece written before a transfer or a key rotation
//!    verifies against the agent key of its time, not today's — signed both the creation and
//!    the record ([`ProvenanceError::WrongSigner`]).
//!
//! The verdict ([`VerifiedCreation`]) also names the owner at that block (the last `Transfer`
//! before the log), the block's time and the model hash (the record's, and the token's
//! committed `modelHashOf`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, Bytes, Signature, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::{Eip712Domain, SolEvent, SolStruct, eip712_domain};
use inft_contracts::Deployment;
use inft_contracts::bindings::{ActionLog, AgentNFT};
use serde::{Deserialize, Serialize};

use crate::audit::AuditReport;
use crate::blobstore::records::piece_text;
use crate::blobstore::{BlobError, BlobStore};
use crate::db::{Db, DbError};
use crate::indexer::{TokenEvent, decode_log};
use crate::record::{ActionKind, SignedRecord, content_hash, parse_signature};

/// The `format` of the bundles this version writes and reads.
pub const BUNDLE_FORMAT: &str = "inft/v1/proof-bundle";

mod eip712 {
    #![allow(missing_docs)]
    alloy::sol! {
        /// The proof of creatorship an agent signs for each piece it writes.
        struct Creation {
            uint256 tokenId;
            bytes32 contentHash;
        }
    }
}

/// The EIP-712 type string of creation signatures.
pub const CREATION_TYPE: &str = "Creation(uint256 tokenId,bytes32 contentHash)";

/// The EIP-712 domain of creation signatures: bound to the chain and the AgentNFT contract, so a
/// signature for one token never proves anything about another deployment's.
pub fn creation_domain(chain_id: u64, nft: Address) -> Eip712Domain {
    eip712_domain! {
        name: "inft Creation",
        version: "1",
        chain_id: chain_id,
        verifying_contract: nft,
    }
}

/// The digest an agent signs to claim `content_hash` as token `token_id`'s work.
pub fn creation_digest(chain_id: u64, nft: Address, token_id: U256, content_hash: B256) -> B256 {
    eip712::Creation {
        tokenId: token_id,
        contentHash: content_hash,
    }
    .eip712_signing_hash(&creation_domain(chain_id, nft))
}

/// The address that signed a creation proof (compare it with the token's agent at the time).
pub fn creation_signer(
    chain_id: u64,
    nft: Address,
    token_id: U256,
    content_hash: B256,
    signature: &Signature,
) -> Result<Address, alloy::primitives::SignatureError> {
    signature.recover_address_from_prehash(&creation_digest(chain_id, nft, token_id, content_hash))
}

/// Why a piece's provenance could not be established. One variant per reason a bundle is
/// refused, so a caller (and a test) can tell an edited text from a forged signature.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvenanceError {
    /// Not a bundle this version reads.
    #[error("not a proof bundle of format {BUNDLE_FORMAT}: {0}")]
    Format(String),
    /// The content is not the piece that was signed.
    #[error("the content was altered: it hashes to {actual}, the signed content hash is {signed}")]
    ContentAltered {
        /// The content hash the bundle (and its signature) is about.
        signed: B256,
        /// The hash of the content given.
        actual: B256,
    },
    /// The record in the bundle is not the one logged under its hash.
    #[error("the record was altered: {0}")]
    RecordAltered(String),
    /// A signature does not recover the agent registered for the token when the piece was
    /// logged (or recovers nobody).
    #[error(
        "the {what} signature was not made by the agent {expected} registered for the token then: {}",
        actual.map_or_else(|| "it recovers no address".to_owned(), |a| format!("it recovers {a}"))
    )]
    WrongSigner {
        /// `creation` or `record`.
        what: &'static str,
        /// The agent registered at the time.
        expected: Address,
        /// Whom the signature recovers.
        actual: Option<Address>,
    },
    /// The record or the logged event is about another token than the bundle names.
    #[error("wrong token: the bundle names token {bundle}, {found}")]
    WrongToken {
        /// The bundle's token.
        bundle: U256,
        /// What was found instead.
        found: String,
    },
    /// The bundle, its record or the RPC endpoint are on different chains.
    #[error("wrong chain: the bundle is for chain {expected}, {actual}")]
    WrongChain {
        /// The bundle's chain id.
        expected: u64,
        /// What was found instead.
        actual: String,
    },
    /// The contracts are not an ActionLog and AgentNFT of one deployment (or not the one the
    /// verifier trusts).
    #[error("not an action log of that deployment: {0}")]
    ForeignDeployment(String),
    /// The named transaction does not log this record for this token.
    #[error("transaction {tx_hash} does not log this record: {detail}")]
    NotInTransaction {
        /// The transaction the bundle names.
        tx_hash: B256,
        /// Why.
        detail: String,
    },
    /// The token had no agent when the record was logged (no `AgentSet` event before it).
    #[error("token {token} had no registered agent at block {block}")]
    NoAgent {
        /// The token.
        token: U256,
        /// The block of the log.
        block: u64,
    },
    /// The record is not a signed creative piece (no creation signature in its details).
    #[error("record {record_hash} is not a signed creative piece: {detail}")]
    NotCreative {
        /// The record.
        record_hash: B256,
        /// Why.
        detail: String,
    },
    /// The record is public but no indexed `ActionsLogged` event carries it (not logged yet, or
    /// the index is behind).
    #[error("record {0} is published but no indexed ActionsLogged event of its token carries it")]
    NotLogged(B256),
    /// A chain request failed (the verdict is unknown, not negative).
    #[error("chain request {what} failed: {detail}")]
    Rpc {
        /// What was asked.
        what: &'static str,
        /// The error.
        detail: String,
    },
    /// The record store failed.
    #[error(transparent)]
    Store(#[from] BlobError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ProvenanceError {
    /// A stable name of the reason, for scripts (`inft provenance --json`): `content_altered`,
    /// `record_altered`, `wrong_signer`, `wrong_token`, `wrong_chain`, `foreign_deployment`,
    /// `not_in_transaction`, … (`rpc`, `store` and `db` mean the verdict is unknown).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Format(_) => "format",
            Self::ContentAltered { .. } => "content_altered",
            Self::RecordAltered(_) => "record_altered",
            Self::WrongSigner { .. } => "wrong_signer",
            Self::WrongToken { .. } => "wrong_token",
            Self::WrongChain { .. } => "wrong_chain",
            Self::ForeignDeployment(_) => "foreign_deployment",
            Self::NotInTransaction { .. } => "not_in_transaction",
            Self::NoAgent { .. } => "no_agent",
            Self::NotCreative { .. } => "not_creative",
            Self::NotLogged(_) => "not_logged",
            Self::Rpc { .. } => "rpc",
            Self::Store(_) => "store",
            Self::Db(_) => "db",
        }
    }
}

fn rpc(what: &'static str) -> impl FnOnce(alloy::transports::TransportError) -> ProvenanceError {
    move |e| ProvenanceError::Rpc {
        what,
        detail: e.to_string(),
    }
}

/// A deployment's chain and the two contracts provenance depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contracts {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The AgentNFT (verifying contract of creation signatures; `AgentSet`, `Transfer`).
    pub agent_nft: Address,
    /// The ActionLog (emitter of `ActionsLogged`).
    pub action_log: Address,
}

impl From<&Deployment> for Contracts {
    fn from(d: &Deployment) -> Self {
        Self {
            chain_id: d.chain_id,
            agent_nft: d.agent_nft,
            action_log: d.action_log,
        }
    }
}

/// A self-contained proof of one creative piece (see the [module docs](self) for the format).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofBundle {
    /// [`BUNDLE_FORMAT`].
    pub format: String,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The deployment's AgentNFT.
    pub agent_nft: Address,
    /// The deployment's ActionLog.
    pub action_log: Address,
    /// The token.
    #[serde(with = "crate::record::decimal")]
    pub token_id: U256,
    /// `keccak256` of the piece.
    pub content_hash: B256,
    /// The agent's creation signature (65 bytes `r ‖ s ‖ v`).
    pub creator_signature: Bytes,
    /// The record hash logged on chain.
    pub record_hash: B256,
    /// The signed record envelope, as [`SignedRecord::to_envelope_json`] writes it.
    pub record: serde_json::Value,
    /// The record's position in the token's log.
    pub seq: u64,
    /// The `logActions` transaction.
    pub log_tx: B256,
    /// Its block.
    pub block_number: u64,
}

impl ProofBundle {
    /// The bundle of a creative record logged in `log_tx` (block `block_number`) of
    /// `contracts`; [`ProvenanceError::NotCreative`] if the record carries no creation
    /// signature of its output.
    pub fn new(
        contracts: Contracts,
        signed: &SignedRecord,
        log_tx: B256,
        block_number: u64,
    ) -> Result<Self, ProvenanceError> {
        let record = signed.record();
        let record_hash = signed.record_hash();
        let not_creative = |detail: &str| ProvenanceError::NotCreative {
            record_hash,
            detail: detail.to_owned(),
        };
        if record.kind != ActionKind::Creative {
            return Err(not_creative(&format!("its kind is {}", record.kind)));
        }
        // As the creative strategy writes it: alloy's JSON form of a signature.
        let signature: Signature =
            serde_json::from_value(record.details["creator_signature"].clone())
                .map_err(|_| not_creative("no details.creator_signature"))?;
        let envelope = signed
            .to_envelope_json()
            .map_err(|e| ProvenanceError::RecordAltered(e.to_string()))?;
        let envelope = serde_json::from_slice(&envelope)
            .map_err(|e| ProvenanceError::RecordAltered(e.to_string()))?;
        Ok(Self {
            format: BUNDLE_FORMAT.to_owned(),
            chain_id: contracts.chain_id,
            agent_nft: contracts.agent_nft,
            action_log: contracts.action_log,
            token_id: record.token_id,
            content_hash: record.output_hash,
            creator_signature: signature.as_bytes().to_vec().into(),
            record_hash,
            record: envelope,
            seq: record.seq,
            log_tx,
            block_number,
        })
    }

    /// Parses a bundle (JSON), refusing other formats and unknown fields.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProvenanceError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| ProvenanceError::Format(e.to_string()))?;
        match value["format"].as_str() {
            Some(BUNDLE_FORMAT) => {}
            Some(other) => return Err(ProvenanceError::Format(format!("format {other:?}"))),
            None => return Err(ProvenanceError::Format("no format field".into())),
        }
        serde_json::from_value(value).map_err(|e| ProvenanceError::Format(e.to_string()))
    }

    /// The bundle as pretty-printed JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Plain data: serializing cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// The contracts the bundle names.
    pub fn contracts(&self) -> Contracts {
        Contracts {
            chain_id: self.chain_id,
            agent_nft: self.agent_nft,
            action_log: self.action_log,
        }
    }

    /// The checks that need no chain (steps 1 and 2 of the [module docs](self)): the signed
    /// record, and whom its record and creation signatures recover (`None`: nobody).
    pub fn check_offline(&self, content: B256) -> Result<OfflineChecked, ProvenanceError> {
        if self.format != BUNDLE_FORMAT {
            return Err(ProvenanceError::Format(format!("format {:?}", self.format)));
        }
        if content != self.content_hash {
            return Err(ProvenanceError::ContentAltered {
                signed: self.content_hash,
                actual: content,
            });
        }
        let envelope = serde_json::to_vec(&self.record)
            .map_err(|e| ProvenanceError::RecordAltered(e.to_string()))?;
        let signed = SignedRecord::from_envelope_json(&envelope)
            .map_err(|e| ProvenanceError::RecordAltered(e.to_string()))?;
        if signed.record_hash() != self.record_hash {
            return Err(ProvenanceError::RecordAltered(format!(
                "it hashes to {}, the bundle names {}",
                signed.record_hash(),
                self.record_hash
            )));
        }
        let r = signed.record();
        if r.chain_id != self.chain_id {
            return Err(ProvenanceError::WrongChain {
                expected: self.chain_id,
                actual: format!("the record is for chain {}", r.chain_id),
            });
        }
        if r.action_log != self.action_log {
            return Err(ProvenanceError::ForeignDeployment(format!(
                "the record belongs to ActionLog {}, the bundle names {}",
                r.action_log, self.action_log
            )));
        }
        if r.token_id != self.token_id {
            return Err(ProvenanceError::WrongToken {
                bundle: self.token_id,
                found: format!("the record is token {}'s", r.token_id),
            });
        }
        if r.seq != self.seq {
            return Err(ProvenanceError::RecordAltered(format!(
                "it is action {}, the bundle says {}",
                r.seq, self.seq
            )));
        }
        if r.output_hash != self.content_hash {
            return Err(ProvenanceError::RecordAltered(format!(
                "its output hashes to {}, not to the bundle's content hash",
                r.output_hash
            )));
        }
        let creator = parse_signature(&self.creator_signature)
            .ok()
            .and_then(|sig| {
                creation_signer(
                    self.chain_id,
                    self.agent_nft,
                    self.token_id,
                    self.content_hash,
                    &sig,
                )
                .ok()
            });
        let record_signer = signed.signer().ok();
        Ok(OfflineChecked {
            signed,
            creator,
            record_signer,
        })
    }
}

/// What [`ProofBundle::check_offline`] established.
#[derive(Clone, Debug, PartialEq)]
pub struct OfflineChecked {
    /// The record, with the hash the bundle names.
    pub signed: SignedRecord,
    /// Whom the creation signature recovers.
    pub creator: Option<Address>,
    /// Whom the record signature recovers.
    pub record_signer: Option<Address>,
}

/// A piece whose provenance was verified on chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedCreation {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The AgentNFT.
    pub agent_nft: Address,
    /// The ActionLog.
    pub action_log: Address,
    /// Whether these contracts are the deployment the verifier trusts (`false`: it named none,
    /// so they are only as good as whoever handed over the bundle says).
    pub deployment_pinned: bool,
    /// The token.
    pub token_id: U256,
    /// `keccak256` of the piece.
    pub content_hash: B256,
    /// The piece's title, if the record gives one.
    pub title: Option<String>,
    /// The record hash on chain.
    pub record_hash: B256,
    /// Its position in the token's log.
    pub seq: u64,
    /// The agent registered then, who signed the piece and its record.
    pub agent: Address,
    /// The token's owner at that block.
    pub owner: Address,
    /// The `logActions` transaction.
    pub log_tx: B256,
    /// Its block.
    pub block_number: u64,
    /// The block's time (seconds since the Unix epoch).
    pub block_time: u64,
    /// When the record was made (ms since the Unix epoch; the agent's clock).
    pub created_ms: u64,
    /// The model the record says wrote the piece (SHA-256 of the GGUF).
    pub model_hash: B256,
    /// The model the token committed to at mint (`modelHashOf`).
    pub committed_model_hash: B256,
}

/// Verifies `bundle` for content whose `keccak256` is `content` (see [`content_hash`]) against
/// the chain `provider` reads (steps in the [module docs](self)). `trusted` pins the
/// deployment the caller trusts; without it the bundle's own contracts are checked to be one
/// ActionLog/AgentNFT pair and reported unpinned.
pub async fn verify_bundle<P: Provider>(
    provider: &P,
    bundle: &ProofBundle,
    content: B256,
    trusted: Option<&Contracts>,
) -> Result<VerifiedCreation, ProvenanceError> {
    let offline = bundle.check_offline(content)?;
    let record = offline.signed.record();

    // The chain and the deployment.
    let chain_id = provider.get_chain_id().await.map_err(rpc("eth_chainId"))?;
    if chain_id != bundle.chain_id {
        return Err(ProvenanceError::WrongChain {
            expected: bundle.chain_id,
            actual: format!("the RPC endpoint is chain {chain_id}"),
        });
    }
    if let Some(t) = trusted {
        if t.chain_id != bundle.chain_id {
            return Err(ProvenanceError::WrongChain {
                expected: bundle.chain_id,
                actual: format!("the trusted deployment is on chain {}", t.chain_id),
            });
        }
        if (t.agent_nft, t.action_log) != (bundle.agent_nft, bundle.action_log) {
            return Err(ProvenanceError::ForeignDeployment(format!(
                "the bundle names AgentNFT {} and ActionLog {}, the trusted deployment has {} and {}",
                bundle.agent_nft, bundle.action_log, t.agent_nft, t.action_log
            )));
        }
    }
    let nft_of_log = ActionLog::new(bundle.action_log, provider)
        .nft()
        .call()
        .await
        .map_err(|e| {
            ProvenanceError::ForeignDeployment(format!(
                "{} does not answer as an ActionLog: {e}",
                bundle.action_log
            ))
        })?;
    if nft_of_log != bundle.agent_nft {
        return Err(ProvenanceError::ForeignDeployment(format!(
            "ActionLog {} belongs to AgentNFT {nft_of_log}, the bundle names {}",
            bundle.action_log, bundle.agent_nft
        )));
    }

    // The transaction carries the record hash at its seq, for this token, from this ActionLog.
    let log_index = logged_in(provider, bundle).await?;

    // Who the agent and the owner were at that point.
    let at = (bundle.block_number, log_index);
    let agent = last_before(provider, bundle, AgentNFT::AgentSet::SIGNATURE_HASH, 1, at)
        .await?
        .ok_or(ProvenanceError::NoAgent {
            token: bundle.token_id,
            block: bundle.block_number,
        })?;
    if offline.creator != Some(agent) {
        return Err(ProvenanceError::WrongSigner {
            what: "creation",
            expected: agent,
            actual: offline.creator,
        });
    }
    if offline.record_signer != Some(agent) {
        return Err(ProvenanceError::WrongSigner {
            what: "record",
            expected: agent,
            actual: offline.record_signer,
        });
    }
    let owner = last_before(provider, bundle, AgentNFT::Transfer::SIGNATURE_HASH, 3, at)
        .await?
        .unwrap_or_default();
    let block_time = provider
        .get_block_by_number(bundle.block_number.into())
        .await
        .map_err(rpc("eth_getBlockByNumber"))?
        .map(|b| b.header.timestamp)
        .unwrap_or_default();
    let committed_model_hash = AgentNFT::new(bundle.agent_nft, provider)
        .modelHashOf(bundle.token_id)
        .call()
        .await
        .map_err(|e| ProvenanceError::Rpc {
            what: "AgentNFT.modelHashOf",
            detail: e.to_string(),
        })?;
    Ok(VerifiedCreation {
        chain_id,
        agent_nft: bundle.agent_nft,
        action_log: bundle.action_log,
        deployment_pinned: trusted.is_some(),
        token_id: bundle.token_id,
        content_hash: bundle.content_hash,
        title: title_of(&record.details),
        record_hash: bundle.record_hash,
        seq: bundle.seq,
        agent,
        owner,
        log_tx: bundle.log_tx,
        block_number: bundle.block_number,
        block_time,
        created_ms: record.timestamp_ms,
        model_hash: record.model_hash,
        committed_model_hash,
    })
}

/// The log index of the `ActionsLogged` event in `bundle.log_tx` that carries the bundle's
/// record hash at its seq for its token, emitted by its ActionLog.
async fn logged_in<P: Provider>(
    provider: &P,
    bundle: &ProofBundle,
) -> Result<u64, ProvenanceError> {
    let not_in = |detail: String| ProvenanceError::NotInTransaction {
        tx_hash: bundle.log_tx,
        detail,
    };
    let receipt = provider
        .get_transaction_receipt(bundle.log_tx)
        .await
        .map_err(rpc("eth_getTransactionReceipt"))?
        .ok_or_else(|| not_in("the chain has no such transaction".into()))?;
    if !receipt.status() {
        return Err(not_in("it reverted".into()));
    }
    if receipt.block_number != Some(bundle.block_number) {
        return Err(not_in(format!(
            "it is in block {:?}, the bundle says {}",
            receipt.block_number, bundle.block_number
        )));
    }
    let mut foreign = None;
    let mut other_token = None;
    for log in receipt.inner.logs() {
        let Some((token, TokenEvent::ActionsLogged(e))) = decode_log(log) else {
            continue;
        };
        if log.address() != bundle.action_log {
            foreign = Some(log.address());
            continue;
        }
        if token != bundle.token_id {
            other_token = Some(token);
            continue;
        }
        let at = bundle
            .seq
            .checked_sub(e.first_seq)
            .and_then(|i| e.action_hashes.get(i as usize));
        return match at {
            Some(h) if *h == bundle.record_hash => Ok(log.log_index.unwrap_or_default()),
            Some(h) => Err(not_in(format!("it logs {h} at seq {}", bundle.seq))),
            None => Err(not_in(format!(
                "it logs seq {} to {} of the token, not {}",
                e.first_seq,
                e.first_seq + e.action_hashes.len() as u64 - 1,
                bundle.seq
            ))),
        };
    }
    if let Some(token) = other_token {
        return Err(ProvenanceError::WrongToken {
            bundle: bundle.token_id,
            found: format!("transaction {} logs token {token}'s actions", bundle.log_tx),
        });
    }
    if let Some(emitter) = foreign {
        return Err(ProvenanceError::ForeignDeployment(format!(
            "the ActionsLogged event of {} was emitted by {emitter}, not by {}",
            bundle.log_tx, bundle.action_log
        )));
    }
    Err(not_in("it logs no actions".into()))
}

/// The address in the last event `signature` of the bundle's token (indexed as topic
/// `token_topic`) emitted by its AgentNFT before position `at` (block, log index): the agent of
/// an `AgentSet`, the new owner of a `Transfer`.
async fn last_before<P: Provider>(
    provider: &P,
    bundle: &ProofBundle,
    signature: B256,
    token_topic: usize,
    at: (u64, u64),
) -> Result<Option<Address>, ProvenanceError> {
    let filter = Filter::new()
        .address(bundle.agent_nft)
        .event_signature(signature)
        .from_block(0)
        .to_block(at.0);
    let token = B256::from(bundle.token_id);
    let filter = match token_topic {
        1 => filter.topic1(token),
        _ => filter.topic3(token),
    };
    let logs = provider
        .get_logs(&filter)
        .await
        .map_err(rpc("eth_getLogs"))?;
    let mut last = None;
    for log in &logs {
        let position = (
            log.block_number.unwrap_or(u64::MAX),
            log.log_index.unwrap_or(u64::MAX),
        );
        if position >= at {
            continue;
        }
        let address = match decode_log(log) {
            Some((t, TokenEvent::AgentSet(a))) if t == bundle.token_id => a.agent,
            Some((t, TokenEvent::Transfer(tr))) if t == bundle.token_id => tr.to,
            _ => continue,
        };
        if last.as_ref().is_none_or(|(p, _)| *p < position) {
            last = Some((position, address));
        }
    }
    Ok(last.map(|(_, a)| a))
}

/// The `title` a creative record's details give, if any.
fn title_of(details: &serde_json::Value) -> Option<String> {
    details["title"].as_str().map(str::to_owned)
}

/// One of a token's creative pieces, as [`creations`] lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CreativePiece {
    /// Position in the token's log.
    pub seq: u64,
    /// When the record was made (ms since the Unix epoch).
    pub timestamp_ms: u64,
    /// The title, if the record gives one.
    pub title: Option<String>,
    /// `keccak256` of the piece.
    pub content_hash: B256,
    /// Block of the `logActions` transaction.
    pub block_number: u64,
    /// The `logActions` transaction.
    pub log_tx: B256,
    /// The piece (the output exactly as signed).
    pub content: String,
    /// Whether the audit found nothing wrong with this action.
    pub audited_ok: bool,
    /// Its proof bundle; `None` when there is none to give (see `problem`).
    #[serde(skip)]
    pub bundle: Option<ProofBundle>,
    /// Why there is no bundle, or what the audit found.
    pub problem: Option<String>,
}

/// The creative pieces of an audited token, in log order, each with its proof bundle (the
/// signed record is fetched again from `records`: the audit keeps the record, not its
/// signature). Pieces the audit found something wrong with are listed without a bundle.
pub async fn creations(
    report: &AuditReport,
    records: &dyn BlobStore,
) -> Result<Vec<CreativePiece>, ProvenanceError> {
    let contracts = Contracts {
        chain_id: report.chain_id,
        agent_nft: report.agent_nft,
        action_log: report.action_log,
    };
    let mut pieces = Vec::new();
    for a in &report.actions {
        let Some(r) = a.record.as_ref().filter(|r| r.kind == ActionKind::Creative) else {
            continue;
        };
        let mut piece = CreativePiece {
            seq: a.seq,
            timestamp_ms: r.timestamp_ms,
            title: title_of(&r.details),
            content_hash: r.output_hash,
            block_number: a.block_number,
            log_tx: a.log_tx,
            content: r.output.clone(),
            audited_ok: a.ok,
            bundle: None,
            problem: None,
        };
        if !a.ok {
            let found: Vec<String> = report
                .findings_for(a.seq)
                .map(ToString::to_string)
                .collect();
            piece.problem = Some(found.join("; "));
        } else {
            let bundle = match records.fetch_record(a.record_hash).await {
                Ok(signed) => ProofBundle::new(contracts, &signed, a.log_tx, a.block_number),
                Err(e) => Err(e.into()),
            };
            match bundle {
                Ok(b) => piece.bundle = Some(b),
                Err(e) => piece.problem = Some(e.to_string()),
            }
        }
        pieces.push(piece);
    }
    Ok(pieces)
}

/// The file name an exported piece is written under in its token's directory.
pub fn piece_file_name(seq: u64) -> String {
    format!("piece-{seq}.txt")
}

/// The file name of an exported piece's proof bundle.
pub fn bundle_file_name(seq: u64) -> String {
    format!("piece-{seq}.proof.json")
}

/// Writes `piece` into `dir` as [`piece_file_name`] (the exact signed bytes) and, when it has
/// one, its bundle as [`bundle_file_name`]. Returns the paths written.
pub fn write_piece(dir: &Path, piece: &CreativePiece) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = vec![dir.join(piece_file_name(piece.seq))];
    std::fs::write(&written[0], piece.content.as_bytes())?;
    if let Some(bundle) = &piece.bundle {
        let path = dir.join(bundle_file_name(piece.seq));
        std::fs::write(&path, bundle.to_json())?;
        written.push(path);
    }
    Ok(written)
}

/// The exported pieces in `dir` ([`write_piece`]) of the audited token's creative actions,
/// by seq: only files whose bytes are the logged piece (same content hash) are listed.
pub fn exported_pieces(dir: &Path, report: &AuditReport) -> BTreeMap<u64, PathBuf> {
    report
        .actions
        .iter()
        .filter_map(|a| {
            let r = a
                .record
                .as_ref()
                .filter(|r| r.kind == ActionKind::Creative)?;
            let path = dir.join(piece_file_name(a.seq));
            let bytes = std::fs::read(&path).ok()?;
            (content_hash(&bytes) == r.output_hash).then_some((a.seq, path))
        })
        .collect()
}

/// A record found by [`find_by_content`], and what verifying it established.
#[derive(Debug)]
pub struct Found {
    /// The record's hash.
    pub record_hash: B256,
    /// Whether the content asked for is the piece's text alone (the `text` field of the signed
    /// output, which also holds the title) rather than the whole signed output.
    pub text_only: bool,
    /// The verified creation (of the whole signed output), or why it did not verify.
    pub verdict: Result<VerifiedCreation, ProvenanceError>,
}

/// Looks up the pieces whose content hash is `content` (of the whole signed output, or of the
/// piece's text alone, [`piece_text`]): the records `records` lists for it
/// ([`BlobStore::records_by_content`]) that belong to `contracts`, the indexed `ActionsLogged`
/// event carrying each (run [`Indexer::sync`](crate::indexer::Indexer::sync) first), and each
/// verified as a bundle ([`verify_bundle`], with `contracts` trusted). An empty list: nothing
/// known has this content hash.
pub async fn find_by_content<P: Provider>(
    provider: &P,
    db: &Db,
    records: &dyn BlobStore,
    contracts: &Contracts,
    content: B256,
) -> Result<Vec<Found>, ProvenanceError> {
    let mut found = Vec::new();
    for record_hash in records.records_by_content(content).await? {
        let signed = match records.fetch_record(record_hash).await {
            Ok(s) => s,
            // Listed but gone or damaged: the index is a hint, not a proof.
            Err(e) => {
                tracing::debug!(%record_hash, error = %e, "a listed record is not available");
                continue;
            }
        };
        let r = signed.record();
        // The text alone is bound too: it is part of the output the agent signed.
        let text_only = r.output_hash != content
            && piece_text(&r.output).is_some_and(|t| content_hash(t.as_bytes()) == content);
        if (r.output_hash != content && !text_only)
            || r.chain_id != contracts.chain_id
            || r.action_log != contracts.action_log
        {
            continue;
        }
        let verdict = match logged_event(db, contracts, &signed).await? {
            None => Err(ProvenanceError::NotLogged(record_hash)),
            Some((tx, block)) => match ProofBundle::new(*contracts, &signed, tx, block) {
                Ok(bundle) => {
                    verify_bundle(provider, &bundle, r.output_hash, Some(contracts)).await
                }
                Err(e) => Err(e),
            },
        };
        found.push(Found {
            record_hash,
            text_only,
            verdict,
        });
    }
    Ok(found)
}

/// The (transaction, block) of the indexed `ActionsLogged` event carrying `signed`'s hash at
/// its seq.
async fn logged_event(
    db: &Db,
    contracts: &Contracts,
    signed: &SignedRecord,
) -> Result<Option<(B256, u64)>, ProvenanceError> {
    let r = signed.record();
    let events = db
        .chain_events_for_token(contracts.chain_id, contracts.action_log, r.token_id)
        .await?;
    Ok(events.iter().find_map(|e| {
        let Some(TokenEvent::ActionsLogged(l)) = TokenEvent::from_indexed(&e.kind, &e.payload)
        else {
            return None;
        };
        let at = r.seq.checked_sub(l.first_seq)?;
        (l.action_hashes.get(at as usize) == Some(&signed.record_hash()))
            .then_some((e.tx_hash, e.block_number))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::testing::draft;
    use crate::record::{ActionRecord, LogId};
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;
    use serde_json::json;

    const NFT: Address = Address::repeat_byte(0x11);
    const LOG: Address = Address::repeat_byte(0xaa);

    fn piece(agent: &PrivateKeySigner, output: &str) -> SignedRecord {
        let token = U256::from(7);
        let hash = content_hash(output.as_bytes());
        let sig = agent
            .sign_hash_sync(&creation_digest(31337, NFT, token, hash))
            .unwrap();
        let log = LogId {
            chain_id: 31337,
            action_log: LOG,
            token_id: token,
        };
        let draft = draft(
            output,
            json!({"title": "Tides", "content_hash": hash, "creator_signature": sig}),
        );
        ActionRecord::new(&log, 2, B256::repeat_byte(5), draft, 9)
            .sign(agent)
            .unwrap()
    }

    fn contracts() -> Contracts {
        Contracts {
            chain_id: 31337,
            agent_nft: NFT,
            action_log: LOG,
        }
    }

    #[test]
    fn creation_signature_binds_chain_contract_token_and_content() {
        let agent = PrivateKeySigner::random();
        let token = U256::from(7);
        let hash = content_hash(b"a poem");
        let sig = agent
            .sign_hash_sync(&creation_digest(31337, NFT, token, hash))
            .unwrap();
        assert_eq!(
            creation_signer(31337, NFT, token, hash, &sig).unwrap(),
            agent.address()
        );
        for (chain, contract, tok, h) in [
            (1, NFT, token, hash),
            (31337, Address::repeat_byte(0x22), token, hash),
            (31337, NFT, U256::from(8), hash),
            (31337, NFT, token, content_hash(b"another poem")),
        ] {
            assert_ne!(
                creation_signer(chain, contract, tok, h, &sig).unwrap(),
                agent.address()
            );
        }
    }

    #[test]
    fn a_bundle_round_trips_and_checks_offline() {
        let agent = PrivateKeySigner::random();
        let signed = piece(&agent, "{\"title\":\"Tides\",\"text\":\"waves\"}");
        let bundle = ProofBundle::new(contracts(), &signed, B256::repeat_byte(9), 12).unwrap();
        let json = bundle.to_json();
        let back = ProofBundle::from_json(&json).unwrap();
        assert_eq!(back, bundle);
        assert!(String::from_utf8_lossy(&json).contains("\"token_id\": \"7\""));
        let checked = back.check_offline(signed.record().output_hash).unwrap();
        assert_eq!(checked.signed, signed);
        assert_eq!(checked.creator, Some(agent.address()));
        assert_eq!(checked.record_signer, Some(agent.address()));
    }

    #[test]
    fn each_offline_alteration_has_its_own_reason() {
        let agent = PrivateKeySigner::random();
        let signed = piece(&agent, "{\"title\":\"Tides\",\"text\":\"waves\"}");
        let bundle = ProofBundle::new(contracts(), &signed, B256::repeat_byte(9), 12).unwrap();
        let content = signed.record().output_hash;

        let edited = content_hash(b"{\"title\":\"Tides\",\"text\":\"wave\"}");
        assert!(matches!(
            bundle.check_offline(edited),
            Err(ProvenanceError::ContentAltered { .. })
        ));
        let mut b = bundle.clone();
        b.record["record"]["timestamp_ms"] = json!(10);
        assert!(matches!(
            b.check_offline(content),
            Err(ProvenanceError::RecordAltered(_))
        ));
        let mut b = bundle.clone();
        b.record["record"]["output"] = json!("forged");
        assert!(matches!(
            b.check_offline(content),
            Err(ProvenanceError::RecordAltered(_))
        ));
        let mut b = bundle.clone();
        b.token_id = U256::from(8);
        assert!(matches!(
            b.check_offline(content),
            Err(ProvenanceError::WrongToken { .. })
        ));
        let mut b = bundle.clone();
        b.chain_id = 1;
        assert!(matches!(
            b.check_offline(content),
            Err(ProvenanceError::WrongChain { .. })
        ));
        let mut b = bundle.clone();
        b.action_log = Address::repeat_byte(0xbb);
        assert!(matches!(
            b.check_offline(content),
            Err(ProvenanceError::ForeignDeployment(_))
        ));
        // Another key's signature over the same creation recovers someone else.
        let intruder = PrivateKeySigner::random();
        let mut b = bundle.clone();
        b.creator_signature = intruder
            .sign_hash_sync(&creation_digest(31337, NFT, U256::from(7), content))
            .unwrap()
            .as_bytes()
            .to_vec()
            .into();
        assert_eq!(
            b.check_offline(content).unwrap().creator,
            Some(intruder.address())
        );
        let mut b = bundle.clone();
        b.creator_signature = vec![0u8; 10].into();
        assert_eq!(b.check_offline(content).unwrap().creator, None);
        let mut b = bundle.clone();
        b.format = "inft/v2/proof-bundle".into();
        assert!(matches!(
            ProofBundle::from_json(&b.to_json()),
            Err(ProvenanceError::Format(_))
        ));
    }

    #[test]
    fn a_record_without_a_creation_signature_has_no_bundle() {
        let agent = PrivateKeySigner::random();
        let mut record = piece(&agent, "x").into_record();
        record.details = json!({"title": "no signature"});
        let signed = record.sign(&agent).unwrap();
        assert!(matches!(
            ProofBundle::new(contracts(), &signed, B256::ZERO, 1),
            Err(ProvenanceError::NotCreative { .. })
        ));
    }
}
