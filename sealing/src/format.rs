//! The blob header and its key schedule. Byte layout: see FORMAT.md.
//!
//! A payload key is only obtainable from a header whose key check and MAC were verified
//! ([`UnverifiedHeader::verify`]): the type system enforces the order of checks.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::OpenError;
use crate::keys::DataKey;
use crate::labels;

/// Blob magic, the first 8 bytes of every sealed blob.
pub const MAGIC: &[u8; 8] = b"inftblob";
/// The format version this library writes and reads.
pub const VERSION: u8 = 1;
/// Cipher suite 2: HKDF-SHA256 key schedule, HMAC-SHA256 header MAC, AES-256-GCM STREAM chunks,
/// Merkle commitment with BLAKE3 leaves and SHA-256 inner nodes. (Suite 1, all-SHA-256, was
/// retired before any release: hashing every byte with SHA-256 capped unsealing at a fifth of
/// AES-GCM's speed.)
pub const SUITE_AES256GCM_BLAKE3: u8 = 2;
/// Total header length in bytes.
pub const HEADER_LEN: usize = 72;
/// Length of the random nonce prefix.
pub const NONCE_PREFIX_LEN: usize = 7;
/// AES-GCM tag length, appended to every chunk.
pub const TAG_LEN: usize = 16;
/// Smallest allowed plaintext chunk size.
pub const MIN_CHUNK_SIZE: u32 = 16;
/// Largest allowed plaintext chunk size (16 MiB): bounds the memory a hostile header can demand.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
/// Default plaintext chunk size (1 MiB).
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// Highest chunk index: the counter is 32 bits and never wraps.
pub(crate) const MAX_CHUNK_INDEX: u64 = u32::MAX as u64;

const KEY_CHECK_LEN: usize = 16;
const OFF_CHUNK_SIZE: usize = 12;
const OFF_NONCE: usize = 16;
const OFF_KEY_CHECK: usize = 24;
const OFF_MAC: usize = 40;

/// Keys derived from a data key: `PRK = HKDF-Extract("inft/v1/blob", data key)`.
struct Schedule {
    key_check: [u8; KEY_CHECK_LEN],
    mac_key: Zeroizing<[u8; 32]>,
    payload: Zeroizing<[u8; 32]>,
}

impl Schedule {
    fn derive(key: &DataKey) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(labels::BLOB_KDF_SALT), key.expose());
        let mut s = Self {
            key_check: [0; KEY_CHECK_LEN],
            mac_key: Zeroizing::new([0; 32]),
            payload: Zeroizing::new([0; 32]),
        };
        // Expanding at most 32 bytes from SHA-256 HKDF cannot fail (limit is 255 * 32).
        let ok = hk.expand(labels::BLOB_KEY_CHECK, &mut s.key_check).is_ok()
            && hk
                .expand(labels::BLOB_HEADER_MAC, s.mac_key.as_mut_slice())
                .is_ok()
            && hk
                .expand(labels::BLOB_PAYLOAD, s.payload.as_mut_slice())
                .is_ok();
        debug_assert!(ok);
        s
    }

    fn mac(&self, authenticated: &[u8]) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(self.mac_key.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        m.update(authenticated);
        m
    }

    fn payload_key(&self, nonce_prefix: [u8; NONCE_PREFIX_LEN]) -> PayloadKey {
        let key = UnboundKey::new(&AES_256_GCM, self.payload.as_slice())
            .unwrap_or_else(|_| unreachable!("32-byte AES-256 key"));
        PayloadKey {
            key: LessSafeKey::new(key),
            nonce_prefix,
        }
    }
}

/// A verified (or freshly made) header.
#[derive(Clone)]
pub(crate) struct Header {
    pub(crate) bytes: [u8; HEADER_LEN],
    pub(crate) chunk_size: u32,
}

impl Header {
    /// Makes the header for a new blob and returns it with its payload key.
    pub(crate) fn new(
        key: &DataKey,
        chunk_size: u32,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
    ) -> (Self, PayloadKey) {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[..8].copy_from_slice(MAGIC);
        bytes[8] = VERSION;
        bytes[9] = SUITE_AES256GCM_BLAKE3;
        // bytes 10..12 reserved, zero
        bytes[OFF_CHUNK_SIZE..OFF_NONCE].copy_from_slice(&chunk_size.to_be_bytes());
        bytes[OFF_NONCE..OFF_NONCE + NONCE_PREFIX_LEN].copy_from_slice(&nonce_prefix);
        // byte 23 reserved, zero
        let sched = Schedule::derive(key);
        bytes[OFF_KEY_CHECK..OFF_MAC].copy_from_slice(&sched.key_check);
        let tag = sched.mac(&bytes[..OFF_MAC]).finalize().into_bytes();
        bytes[OFF_MAC..].copy_from_slice(&tag);
        (Self { bytes, chunk_size }, sched.payload_key(nonce_prefix))
    }

