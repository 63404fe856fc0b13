//! Sealing an agent's data entries for a holder, and unsealing them into memory.
//!
//! Mint and transfer seal each entry with a fresh data key into the blob store and wrap that key
//! for the holder's X25519 public key, bound to the token ([`TokenRef`]). Run does the reverse,
//! in an order chosen so bad input costs as little as possible and plaintext touches no disk:
//!
//! 1. every sealed key is opened first (cheap; a key not sealed to us fails before any fetch);
//! 2. the config, the agent key and the memory (if the token has one and it is sealed to us) are
//!    fetched, verified against their on-chain hashes and decrypted into zeroizing memory;
//! 3. the model entry is handed on with its key ([`UnsealedEntries`]): loading weights is the
//!    engine's work, and only `inft-runtime` links it. It shares a loaded model only if this
//!    token's own model entry (the same blob, opened with the same key) decrypted to it before,
//!    and otherwise decrypts the blob with [`decrypt_entry`] in parallel straight into a sealed
//!    memfd, so plaintext touches no disk.
//!
//! Every fetch is capped: [`MAX_SMALL_ENTRY_LEN`] for the small entries, the store's limit for
//! the model.

use std::io::{Cursor, Read, Write};

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use sealing::{
    Commitment, DataKey, KeyContext, SealOptions, SealedKey, SealingPublicKey, SealingSecret,
};
use zeroize::Zeroizing;

use crate::blobstore::{BlobError, BlobStore};
use crate::memory::{AgentMemory, MemoryError};
use inft_types::config::{AgentConfig, ConfigError, EntryKind};

/// Which token a sealed key is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenRef {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The AgentNFT contract.
    pub nft: Address,
    /// The token id.
    pub token_id: U256,
}

impl TokenRef {
    /// The sealed-key context of this token's entry with commitment `data_hash`.
    pub fn key_context(&self, data_hash: Commitment) -> KeyContext {
        KeyContext {
            chain_id: self.chain_id,
            contract: self.nft.into_array(),
            token_id: self.token_id.to_be_bytes(),
            data_hash,
        }
    }
}

/// One data entry as the chain publishes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRef {
    /// Commitment (Merkle root) of the sealed blob: the on-chain `dataHash`.
    pub data_hash: Commitment,
    /// The entry's data key sealed to the reader: always present for the holder; an authorized
    /// user gets no agent key (it acts with its own wallet, as an executor).
    pub sealed_key: Option<SealedKey>,
    /// Where the blob is stored.
    pub uri: String,
}

/// Why sealing or unsealing an agent failed. Nothing partial is kept: on error every plaintext
/// buffer and memfd is dropped (and zeroized where it holds keys).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The token does not have the entries an agent has: three, or four with memory.
    #[error("an agent token has 3 data entries, or 4 with memory; this one has {actual}")]
    Layout {
        /// Entries the token has.
        actual: usize,
    },
    /// A sealed key does not open with our key for this token (not sealed to us, or for another
    /// token, contract, chain or blob), or a key could not be sealed to the recipient's key.
    #[error("the {entry} key: {source}")]
    Key {
        /// Which entry.
        entry: &'static str,
        /// Why.
        #[source]
        source: sealing::KeyError,
    },
    /// The reader has no sealed key for an entry it needs.
    #[error("no {entry} key is sealed to this account")]
    MissingKey {
        /// Which entry.
        entry: &'static str,
    },
    /// Fetching or verifying a blob failed.
    #[error("fetching the {entry} blob failed: {source}")]
    Blob {
        /// Which entry.
        entry: &'static str,
        /// Why.
        #[source]
        source: BlobError,
    },
    /// Decrypting a blob failed (tampered or wrong key).
    #[error("decrypting the {entry} blob failed: {source}")]
    Open {
        /// Which entry.
        entry: &'static str,
        /// Why.
        #[source]
        source: sealing::OpenError,
    },
    /// Encrypting a blob failed.
    #[error("sealing the {entry} failed: {source}")]
    Seal {
        /// Which entry.
        entry: &'static str,
        /// Why.
        #[source]
        source: sealing::SealError,
    },
    /// The config entry is malformed or names other weights.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The memory entry is malformed or out of bounds.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The agent-key entry is not a valid secp256k1 key.
    #[error("the agent key entry is not a valid secp256k1 private key")]
    AgentKey,
    /// Local I/O (the pipes between sealer, opener and store; files).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

