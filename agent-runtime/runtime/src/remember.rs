//! The owner's end-of-run memory update, shared by `inft run` and `inft serve` so that every
//! agent an owner runs remembers its runs, wherever it is hosted.
//!
//! The strategy's note on the run is appended to the memory the agent opened with, the new memory
//! is sealed to the owner and published with `updateData` (only the owner may: see
//! `agent_runtime::memory`), and the update is logged like any action, carrying the old and new
//! data hashes but never the note.

use agent_runtime::blobstore::BlobStore;
use agent_runtime::error::OutboxError;
use agent_runtime::memory::{
    AgentMemory, MemoryNote, MemoryUpdate, MemoryUpdateError, memory_update_draft, update_memory,
};
use agent_runtime::outbox::Outbox;
use agent_runtime::record::{LogId, SignedRecord};
use agent_runtime::token::{AgentNft, TokenError};
use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use sealing::{SealOptions, SealingPublicKey};

use crate::runner::record_signed;

/// Why the memory update failed. Nothing of the run is lost: its actions are in the outbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RememberError {
    /// Reading the token's current entries failed.
    #[error("reading the token's entries: {0}")]
    Token(#[from] TokenError),
    /// Sealing or publishing the new memory failed.
    #[error("updating the agent's memory: {0}")]
    Update(#[from] MemoryUpdateError),
    /// The update was published, but logging it as an action failed.
    #[error("logging the memory update: {0}")]
    Log(#[from] OutboxError),
}

/// What a run leaves in the memory: the token, the owner's view of it, and where to publish.
pub struct RunMemory<'a> {
    /// The AgentNFT as the owner's wallet (`updateData` is owner-only).
    pub nft: &'a AgentNft,
    /// The owner's address (whose sealed keys the current entries are read with).
    pub owner: Address,
    /// The store the new memory blob goes to.
    pub store: &'a dyn BlobStore,
    /// The owner's sealing public key: the new memory is sealed to it alone.
    pub owner_key: &'a SealingPublicKey,
    /// The token.
    pub token: U256,
    /// The memory the agent opened with.
    pub memory: AgentMemory,
}

/// A memory update done at the end of a run.
#[derive(Debug)]
pub struct Remembered {
    /// The published update.
    pub update: MemoryUpdate,
    /// The action record that logs it.
    pub record: SignedRecord,
}

/// Appends `note` (the strategy's note on the run, see `MemoryNote::new`) to the memory,
/// publishes it and logs the update in `log` through `outbox`, signed by `signer` (the session's
/// key).
pub async fn remember_run(
    log: &LogId,
    signer: &PrivateKeySigner,
    outbox: &Outbox,
    target: RunMemory<'_>,
    note: MemoryNote,
) -> Result<Remembered, RememberError> {
    let RunMemory {
        nft,
        owner,
        store,
        owner_key,
        token,
        mut memory,
    } = target;
    memory.push(note);
    let entries = nft.entries_for(token, owner).await?;
    let update = update_memory(
        nft,
        store,
        owner_key,
        token,
        &entries,
        &memory,
        &SealOptions::default(),
    )
    .await?;
    let (record, _) = record_signed(log, signer, outbox, memory_update_draft(&update)).await?;
    Ok(Remembered { update, record })
}
