//! Key types: the per-blob data key and the owner's X25519 sealing key pair.

use std::fmt;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{KeyError, ParseError};
use crate::labels;

/// Fills `buf` from the operating system's CSPRNG.
///
/// # Panics
/// If the OS random source fails; there is no safe way to continue making keys without it.
pub(crate) fn os_random(buf: &mut [u8]) {
    // An OS RNG failure is an environment fault, not an input: like rand's ThreadRng we stop.
    #[allow(clippy::expect_used)]
    getrandom::fill(buf).expect("operating system random source failed");
}

/// A 256-bit data key: encrypts exactly one blob. Zeroized on drop, never `Clone`, redacted `Debug`.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// Length in bytes.
    pub const LEN: usize = 32;

    /// A fresh random key from the OS CSPRNG.
    ///
    /// # Panics
    /// If the OS random source fails.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        os_random(k.as_mut_slice());
        Self(k)
    }

    /// Wraps existing key bytes (e.g. just unwrapped from a [`SealedKey`](crate::SealedKey)).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw key bytes. Only for wrapping the key (sealed keys, key escrow); never log them.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// An X25519 public key that sealed keys are made for; published on chain by the owner.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SealingPublicKey([u8; 32]);

impl SealingPublicKey {
    /// Length in bytes.
    pub const LEN: usize = 32;

    /// From raw bytes (Montgomery u-coordinate). Low-order keys are refused when sealing.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex without a `0x` prefix.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits, with or without a `0x` prefix.
    pub fn from_hex(s: &str) -> Result<Self, ParseError> {
        parse_hex32(s).map(Self)
    }
}

impl fmt::Display for SealingPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SealingPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealingPublicKey({})", self.to_hex())
    }
}

impl std::str::FromStr for SealingPublicKey {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

/// The owner's X25519 static secret. Zeroized on drop, never `Clone`, redacted `Debug`.
pub struct SealingSecret(x25519_dalek::StaticSecret);

impl SealingSecret {
    /// Length in bytes.
    pub const LEN: usize = 32;

    /// A fresh random secret from the OS CSPRNG.
    ///
    /// # Panics
    /// If the OS random source fails.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        os_random(k.as_mut_slice());
        Self::from_bytes(*k)
    }

    /// From raw secret bytes (clamped by X25519 as usual).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        Self(x25519_dalek::StaticSecret::from(*bytes))
    }

    /// The raw secret bytes, zeroized when dropped. Only for storing the key encrypted.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> SealingPublicKey {
        SealingPublicKey(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }

    /// Derives the owner's sealing key from a 65-byte secp256k1 signature `r ‖ s ‖ v` that the
    /// owner's wallet made over the fixed EIP-712 message [`WALLET_KEY_MESSAGE`](crate::WALLET_KEY_MESSAGE).
    ///
    /// `secret = HKDF-SHA256(salt = "inft/v1/owner-sealing-key", ikm = r ‖ low_s(s),
    /// info = "inft/v1/owner-sealing-key/x25519")`. `v` is ignored and `s` is normalized to the
    /// lower half of the curve order, so the two encodings of one signature (EIP-2 malleability,
    /// v as 0/1 or 27/28) derive the same key. Deterministic only with a deterministic
    /// (RFC 6979) signer, such as alloy's local signer or a hardware wallet using RFC 6979.
    pub fn from_wallet_signature(signature: &[u8; 65]) -> Result<Self, KeyError> {
        let mut ikm = Zeroizing::new([0u8; 64]);
        ikm[..32].copy_from_slice(&signature[..32]);
        let mut s = [0u8; 32];
        s.copy_from_slice(&signature[32..64]);
        let r: [u8; 32] = ikm[..32]
            .try_into()
            .map_err(|_| KeyError::InvalidSignature)?;
        if is_zero(&r)
            || is_zero(&s)
            || !less_than(&r, &SECP256K1_N)
            || !less_than(&s, &SECP256K1_N)
        {
            return Err(KeyError::InvalidSignature);
        }
        if less_than(&SECP256K1_HALF_N, &s) {
            s = sub(&SECP256K1_N, &s);
        }
        ikm[32..].copy_from_slice(&s);
        let hk = Hkdf::<Sha256>::new(Some(labels::OWNER_KEY_SALT), ikm.as_slice());
        let mut okm = Zeroizing::new([0u8; 32]);
        hk.expand(labels::OWNER_KEY_INFO, okm.as_mut_slice())
            .map_err(|_| KeyError::InvalidSignature)?;
        Ok(Self::from_bytes(*okm))
    }

    pub(crate) fn inner(&self) -> &x25519_dalek::StaticSecret {
        &self.0
    }
}

impl fmt::Debug for SealingSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealingSecret(<redacted>, public {})", self.public_key())
    }
}

/// secp256k1 group order n, big-endian.
const SECP256K1_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];
/// floor(n / 2), big-endian: the EIP-2 upper bound for `s`.
const SECP256K1_HALF_N: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
];

fn is_zero(a: &[u8; 32]) -> bool {
    a.iter().all(|&b| b == 0)
}

/// Big-endian `a < b`.
fn less_than(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a < b // lexicographic order of equal-length big-endian arrays is numeric order
}

/// Big-endian `a - b` for `a >= b`.
fn sub(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = 0;
        if d < 0 {
            d += 256;
            borrow = 1;
        }
        out[i] = d as u8;
    }
    out
}

pub(crate) fn parse_hex32(s: &str) -> Result<[u8; 32], ParseError> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let v = hex::decode(s)?;
    let actual = v.len();
    v.try_into().map_err(|_| ParseError::Length {
        expected: 32,
        actual,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_n_is_n_shifted() {
        // n is odd, so n - half_n = half_n + 1.
        let d = sub(&SECP256K1_N, &SECP256K1_HALF_N);
        let mut expect = SECP256K1_HALF_N;
        expect[31] += 1;
        assert_eq!(d, expect);
    }

    #[test]
    fn debug_is_redacted() {
        let k = DataKey::from_bytes([0xab; 32]);
        assert!(!format!("{k:?}").contains("ab"));
        let s = SealingSecret::from_bytes([0xcd; 32]);
        assert!(!format!("{s:?}").contains("cdcd"));
    }
}