/// A token's entries unsealed into memory, all but the model: its entry and key are handed on
/// so that the caller (which links the engine) decrypts it or shares an already loaded copy.
pub struct UnsealedEntries {
    /// The agent's key (zeroized on drop by k256); `None` for an authorized user, who is never
    /// given it.
    pub agent_key: Option<PrivateKeySigner>,
    /// The agent's configuration.
    pub config: AgentConfig,
    /// The agent's memory: `None` if the token has no memory entry or the reader holds no key
    /// for it (an authorized user runs without memory).
    pub memory: Option<AgentMemory>,
    /// The model's entry as the chain publishes it.
    pub model_entry: EntryRef,
    /// The model entry's data key, opened with the reader's secret.
    pub model_key: DataKey,
}

impl std::fmt::Debug for UnsealedEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsealedEntries")
            .field(
                "agent",
                &self.agent_key.as_ref().map(PrivateKeySigner::address),
            )
            .field("config", &self.config.name)
            .field("memory", &self.memory.as_ref().map(AgentMemory::len))
            .field("model_entry", &self.model_entry.data_hash)
            .finish_non_exhaustive()
    }
}

impl PipelineError {
    /// Whether this is only the other end of a pipe closing (the stage after this one failed
    /// first): the other stage's error is then the cause to report.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        let io = match self {
            Self::Seal {
                source: sealing::SealError::Io(e),
                ..
            }
            | Self::Open {
                source: sealing::OpenError::Io(e),
                ..
            }
            | Self::Io(e) => e,
            _ => return false,
        };
        io.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// Runs `f` on tokio's blocking pool (decryption, hashing, model loading), a panic or
/// cancellation reported as [`PipelineError::Task`].
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PipelineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PipelineError::Task(e.to_string()))
}

/// Seals `plaintext` with a fresh data key into `store` and wraps the key for `recipient`,
/// bound to `token`. The sealer streams the ciphertext through a pipe straight into the store,
/// which writes it once (no intermediate file) and computes the commitment on the way; the two
/// commitments must agree.
pub async fn seal_entry(
    store: &dyn BlobStore,
    entry: EntryKind,
    plaintext: Box<dyn Read + Send>,
    recipient: &SealingPublicKey,
    token: &TokenRef,
    opts: &SealOptions,
) -> Result<EntryRef, PipelineError> {
    let key = DataKey::generate();
    let (reader, writer) = std::io::pipe()?;
    let sealer = {
        let opts = *opts;
        // The writer is dropped when sealing ends, which closes the pipe for the store.
        blocking(move || {
            let output = std::io::BufWriter::with_capacity(1 << 20, writer);
            let summary = sealing::seal(&key, plaintext, output, &opts).map_err(|source| {
                PipelineError::Seal {
                    entry: entry.name(),
                    source,
                }
            })?;
            Ok::<_, PipelineError>((key, summary.commitment))
        })
    };
    let (sealed, stored) = tokio::join!(sealer, store.put_reader(Box::new(reader)));
    let blob_error = |source| PipelineError::Blob {
        entry: entry.name(),
        source,
    };
    // Each side's failure makes the other fail too: a store failure (e.g. a full disk) breaks
    // the pipe under the sealer, and a sealer failure (e.g. the plaintext's disk) cuts the
    // stream short for the store. Report the cause: the sealer's error unless it is that
    // broken pipe.
    let ((key, commitment), blob) = match (sealed?, stored) {
        (Ok(sealed), Ok(blob)) => (sealed, blob),
        (Err(e), Err(source)) if e.is_broken_pipe() => return Err(blob_error(source)),
        (Err(e), _) => return Err(e),
        (Ok(_), Err(source)) => return Err(blob_error(source)),
    };
    if blob.commitment != commitment {
        return Err(blob_error(BlobError::CommitmentMismatch {
            expected: commitment,
            actual: blob.commitment,
        }));
    }
    let sealed_key = SealedKey::seal(&key, recipient, &token.key_context(blob.commitment))
        .map_err(|source| PipelineError::Key {
            entry: entry.name(),
            source,
        })?;
    Ok(EntryRef {
        data_hash: blob.commitment,
        sealed_key: Some(sealed_key),
        uri: blob.uri,
    })
}

