//! Receiver-verified transfers: the offer, the receiver's checks, and its acceptance.
//!
//! The offer and the acceptance travel as JSON files, not through an HTTP endpoint: neither
//! party has to be online while the other works, and neither file holds a secret (hashes, URIs,
//! keys sealed to the receiver, addresses, a signature), so any channel will do. Both parties
//! must reach the same blob store (the shared store of `inft dev`, or an HTTP gateway).

use std::io::Write;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use inft_contracts::{ProofMode, Rotation, proof_domain};
use sealing::{SealOptions, SealingSecret};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{
    HashingWriter, SignedRotation, TransferError, WireEntry, check_committed_model, fresh_nonce,
    new_agent_entry, reencrypt_data, verifier_of,
};
use crate::blobstore::BlobStore;
use crate::memory::AgentMemory;
use crate::pipeline::{EntryRef, PipelineError, TokenRef, decrypt_entry, open_keys};
use crate::token::AgentNft;
use inft_types::config::{AgentConfig, EntryKind};

/// A proposed rotation of a token to a receiver: everything the proof binds except the new agent
/// entry, which the receiver (or the oracle) adds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// Chain id.
    pub chain_id: u64,
    /// The AgentNFT.
    pub nft: Address,
    /// The token.
    pub token_id: U256,
    /// The current owner.
    pub from: Address,
    /// The receiver.
    pub to: Address,
    /// The token's data hashes when the offer was made.
    pub old_data_hashes: Vec<B256>,
    /// The new model entry.
    pub model: WireEntry,
    /// The new config entry.
    pub config: WireEntry,
    /// The new memory entry, for a token with memory (absent from offers of tokens without,
    /// and from offers written before memory existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<WireEntry>,
    /// The receiver's published sealing key the entries are sealed to (for a sale, the key the
    /// buyer committed at the buy).
    pub sealing_key: B256,
    /// The sale this rotation completes, if it is one: its proof binds the market and price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale: Option<SaleTerms>,
    /// The proof signer's nonce (fresh per offer).
    pub nonce: U256,
    /// Last valid block timestamp.
    pub deadline: U256,
}

/// What a sale's rotation proof binds beyond a transfer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleTerms {
    /// The AgentMarket that completes the sale.
    pub market: Address,
    /// The listed price, in wei.
    pub price: U256,
}

impl Offer {
    /// The rotation this offer proposes, completed with the new agent entry. The entries are
    /// in on-chain order: model, agent key, config, then memory if the token has one.
    pub fn rotation(&self, agent: &WireEntry, new_agent: Address) -> Rotation {
        let mut entries = vec![&self.model, agent, &self.config];
        entries.extend(self.memory.as_ref());
        Rotation {
            nft: self.nft,
            token_id: self.token_id,
            new_token_id: self.token_id,
            from: self.from,
            to: self.to,
            old_data_hashes: self.old_data_hashes.clone(),
            new_data_hashes: entries.iter().map(|e| e.data_hash).collect(),
            sealed_keys: entries.iter().map(|e| e.sealed_key.clone()).collect(),
            uris: entries.iter().map(|e| e.uri.clone()).collect(),
            sealing_key: self.sealing_key,
            new_agent,
            market: self.sale.map_or(Address::ZERO, |s| s.market),
            price: self.sale.map_or(U256::ZERO, |s| s.price),
            nonce: self.nonce,
            deadline: self.deadline,
        }
    }

    /// Checks that the offer is for `nft`'s chain and contract and still matches the token: the
    /// same owner, the same data, the receiver's currently published key, and not expired.
    pub async fn check_current(&self, nft: &AgentNft, now: u64) -> Result<(), TransferError> {
        if self.chain_id != nft.chain_id() || self.nft != nft.address() {
            return Err(TransferError::Mismatch(
                "the offer is for another chain or contract",
            ));
        }
        if self.deadline < U256::from(now) {
            return Err(TransferError::Mismatch("the offer's deadline has passed"));
        }
        let state = nft.state(self.token_id).await?;
        if state.owner != self.from || state.data_hashes != self.old_data_hashes {
            return Err(TransferError::Mismatch(
                "the token's owner or data changed since the offer",
            ));
        }
        // Every entry rotates: an offer that drops (or invents) the memory entry cannot pass.
        let has_memory = self.old_data_hashes.len() > EntryKind::Memory.index();
        if has_memory != self.memory.is_some() {
            return Err(TransferError::Mismatch(
                "the offer does not rotate exactly the token's entries",
            ));
        }
        let published = nft
            .sealing_key_of(self.to)
            .await?
            .ok_or(TransferError::NoSealingKey(self.to))?;
        if B256::from(*published.as_bytes()) != self.sealing_key {
            return Err(TransferError::Mismatch(
                "the receiver's published sealing key changed since the offer",
            ));
        }
        Ok(())
    }
}

