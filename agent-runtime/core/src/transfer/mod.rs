//! Transferring an agent token: key rotation, the two proof modes, and settling the transfer.
//!
//! A transfer never hands over the old keys. Every data entry gets a fresh data key and a new
//! blob (re-encrypted as a stream: old blob → decrypt → OS pipe → seal, so no plaintext touches
//! disk and the model is never held whole in memory), the new keys are sealed to the receiver's
//! published X25519 key, and the agent key itself is replaced by one the sender never sees
//! (receiver mode) or that only the oracle saw (oracle mode). `transferWithProof` then swaps the
//! data, the agent wallet and the owner in one transaction and starts a new epoch, which voids
//! every usage authorization.
//!
//! * [`receiver`]: no trusted third party. The sender writes an [`Offer`]; the receiver checks
//!   that its sealed keys open the new blobs, makes the new agent key, and signs the EIP-712
//!   `Acceptance`; the sender submits.
//! * [`oracle`]: a re-encryption service ([`oracle::OracleService`], `inft oracle serve`) that
//!   the sender hands the current data keys to; it re-encrypts, seals to the receiver, makes the
//!   agent key and signs the `Attestation`. The receiver does nothing.
//!
//! Failure safety: nothing of the token's current data is deleted or changed before
//! `transferWithProof` confirms, and the old agent wallet's ETH moves to the new agent only after
//! that (see [`sweep_agent_wallet`]). A failed or abandoned transfer leaves the token, its blobs,
//! keys, agent wallet, grants and funds as they were; the new blobs are merely unreferenced. A
//! refused proof burns no nonce, and a retry makes a new proposal with a fresh nonce.

pub mod market;
pub mod oracle;
pub mod receiver;
pub mod rekey;

use std::io::{Read, Write};

use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use inft_contracts::bindings::{AgentNFT, TransferVerifier};
use inft_contracts::{ProofMode, Rotation};
use sealing::{Commitment, DataKey, SealOptions, SealedKey, SealingPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::blobstore::BlobStore;
use crate::pipeline::{
    EntryRef, PipelineError, TokenRef, decrypt_entry, seal_entry, unseal_agent_key,
};
use crate::token::{AgentNft, TokenError};
use inft_types::config::EntryKind;

pub use receiver::{Offer, SaleTerms, accept_offer, make_offer};

/// Why a transfer step failed. Nothing of the token's current data is touched on any error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// Sealing, unsealing or fetching an entry failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A chain read or write failed (a refused proof is a typed revert inside).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The transaction was mined but reverted.
    #[error("transferWithProof transaction {0} reverted")]
    Reverted(B256),
    /// The offered model is not the model the token committed to at mint.
    #[error(
        "the offered model {offered} is not the model {committed} the token committed to at mint"
    )]
    ModelNotCommitted {
        /// SHA-256 committed on chain.
        committed: B256,
        /// SHA-256 of the offered model.
        offered: B256,
    },
    /// The receiver (or the oracle) has not published an X25519 sealing key.
    #[error("{0} has not published a sealing key")]
    NoSealingKey(Address),
    /// The proposal does not match this party or the chain's current state.
    #[error("the transfer proposal does not match: {0}")]
    Mismatch(&'static str),
    /// The signature on a proof is not by the party that must sign it.
    #[error("the proof is signed by {actual}, not by {expected}")]
    WrongSigner {
        /// Who must sign.
        expected: Address,
        /// Who did.
        actual: Address,
    },
    /// The oracle is not registered in the TransferVerifier.
    #[error("{0} is not a registered re-encryption oracle")]
    NotAnOracle(Address),
    /// Talking to the oracle failed, or it refused the request.
    #[error("oracle: {0}")]
    Oracle(String),
    /// The oracle is at its limits (see `oracle::OracleLimits`); retry later.
    #[error("{0}")]
    Busy(&'static str),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
}

/// One rotated data entry as it travels between the parties.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    /// The new blob's commitment.
    pub data_hash: B256,
    /// The new data key, sealed to the receiver.
    pub sealed_key: Bytes,
    /// Where the new blob is stored.
    pub uri: String,
}

impl WireEntry {
    /// The wire form of a sealed entry.
    pub fn from_entry(entry: &EntryRef) -> Self {
        Self {
            data_hash: B256::from(*entry.data_hash.as_bytes()),
            sealed_key: entry
                .sealed_key
                .as_ref()
                .map_or_else(Bytes::new, |k| Bytes::copy_from_slice(k.as_bytes())),
            uri: entry.uri.clone(),
        }
    }

