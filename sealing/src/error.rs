//! Error types. Detail-free on purpose where detail would help an attacker: every AEAD failure
//! maps to exactly one opaque variant per place (a chunk, a sealed key, a key file).

use crate::Commitment;

/// Why sealing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The requested chunk size is outside [`MIN_CHUNK_SIZE`](crate::MIN_CHUNK_SIZE)..=
    /// [`MAX_CHUNK_SIZE`](crate::MAX_CHUNK_SIZE).
    #[error("chunk size {0} is outside the supported range")]
    ChunkSize(u32),
    /// The input needs more than 2^32 chunks: the 32-bit chunk counter would wrap.
    #[error("input too large: more than 2^32 chunks at this chunk size")]
    TooLarge,
    /// Reading the input or writing the output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Why a sealed blob was refused.
///
/// On any error the caller must discard whatever output was written so far: only the chunks
/// before the failing one were authenticated, and the blob as a whole was not.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The input does not start with the blob magic.
    #[error("not an inft sealed blob (bad magic)")]
    BadMagic,
    /// The format version is not one this library reads.
    #[error("unsupported format version {0}")]
    Version(u8),
    /// The cipher suite byte is not one this library knows.
    #[error("unsupported cipher suite {0}")]
    Suite(u8),
    /// The header's chunk size is outside the supported bounds.
    #[error("header chunk size {0} is outside the supported range")]
    ChunkSize(u32),
    /// The input ended inside the header.
    #[error("input ended inside the header")]
    TruncatedHeader,
    /// The data key does not match this blob (its key check failed).
    #[error("wrong data key for this blob")]
    WrongKey,
    /// The header MAC did not verify: a header field was altered.
    #[error("header authentication failed")]
    Header,
    /// Chunk `index` failed authentication (altered, substituted, or from another blob).
    #[error("chunk {index} failed authentication")]
    Chunk {
        /// Zero-based position of the chunk in the stream.
        index: u64,
    },
    /// The chunk at position `index` is an authentic chunk of this blob that belongs at
    /// position `original` (chunks were reordered or duplicated).
    #[error("chunk at position {index} is chunk {original} of this blob (reordered)")]
    Reordered {
        /// Position where the chunk was found.
        index: u64,
        /// Position the chunk was sealed for.
        original: u64,
    },
    /// The final record is shorter than an authentication tag.
    #[error("chunk {index} is shorter than its authentication tag")]
    ShortChunk {
        /// Zero-based position of the chunk in the stream.
        index: u64,
    },
    /// The stream ended at a chunk boundary without a final chunk.
    #[error("stream truncated after {chunks} chunks")]
    Truncated {
        /// Number of authentic chunks seen before the stream ended.
        chunks: u64,
    },
    /// Bytes follow the final chunk.
    #[error("trailing data after the final chunk {after_chunk}")]
    TrailingData {
        /// Index of the final chunk.
        after_chunk: u64,
    },
    /// An authentic chunk follows the final chunk (a second "last" chunk or any later chunk).
    #[error("chunk {index} follows the final chunk")]
    ChunkAfterLast {
        /// Index of the chunk found after the final one.
        index: u64,
    },
    /// The stream has more than 2^32 chunks: the chunk counter would wrap.
    #[error("chunk counter overflow: more than 2^32 chunks")]
    CounterOverflow,
    /// The blob is valid but its commitment is not the expected one.
    #[error("commitment mismatch: expected {expected}, blob has {actual}")]
    CommitmentMismatch {
        /// The commitment the caller expected (e.g. the on-chain data hash).
        expected: Commitment,
        /// The commitment of the blob that was read.
        actual: Commitment,
    },
    /// Reading the input or writing the output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Why a sealed key could not be made, parsed or opened, or a wallet key derived.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A sealed key must be exactly [`SealedKey::LEN`](crate::SealedKey::LEN) bytes.
    #[error("sealed key must be {expected} bytes, got {actual}")]
    Length {
        /// Required length.
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// The sealed key's version byte is not one this library reads.
    #[error("unsupported sealed key version {0}")]
    Version(u8),
    /// The X25519 exchange produced the all-zero shared secret (a low-order public key).
    #[error("X25519 public key is of low order (all-zero shared secret)")]
    LowOrderPoint,
    /// Opening failed: wrong recipient secret, wrong context, or altered sealed key. One opaque
    /// variant on purpose.
    #[error("sealed key does not open with this secret and context")]
    Unseal,
    /// The wallet signature is not a valid secp256k1 signature encoding (r or s zero or out of range).
    #[error("invalid wallet signature")]
    InvalidSignature,
}

/// Why a hex string could not be parsed into a fixed-size value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Not valid hexadecimal.
    #[error("invalid hex: {0}")]
    Hex(#[from] hex::FromHexError),
    /// Wrong number of bytes.
    #[error("expected {expected} bytes, got {actual}")]
    Length {
        /// Required length.
        expected: usize,
        /// Length given.
        actual: usize,
    },
}

/// Why a passphrase-encrypted key file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Not valid key-file JSON.
    #[error("key file is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Unsupported version, kind or algorithm, or a field out of bounds.
    #[error("unsupported or malformed key file: {0}")]
    Format(&'static str),
    /// Wrong passphrase, or the file was altered. One opaque variant on purpose.
    #[error("wrong passphrase or corrupted key file")]
    Passphrase,
    /// The password hashing function failed (parameters rejected).
    #[error("key derivation failed: {0}")]
    Kdf(String),
}