/// Sender, step 1: re-encrypts the model, config and memory (if any) of `token_id` (owned by the
/// holder of `secret`) for `to`'s published sealing key, and proposes the rotation.
pub async fn make_offer(
    nft: &AgentNft,
    store: &dyn BlobStore,
    token_id: U256,
    secret: &SealingSecret,
    to: Address,
    deadline: u64,
    opts: &SealOptions,
) -> Result<Offer, TransferError> {
    let state = nft.state(token_id).await?;
    if to == state.owner || to == Address::ZERO {
        return Err(TransferError::Mismatch(
            "the receiver must be another account",
        ));
    }
    let recipient = nft
        .sealing_key_of(to)
        .await?
        .ok_or(TransferError::NoSealingKey(to))?;
    let entries = nft.entries_for(token_id, state.owner).await?;
    let token = nft.token_ref(token_id);
    let keys = open_keys(&entries, secret, &token)?;
    let data = reencrypt_data(store, &entries, keys, &recipient, &token, opts).await?;
    // Said here, before the receiver spends a download on it: the token's model is not the one
    // it committed to (its owner replaced it with `updateData`), so no receiver will accept.
    check_committed_model(nft, token_id, data.model_sha256).await?;
    Ok(Offer {
        chain_id: nft.chain_id(),
        nft: nft.address(),
        token_id,
        from: state.owner,
        to,
        old_data_hashes: state.data_hashes,
        model: data.model,
        config: data.config,
        memory: data.memory,
        sealing_key: B256::from(*recipient.as_bytes()),
        sale: None,
        nonce: fresh_nonce(),
        deadline: U256::from(deadline),
    })
}

/// Receiver, step 2: checks the offer against the chain, checks that each new sealed key opens
/// its blob, that every chunk decrypts and matches the commitment, that the model is the one
/// the config names and the one the token committed to at mint (its plaintext SHA-256 on
/// chain), and that the memory (if any) is a memory document; then makes and seals a
/// new agent key (the sender never learns it), and signs the acceptance. `signer` is the
/// receiver's wallet, `secret` its sealing secret; `now` is the chain's time.
pub async fn accept_offer(
    nft: &AgentNft,
    store: &dyn BlobStore,
    offer: &Offer,
    signer: &PrivateKeySigner,
    secret: &SealingSecret,
    now: u64,
    opts: &SealOptions,
) -> Result<SignedRotation, TransferError> {
    if offer.to != signer.address() {
        return Err(TransferError::Mismatch("the offer is for another receiver"));
    }
    if offer.sealing_key != B256::from(*secret.public_key().as_bytes()) {
        return Err(TransferError::Mismatch(
            "the offer is sealed to another key",
        ));
    }
    offer.check_current(nft, now).await?;
    let token = nft.token_ref(offer.token_id);
    // The config must open and parse, and the model must be the weights the config names: an
    // offer cannot pass off other data (e.g. entries swapped) as this agent.
    let config = Zeroizing::new(
        open_entry(
            store,
            EntryKind::Config,
            &offer.config.to_entry()?,
            secret,
            &token,
            opts,
            Vec::new(),
        )
        .await?,
    );
    let config = AgentConfig::from_json(&config).map_err(PipelineError::from)?;
    let model_sha256 = open_entry(
        store,
        EntryKind::Model,
        &offer.model.to_entry()?,
        secret,
        &token,
        opts,
        HashingWriter::new(std::io::sink()),
    )
    .await?
    .finish()
    .0;
    config
        .check_model(&hex::encode(model_sha256))
        .map_err(PipelineError::from)?;
    // Self-consistent is not enough: a seller could re-encrypt a cheaper model with a config
    // naming it. The model must be the one this token committed to at mint.
    check_committed_model(nft, offer.token_id, model_sha256).await?;
    if let Some(memory) = &offer.memory {
        let bytes = Zeroizing::new(
            open_entry(
                store,
                EntryKind::Memory,
                &memory.to_entry()?,
                secret,
                &token,
                opts,
                Vec::new(),
            )
            .await?,
        );
        AgentMemory::from_json(&bytes).map_err(PipelineError::from)?;
    }
    let (agent_key, new_agent) = new_agent_entry(store, &secret.public_key(), &token, opts).await?;
    let rotation = offer.rotation(&agent_key, new_agent);
    let domain = proof_domain(offer.chain_id, verifier_of(nft).await?);
    let signature = signer
        .sign_hash_sync(&rotation.signing_hash(ProofMode::Receiver, &domain))
        .map_err(|e| TransferError::Sign(e.to_string()))?;
    Ok(SignedRotation {
        mode: ProofMode::Receiver,
        agent_key,
        new_agent,
        signature: Bytes::from(signature.as_bytes().to_vec()),
    })
}

/// Opens `entry`'s sealed key with `secret` and decrypts its whole blob into `sink` (every
/// chunk checked against the commitment), returning the sink.
async fn open_entry<W: Write + Send + 'static>(
    store: &dyn BlobStore,
    kind: EntryKind,
    entry: &EntryRef,
    secret: &SealingSecret,
    token: &TokenRef,
    opts: &SealOptions,
    sink: W,
) -> Result<W, TransferError> {
    let key = entry
        .sealed_key
        .as_ref()
        .ok_or(PipelineError::MissingKey { entry: kind.name() })?
        .open(secret, &token.key_context(entry.data_hash))
        .map_err(|source| PipelineError::Key {
            entry: kind.name(),
            source,
        })?;
    Ok(decrypt_entry(store, kind, entry, key, opts, sink).await?)
}