    fn to_entry(&self) -> Result<EntryRef, TransferError> {
        let sealed_key = SealedKey::from_bytes(&self.sealed_key)
            .map_err(|_| TransferError::Mismatch("a sealed key is malformed"))?;
        Ok(EntryRef {
            data_hash: Commitment::from_bytes(self.data_hash.0),
            sealed_key: Some(sealed_key),
            uri: self.uri.clone(),
        })
    }
}

/// The signer's half of a proof: the new agent-key entry, the new agent wallet, and the EIP-712
/// signature over the whole rotation (the receiver's `Acceptance` or the oracle's `Attestation`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRotation {
    /// How the proof is verified on chain.
    pub mode: ProofMode,
    /// The new agent-key entry, sealed to the receiver.
    pub agent_key: WireEntry,
    /// The new agent wallet.
    pub new_agent: Address,
    /// The EIP-712 signature.
    pub signature: Bytes,
}

/// Re-encrypts one entry under a fresh data key for `recipient`: the old blob is fetched and
/// verified, decrypted on a blocking thread into an OS pipe, and sealed from the pipe's other
/// end. A decryption failure fails the whole step (the new blob is then unused). Returns the
/// new entry and the SHA-256 of the plaintext that passed through.
pub async fn reencrypt_entry(
    store: &dyn BlobStore,
    kind: EntryKind,
    old: &EntryRef,
    old_key: DataKey,
    recipient: &SealingPublicKey,
    token: &TokenRef,
    opts: &SealOptions,
) -> Result<(EntryRef, B256), TransferError> {
    let (reader, writer) = std::io::pipe().map_err(PipelineError::Io)?;
    let reader: Box<dyn Read + Send> = Box::new(reader);
    // Both ends run at once. The sealer reads until end of file, so the writer must be dropped
    // (closing the pipe) as soon as decryption ends, not when both futures are done.
    // The plaintext is hashed on its way through, so a caller can check what it re-encrypted.
    let opener = async {
        decrypt_entry(store, kind, old, old_key, opts, HashingWriter::new(writer))
            .await
            .map(|tee| tee.finish().0)
    };
    let (opened, sealed) = tokio::join!(
        opener,
        seal_entry(store, kind, reader, recipient, token, opts),
    );
    // The opener's verdict comes first: a truncated or unverified plaintext seals cleanly. But a
    // sealer failure (e.g. the store is down) breaks the pipe under the opener: then the
    // sealer's error is the cause.
    match (opened, sealed) {
        (Ok(sha256), sealed) => Ok((sealed?, sha256)),
        (Err(opened), Err(sealed)) if opened.is_broken_pipe() => Err(sealed.into()),
        (Err(opened), _) => Err(opened.into()),
    }
}

/// The data entries a transfer re-encrypts (all but the agent key, which is replaced).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RotatedData {
    pub(crate) model: WireEntry,
    /// SHA-256 of the model's plaintext, as it passed through.
    pub(crate) model_sha256: B256,
    pub(crate) config: WireEntry,
    /// `None` for a token without memory.
    pub(crate) memory: Option<WireEntry>,
}

/// Re-encrypts the model, config and (if the token has one) memory entries of `entries`
/// (opened with `keys`, in [`EntryKind`] order) for `recipient`.
pub(crate) async fn reencrypt_data(
    store: &dyn BlobStore,
    entries: &[EntryRef],
    keys: Vec<Option<DataKey>>,
    recipient: &SealingPublicKey,
    token: &TokenRef,
    opts: &SealOptions,
) -> Result<RotatedData, TransferError> {
    let mut keys = keys.into_iter();
    let (Some(Some(model_key)), Some(_), Some(Some(config_key)), memory_key) =
        (keys.next(), keys.next(), keys.next(), keys.next())
    else {
        return Err(PipelineError::MissingKey {
            entry: EntryKind::Model.name(),
        }
        .into());
    };
    // A memory entry that is there must rotate too: the contract rotates every entry.
    let memory_key = match (entries.len() > EntryKind::Memory.index(), memory_key) {
        (false, _) => None,
        (true, Some(Some(key))) => Some(key),
        (true, _) => {
            return Err(PipelineError::MissingKey {
                entry: EntryKind::Memory.name(),
            }
            .into());
        }
    };
    let rotate = |kind: EntryKind, key: DataKey| {
        reencrypt_entry(
            store,
            kind,
            &entries[kind.index()],
            key,
            recipient,
            token,
            opts,
        )
    };
    let (model, model_sha256) = rotate(EntryKind::Model, model_key).await?;
    let (config, _) = rotate(EntryKind::Config, config_key).await?;
    let memory = match memory_key {
        Some(key) => Some(WireEntry::from_entry(
            &rotate(EntryKind::Memory, key).await?.0,
        )),
        None => None,
    };
    Ok(RotatedData {
        model: WireEntry::from_entry(&model),
        model_sha256,
        config: WireEntry::from_entry(&config),
        memory,
    })
}