    /// Structural checks only (no key): magic, version, suite, chunk size bounds.
    pub(crate) fn parse(bytes: [u8; HEADER_LEN]) -> Result<UnverifiedHeader, OpenError> {
        if &bytes[..8] != MAGIC {
            return Err(OpenError::BadMagic);
        }
        if bytes[8] != VERSION {
            return Err(OpenError::Version(bytes[8]));
        }
        if bytes[9] != SUITE_AES256GCM_BLAKE3 {
            return Err(OpenError::Suite(bytes[9]));
        }
        let mut cs = [0u8; 4];
        cs.copy_from_slice(&bytes[OFF_CHUNK_SIZE..OFF_NONCE]);
        let chunk_size = u32::from_be_bytes(cs);
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(OpenError::ChunkSize(chunk_size));
        }
        Ok(UnverifiedHeader(Header { bytes, chunk_size }))
    }

    fn nonce_prefix(&self) -> [u8; NONCE_PREFIX_LEN] {
        let mut p = [0u8; NONCE_PREFIX_LEN];
        p.copy_from_slice(&self.bytes[OFF_NONCE..OFF_NONCE + NONCE_PREFIX_LEN]);
        p
    }
}

/// A structurally valid header whose key check and MAC are not yet verified.
pub(crate) struct UnverifiedHeader(Header);

impl UnverifiedHeader {
    /// The header, for key-less uses (the commitment covers the header bytes as they are).
    pub(crate) fn unauthenticated(self) -> Header {
        self.0
    }

    /// Checks the key check (wrong key) and then the MAC (altered header); only then hands out
    /// the payload key.
    pub(crate) fn verify(self, key: &DataKey) -> Result<(Header, PayloadKey), OpenError> {
        let h = self.0;
        let sched = Schedule::derive(key);
        // Constant-time compare: the key check is a PRF of the key, leak nothing about it.
        let diff = sched
            .key_check
            .iter()
            .zip(&h.bytes[OFF_KEY_CHECK..OFF_MAC])
            .fold(0u8, |acc, (x, y)| acc | (x ^ y));
        let check_ok = diff == 0;
        if !check_ok {
            return Err(OpenError::WrongKey);
        }
        sched
            .mac(&h.bytes[..OFF_MAC])
            .verify_slice(&h.bytes[OFF_MAC..])
            .map_err(|_| OpenError::Header)?;
        let pk = sched.payload_key(h.nonce_prefix());
        Ok((h, pk))
    }
}

/// The AES-256-GCM key of one blob's payload plus its nonce prefix.
pub(crate) struct PayloadKey {
    key: LessSafeKey,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

impl PayloadKey {
    /// `nonce = prefix(7) ‖ u32be(index) ‖ last(1)`. Callers guarantee `index <= u32::MAX`.
    fn nonce(&self, index: u64, last: bool) -> Option<Nonce> {
        let counter = u32::try_from(index).ok()?;
        let mut n = [0u8; 12];
        n[..NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        n[NONCE_PREFIX_LEN..11].copy_from_slice(&counter.to_be_bytes());
        n[11] = u8::from(last);
        Some(Nonce::assume_unique_for_key(n))
    }

    /// Encrypts `slot[..len]` in place and writes the tag at `slot[len..len + 16]`.
    /// Returns false only on an index beyond the counter range or a too-small slot.
    pub(crate) fn seal_chunk(&self, index: u64, last: bool, slot: &mut [u8], len: usize) -> bool {
        let Some(nonce) = self.nonce(index, last) else {
            return false;
        };
        if slot.len() < len + TAG_LEN {
            return false;
        }
        let (data, rest) = slot.split_at_mut(len);
        match self
            .key
            .seal_in_place_separate_tag(nonce, Aad::empty(), data)
        {
            Ok(tag) => {
                rest[..TAG_LEN].copy_from_slice(tag.as_ref());
                true
            }
            Err(_) => false,
        }
    }

    /// Decrypts `record` (ciphertext ‖ tag) into `out[..record.len() - 16]`; true if authentic.
    /// `record` is left untouched, so a failed chunk can be retried under other nonces.
    pub(crate) fn open_chunk(&self, index: u64, last: bool, record: &[u8], out: &mut [u8]) -> bool {
        let Some(nonce) = self.nonce(index, last) else {
            return false;
        };
        let Some(ct_len) = record.len().checked_sub(TAG_LEN) else {
            return false;
        };
        if out.len() < ct_len {
            return false;
        }
        let Ok(tag) = Tag::try_from(&record[ct_len..]) else {
            return false;
        };
        let out = &mut out[..ct_len];
        out.copy_from_slice(&record[..ct_len]);
        self.key
            .open_in_place_separate_tag(nonce, Aad::empty(), tag, out, 0..)
            .is_ok()
    }
}