/// Seals a whole agent: the model, the agent key, the config and, if given, the memory, in
/// [`EntryKind`] order, for `recipient`. Without memory the token has the classic three entries.
#[allow(clippy::too_many_arguments)] // each is one part of the agent; a struct would only rename them
pub async fn seal_agent(
    store: &dyn BlobStore,
    model: Box<dyn Read + Send>,
    agent_key: &PrivateKeySigner,
    config: &AgentConfig,
    memory: Option<&AgentMemory>,
    recipient: &SealingPublicKey,
    token: &TokenRef,
    opts: &SealOptions,
) -> Result<Vec<EntryRef>, PipelineError> {
    let key_bytes: Zeroizing<Vec<u8>> = Zeroizing::new(agent_key.credential().to_bytes().to_vec());
    let mut plaintexts: Vec<(EntryKind, Box<dyn Read + Send>)> = vec![
        (EntryKind::Model, model),
        (EntryKind::AgentKey, Box::new(Cursor::new(key_bytes))),
        (EntryKind::Config, Box::new(Cursor::new(config.to_json()))),
    ];
    if let Some(memory) = memory {
        plaintexts.push((EntryKind::Memory, Box::new(Cursor::new(memory.to_json()))));
    }
    let mut entries = Vec::with_capacity(plaintexts.len());
    for (kind, plaintext) in plaintexts {
        entries.push(seal_entry(store, kind, plaintext, recipient, token, opts).await?);
    }
    Ok(entries)
}

/// Opens every entry's data key with `secret` (fails fast, before any fetch, if the token's data
/// is not sealed to us). The token has three entries, or four with memory. The agent key and the
/// memory key may be absent (an authorized user gets neither); the model and config keys may not.
pub fn open_keys(
    entries: &[EntryRef],
    secret: &SealingSecret,
    token: &TokenRef,
) -> Result<Vec<Option<DataKey>>, PipelineError> {
    if !(EntryKind::REQUIRED.len()..=EntryKind::ALL.len()).contains(&entries.len()) {
        return Err(PipelineError::Layout {
            actual: entries.len(),
        });
    }
    EntryKind::ALL
        .iter()
        .zip(entries)
        .map(|(&kind, e)| match &e.sealed_key {
            Some(sealed) => sealed
                .open(secret, &token.key_context(e.data_hash))
                .map(Some)
                .map_err(|source| PipelineError::Key {
                    entry: kind.name(),
                    source,
                }),
            None if matches!(kind, EntryKind::AgentKey | EntryKind::Memory) => Ok(None),
            None => Err(PipelineError::MissingKey { entry: kind.name() }),
        })
        .collect()
}

/// Fetches the sealed blob of `entry` and verifies it against its commitment, refusing one
/// longer than an entry of its `kind` can be: the sender of a token chooses its blobs, so what
/// is downloaded is capped before anything is read.
pub async fn fetch_entry(
    store: &dyn BlobStore,
    kind: EntryKind,
    entry: &EntryRef,
) -> Result<crate::blobstore::VerifiedBlob, PipelineError> {
    store
        .fetch_at_most(&entry.uri, &entry.data_hash, max_sealed_len(kind))
        .await
        .map_err(|source| PipelineError::Blob {
            entry: kind.name(),
            source,
        })
}

/// Fetches `entry`, verifies it against its commitment and decrypts it with `key` into `sink` on
/// a blocking thread (every chunk is authenticated before it is written), returning the sink.
/// On error the sink is dropped with whatever it received.
pub async fn decrypt_entry<W: Write + Send + 'static>(
    store: &dyn BlobStore,
    kind: EntryKind,
    entry: &EntryRef,
    key: DataKey,
    opts: &SealOptions,
    mut sink: W,
) -> Result<W, PipelineError> {
    let blob = fetch_entry(store, kind, entry).await?;
    let expected = entry.data_hash;
    let opts = *opts;
    blocking(move || {
        let file = blob.open()?;
        sealing::open_verified(
            &key,
            &expected,
            std::io::BufReader::with_capacity(1 << 20, file),
            &mut sink,
            &opts,
        )
        .map_err(|source| PipelineError::Open {
            entry: kind.name(),
            source,
        })?;
        Ok(sink)
    })
    .await?
}

/// Largest sealed blob accepted for an entry other than the model: the agent key, the config
/// and the memory are a few KiB of plaintext (the memory at most
/// [`MAX_MEMORY_BYTES`](crate::memory::MAX_MEMORY_BYTES)).
pub const MAX_SMALL_ENTRY_LEN: u64 = 4 << 20;

/// The most bytes fetched for an entry of `kind`: [`MAX_SMALL_ENTRY_LEN`], or for the model
/// whatever the store allows (an HTTP store's
/// [`DEFAULT_MAX_BLOB_LEN`](crate::blobstore::DEFAULT_MAX_BLOB_LEN) unless configured).
pub fn max_sealed_len(kind: EntryKind) -> u64 {
    match kind {
        EntryKind::Model => u64::MAX,
        EntryKind::AgentKey | EntryKind::Config | EntryKind::Memory => MAX_SMALL_ENTRY_LEN,
    }
}