/// A writer that hashes (SHA-256) what it passes on to `inner`: a model is checked on its way
/// through, without being kept.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
        }
    }

    /// The digest of everything written, and the inner writer.
    pub(crate) fn finish(self) -> (B256, W) {
        (
            B256::from(<[u8; 32]>::from(self.hash.finalize())),
            self.inner,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Checks that a model whose plaintext hashes to `model_sha256` is the one `token_id`
/// committed to at mint (`modelHashOf`).
pub(crate) async fn check_committed_model(
    nft: &AgentNft,
    token_id: U256,
    model_sha256: B256,
) -> Result<(), TransferError> {
    let committed = nft.model_hash_of(token_id).await?;
    if committed != model_sha256 {
        return Err(TransferError::ModelNotCommitted {
            committed,
            offered: model_sha256,
        });
    }
    Ok(())
}

/// Makes a new agent key and seals it, as the token's agent-key entry, to `recipient`.
pub(crate) async fn new_agent_entry(
    store: &dyn BlobStore,
    recipient: &SealingPublicKey,
    token: &TokenRef,
    opts: &SealOptions,
) -> Result<(WireEntry, Address), TransferError> {
    let agent = PrivateKeySigner::random();
    let key_bytes: Zeroizing<Vec<u8>> = Zeroizing::new(agent.credential().to_bytes().to_vec());
    let entry = seal_entry(
        store,
        EntryKind::AgentKey,
        Box::new(std::io::Cursor::new(key_bytes)),
        recipient,
        token,
        opts,
    )
    .await?;
    Ok((WireEntry::from_entry(&entry), agent.address()))
}

/// A fresh proof nonce. The verifier keeps a per-signer bitmap, so any unused value works once;
/// a random one needs no coordination between offers.
pub(crate) fn fresh_nonce() -> U256 {
    let mut bytes = [0u8; 32];
    rand08::RngCore::fill_bytes(&mut rand08::rngs::OsRng, &mut bytes);
    U256::from_be_bytes(bytes)
}

/// The EIP-712 domain of the token's TransferVerifier.
pub(crate) async fn verifier_of(nft: &AgentNft) -> Result<Address, TransferError> {
    let contract = AgentNFT::new(nft.address(), nft.provider());
    Ok(contract.verifier().call().await.map_err(TokenError::from)?)
}

/// Whether `account` is a registered re-encryption oracle.
pub(crate) async fn is_oracle(nft: &AgentNft, account: Address) -> Result<bool, TransferError> {
    let verifier = TransferVerifier::new(verifier_of(nft).await?, nft.provider());
    Ok(verifier
        .isOracle(account)
        .call()
        .await
        .map_err(TokenError::from)?)
}

/// A confirmed transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transferred {
    /// The `transferWithProof` transaction.
    pub tx_hash: B256,
    /// Its gas.
    pub gas_used: u64,
}

/// Simulates `call` (a refusal surfaces as a typed revert and costs no gas), then sends it and
/// waits for its receipt, which the caller checks for success.
pub(crate) async fn simulate_and_send<P: Provider, C: alloy::sol_types::SolCall>(
    call: alloy::contract::CallBuilder<P, std::marker::PhantomData<C>>,
) -> Result<alloy::rpc::types::TransactionReceipt, TransferError> {
    call.call_raw().await.map_err(TokenError::from)?;
    Ok(call
        .send()
        .await
        .map_err(TokenError::from)?
        .get_receipt()
        .await
        .map_err(|e| TokenError::Rpc(e.to_string()))?)
}

/// Submits `transferWithProof` for `offer` with `signed` through `nft`'s wallet (the current
/// owner's). The call is simulated first, so a refused proof costs no gas and surfaces as a typed
/// revert; on any error nothing changed on chain.
pub async fn submit_transfer(
    nft: &AgentNft,
    offer: &Offer,
    signed: &SignedRotation,
) -> Result<Transferred, TransferError> {
    let rotation: Rotation = offer.rotation(&signed.agent_key, signed.new_agent);
    let contract = AgentNFT::new(nft.address(), nft.provider());
    let call = contract.transferWithProof(
        offer.to,
        offer.token_id,
        rotation.data_entries(),
        signed.new_agent,
        rotation.proof(signed.mode, signed.signature.clone()),
    );
    let receipt = simulate_and_send(call).await?;
    if !receipt.status() {
        return Err(TransferError::Reverted(receipt.transaction_hash));
    }
    tracing::info!(token = %offer.token_id, to = %offer.to, tx = %receipt.transaction_hash, "agent transferred");
    Ok(Transferred {
        tx_hash: receipt.transaction_hash,
        gas_used: receipt.gas_used,
    })
}

/// A completed transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed {
    /// The confirmed `transferWithProof`.
    pub transfer: Transferred,
    /// ETH moved from the old agent wallet to the new one, and that transaction; `None` if the
    /// old wallet held less than the gas, or the sweep failed (logged; the transfer stands).
    pub swept: Option<(U256, B256)>,
}

