#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod commitment;
mod error;
mod format;
mod keyfile;
mod keys;
pub mod labels;
mod sealed_key;
mod stream;

#[cfg(test)]
mod tests;

pub use commitment::Commitment;
pub use error::{KeyError, KeyFileError, OpenError, ParseError, SealError};
pub use format::{
    DEFAULT_CHUNK_SIZE, HEADER_LEN, MAGIC, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, NONCE_PREFIX_LEN,
    SUITE_AES256GCM_BLAKE3, TAG_LEN, VERSION,
};
pub use keyfile::{EncryptedKeyFile, KdfParams};
pub use keys::{DataKey, SealingPublicKey, SealingSecret};
pub use sealed_key::{KeyContext, SealedKey};
pub use stream::{
    OpenSummary, SealOptions, SealSummary, commitment_of, commitment_of_with, open, open_verified,
    seal,
};

/// The fixed message an owner's wallet signs (as EIP-712 typed data built by the runtime) to
/// derive their sealing key with [`SealingSecret::from_wallet_signature`]. Changing it changes
/// every wallet-derived key.
pub const WALLET_KEY_MESSAGE: &str = "inft: derive my sealing key (v1). Sign only in an inft client; this signature decrypts your agents.";
