//! The agent lifecycle as users see it: mint an agent (here), and open one to run it
//! (`inft_runtime::open_agent`, which loads the model and so lives with the engine).
//!
//! These compose the pieces (token client, sealing pipeline, blob store) in the order that keeps
//! secrets safe: the access check comes before any fetch or decryption, and keys are sealed to
//! the token id before the token exists (ids are known in advance).

use std::io::Read;

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use sealing::{SealOptions, SealingPublicKey};

use crate::blobstore::BlobStore;
use crate::memory::AgentMemory;
use crate::pipeline::{EntryRef, PipelineError, seal_agent};
use crate::token::{AgentNft, Shares, TokenError};
use inft_types::config::AgentConfig;

/// Why a lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// The chain refused or could not answer.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Sealing or unsealing failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The unsealed agent key is not the token's registered agent.
    #[error("the sealed agent key is {sealed}, but the token's agent is {registered}")]
    AgentMismatch {
        /// Address of the unsealed key.
        sealed: Address,
        /// Address registered on chain.
        registered: Address,
    },
    /// The owner paused the agent.
    #[error("token {0} is paused by its owner")]
    Paused(U256),
    /// The token's model is not the one it committed to at mint.
    #[error("the token's model is {actual}, but it committed to model {committed} at mint")]
    ModelNotCommitted {
        /// SHA-256 committed on chain.
        committed: B256,
        /// SHA-256 of the unsealed model.
        actual: B256,
    },
    /// The unsealed model could not be loaded (the engine's error is the source).
    #[error("the model failed to load: {0}")]
    ModelLoad(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The config's model hash is not a SHA-256 in hex.
    #[error("the agent config's model_sha256 {0:?} is not 32 bytes of hex")]
    BadModelHash(String),
}

/// A freshly minted agent.
#[derive(Debug, Clone)]
pub struct MintedAgent {
    /// The token id.
    pub token_id: U256,
    /// The mint transaction.
    pub tx_hash: B256,
    /// The agent wallet's address (its key is sealed in the token).
    pub agent: Address,
    /// The data entries as minted.
    pub entries: Vec<EntryRef>,
}

/// What to mint.
pub struct MintRequest<'a> {
    /// The plaintext GGUF model, streamed.
    pub model: Box<dyn Read + Send>,
    /// The agent configuration (its `model_sha256` must be the model's).
    pub config: &'a AgentConfig,
    /// The agent's initial memory (usually empty), sealed as a fourth entry; `None` mints the
    /// classic three entries, and the agent then never keeps notes between runs.
    pub memory: Option<AgentMemory>,
    /// Salt of the token id (`tokenIdFor(minter, salt)`).
    pub salt: u64,
    /// Revenue shares.
    pub shares: Shares,
    /// Sealing options (chunk size, threads).
    pub seal: SealOptions,
}

impl std::fmt::Debug for MintRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintRequest")
            .field("config", &self.config.name)
            .field("salt", &self.salt)
            .field("memory", &self.memory.is_some())
            .finish_non_exhaustive()
    }
}

/// Mints an agent for `owner` (the signer of `nft`'s provider) whose sealing public key is
/// `owner_key`: a fresh agent key, the entries (three, or four with memory) sealed to the owner
/// for the token id the mint will produce, stored, then minted with the agent wallet registered.
///
/// If the mint transaction fails nothing is lost: the blobs are content-addressed and a retry
/// with the same salt seals afresh.
pub async fn mint_agent(
    nft: &AgentNft,
    store: &dyn BlobStore,
    owner: Address,
    owner_key: &SealingPublicKey,
    request: MintRequest<'_>,
) -> Result<MintedAgent, LifecycleError> {
    let model_sha256: B256 = request
        .config
        .model_sha256
        .parse()
        .map_err(|_| LifecycleError::BadModelHash(request.config.model_sha256.clone()))?;
    let agent_key = PrivateKeySigner::random();
    let token_id = nft.token_id_for(owner, request.salt);
    let token = nft.token_ref(token_id);
    let entries = seal_agent(
        store,
        request.model,
        &agent_key,
        request.config,
        request.memory.as_ref(),
        owner_key,
        &token,
        &request.seal,
    )
    .await?;
    let (minted, tx_hash) = nft
        .mint(
            owner,
            request.salt,
            &entries,
            agent_key.address(),
            &request.shares,
            model_sha256,
        )
        .await?;
    debug_assert_eq!(minted, token_id);
    tracing::info!(token = %token_id, agent = %agent_key.address(), tx = %tx_hash, "agent minted");
    Ok(MintedAgent {
        token_id,
        tx_hash,
        agent: agent_key.address(),
        entries,
    })
}