/// A growable buffer for secrets, zeroized on drop.
#[derive(Default)]
struct SecretBuf(Zeroizing<Vec<u8>>);

impl Write for SecretBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Fetches, verifies and decrypts a small entry into zeroizing memory.
async fn unseal_small(
    store: &dyn BlobStore,
    kind: EntryKind,
    entry: &EntryRef,
    key: DataKey,
    opts: &SealOptions,
) -> Result<Zeroizing<Vec<u8>>, PipelineError> {
    Ok(
        decrypt_entry(store, kind, entry, key, opts, SecretBuf::default())
            .await?
            .0,
    )
}

/// Unseals only the agent key of a token held by `secret`'s owner (e.g. to sweep the agent
/// wallet when the token moves), without touching the model.
pub async fn unseal_agent_key(
    store: &dyn BlobStore,
    entries: &[EntryRef],
    secret: &SealingSecret,
    token: &TokenRef,
    opts: &SealOptions,
) -> Result<PrivateKeySigner, PipelineError> {
    let kind = EntryKind::AgentKey;
    let key = open_keys(entries, secret, token)?
        .into_iter()
        .nth(kind.index())
        .flatten()
        .ok_or(PipelineError::MissingKey { entry: kind.name() })?;
    let bytes = unseal_small(store, kind, &entries[kind.index()], key, opts).await?;
    PrivateKeySigner::from_slice(&bytes).map_err(|_| PipelineError::AgentKey)
}

/// Unseals a token's small entries into memory for the holder of `secret` and opens the model's
/// key (see the module docs for the order of checks); the model itself is left to the engine.
pub async fn unseal_entries(
    store: &dyn BlobStore,
    entries: &[EntryRef],
    secret: &SealingSecret,
    token: &TokenRef,
    opts: &SealOptions,
) -> Result<UnsealedEntries, PipelineError> {
    let mut keys = open_keys(entries, secret, token)?.into_iter();
    let (Some(Some(model_key)), Some(agent_key), Some(Some(config_key)), memory_key) =
        (keys.next(), keys.next(), keys.next(), keys.next().flatten())
    else {
        return Err(PipelineError::Layout {
            actual: entries.len(),
        });
    };

    let config_bytes = unseal_small(
        store,
        EntryKind::Config,
        &entries[EntryKind::Config.index()],
        config_key,
        opts,
    )
    .await?;
    let config = AgentConfig::from_json(&config_bytes)?;
    let agent_key = match agent_key {
        Some(key) => {
            let bytes = unseal_small(
                store,
                EntryKind::AgentKey,
                &entries[EntryKind::AgentKey.index()],
                key,
                opts,
            )
            .await?;
            Some(PrivateKeySigner::from_slice(&bytes).map_err(|_| PipelineError::AgentKey)?)
        }
        None => None,
    };
    let memory = match memory_key {
        Some(key) => {
            let kind = EntryKind::Memory;
            let bytes = unseal_small(store, kind, &entries[kind.index()], key, opts).await?;
            Some(AgentMemory::from_json(&bytes)?)
        }
        None => None,
    };

    Ok(UnsealedEntries {
        agent_key,
        config,
        memory,
        model_entry: entries[EntryKind::Model.index()].clone(),
        model_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobstore::LocalDirStore;

    fn token(id: u64) -> TokenRef {
        TokenRef {
            chain_id: 31337,
            nft: Address::repeat_byte(0x11),
            token_id: U256::from(id),
        }
    }

    #[tokio::test]
    async fn small_entries_are_capped_before_they_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::open(dir.path()).unwrap();
        let secret = SealingSecret::generate();
        let t = token(9);
        let big = vec![7u8; usize::try_from(MAX_SMALL_ENTRY_LEN).unwrap() + 1];
        let entry = seal_entry(
            &store,
            EntryKind::Config,
            Box::new(Cursor::new(big)),
            &secret.public_key(),
            &t,
            &SealOptions::default(),
        )
        .await
        .unwrap();
        let key = entry
            .sealed_key
            .as_ref()
            .unwrap()
            .open(&secret, &t.key_context(entry.data_hash))
            .unwrap();
        let err = unseal_small(
            &store,
            EntryKind::Config,
            &entry,
            key,
            &SealOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                PipelineError::Blob {
                    source: BlobError::TooLarge { .. },
                    ..
                }
            ),
            "{err}"
        );
    }
}
