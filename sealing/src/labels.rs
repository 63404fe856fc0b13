//! Protocol labels: every KDF, MAC and AEAD input is domain-separated by one of these names.
//! Changing any of them is a format break (bump the version).

/// HKDF-Extract salt for the blob key schedule (ikm = data key).
pub const BLOB_KDF_SALT: &[u8] = b"inft/v1/blob";
/// HKDF-Expand info for the 16-byte key check stored in the header.
pub const BLOB_KEY_CHECK: &[u8] = b"inft/v1/blob/key-check";
/// HKDF-Expand info for the HMAC-SHA256 header MAC key.
pub const BLOB_HEADER_MAC: &[u8] = b"inft/v1/blob/header-mac";
/// HKDF-Expand info for the AES-256-GCM payload key.
pub const BLOB_PAYLOAD: &[u8] = b"inft/v1/blob/payload";

/// HKDF-Expand info (and AAD prefix) for sealed data keys.
pub const SEALED_KEY: &[u8] = b"inft/v1/sealed-key";

/// HKDF-Extract salt for the owner sealing key derived from a wallet signature.
pub const OWNER_KEY_SALT: &[u8] = b"inft/v1/owner-sealing-key";
/// HKDF-Expand info for the owner sealing key derived from a wallet signature.
pub const OWNER_KEY_INFO: &[u8] = b"inft/v1/owner-sealing-key/x25519";

/// AAD prefix for passphrase-encrypted key files.
pub const KEY_FILE: &[u8] = b"inft/v1/key-file";
