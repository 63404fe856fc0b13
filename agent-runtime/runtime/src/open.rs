//! Opening an agent to run it: the access check, the sealed entries, and the model loaded by
//! the engine (or shared with agents that already loaded it).
//!
//! The order keeps secrets safe and bad input cheap: ownership or authorization is checked on
//! chain before anything is fetched or decrypted; the small entries are unsealed next
//! ([`unseal_entries`]); the model last. A token shares a loaded model only if its own model entry
//! (the same blob, opened with the same key: [`ModelSource`]) decrypted to that model in this
//! process before; the hash its config merely claims proves nothing. Otherwise the blob is
//! decrypted in parallel straight into a sealed memfd ([`MemModel`]), checked against the config
//! and loaded by llama.cpp (or shared, if a model with the same plaintext hash is loaded).

use std::sync::Arc;

use agent_runtime::blobstore::BlobStore;
use agent_runtime::lifecycle::LifecycleError;
use agent_runtime::memory::AgentMemory;
use agent_runtime::pipeline::{
    EntryRef, PipelineError, TokenRef, UnsealedEntries, blocking, decrypt_entry, unseal_entries,
};
use agent_runtime::token::{Access, AgentNft};
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use inft_engine::{Engine, EngineError, LoadedModel, MemModel, ModelOptions, ModelSource};
use inft_types::config::{AgentConfig, EntryKind};
use sealing::{SealOptions, SealingSecret};

/// How to unseal: decryption settings and how the model is loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnsealOptions {
    /// How llama.cpp loads the model (GPU layers, mmap).
    pub model: ModelOptions,
    /// Decryption threads (and chunk size, ignored when opening).
    pub seal: SealOptions,
}

/// Why unsealing an agent with its model failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnsealError {
    /// Fetching, verifying or decrypting an entry failed, or the config names other weights.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The engine could not load the model.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<UnsealError> for LifecycleError {
    fn from(e: UnsealError) -> Self {
        match e {
            UnsealError::Pipeline(p) => LifecycleError::Pipeline(p),
            UnsealError::Engine(e) => LifecycleError::ModelLoad(Box::new(e)),
        }
    }
}

/// An agent unsealed into memory, ready to run.
pub struct UnsealedAgent {
    /// The shared loaded model.
    pub model: Arc<LoadedModel>,
    /// The agent's key (zeroized on drop by k256); `None` for an authorized user, who is never
    /// given it.
    pub agent_key: Option<PrivateKeySigner>,
    /// The agent's configuration.
    pub config: AgentConfig,
    /// The agent's memory: `None` if the token has no memory entry or the reader holds no key
    /// for it (an authorized user runs without memory).
    pub memory: Option<AgentMemory>,
    /// Whether the model came from the cache (its blob was not fetched or decrypted).
    pub model_was_cached: bool,
}

impl std::fmt::Debug for UnsealedAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsealedAgent")
            .field("model", &self.model.sha256_hex())
            .field("config", &self.config.name)
            .field("cached", &self.model_was_cached)
            .finish_non_exhaustive()
    }
}

/// Unseals a token's agent, model loaded, for the holder of `secret`. See the module docs for
/// the order of checks.
pub async fn unseal_agent(
    store: &dyn BlobStore,
    entries: &[EntryRef],
    secret: &SealingSecret,
    token: &TokenRef,
    options: &UnsealOptions,
) -> Result<UnsealedAgent, UnsealError> {
    let UnsealedEntries {
        agent_key,
        config,
        memory,
        model_entry,
        model_key,
    } = unseal_entries(store, entries, secret, token, &options.seal).await?;
    let engine = Engine::global()?;
    let source = ModelSource::new(&model_entry.data_hash, &model_key);
    let cached = engine
        .cache()
        .get_for(&source, &options.model)
        .filter(|m| config.check_model(&m.sha256_hex()).is_ok());
    if let Some(model) = cached {
        tracing::info!(model = %model.sha256_hex(), "model already loaded: sharing it");
        return Ok(UnsealedAgent {
            model,
            agent_key,
            config,
            memory,
            model_was_cached: true,
        });
    }

    let sink = MemModel::new("inft-model")?;
    let plaintext = decrypt_entry(
        store,
        EntryKind::Model,
        &model_entry,
        model_key,
        &options.seal,
        sink,
    )
    .await?;
    let plaintext = blocking(move || plaintext.finish()).await??;
    engine.cache().remember_source(source, plaintext.sha256());
    config
        .check_model(&hex::encode(plaintext.sha256()))
        .map_err(PipelineError::from)?;
    let model_opts = options.model;
    let model = blocking(move || engine.load(plaintext, &model_opts)).await??;
    Ok(UnsealedAgent {
        model,
        agent_key,
        config,
        memory,
        model_was_cached: false,
    })
}

/// An agent opened for running.
#[derive(Debug)]
pub struct OpenedAgent {
    /// How the account may use the token.
    pub access: Access,
    /// The unsealed agent.
    pub agent: UnsealedAgent,
}

/// Opens token `token_id` for `account` (whose X25519 secret is `secret`) with `scope`:
/// checks ownership or authorization **before** fetching or decrypting anything, then fetches,
/// verifies and unseals. For the owner, the unsealed agent key must be the token's registered
/// agent.
pub async fn open_agent(
    nft: &AgentNft,
    store: &dyn BlobStore,
    account: Address,
    secret: &SealingSecret,
    token_id: U256,
    scope: u8,
    options: &UnsealOptions,
) -> Result<OpenedAgent, LifecycleError> {
    let access = nft.access(token_id, account, scope).await?;
    let state = nft.state(token_id).await?;
    if state.paused {
        return Err(LifecycleError::Paused(token_id));
    }
    let entries = nft.entries_for(token_id, account).await?;
    let committed = nft.model_hash_of(token_id).await?;
    let agent = unseal_agent(store, &entries, secret, &nft.token_ref(token_id), options).await?;
    // The config names its model and unsealing checked that; the chain's commitment is what
    // the token was minted (and sold) as.
    let actual = B256::from(agent.model.sha256());
    if actual != committed {
        return Err(LifecycleError::ModelNotCommitted { committed, actual });
    }
    if let Some(key) = &agent.agent_key
        && key.address() != state.agent
    {
        return Err(LifecycleError::AgentMismatch {
            sealed: key.address(),
            registered: state.agent,
        });
    }
    Ok(OpenedAgent { access, agent })
}