/// Sender, last step of either mode: unseals the old agent key (the sender must hold it, and
/// needs it for the sweep), submits the transfer, and once it is confirmed moves the old agent
/// wallet's ETH to the new agent.
pub async fn complete_transfer(
    nft: &AgentNft,
    store: &dyn BlobStore,
    secret: &sealing::SealingSecret,
    offer: &Offer,
    signed: &SignedRotation,
    opts: &SealOptions,
) -> Result<Completed, TransferError> {
    let token = nft.token_ref(offer.token_id);
    let entries = nft.entries_for(offer.token_id, offer.from).await?;
    let old_agent = unseal_agent_key(store, &entries, secret, &token, opts).await?;
    let transfer = submit_transfer(nft, offer, signed).await?;
    let swept = match sweep_agent_wallet(nft.provider(), &old_agent, signed.new_agent).await {
        Ok(swept) => swept,
        Err(e) => {
            tracing::warn!(error = %e, old_agent = %old_agent.address(), "the transfer is done, but sweeping the old agent wallet failed");
            None
        }
    };
    Ok(Completed { transfer, swept })
}

/// Moves the old agent wallet's ETH to the new agent after a confirmed transfer: balance minus
/// the gas of a plain transfer, signed by the old agent key. Returns the amount moved and the
/// transaction, or `None` if the balance does not cover the gas.
///
/// The agent's token-bound account needs no sweep: its control follows the token. The agent EOA
/// is what pays for logging, so without this sweep its gas money would stay with the old key.
pub async fn sweep_agent_wallet(
    provider: &impl Provider,
    old_agent: &PrivateKeySigner,
    new_agent: Address,
) -> Result<Option<(U256, B256)>, TransferError> {
    const TRANSFER_GAS: u64 = 21_000;
    let rpc = |e: alloy::transports::TransportError| TokenError::Rpc(e.to_string());
    let from = old_agent.address();
    let balance = provider.get_balance(from).await.map_err(rpc)?;
    let gas_price = provider.get_gas_price().await.map_err(rpc)?;
    let fee = U256::from(gas_price) * U256::from(TRANSFER_GAS);
    let Some(value) = balance.checked_sub(fee).filter(|v| !v.is_zero()) else {
        return Ok(None);
    };
    let tx = TransactionRequest::default()
        .with_from(from)
        .with_to(new_agent)
        .with_value(value)
        .with_nonce(provider.get_transaction_count(from).await.map_err(rpc)?)
        .with_chain_id(provider.get_chain_id().await.map_err(rpc)?)
        .with_gas_limit(TRANSFER_GAS)
        .with_gas_price(gas_price);
    let envelope = tx
        .build(&EthereumWallet::from(old_agent.clone()))
        .await
        .map_err(|e| TransferError::Sign(e.to_string()))?;
    let receipt = provider
        .send_tx_envelope(envelope)
        .await
        .map_err(rpc)?
        .get_receipt()
        .await
        .map_err(|e| TokenError::Rpc(e.to_string()))?;
    if !receipt.status() {
        return Err(TransferError::Reverted(receipt.transaction_hash));
    }
    Ok(Some((value, receipt.transaction_hash)))
}

/// Checks that `signed`'s signature over `offer` is by `expected` (for `signed.mode`), so a
/// proof by the wrong party is refused before any gas is spent.
pub async fn check_signer(
    nft: &AgentNft,
    offer: &Offer,
    signed: &SignedRotation,
    expected: Address,
) -> Result<(), TransferError> {
    let domain = inft_contracts::proof_domain(offer.chain_id, verifier_of(nft).await?);
    let hash = offer
        .rotation(&signed.agent_key, signed.new_agent)
        .signing_hash(signed.mode, &domain);
    let signature = alloy::primitives::Signature::try_from(signed.signature.as_ref())
        .map_err(|_| TransferError::Mismatch("the signature is malformed"))?;
    let actual = signature
        .recover_address_from_prehash(&hash)
        .map_err(|_| TransferError::Mismatch("the signature does not recover"))?;
    if actual != expected {
        return Err(TransferError::WrongSigner { expected, actual });
    }
    Ok(())
}
